// Layout-exact stand-ins for the <linux/kvm.h> structures that end in a flexible array,
// and the ioctl numbers that go with them. Include only from accel/kvm* (docs/architecture.md
// "Layers": the only code that includes <linux/kvm.h>).
//
// Why: the uapi headers before Linux 6.7 (Debian 12 ships linux-libc-dev 6.1) declare
// those arrays with __DECLARE_FLEX_ARRAY, which wraps them in an anonymous struct that
// holds an empty struct. An empty struct has size 0 in C but 1 in C++, so under a C++
// compiler sizeof(struct kvm_cpuid2) is 12 instead of 8, the entries start at offset 12
// instead of 8, and the size that _IOWR() encodes into KVM_GET_SUPPORTED_CPUID and
// KVM_SET_CPUID2 changes: the kernel does not recognise the number and returns EINVAL.
// (Linux 6.7's uapi <linux/stddef.h> declares a plain `TYPE NAME[]` for C++.) The
// numbers below are encoded from an 8-byte header, as a C compiler does, and checked
// against the values of the kernel ABI.
#pragma once
#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace softkvm::accel::kvm_uapi {

// The 8-byte head of struct kvm_cpuid2 / struct kvm_msrs ({nent or nmsrs, padding}).
struct ListHead {
    uint32_t count;
    uint32_t padding;
};
static_assert(sizeof(ListHead) == 8);
// struct kvm_msr_list: {__u32 nmsrs; __u32 indices[];}
struct IndexListHead {
    uint32_t count;
};

// The values the kernel ABI defines (what a C compiler encodes from <linux/kvm.h>).
inline constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, ListHead);
inline constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, ListHead);
inline constexpr unsigned long kGetCpuid2 = _IOWR(KVMIO, 0x91, ListHead);
inline constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, ListHead);
inline constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, ListHead);
inline constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, IndexListHead);
static_assert(kGetSupportedCpuid == 0xC008AE05ul && kSetCpuid2 == 0x4008AE90ul &&
              kGetCpuid2 == 0xC008AE91ul && kGetMsrs == 0xC008AE88ul && kSetMsrs == 0x4008AE89ul &&
              kGetMsrIndexList == 0xC004AE02ul);
// The entry types themselves have no flexible array and the same layout in C and C++.
static_assert(sizeof(kvm_cpuid_entry2) == 40 && sizeof(kvm_msr_entry) == 16);

// A struct kvm_cpuid2 or struct kvm_msrs of `n` entries in one buffer: the head at
// offset 0, the entries from offset 8.
template <typename Entry>
class List {
  public:
    explicit List(uint32_t n) : buf_(sizeof(ListHead) + std::size_t{n} * sizeof(Entry)) {
        head()->count = n;
    }
    ListHead* head() { return reinterpret_cast<ListHead*>(buf_.data()); }
    Entry* entries() { return reinterpret_cast<Entry*>(buf_.data() + sizeof(ListHead)); }
    uint32_t count() { return head()->count; }
    void* arg() { return buf_.data(); }

  private:
    std::vector<unsigned char> buf_;
};
using CpuidList = List<kvm_cpuid_entry2>;
using MsrList = List<kvm_msr_entry>;

}  // namespace softkvm::accel::kvm_uapi
