#include "hv/vm.h"

#include <fmt/format.h>

#include <cerrno>

namespace softkvm::hv {

Status Vm::set_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* host) {
    if (vcpus_ != 0) return make_error("memory slots cannot change after vCPUs exist", EBUSY);
    std::erase_if(slots_, [&](const MemorySlot& s) { return s.slot == slot; });
    if (size == 0) return {};
    if ((gpa | size) & 0xFFF) return make_error("memory region not page aligned", EINVAL);
    if (reinterpret_cast<uintptr_t>(host) & 0xFFF)
        return make_error("memory region host address not page aligned", EINVAL);
    if (gpa + size < gpa) return make_error("memory region wraps", EINVAL);
    for (const MemorySlot& s : slots_)
        if (gpa < s.gpa + s.size && s.gpa < gpa + size)
            return make_error(fmt::format("memory slot {} overlaps slot {}", slot, s.slot), EEXIST);
    slots_.push_back({slot, gpa, size, static_cast<uint8_t*>(host)});
    return {};
}

Result<std::unique_ptr<Vcpu>> Vm::create_vcpu(uint32_t id) {
    if (id != vcpus_) return make_error("vCPU ids must be created in order 0, 1, ...", EINVAL);
    ++vcpus_;
    return std::make_unique<Vcpu>(*this, id);
}

uint64_t Vm::check_extension(uint32_t cap) const {
    if (cap == abi::KVM_CAP_X86_BUS_LOCK_EXIT)
        return abi::KVM_BUS_LOCK_DETECTION_OFF | abi::KVM_BUS_LOCK_DETECTION_EXIT;
    return 0;
}

Status Vm::enable_cap(uint32_t cap, uint64_t arg0) {
    if (cap != abi::KVM_CAP_X86_BUS_LOCK_EXIT)
        return make_error(fmt::format("capability {} cannot be enabled", cap), EINVAL);
    if (arg0 & ~abi::KVM_BUS_LOCK_DETECTION_VALID_MODE)
        return make_error("KVM_CAP_X86_BUS_LOCK_EXIT: unknown mode bits", EINVAL);
    if ((arg0 & abi::KVM_BUS_LOCK_DETECTION_OFF) && (arg0 & abi::KVM_BUS_LOCK_DETECTION_EXIT))
        return make_error("KVM_CAP_X86_BUS_LOCK_EXIT: OFF and EXIT together", EINVAL);
    if (arg0 & abi::KVM_BUS_LOCK_DETECTION_EXIT) bus_lock_exits_ = true;
    return {};
}

void Vm::deliver_ipi(const Lapic::Ipi& ipi, Vcpu* from) {
    for (Vcpu* t : vcpu_list_) {
        if (t == from) continue;  // the sender's own APIC already took its part
        if (ipi.shorthand == 0 && t->id() != ipi.dest) continue;
        t->receive_ipi(ipi);
    }
}

}  // namespace softkvm::hv
