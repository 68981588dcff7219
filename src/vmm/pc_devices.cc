// The legacy PC devices every machine has, at their ISA ports. Their interrupt lines
// (PIT IRQ 0, keyboard IRQ 1) are not connected yet: nothing routes them to the vCPU.
#include "vmm/machine.h"

namespace softkvm::vmm {

Status Platform::add_pc_devices(std::function<uint64_t()> clock_ns) {
    pit = std::make_shared<Pit>(clock_ns, IrqLine{});
    if (auto st = pio.add(Pit::kPort, Pit::kPorts, pit); !st) return st;
    if (auto st = pit->attach(pio); !st) return st;
    rtc = std::make_shared<Rtc>(clock_ns);
    if (auto st = pio.add(Rtc::kPort, Rtc::kPorts, rtc); !st) return st;
    i8042 = std::make_shared<I8042>(IrqLine{}, nullptr);
    if (auto st = i8042->attach(pio); !st) return st;
    port80 = std::make_shared<Port80>();
    return pio.add(Port80::kPort, Port80::kPorts, port80);
}

}  // namespace softkvm::vmm
