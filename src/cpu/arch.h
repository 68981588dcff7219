// Architectural register bits of x86-64 used by the software CPU (Intel SDM vol. 3
// ch. 2: control registers, RFLAGS; ch. 6: exception vectors).
#pragma once
#include <cstdint>

namespace softkvm::cpu {

// RFLAGS.
inline constexpr uint64_t FLAG_CF = 1ull << 0;
inline constexpr uint64_t FLAG_FIXED1 = 1ull << 1;
inline constexpr uint64_t FLAG_PF = 1ull << 2;
inline constexpr uint64_t FLAG_AF = 1ull << 4;
inline constexpr uint64_t FLAG_ZF = 1ull << 6;
inline constexpr uint64_t FLAG_SF = 1ull << 7;
inline constexpr uint64_t FLAG_TF = 1ull << 8;
inline constexpr uint64_t FLAG_IF = 1ull << 9;
inline constexpr uint64_t FLAG_DF = 1ull << 10;
inline constexpr uint64_t FLAG_OF = 1ull << 11;
inline constexpr uint64_t FLAG_IOPL = 3ull << 12;
inline constexpr uint64_t FLAG_NT = 1ull << 14;
inline constexpr uint64_t FLAG_RF = 1ull << 16;
inline constexpr uint64_t FLAG_VM = 1ull << 17;
inline constexpr uint64_t FLAG_AC = 1ull << 18;
inline constexpr uint64_t FLAG_VIF = 1ull << 19;
inline constexpr uint64_t FLAG_VIP = 1ull << 20;
inline constexpr uint64_t FLAG_ID = 1ull << 21;
inline constexpr uint64_t FLAGS_ARITH = FLAG_CF | FLAG_PF | FLAG_AF | FLAG_ZF | FLAG_SF | FLAG_OF;
// Bits software can change with POPF at CPL0 (the rest are reserved or fixed).
inline constexpr uint64_t FLAGS_WRITABLE =
    FLAGS_ARITH | FLAG_TF | FLAG_IF | FLAG_DF | FLAG_IOPL | FLAG_NT | FLAG_RF | FLAG_AC | FLAG_ID;

// CR0.
inline constexpr uint64_t CR0_PE = 1ull << 0;
inline constexpr uint64_t CR0_MP = 1ull << 1;
inline constexpr uint64_t CR0_EM = 1ull << 2;
inline constexpr uint64_t CR0_TS = 1ull << 3;
inline constexpr uint64_t CR0_ET = 1ull << 4;
inline constexpr uint64_t CR0_NE = 1ull << 5;
inline constexpr uint64_t CR0_WP = 1ull << 16;
inline constexpr uint64_t CR0_AM = 1ull << 18;
inline constexpr uint64_t CR0_NW = 1ull << 29;
inline constexpr uint64_t CR0_CD = 1ull << 30;
inline constexpr uint64_t CR0_PG = 1ull << 31;

// CR4.
inline constexpr uint64_t CR4_PSE = 1ull << 4;
inline constexpr uint64_t CR4_PAE = 1ull << 5;
inline constexpr uint64_t CR4_PGE = 1ull << 7;
inline constexpr uint64_t CR4_PCE = 1ull << 8;  // RDPMC at CPL > 0
inline constexpr uint64_t CR4_OSFXSR = 1ull << 9;
inline constexpr uint64_t CR4_OSXMMEXCPT = 1ull << 10;
// User-mode instruction prevention: SGDT, SIDT, SLDT, SMSW, STR #GP(0) at CPL > 0 (SDM vol. 3
// §2.5; CPUID.(7,0):ECX[2]).
inline constexpr uint64_t CR4_UMIP = 1ull << 11;
inline constexpr uint64_t CR4_FSGSBASE = 1ull << 16;
inline constexpr uint64_t CR4_OSXSAVE = 1ull << 18;
inline constexpr uint64_t CR4_SMEP = 1ull << 20;
inline constexpr uint64_t CR4_SMAP = 1ull << 21;

// Page-table entry bits.
inline constexpr uint64_t PTE_P = 1ull << 0;
inline constexpr uint64_t PTE_RW = 1ull << 1;
inline constexpr uint64_t PTE_US = 1ull << 2;
inline constexpr uint64_t PTE_PWT = 1ull << 3;
inline constexpr uint64_t PTE_PCD = 1ull << 4;
inline constexpr uint64_t PTE_A = 1ull << 5;
inline constexpr uint64_t PTE_D = 1ull << 6;
inline constexpr uint64_t PTE_PS = 1ull << 7;
// Global, in an entry that maps a page (a PTE, or a PDE/PDPTE with PS): with CR4.PGE its
// translation is global and survives MOV to CR3 (SDM vol. 3A §4.10.2.4, §4.10.4.1).
inline constexpr uint64_t PTE_G = 1ull << 8;
inline constexpr uint64_t PTE_NX = 1ull << 63;
inline constexpr uint64_t PTE_ADDR_MASK = 0x000FFFFFFFFFF000ull;

// #PF error code bits.
inline constexpr uint32_t PFERR_P = 1u << 0;
inline constexpr uint32_t PFERR_W = 1u << 1;
inline constexpr uint32_t PFERR_U = 1u << 2;
inline constexpr uint32_t PFERR_RSVD = 1u << 3;
inline constexpr uint32_t PFERR_I = 1u << 4;

// Memory types (SDM vol. 3 table 11-10: PAT and MTRR encodings; 7 is PAT's UC-).
enum class MemType : uint8_t { UC = 0, WC = 1, WT = 4, WP = 5, WB = 6, UCMinus = 7 };

// Exception vectors.
inline constexpr uint8_t VEC_DE = 0;
inline constexpr uint8_t VEC_DB = 1;
inline constexpr uint8_t VEC_NMI = 2;
inline constexpr uint8_t VEC_BP = 3;
inline constexpr uint8_t VEC_OF = 4;
inline constexpr uint8_t VEC_BR = 5;
inline constexpr uint8_t VEC_UD = 6;
inline constexpr uint8_t VEC_NM = 7;
inline constexpr uint8_t VEC_DF = 8;
inline constexpr uint8_t VEC_TS = 10;
inline constexpr uint8_t VEC_NP = 11;
inline constexpr uint8_t VEC_SS = 12;
inline constexpr uint8_t VEC_GP = 13;
inline constexpr uint8_t VEC_PF = 14;
inline constexpr uint8_t VEC_MF = 16;
inline constexpr uint8_t VEC_AC = 17;
inline constexpr uint8_t VEC_MC = 18;
inline constexpr uint8_t VEC_XM = 19;

// Gate and descriptor types (system descriptors, S=0).
inline constexpr uint8_t DESC_TSS64_AVAIL = 0x9;
inline constexpr uint8_t DESC_TSS64_BUSY = 0xB;
inline constexpr uint8_t DESC_LDT = 0x2;
inline constexpr uint8_t GATE_INTR64 = 0xE;
inline constexpr uint8_t GATE_TRAP64 = 0xF;

}  // namespace softkvm::cpu
