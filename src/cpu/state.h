// Architectural state of one software vCPU.
#pragma once
#include <array>
#include <cstdint>

namespace softkvm::cpu {

enum Gpr : uint8_t { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };
enum SegReg : uint8_t { ES, CS, SS, DS, FS, GS, SEG_COUNT, SEG_NONE = 0xFF };

// A segment register with its hidden descriptor cache.
struct Segment {
    uint64_t base = 0;
    uint32_t limit = 0;
    uint16_t selector = 0;
    uint8_t type = 0;  // descriptor type field (4 bits)
    bool s = false, present = false, db = false, l = false, g = false, avl = false;
    bool unusable = false;
    uint8_t dpl = 0;
};

struct DescriptorTable {
    uint64_t base = 0;
    uint16_t limit = 0;
};

// Execution mode derived from CR0.PE, EFER.LMA, CS.L and CS.D.
enum class Mode : uint8_t { Real16, Prot16, Prot32, Long64 };

struct CpuState {
    std::array<uint64_t, 16> gpr{};
    uint64_t rip = 0;
    uint64_t rflags = 0x2;
    std::array<Segment, SEG_COUNT> seg{};
    Segment tr, ldtr;
    DescriptorTable gdtr, idtr;
    uint64_t cr0 = 0x10, cr2 = 0, cr3 = 0, cr4 = 0, cr8 = 0;
    uint64_t efer = 0;
    uint64_t xcr0 = 1;
    std::array<uint64_t, 8> dr{0, 0, 0, 0, 0, 0, 0xFFFF0FF0, 0x400};

    // SSE state (SDM vol. 1 ch. 10): XMM0-15 as two 64-bit halves, and MXCSR.
    struct Xmm {
        uint64_t lo = 0, hi = 0;
    };
    std::array<Xmm, 16> xmm{};
    uint32_t mxcsr = 0x1F80;  // reset: all exceptions masked, round to nearest

    // x87 FPU state (SDM vol. 1 ch. 8). The data registers R0-R7 in physical order (ST(i)
    // is R[(TOP + i) mod 8], TOP in FSW bits 11-13), each an 80-bit double extended value:
    // the 64-bit significand with its explicit integer bit, and sign (bit 15) | exponent.
    struct F80 {
        uint64_t mant = 0;
        uint16_t se = 0;
    };
    std::array<F80, 8> st{};
    uint16_t fcw = 0x037F;  // as after FNINIT: all exceptions masked, 64-bit precision
    uint16_t fsw = 0;
    uint8_t ftw = 0;   // abridged tag word: bit i set when R[i] is not empty
    uint16_t fop = 0;  // last non-control instruction's opcode (11 bits)
    uint64_t fip = 0;  // ... its address (offset in CS)
    uint64_t fdp = 0;  // ... and its memory operand's offset
    uint16_t fcs = 0, fds = 0;

    // MSRs the CPU keeps as plain state.
    uint64_t star = 0, lstar = 0, cstar = 0, fmask = 0, kernel_gs_base = 0, tsc_aux = 0;
    uint64_t sysenter_cs = 0, sysenter_esp = 0, sysenter_eip = 0;
    uint64_t pat = 0x0007040600070406ull;
    uint64_t apic_base = 0xFEE00900ull;  // enabled, BSP
    uint64_t misc_enable = 1;            // fast strings
    uint64_t mtrr_def_type = 0;
    // MTRRs (SDM vol. 3A §11.11): the fixed-range registers in MSR order (FIX64K_00000,
    // FIX16K_80000, FIX16K_A0000, FIX4K_C0000 ... FIX4K_F8000), each eight one-byte types,
    // and the variable ranges as {PHYSBASEn, PHYSMASKn}. All zero at power-up.
    std::array<uint64_t, 11> mtrr_fixed{};
    std::array<uint64_t, 16> mtrr_var{};
    uint64_t debugctl = 0;
    // TSC = retired instructions + tsc_offset (virtual time; WRMSR IA32_TSC sets the offset).
    uint64_t tsc_offset = 0;

    uint8_t cpl = 0;
    Mode mode = Mode::Real16;
};

}  // namespace softkvm::cpu
