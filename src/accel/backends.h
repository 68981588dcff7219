// Factories of the two back ends; only accel.cc calls them.
#pragma once
#include "accel/accel.h"

namespace softkvm::accel {
Result<std::unique_ptr<Accelerator>> create_emu_accelerator();
Result<std::unique_ptr<Accelerator>> create_kvm_accelerator();
}  // namespace softkvm::accel
