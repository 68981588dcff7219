// The i8042 keyboard controller at ports 0x60 (data) and 0x64 (status/command), far
// enough for Linux's probe and its reboot: the command byte (0x20/0x60), self tests
// (0xAA -> 0x55, 0xAB -> 0x00), keyboard enable/disable, the output port, and the reset
// line (0xFE, or 0xD1 with bit 0 clear) that ends the run. A keyboard answers the
// commands Linux's atkbd sends (ACK 0xFA, reset 0xAA, ID 0xAB 0x83) on IRQ 1; there is
// no auxiliary (mouse) port: its interface test (0xA9) reports a stuck clock line (0x01)
// and its loop-back (0xD3) never answers. Commands and bits: IBM PS/2 Technical Reference,
// "Keyboard/Auxiliary Device Controller"; Linux drivers/input/serio/i8042.h names them.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>

#include "common/result.h"
#include "vmm/bus.h"
#include "vmm/devices/irq_line.h"

namespace softkvm::vmm {

class I8042 {
  public:
    static constexpr uint16_t kDataPort = 0x60, kStatusPort = 0x64;
    // Status register bits.
    static constexpr uint8_t kStatusObf = 1u << 0, kStatusSys = 1u << 2, kStatusCmd = 1u << 3,
                             kStatusUnlocked = 1u << 4, kStatusAuxObf = 1u << 5;
    // Command byte (CTR) bits.
    static constexpr uint8_t kCtrKbdInt = 1u << 0, kCtrSys = 1u << 2, kCtrKbdDisable = 1u << 4,
                             kCtrAuxDisable = 1u << 5, kCtrXlate = 1u << 6;
    // Controller commands (port 0x64).
    static constexpr uint8_t kCmdReadCtr = 0x20, kCmdWriteCtr = 0x60, kCmdAuxDisable = 0xA7,
                             kCmdAuxEnable = 0xA8, kCmdAuxTest = 0xA9, kCmdSelfTest = 0xAA,
                             kCmdKbdTest = 0xAB, kCmdKbdDisable = 0xAD, kCmdKbdEnable = 0xAE,
                             kCmdReadOutPort = 0xD0, kCmdWriteOutPort = 0xD1,
                             kCmdWriteKbdOut = 0xD2, kCmdWriteAuxOut = 0xD3, kCmdWriteAux = 0xD4,
                             kCmdPulseReset = 0xFE;
    static constexpr uint8_t kSelfTestOk = 0x55, kAuxClockStuck = 0x01;
    static constexpr uint8_t kOutPortReset = 1u << 0, kOutPortA20 = 1u << 1;
    // Keyboard replies.
    static constexpr uint8_t kKbdAck = 0xFA, kKbdResend = 0xFE, kKbdSelfTestOk = 0xAA;

    using ResetFn = std::function<void()>;
    I8042(IrqLine kbd_irq, ResetFn reset) : irq_(std::move(kbd_irq)), reset_(std::move(reset)) {}

    // Registers the two ports on `pio`.
    Status attach(Bus& pio);
    uint8_t read_data();
    uint8_t read_status() const;
    void write_data(uint8_t v);
    void write_command(uint8_t v);
    uint8_t command_byte() const { return ctr_; }
    bool reset_requested() const { return reset_requested_; }

  private:
    void push(uint8_t byte);
    void keyboard(uint8_t v);
    void request_reset();
    void update_irq();

    IrqLine irq_;
    ResetFn reset_;
    std::deque<uint8_t> out_;  // keyboard/controller bytes waiting in the output buffer
    uint8_t ctr_ = kCtrKbdInt | kCtrSys | kCtrXlate;
    uint8_t out_port_ = kOutPortReset | kOutPortA20;
    uint8_t pending_ = 0;      // controller command waiting for its data byte
    uint8_t kbd_pending_ = 0;  // keyboard command waiting for its argument
    bool last_was_command_ = false;
    bool reset_requested_ = false;
    bool irq_level_ = false;
    uint8_t last_read_ = 0;  // an empty output buffer reads its last byte again
};

}  // namespace softkvm::vmm
