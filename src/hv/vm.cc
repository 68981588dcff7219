#include "hv/vm.h"

#include <fmt/format.h>

#include <cerrno>

namespace softkvm::hv {

Vm::Vm() : ioapic_([this](const Ioapic::Message& m) { route_ioapic(m); }) {}

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

Status Vm::set_irq(uint32_t gsi, bool level) {
    if (gsi >= ioapic::kPins)
        return make_error(
            fmt::format("interrupt line {} does not exist (GSI 0-{})", gsi, ioapic::kPins - 1),
            EINVAL);
    ioapic_.set_irq(gsi, level);
    if (gsi < 16) {
        pic_.set_irq(gsi == 2 ? 0 : static_cast<int>(gsi), level);
        pic_changed();
    }
    return {};
}

void Vm::pic_changed() {
    if (!vcpu_list_.empty() && pic_.output()) vcpu_list_[0]->extint_pending();
}

// As KVM delivers an IOAPIC message: to every vCPU whose enabled local APIC the
// destination names; lowest priority picks one of them by vector hashing (the
// (vector mod n)-th in vCPU order, KVM's default instead of comparing priorities).
// SMI (no SMM here) and ExtINT (the 8259 reaches the CPU through LINT0, not through the
// IOAPIC's message: KVM ignores it too) and the reserved modes are dropped.
void Vm::route_ioapic(const Ioapic::Message& m) {
    std::vector<Vcpu*> dest;
    for (Vcpu* v : vcpu_list_)
        if (v->apic_matches(m.dest, m.logical)) dest.push_back(v);
    if (dest.empty()) return;
    Lapic::Ipi ipi{};
    ipi.vector = m.vector;
    ipi.level = m.level;
    switch (m.delivery_mode) {
        case ioapic::DM_LOWEST: {
            Vcpu* one = dest[m.vector % dest.size()];
            dest = {one};
            [[fallthrough]];
        }
        case ioapic::DM_FIXED:
            ipi.mode = 0;
            for (Vcpu* v : dest)
                if (v->apic_sw_enabled()) v->receive_ipi(ipi);
            return;
        case ioapic::DM_NMI:
        case ioapic::DM_INIT:
            ipi.mode = m.delivery_mode;  // the ICR's encoding
            for (Vcpu* v : dest) v->receive_ipi(ipi);
            return;
        default:
            return;
    }
}

}  // namespace softkvm::hv
