#include "accel/kvm_cpuid.h"

#include <fmt/format.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

namespace softkvm::accel {
namespace {

Error cpuid_error(const char* what) {
    const int e = errno;
    return make_error(fmt::format("kvm: {}: {}", what, std::strerror(e)), e ? e : EIO);
}

}  // namespace

Result<std::vector<kvm_cpuid_entry2>> kvm_supported_cpuid(int kvm_fd) {
    // KVM_MAX_CPUID_ENTRIES is 80 in old kernels and 256 in current ones; some nested
    // KVMs want a larger buffer than they fill. 4096 bounds the search.
    for (uint32_t n = 64; n <= 4096; n *= 2) {
        kvm_uapi::CpuidList list(n);
        if (ioctl(kvm_fd, kvm_uapi::kGetSupportedCpuid, list.arg()) == 0)
            return std::vector<kvm_cpuid_entry2>(list.entries(), list.entries() + list.count());
        if (errno != E2BIG) return cpuid_error("KVM_GET_SUPPORTED_CPUID");
    }
    return make_error("kvm: KVM_GET_SUPPORTED_CPUID wants more than 4096 entries", E2BIG);
}

const kvm_cpuid_entry2* kvm_find_cpuid(const std::vector<kvm_cpuid_entry2>& entries,
                                       uint32_t function, uint32_t index) {
    for (const kvm_cpuid_entry2& e : entries)
        if (e.function == function && e.index == index) return &e;
    return nullptr;
}

Status kvm_set_vcpu_cpuid(int vcpu_fd, const std::vector<kvm_cpuid_entry2>& supported,
                          uint32_t apic_id) {
    kvm_uapi::CpuidList list(static_cast<uint32_t>(supported.size()));
    for (size_t k = 0; k < supported.size(); ++k) {
        kvm_cpuid_entry2 e = supported[k];
        switch (e.function) {
            case 0x1:  // EBX[31:24]: initial APIC ID (SDM Vol. 2A, CPUID leaf 01H)
                e.ebx = (e.ebx & 0x00FFFFFFu) | (apic_id << 24);
                break;
            case 0xB:   // EDX: x2APIC ID of the current logical processor (leaf 0BH)
            case 0x1F:  // the same in V2 extended topology (leaf 1FH)
                e.edx = apic_id;
                break;
            case 0x8000001E:  // AMD: EAX = extended APIC ID (APM Vol. 3, E.4.24)
                e.eax = apic_id;
                break;
            default:
                break;
        }
        list.entries()[k] = e;
    }
    if (ioctl(vcpu_fd, kvm_uapi::kSetCpuid2, list.arg()) < 0) return cpuid_error("KVM_SET_CPUID2");
    return {};
}

}  // namespace softkvm::accel
