// KVM's paravirtual hypercalls on the emu vCPU (Linux's Documentation/virt/kvm/x86/
// hypercalls.rst, cpuid.rst): the KVM signature leaves of CPUID and VMCALL/VMMCALL with
// the number in RAX, arguments in RBX, RCX, RDX, RSI and the result in RAX. Outside 64-bit
// mode every value is 32 bits. Any CPL other than 0 gets -KVM_EPERM; an unknown number
// -KVM_ENOSYS. No other register changes.
#include "common/kvm_abi.h"
#include "hv/vm.h"

namespace softkvm::hv {
namespace {

// KVM_HC_SEND_IPI's ICR: physical destination mode, no shorthand (else -KVM_EINVAL).
constexpr uint64_t kIcrLogicalDest = 1u << 11;
constexpr uint64_t kIcrShorthand = 3u << 18;

}  // namespace

// The signature "KVMKVMKVM\0\0\0" and the features this hv layer implements.
void Vcpu::kvm_cpuid(uint32_t leaf, cpu::CpuidRegs& regs) const {
    if (leaf == abi::KVM_CPUID_SIGNATURE) {
        regs.eax = abi::KVM_CPUID_FEATURES;
        regs.ebx = 0x4b4d564b;  // "KVMK"
        regs.ecx = 0x564b4d56;  // "VMKV"
        regs.edx = 0x0000004d;  // "M\0\0\0"
    } else if (leaf == abi::KVM_CPUID_FEATURES) {
        regs.eax = (1u << abi::KVM_FEATURE_PV_UNHALT) | (1u << abi::KVM_FEATURE_PV_SEND_IPI) |
                   (1u << abi::KVM_FEATURE_PV_SCHED_YIELD);
        regs.ebx = regs.ecx = regs.edx = 0;
    }
}

bool Vcpu::hypercall(HypercallInsn) {
    cpu::CpuState& s = cpu_.state();
    const bool op64 = s.mode == cpu::Mode::Long64;
    const uint64_t mask = op64 ? ~0ull : 0xFFFFFFFFull;
    const uint64_t nr = s.gpr[cpu::RAX] & mask;
    const uint64_t a0 = s.gpr[cpu::RBX] & mask, a1 = s.gpr[cpu::RCX] & mask;
    const uint64_t a2 = s.gpr[cpu::RDX] & mask, a3 = s.gpr[cpu::RSI] & mask;
    int64_t ret = -abi::KVM_ENOSYS;
    if (s.cpl != 0) {
        ret = -abi::KVM_EPERM;
    } else {
        switch (nr) {
            case abi::KVM_HC_VAPIC_POLL_IRQ:  // "check for pending interrupts": nothing to do
                ret = 0;
                break;
            case abi::KVM_HC_KICK_CPU:  // a1: the APIC ID of a vCPU to take out of HLT
                for (Vcpu* v : vm_.vcpus())
                    if (v->id() == a1) v->cpu_.wake();
                ret = 0;
                break;
            case abi::KVM_HC_SCHED_YIELD:  // a0: APIC ID to yield to; vCPUs take turns anyway
                ret = 0;
                break;
            case abi::KVM_HC_SEND_IPI:
                ret = send_ipi(a0, a1, a2, a3, op64 ? 64 : 32);
                break;
            default:
                break;
        }
    }
    s.gpr[cpu::RAX] = static_cast<uint64_t>(ret) & mask;
    return true;
}

// KVM_HC_SEND_IPI: bit i of `low` names APIC ID min + i, bit i of `high` min + cluster + i;
// `icr` gives the vector and delivery mode. Returns how many vCPUs accepted the IPI.
int64_t Vcpu::send_ipi(uint64_t low, uint64_t high, uint64_t min, uint64_t icr, int cluster) {
    if (icr & (kIcrLogicalDest | kIcrShorthand)) return -abi::KVM_EINVAL;
    Lapic::Ipi ipi{};
    ipi.mode = (icr >> 8) & 7;
    ipi.vector = static_cast<uint8_t>(icr & 0xFF);
    int64_t count = 0;
    const uint64_t maps[2] = {low, high};
    for (int half = 0; half < 2; ++half) {
        for (int bit = 0; bit < cluster; ++bit) {
            if (!((maps[half] >> bit) & 1)) continue;
            // The minimum is a 32-bit APIC ID (KVM takes it as u32): the sum wraps there.
            const uint32_t id =
                static_cast<uint32_t>(min) + static_cast<uint32_t>(half * cluster + bit);
            for (Vcpu* v : vm_.vcpus()) {
                if (v->id() != id) continue;
                // Fixed, NMI, INIT and start-up are the modes the local APIC model has.
                if (ipi.mode != 0 && ipi.mode != 4 && ipi.mode != 5 && ipi.mode != 6) continue;
                ipi.dest = id;
                v->receive_ipi(ipi);
                ++count;
            }
        }
    }
    return count;
}

}  // namespace softkvm::hv
