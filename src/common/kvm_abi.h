// Numeric constants of the KVM user ABI that softkvm's software path shares with the
// kvm back end. Values are those of <linux/kvm.h> and <asm/kvm.h>; accel/kvm checks
// each against the real headers with static_assert.
// Spec §4 (bus-lock exit, caps, flags); described for users in docs/buslock.md.
#pragma once
#include <cstdint>

namespace softkvm::abi {

// struct kvm_run::exit_reason (<linux/kvm.h>).
inline constexpr uint32_t KVM_EXIT_UNKNOWN = 0;
inline constexpr uint32_t KVM_EXIT_EXCEPTION = 1;
inline constexpr uint32_t KVM_EXIT_IO = 2;
inline constexpr uint32_t KVM_EXIT_HYPERCALL = 3;
inline constexpr uint32_t KVM_EXIT_DEBUG = 4;
inline constexpr uint32_t KVM_EXIT_HLT = 5;
inline constexpr uint32_t KVM_EXIT_MMIO = 6;
inline constexpr uint32_t KVM_EXIT_IRQ_WINDOW_OPEN = 7;
inline constexpr uint32_t KVM_EXIT_SHUTDOWN = 8;
inline constexpr uint32_t KVM_EXIT_FAIL_ENTRY = 9;
inline constexpr uint32_t KVM_EXIT_INTR = 10;
inline constexpr uint32_t KVM_EXIT_INTERNAL_ERROR = 17;
inline constexpr uint32_t KVM_EXIT_SYSTEM_EVENT = 24;
inline constexpr uint32_t KVM_EXIT_X86_RDMSR = 29;
inline constexpr uint32_t KVM_EXIT_X86_WRMSR = 30;
inline constexpr uint32_t KVM_EXIT_X86_BUS_LOCK = 33;  // spec §4
// The vCPU made no progress for a while (Linux 6.0, KVM_CAP_X86_NOTIFY_VMEXIT: Intel's
// notify-window VM exit); kvm_run.notify.flags has KVM_NOTIFY_CONTEXT_INVALID when the
// guest cannot resume. softkvm's emu reports a loop of event deliveries that retires no
// instruction this way (Cpu::set_stall_limit), with a valid context.
inline constexpr uint32_t KVM_EXIT_NOTIFY = 37;
inline constexpr uint32_t KVM_NOTIFY_CONTEXT_INVALID = 1u << 0;

// The in-kernel IOAPIC's pins (<asm/kvm.h>): KVM_IRQ_LINE's GSIs 0-23 reach it.
inline constexpr uint32_t KVM_IOAPIC_NUM_PINS = 24;

// struct kvm_run::io.direction.
inline constexpr uint8_t KVM_EXIT_IO_IN = 0;
inline constexpr uint8_t KVM_EXIT_IO_OUT = 1;

// struct kvm_run::internal.suberror.
inline constexpr uint32_t KVM_INTERNAL_ERROR_EMULATION = 1;
inline constexpr uint32_t KVM_INTERNAL_ERROR_SIMUL_EX = 2;
inline constexpr uint32_t KVM_INTERNAL_ERROR_DELIVERY_EV = 3;
inline constexpr uint32_t KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON = 4;

// struct kvm_run::flags (<asm/kvm.h>).
inline constexpr uint16_t KVM_RUN_X86_SMM = 1u << 0;
inline constexpr uint16_t KVM_RUN_X86_BUS_LOCK = 1u << 1;  // spec §4

// Capabilities (spec §4).
inline constexpr uint32_t KVM_CAP_X86_BUS_LOCK_EXIT = 193;
inline constexpr uint64_t KVM_BUS_LOCK_DETECTION_OFF = 1ull << 0;
inline constexpr uint64_t KVM_BUS_LOCK_DETECTION_EXIT = 1ull << 1;
// The mode bits KVM knows (KVM_BUS_LOCK_DETECTION_VALID_MODE in arch/x86/kvm/x86.h).
inline constexpr uint64_t KVM_BUS_LOCK_DETECTION_VALID_MODE =
    KVM_BUS_LOCK_DETECTION_OFF | KVM_BUS_LOCK_DETECTION_EXIT;

// The paravirtual hypercall ABI (<linux/kvm_para.h>, <asm/kvm_para.h>; Linux's
// Documentation/virt/kvm/x86/hypercalls.rst and cpuid.rst): VMCALL/VMMCALL with the number
// in RAX and arguments in RBX, RCX, RDX, RSI; the result (or a negated KVM_E* code) in RAX.
inline constexpr uint64_t KVM_HC_VAPIC_POLL_IRQ = 1;
inline constexpr uint64_t KVM_HC_KICK_CPU = 5;
inline constexpr uint64_t KVM_HC_SEND_IPI = 10;
inline constexpr uint64_t KVM_HC_SCHED_YIELD = 11;
inline constexpr int64_t KVM_ENOSYS = 1000;
inline constexpr int64_t KVM_EPERM = 1;
inline constexpr int64_t KVM_EINVAL = 22;
// CPUID leaves of the KVM signature and its features (EAX bits).
inline constexpr uint32_t KVM_CPUID_SIGNATURE = 0x40000000;
inline constexpr uint32_t KVM_CPUID_FEATURES = 0x40000001;
inline constexpr uint32_t KVM_FEATURE_PV_UNHALT = 7;
inline constexpr uint32_t KVM_FEATURE_PV_SEND_IPI = 11;
inline constexpr uint32_t KVM_FEATURE_PV_SCHED_YIELD = 13;

}  // namespace softkvm::abi
