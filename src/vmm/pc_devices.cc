// The legacy PC devices every machine has, at their ISA ports, with their interrupt lines
// on the VM's GSIs (Platform::set_irq): PIT channel 0 on IRQ 0 (GSI 2), the keyboard on
// IRQ 1 and COM1 on IRQ 4; and the PCI host bridge's configuration ports, with no
// device behind the bridge.
#include "vmm/acpi/acpi.h"
#include "vmm/machine.h"

namespace softkvm::vmm {

Status Platform::add_pc_devices(std::function<uint64_t()> clock_ns) {
    auto line = [this](uint32_t irq) {
        return [this, irq](bool level) { set_irq(acpi::isa_irq_to_gsi(irq), level); };
    };
    pit = std::make_shared<Pit>(clock_ns, line(0));
    if (auto st = pio.add(Pit::kPort, Pit::kPorts, pit); !st) return st;
    if (auto st = pit->attach(pio); !st) return st;
    rtc = std::make_shared<Rtc>(clock_ns);
    if (auto st = pio.add(Rtc::kPort, Rtc::kPorts, rtc); !st) return st;
    i8042 = std::make_shared<I8042>(line(1), nullptr);
    if (auto st = i8042->attach(pio); !st) return st;
    port80 = std::make_shared<Port80>();
    if (auto st = pio.add(Port80::kPort, Port80::kPorts, port80); !st) return st;
    pci_host = std::make_shared<PciHost>();
    if (auto st = pio.add(PciHost::kPort, PciHost::kPorts, pci_host); !st) return st;
    uart->set_irq(line(Uart16550::kCom1Irq));
    return {};
}

}  // namespace softkvm::vmm
