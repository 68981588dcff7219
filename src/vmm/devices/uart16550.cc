#include "vmm/devices/uart16550.h"

namespace softkvm::vmm {

void Uart16550::read(uint64_t offset, uint8_t* data, uint8_t size) {
    uint8_t v = 0;
    const bool dlab = lcr_ & kLcrDlab;
    switch (offset) {
        case RBR_THR:
            v = dlab ? dll_ : 0;
            break;  // no receive path: RBR reads 0
        case IER:
            v = dlab ? dlm_ : ier_;
            break;
        case IIR_FCR:
            v = kIirNoInterrupt | ((fcr_ & 1) ? 0xC0 : 0);
            break;
        case LCR:
            v = lcr_;
            break;
        case MCR:
            v = mcr_;
            break;
        case LSR:
            v = kLsrThre | kLsrTemt;
            break;  // transmitter always empty, no data ready
        case MSR:
            v = (mcr_ & kMcrLoop) ? static_cast<uint8_t>((mcr_ & 0xF) << 4) : 0xB0;
            break;
        case SCR:
            v = scr_;
            break;
        default:
            break;
    }
    for (uint8_t k = 0; k < size; ++k) data[k] = k == 0 ? v : 0;
}

void Uart16550::write(uint64_t offset, const uint8_t* data, uint8_t) {
    const uint8_t v = data[0];
    const bool dlab = lcr_ & kLcrDlab;
    switch (offset) {
        case RBR_THR:
            if (dlab) {
                dll_ = v;
            } else if (!(mcr_ & kMcrLoop)) {
                sink_(static_cast<char>(v));
                ++sent_;
            }
            break;
        case IER:
            if (dlab)
                dlm_ = v;
            else
                ier_ = v & 0x0F;
            break;
        case IIR_FCR:
            fcr_ = v;
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
}

}  // namespace softkvm::vmm
