// MSR indices and architectural bits the software CPU implements. Values from the Intel
// SDM vol. 4 and ../shared/spec/kvm-features.md §2.1, §3 (DEBUGCTL, PERF_CAPABILITIES).
#pragma once
#include <cstdint>

namespace softkvm::cpu::msr {

inline constexpr uint32_t IA32_TSC = 0x10;
inline constexpr uint32_t IA32_PLATFORM_ID = 0x17;
inline constexpr uint32_t IA32_APIC_BASE = 0x1B;
inline constexpr uint32_t IA32_FEATURE_CONTROL = 0x3A;
inline constexpr uint32_t IA32_BIOS_SIGN_ID = 0x8B;
inline constexpr uint32_t IA32_MTRRCAP = 0xFE;
// SYSENTER/SYSEXIT targets (SDM vol. 4 table 2-2; vol. 2, SYSENTER).
inline constexpr uint32_t IA32_SYSENTER_CS = 0x174;
inline constexpr uint32_t IA32_SYSENTER_ESP = 0x175;
inline constexpr uint32_t IA32_SYSENTER_EIP = 0x176;
inline constexpr uint32_t IA32_MISC_ENABLE = 0x1A0;
inline constexpr uint32_t IA32_DEBUGCTL = 0x1D9;  // spec §2.1
inline constexpr uint32_t IA32_PAT = 0x277;
inline constexpr uint32_t IA32_MTRR_DEF_TYPE = 0x2FF;
inline constexpr uint32_t IA32_EFER = 0xC0000080;
inline constexpr uint32_t IA32_STAR = 0xC0000081;
inline constexpr uint32_t IA32_LSTAR = 0xC0000082;
inline constexpr uint32_t IA32_CSTAR = 0xC0000083;
inline constexpr uint32_t IA32_FMASK = 0xC0000084;
inline constexpr uint32_t IA32_FS_BASE = 0xC0000100;
inline constexpr uint32_t IA32_GS_BASE = 0xC0000101;
inline constexpr uint32_t IA32_KERNEL_GS_BASE = 0xC0000102;
inline constexpr uint32_t IA32_TSC_AUX = 0xC0000103;

// IA32_EFER bits.
inline constexpr uint64_t EFER_SCE = 1ull << 0;
inline constexpr uint64_t EFER_LME = 1ull << 8;
inline constexpr uint64_t EFER_LMA = 1ull << 10;
inline constexpr uint64_t EFER_NXE = 1ull << 11;

// IA32_APIC_BASE: BSP flag, x2APIC enable, global enable, base address (SDM vol. 3 §11.4.4).
inline constexpr uint64_t APIC_BASE_BSP = 1ull << 8;
inline constexpr uint64_t APIC_BASE_EXTD = 1ull << 10;
inline constexpr uint64_t APIC_BASE_EN = 1ull << 11;

// IA32_MTRR_DEF_TYPE: E (MTRRs enabled), FE (fixed ranges enabled), type in bits 7:0.
inline constexpr uint64_t MTRR_DEF_ENABLE = 1ull << 11;
inline constexpr uint64_t MTRR_DEF_FIXED_ENABLE = 1ull << 10;

// Reset value of IA32_PAT (SDM vol. 3 §11.12.4).
inline constexpr uint64_t PAT_RESET = 0x0007040600070406ull;

// DR6 bits that read as 1 (SDM vol. 3 §17.2.3; spec §3: BLD, bit 11, is active-low and
// stays 1 unless bus-lock detection reports).
inline constexpr uint64_t DR6_FIXED1 = 0xFFFF0FF0ull;
inline constexpr uint64_t DR6_WRITABLE = 0x0000E00Full;  // B0-B3, BD, BS, BT
// DR6.BLD (spec §3): cleared by delivery of a bus-lock #DB, writable only when
// CPUID.(7,0):ECX.BUS_LOCK_DETECT is exposed (KVM's kvm_dr6_fixed()); otherwise fixed 1.
inline constexpr uint64_t DR6_BLD = 1ull << 11;

// IA32_DEBUGCTL bit 2 (spec §3): bus-lock #DB at CPL > 0. #GP to set without the CPUID bit.
inline constexpr uint64_t DEBUGCTL_BUS_LOCK_DETECT = 1ull << 2;
inline constexpr uint64_t DR7_FIXED1 = 0x400ull;
// DR7.GD (general detect) and DR6.BD: a debug-register access while GD is set is a #DB
// fault with BD set, and GD clears (SDM vol. 3 §17.2.3-17.2.4).
inline constexpr uint64_t DR7_GD = 1ull << 13;
inline constexpr uint64_t DR6_BD = 1ull << 13;

// Physical-address width of the CPU model (CPUID 0x80000008.EAX[7:0]).
inline constexpr int kMaxPhysAddrBits = 46;

}  // namespace softkvm::cpu::msr
