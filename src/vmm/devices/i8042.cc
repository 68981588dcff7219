#include "vmm/devices/i8042.h"

namespace softkvm::vmm {
namespace {

// One port of the controller on the bus.
class I8042Port final : public Device {
  public:
    I8042Port(I8042& c, bool status) : c_(c), status_(status) {}
    std::string name() const override { return status_ ? "i8042-status" : "i8042-data"; }
    void read(uint64_t, uint8_t* data, uint8_t size) override {
        data[0] = status_ ? c_.read_status() : c_.read_data();
        for (uint8_t k = 1; k < size; ++k) data[k] = 0xFF;
    }
    void write(uint64_t, const uint8_t* data, uint8_t) override {
        if (status_)
            c_.write_command(data[0]);
        else
            c_.write_data(data[0]);
    }

  private:
    I8042& c_;
    bool status_;
};

// Keyboard commands (IBM PS/2 keyboard): those with an argument byte, and the replies.
constexpr uint8_t kKbdSetLeds = 0xED, kKbdEcho = 0xEE, kKbdScanSet = 0xF0, kKbdGetId = 0xF2,
                  kKbdTypematic = 0xF3, kKbdEnable = 0xF4, kKbdResetDisable = 0xF5,
                  kKbdDefaults = 0xF6, kKbdReset = 0xFF;
constexpr uint8_t kKbdId[] = {0xAB, 0x83};

}  // namespace

Status I8042::attach(Bus& pio) {
    if (auto st = pio.add(kDataPort, 1, std::make_shared<I8042Port>(*this, false)); !st) return st;
    return pio.add(kStatusPort, 1, std::make_shared<I8042Port>(*this, true));
}

uint8_t I8042::read_status() const {
    uint8_t s = kStatusUnlocked;
    if (!out_.empty()) s |= kStatusObf;
    if (ctr_ & kCtrSys) s |= kStatusSys;
    if (last_was_command_) s |= kStatusCmd;
    return s;
}

uint8_t I8042::read_data() {
    if (out_.empty()) return last_read_;
    last_read_ = out_.front();
    out_.pop_front();
    update_irq();
    return last_read_;
}

void I8042::push(uint8_t byte) {
    out_.push_back(byte);
    update_irq();
}

void I8042::update_irq() {
    const bool level = !out_.empty() && (ctr_ & kCtrKbdInt);
    if (level != irq_level_) {
        irq_level_ = level;
        if (irq_) irq_(level);
    }
}

void I8042::request_reset() {
    reset_requested_ = true;
    if (reset_) reset_();
}

void I8042::write_command(uint8_t v) {
    last_was_command_ = true;
    pending_ = 0;
    switch (v) {
        case kCmdReadCtr:
            push(ctr_);
            break;
        case kCmdWriteCtr:
        case kCmdWriteOutPort:
        case kCmdWriteKbdOut:
        case kCmdWriteAuxOut:
        case kCmdWriteAux:
            pending_ = v;
            break;
        case kCmdAuxDisable:
            ctr_ |= kCtrAuxDisable;
            break;
        case kCmdAuxEnable:
            ctr_ &= ~kCtrAuxDisable;
            break;
        case kCmdAuxTest:
            push(kAuxClockStuck);  // no auxiliary device port
            break;
        case kCmdSelfTest:
            ctr_ |= kCtrSys;
            push(kSelfTestOk);
            break;
        case kCmdKbdTest:
            push(0x00);
            break;
        case kCmdKbdDisable:
            ctr_ |= kCtrKbdDisable;
            break;
        case kCmdKbdEnable:
            ctr_ &= ~kCtrKbdDisable;
            break;
        case kCmdReadOutPort:
            push(out_port_);
            break;
        default:
            // 0xF0-0xFF pulse output-port bits 0-3 low for each clear bit in the low
            // nibble; bit 0 is the CPU reset line (0xFE).
            if (v >= 0xF0 && !(v & kOutPortReset)) request_reset();
            break;  // other commands: ignored
    }
    update_irq();
}

void I8042::write_data(uint8_t v) {
    last_was_command_ = false;
    const uint8_t cmd = pending_;
    pending_ = 0;
    switch (cmd) {
        case kCmdWriteCtr:
            ctr_ = v;
            update_irq();
            return;
        case kCmdWriteOutPort:
            out_port_ = v;
            if (!(v & kOutPortReset)) request_reset();
            return;
        case kCmdWriteKbdOut:
            push(v);
            return;
        case kCmdWriteAuxOut:
        case kCmdWriteAux:
            return;  // no auxiliary device: nothing answers
        default:
            keyboard(v);
            return;
    }
}

void I8042::keyboard(uint8_t v) {
    if (kbd_pending_) {  // the argument of SET LEDS, TYPEMATIC or SCAN SET
        kbd_pending_ = 0;
        push(kKbdAck);
        return;
    }
    switch (v) {
        case kKbdSetLeds:
        case kKbdTypematic:
        case kKbdScanSet:
            kbd_pending_ = v;
            push(kKbdAck);
            break;
        case kKbdEcho:
            push(kKbdEcho);
            break;
        case kKbdGetId:
            push(kKbdAck);
            for (uint8_t b : kKbdId) push(b);
            break;
        case kKbdEnable:
        case kKbdResetDisable:
        case kKbdDefaults:
            push(kKbdAck);
            break;
        case kKbdReset:
            push(kKbdAck);
            push(kKbdSelfTestOk);
            break;
        default:
            push(kKbdResend);
            break;
    }
}

}  // namespace softkvm::vmm
