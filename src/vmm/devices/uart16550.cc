#include "vmm/devices/uart16550.h"

namespace softkvm::vmm {

void Uart16550::set_irq(IrqLine line) {
    irq_ = std::move(line);
    irq_level_ = false;
    update_irq();
}

size_t Uart16550::receive(const char* bytes, size_t n) {
    size_t taken = 0;
    {
        std::lock_guard<std::mutex> lock(rx_mu_);
        while (taken < n && rx_.size() < kFifoSize)
            rx_.push_back(static_cast<uint8_t>(bytes[taken++]));
    }
    update_irq();
    return taken;
}

// The highest-priority pending source (16550A: line status, data, THR empty, modem).
uint8_t Uart16550::iir() const {
    const uint8_t fifo = (fcr_ & kFcrEnable) ? kIirFifo : 0;
    if ((ier_ & kIerRls) && overrun_) return fifo | kIirRls;
    if ((ier_ & kIerRx) && !rx_.empty()) return fifo | kIirRx;
    if ((ier_ & kIerThre) && thre_pending_) return fifo | kIirThre;
    return fifo | kIirNoInterrupt;  // no modem-status changes are ever pending
}

void Uart16550::update_irq() {
    bool pending;
    {
        std::lock_guard<std::mutex> lock(rx_mu_);
        pending = !(iir() & kIirNoInterrupt);
    }
    const bool level = pending && (mcr_ & kMcrOut2);
    if (level != irq_level_) {
        irq_level_ = level;
        if (irq_) irq_(level);
    }
}

void Uart16550::read(uint64_t offset, uint8_t* data, uint8_t size) {
    uint8_t v = 0;
    const bool dlab = lcr_ & kLcrDlab;
    {
        std::lock_guard<std::mutex> lock(rx_mu_);
        switch (offset) {
            case RBR_THR:
                if (dlab) {
                    v = dll_;
                } else if (!rx_.empty()) {
                    v = rx_.front();
                    rx_.pop_front();
                }
                break;
            case IER:
                v = dlab ? dlm_ : ier_;
                break;
            case IIR_FCR:
                v = iir();
                if ((v & 0x0F) == kIirThre) thre_pending_ = false;  // reading IIR clears it
                break;
            case LCR:
                v = lcr_;
                break;
            case MCR:
                v = mcr_;
                break;
            case LSR:
                v = kLsrThre | kLsrTemt | (rx_.empty() ? 0 : kLsrDr) | (overrun_ ? kLsrOe : 0);
                overrun_ = false;  // reading LSR clears the error bits
                break;
            case MSR:
                v = (mcr_ & kMcrLoop) ? static_cast<uint8_t>((mcr_ & 0xF) << 4) : 0xB0;
                break;
            case SCR:
                v = scr_;
                break;
            default:
                break;
        }
    }
    for (uint8_t k = 0; k < size; ++k) data[k] = k == 0 ? v : 0;
    update_irq();
}

void Uart16550::write(uint64_t offset, const uint8_t* data, uint8_t) {
    const uint8_t v = data[0];
    const bool dlab = lcr_ & kLcrDlab;
    switch (offset) {
        case RBR_THR:
            if (dlab) {
                dll_ = v;
                break;
            }
            if (mcr_ & kMcrLoop) {
                std::lock_guard<std::mutex> lock(rx_mu_);
                if (rx_.size() < kFifoSize)
                    rx_.push_back(v);
                else
                    overrun_ = true;
            } else {
                sink_(static_cast<char>(v));
                ++sent_;
            }
            thre_pending_ = true;  // sent at once: THR is empty again
            break;
        case IER:
            if (dlab) {
                dlm_ = v;
            } else {
                // THR is always empty: enabling its interrupt raises it.
                if ((v & kIerThre) && !(ier_ & kIerThre)) thre_pending_ = true;
                ier_ = v & 0x0F;
            }
            break;
        case IIR_FCR:
            fcr_ = v;
            if (v & kFcrClearRx) {
                std::lock_guard<std::mutex> lock(rx_mu_);
                rx_.clear();
            }
            break;
        case LCR:
            lcr_ = v;
            break;
        case MCR:
            mcr_ = v & 0x1F;
            break;
        case SCR:
            scr_ = v;
            break;
        default:
            break;  // LSR and MSR are read-only
    }
    update_irq();
}

}  // namespace softkvm::vmm
