// An interrupt request line from a device to the machine's interrupt controllers (the
// 8259 pair, the IOAPIC): the device drives its level, the controller decides what an
// edge or a level means. An unconnected line is a no-op.
#pragma once
#include <functional>

namespace softkvm::vmm {

using IrqLine = std::function<void(bool level)>;

}  // namespace softkvm::vmm
