// Measured facts about the host's /dev/kvm for `softkvm caps`: each one comes from doing
// the thing on a small VM, not from reading a list.
#pragma once
#include "accel/accel.h"

namespace softkvm::accel {

// Runs a few instructions of 32-bit guest code that take the path every softkvm guest
// takes into 64-bit mode (CR4.PAE, CR3, WRMSR EFER.LME, CR0.PG, far jump to a 64-bit
// code segment) and reports whether the guest got there. `cpuid_detail` says what
// KVM_GET_SUPPORTED_CPUID returned; it is appended to the result.
Capability kvm_probe_long_mode(Accelerator& kvm, const std::string& cpuid_detail);

}  // namespace softkvm::accel
