// The CPUID a vCPU on /dev/kvm sees: the list KVM supports on this host
// (KVM_GET_SUPPORTED_CPUID), with each vCPU's own APIC ID filled in (KVM_SET_CPUID2).
// Include only from accel/kvm* (it includes <linux/kvm.h>).
#pragma once
#include <cstdint>
#include <vector>

#include "accel/kvm_uapi.h"
#include "common/result.h"

namespace softkvm::accel {

// The host KVM's supported CPUID entries. Asks with a growing buffer while the kernel
// answers E2BIG (the number of entries it needs is not reported).
Result<std::vector<kvm_cpuid_entry2>> kvm_supported_cpuid(int kvm_fd);

// Gives the vCPU whose APIC ID is `apic_id` (KVM: its vCPU id) the entries `supported`,
// with the fields that name the processor set to that ID, as QEMU presents them.
Status kvm_set_vcpu_cpuid(int vcpu_fd, const std::vector<kvm_cpuid_entry2>& supported,
                          uint32_t apic_id);

// The entry for (function, index), or nullptr.
const kvm_cpuid_entry2* kvm_find_cpuid(const std::vector<kvm_cpuid_entry2>& entries,
                                       uint32_t function, uint32_t index = 0);

}  // namespace softkvm::accel
