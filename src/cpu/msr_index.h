// MSR indices and architectural bits the software CPU implements. Values from the Intel
// SDM vol. 4 and spec §2.1, §3 (DEBUGCTL, PERF_CAPABILITIES; docs/lbr.md, docs/buslock.md).
#pragma once
#include <cstdint>

namespace softkvm::cpu::msr {

inline constexpr uint32_t IA32_TSC = 0x10;
inline constexpr uint32_t IA32_PLATFORM_ID = 0x17;
inline constexpr uint32_t IA32_APIC_BASE = 0x1B;
inline constexpr uint32_t IA32_FEATURE_CONTROL = 0x3A;
inline constexpr uint32_t IA32_BIOS_SIGN_ID = 0x8B;
// Memory type range registers (SDM vol. 3A §11.11; vol. 4 table 2-2): capabilities, the
// variable ranges as PHYSBASEn/PHYSMASKn pairs from 0x200, the eleven fixed-range
// registers and the default type.
inline constexpr uint32_t IA32_MTRRCAP = 0xFE;
inline constexpr uint32_t IA32_MTRR_PHYSBASE0 = 0x200;  // PHYSMASKn = PHYSBASEn + 1
inline constexpr uint32_t IA32_MTRR_FIX64K_00000 = 0x250;
inline constexpr uint32_t IA32_MTRR_FIX16K_80000 = 0x258;
inline constexpr uint32_t IA32_MTRR_FIX16K_A0000 = 0x259;
inline constexpr uint32_t IA32_MTRR_FIX4K_C0000 = 0x268;  // ... FIX4K_F8000 = 0x26F
inline constexpr uint32_t IA32_MTRR_FIX4K_F8000 = 0x26F;
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

// Machine-check architecture (SDM vol. 3B §15.3; vol. 4 table 2-2). The CPU model has no
// machine checks of its own: emu's hv layer keeps these registers as KVM does for its
// guests (arch/x86/kvm/x86.c, set_msr_mce/get_msr_mce).
inline constexpr uint32_t IA32_P5_MC_ADDR = 0x0;  // Pentium-era; KVM reads them as 0
inline constexpr uint32_t IA32_P5_MC_TYPE = 0x1;
inline constexpr uint32_t IA32_MCG_CAP = 0x179;
inline constexpr uint32_t IA32_MCG_STATUS = 0x17A;
inline constexpr uint32_t IA32_MCG_CTL = 0x17B;
inline constexpr uint32_t IA32_MC0_CTL2 = 0x280;  // IA32_MCi_CTL2 = 0x280 + i (CMCI)
inline constexpr uint32_t IA32_MC0_CTL = 0x400;   // bank i: CTL, STATUS, ADDR, MISC
inline constexpr uint32_t kMcBankMsrs = 4;        // ... at 0x400 + 4i + 0..3
inline constexpr uint32_t kMcMaxBanks = 32;       // KVM_MAX_MCE_BANKS: the MSR ranges' size
// IA32_MCG_CAP: bank count in bits 7:0, MCG_CTL_P (bit 8: IA32_MCG_CTL exists),
// MCG_CMCI_P (bit 10: IA32_MCi_CTL2 exist), MCG_SER_P (bit 24: software error recovery),
// MCG_LMCE_P (bit 27) (SDM vol. 3B §15.3.1.1).
inline constexpr uint64_t MCG_CAP_COUNT = 0xFF;
inline constexpr uint64_t MCG_CTL_P = 1ull << 8;
inline constexpr uint64_t MCG_CMCI_P = 1ull << 10;
inline constexpr uint64_t MCG_SER_P = 1ull << 24;
// What the guest sees: QEMU's default for its x86 CPUs, TCG and KVM alike (MCE_CAP_DEF |
// MCE_BANKS_DEF in target/i386/cpu.h): 10 banks, MCG_CTL_P, MCG_SER_P.
inline constexpr uint64_t kMcgCapDefault = MCG_CTL_P | MCG_SER_P | 10;

// Performance monitoring (SDM vol. 3 ch. 18-20, vol. 4 table 2-2; spec §2.1, §2.2).
inline constexpr uint32_t IA32_PMC0 = 0xC1;          // IA32_PMC0..3: 0xC1-0xC4
inline constexpr uint32_t IA32_PERFEVTSEL0 = 0x186;  // IA32_PERFEVTSEL0..3: 0x186-0x189
inline constexpr uint32_t IA32_FIXED_CTR0 = 0x309;   // IA32_FIXED_CTR0..2: 0x309-0x30B
inline constexpr uint32_t IA32_PERF_CAPABILITIES = 0x345;
inline constexpr uint32_t IA32_FIXED_CTR_CTRL = 0x38D;
inline constexpr uint32_t IA32_PERF_GLOBAL_STATUS = 0x38E;
inline constexpr uint32_t IA32_PERF_GLOBAL_CTRL = 0x38F;
inline constexpr uint32_t IA32_PERF_GLOBAL_OVF_CTRL = 0x390;
// Architectural PMU version 4 (SDM vol. 3 §18.2.4.2): 0x390 is named
// IA32_PERF_GLOBAL_STATUS_RESET, and two MSRs join it.
inline constexpr uint32_t IA32_PERF_GLOBAL_STATUS_RESET = 0x390;
inline constexpr uint32_t IA32_PERF_GLOBAL_STATUS_SET = 0x391;
inline constexpr uint32_t IA32_PERF_GLOBAL_INUSE = 0x392;  // read-only
inline constexpr uint32_t IA32_A_PMC0 = 0x4C1;  // full-width aliases IA32_A_PMC0..3: 0x4C1-0x4C4

// IA32_PERFEVTSELx fields (SDM vol. 3 §18.2.1.1).
inline constexpr uint64_t EVTSEL_USR = 1ull << 16;
inline constexpr uint64_t EVTSEL_OS = 1ull << 17;
inline constexpr uint64_t EVTSEL_INT = 1ull << 20;
inline constexpr uint64_t EVTSEL_EN = 1ull << 22;
// Bits KVM treats as reserved (#GP): 63:32 and AnyThread (21).
inline constexpr uint64_t EVTSEL_RESERVED = 0xFFFFFFFF00200000ull;
// IA32_FIXED_CTR_CTRL: 4 bits per counter: OS (0), USR (1), AnyThread (2, reserved as in
// KVM), PMI (3).
inline constexpr uint64_t FIXED_CTRL_OS = 1, FIXED_CTRL_USR = 2, FIXED_CTRL_PMI = 8;
// IA32_PERF_GLOBAL_CTRL/STATUS: general counters from bit 0, fixed counters from bit 32.
inline constexpr int GLOBAL_FIXED_SHIFT = 32;
// The PMU version from which FREEZE_LBRS_ON_PMI uses the streamlined freeze (SDM vol. 3
// §17.4.7 and §18.2.4.2): a PMI sets GLOBAL_STATUS.LBR_Frz (bit 58) and the LBR stack
// stops recording while DEBUGCTL.LBR stays 1, until software clears LBR_Frz through
// GLOBAL_STATUS_RESET. Before it (versions 2-3), the PMI clears DEBUGCTL.LBR (legacy).
inline constexpr uint8_t kPmuStreamlinedFreezeVersion = 4;
inline constexpr uint64_t GLOBAL_STATUS_LBR_FRZ = 1ull << 58;
// CTR_Frz (bit 59, set on a PMI with DEBUGCTL.FREEZE_PERFMON_ON_PMI) is not in the model:
// FREEZE_PERFMON_ON_PMI (DEBUGCTL bit 12) #GPs, so bit 59 is reserved in SET and RESET.
// GLOBAL_STATUS_RESET also takes OvfBuf (62) and CondChgd (63), which nothing in the model
// sets, without #GP (as KVM's GLOBAL_OVF_CTRL does); bits 55, 60 and 61 (Intel PT, SGX
// ASCI, uncore) have no unit behind them and #GP.
inline constexpr uint64_t GLOBAL_STATUS_OVF_BUF = 1ull << 62;
inline constexpr uint64_t GLOBAL_STATUS_COND_CHGD = 1ull << 63;
// IA32_PERF_GLOBAL_INUSE (SDM vol. 3 §18.2.4.3): bit n set while IA32_PERFEVTSELn[7:0]
// (the event) is non-zero, bit 32+n while fixed counter n's enable field (FIXED_CTR_CTRL
// bits 4n+1:4n) is non-zero, bit 63 (PMI InUse) while any counter's PMI enable is set.
inline constexpr uint64_t GLOBAL_INUSE_PMI = 1ull << 63;
// RDPMC's ECX for an architectural PMU (SDM vol. 2 RDPMC; KVM's
// intel_rdpmc_ecx_to_pmc): bits 31:16 the counter type, bits 15:0 its index. Type 0 is
// the general counters, 0x4000 (bit 30) the fixed ones; every other type, bit 31 (the
// old "fast read" flag) included, is #GP on this model.
inline constexpr uint32_t RDPMC_TYPE_MASK = 0xFFFF0000;
inline constexpr uint32_t RDPMC_TYPE_GP = 0;
inline constexpr uint32_t RDPMC_TYPE_FIXED = 1u << 30;
inline constexpr uint32_t RDPMC_INDEX_MASK = 0xFFFF;

// Architectural events (SDM vol. 3 table 18-1), event select | umask << 8.
inline constexpr uint16_t EVENT_CORE_CYCLES = 0x003C;
inline constexpr uint16_t EVENT_INSTRUCTIONS = 0x00C0;
inline constexpr uint16_t EVENT_REF_CYCLES = 0x013C;
inline constexpr uint16_t EVENT_BRANCHES = 0x00C4;
inline constexpr uint16_t EVENT_BRANCH_MISSES = 0x00C5;

// Last branch records (spec §2.1).
inline constexpr uint32_t MSR_LBR_SELECT = 0x1C8;
inline constexpr uint32_t MSR_LBR_TOS = 0x1C9;
inline constexpr uint32_t MSR_LBR_FROM0 = 0x680;  // LASTBRANCH_n_FROM_IP
inline constexpr uint32_t MSR_LBR_TO0 = 0x6C0;    // LASTBRANCH_n_TO_IP
inline constexpr uint32_t MSR_LBR_INFO0 = 0xDC0;  // LBR_INFO_n
inline constexpr uint32_t kLbrMaxDepth = 32;      // the MSR ranges' size
inline constexpr uint64_t LBR_SELECT_CPL_EQ_0 = 1ull << 0;
inline constexpr uint64_t LBR_SELECT_CPL_NEQ_0 = 1ull << 1;
inline constexpr uint64_t LBR_SELECT_JCC = 1ull << 2;  // class bits 2-8 in BranchKind order
inline constexpr uint64_t LBR_SELECT_CALLSTACK = 1ull << 9;
inline constexpr uint64_t LBR_SELECT_VALID = 0x3FF;
inline constexpr uint64_t LBR_MISPRED = 1ull << 63;  // FROM (formats 3, 4) and LBR_INFO
inline constexpr uint64_t LBR_INFO_CYCLES = 0xFFFF;
inline constexpr uint64_t LBR_INFO_FLAGS = 7ull << 61;  // mispredict, in-TSX, TSX abort

// IA32_DEBUGCTL bits (spec §2.1).
inline constexpr uint64_t DEBUGCTL_LBR = 1ull << 0;
inline constexpr uint64_t DEBUGCTL_BTF = 1ull << 1;
inline constexpr uint64_t DEBUGCTL_FREEZE_LBRS_ON_PMI = 1ull << 11;

// IA32_PERF_CAPABILITIES: LBR format in bits 5:0.
inline constexpr uint64_t PERF_CAP_LBR_FMT = 0x3F;

// IA32_EFER bits.
inline constexpr uint64_t EFER_SCE = 1ull << 0;
inline constexpr uint64_t EFER_LME = 1ull << 8;
inline constexpr uint64_t EFER_LMA = 1ull << 10;
inline constexpr uint64_t EFER_NXE = 1ull << 11;

// IA32_APIC_BASE: BSP flag, x2APIC enable, global enable, base address (SDM vol. 3 §11.4.4).
inline constexpr uint64_t APIC_BASE_BSP = 1ull << 8;
inline constexpr uint64_t APIC_BASE_EXTD = 1ull << 10;
inline constexpr uint64_t APIC_BASE_EN = 1ull << 11;

// IA32_MTRR_DEF_TYPE: E (MTRRs enabled), FE (fixed ranges enabled), type in bits 7:0;
// the other bits are reserved (#GP) (SDM vol. 3A §11.11.2.1).
inline constexpr uint64_t MTRR_DEF_ENABLE = 1ull << 11;
inline constexpr uint64_t MTRR_DEF_FIXED_ENABLE = 1ull << 10;
inline constexpr uint64_t MTRR_DEF_TYPE_MASK = 0xFF;
inline constexpr uint64_t MTRR_DEF_WRITABLE = MTRR_DEF_ENABLE | MTRR_DEF_FIXED_ENABLE | 0xFF;
// IA32_MTRRCAP (SDM vol. 3A §11.11.1): VCNT (bits 7:0, the number of variable ranges),
// FIX (bit 8, fixed ranges), WC (bit 10), SMRR (bit 11). The model reports what KVM
// reports to its guests (arch/x86/kvm/mtrr.c): 8 variable ranges, FIX and WC, no SMRR.
inline constexpr uint64_t MTRRCAP_FIX = 1ull << 8;
inline constexpr uint64_t MTRRCAP_WC = 1ull << 10;
inline constexpr int kMtrrVarCount = 8;
inline constexpr int kMtrrFixedCount = 11;  // FIX64K_00000, 2 x FIX16K, 8 x FIX4K
inline constexpr uint64_t MTRRCAP_VALUE = MTRRCAP_WC | MTRRCAP_FIX | kMtrrVarCount;
// IA32_MTRR_PHYSBASEn: type in bits 7:0, bits 11:8 reserved, base from bit 12.
// IA32_MTRR_PHYSMASKn: bits 10:0 reserved, V (valid) bit 11, mask from bit 12. Bits at
// and above MAXPHYADDR are reserved in both (SDM vol. 3A §11.11.2.3).
inline constexpr uint64_t MTRR_PHYSBASE_RESERVED = 0xF00;
inline constexpr uint64_t MTRR_PHYSMASK_RESERVED = 0x7FF;
inline constexpr uint64_t MTRR_PHYSMASK_VALID = 1ull << 11;

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
