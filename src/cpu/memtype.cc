// Memory types (SDM vol. 3 §11.5, §11.12): the PAT entry a translation selects with its
// PAT/PCD/PWT bits, combined with the MTRR type of the physical address (§11.11): the
// fixed ranges below 1 MiB when enabled, then the variable ranges, then the default type.
// The MTRR MSRs themselves: reads, writes and their reserved bits (#GP) as KVM checks
// them for its guests (arch/x86/kvm/mtrr.c), which are the SDM's rules.
#include <bit>
#include <cstring>

#include "cpu/cpu.h"
#include "cpu/msr_index.h"

namespace softkvm::cpu {
namespace {

// The types an MTRR may hold: UC, WC, WT, WP, WB (SDM vol. 3A table 11-8); 2, 3 and 7 and
// above are reserved.
bool valid_mtrr_type(uint64_t t) {
    return t == 0 || t == 1 || t == 4 || t == 5 || t == 6;
}

// Index in CpuState::mtrr_fixed of a fixed-range MSR, or -1.
int fixed_index(uint32_t index) {
    if (index == msr::IA32_MTRR_FIX64K_00000) return 0;
    if (index == msr::IA32_MTRR_FIX16K_80000 || index == msr::IA32_MTRR_FIX16K_A0000)
        return 1 + static_cast<int>(index - msr::IA32_MTRR_FIX16K_80000);
    if (index >= msr::IA32_MTRR_FIX4K_C0000 && index <= msr::IA32_MTRR_FIX4K_F8000)
        return 3 + static_cast<int>(index - msr::IA32_MTRR_FIX4K_C0000);
    return -1;
}

bool variable_msr(uint32_t index) {
    return index >= msr::IA32_MTRR_PHYSBASE0 &&
           index < msr::IA32_MTRR_PHYSBASE0 + 2 * msr::kMtrrVarCount;
}

constexpr uint64_t kAbovePhysAddr = ~((1ull << msr::kMaxPhysAddrBits) - 1);

// Effective type of an MTRR type and a PAT type (SDM vol. 3 table 11-7).
MemType combine(MemType mtrr, MemType pat) {
    using enum MemType;
    switch (mtrr) {
        case UC:
            return pat == WC ? WC : UC;
        case WC:
            return (pat == UC || pat == UCMinus) ? UC : (pat == WB || pat == WC) ? WC : UC;
        case WT:
            return pat == WB ? WT : (pat == UCMinus ? UC : pat);
        case WP:
            return pat == WB ? WP : (pat == UCMinus ? UC : pat == WT ? UC : pat);
        case WB:
            return pat == UCMinus ? UC : pat;
        default:
            return UC;
    }
}

}  // namespace

MsrResult Cpu::mtrr_read(uint32_t index, uint64_t& v) const {
    if (index == msr::IA32_MTRRCAP) {
        v = msr::MTRRCAP_VALUE;
    } else if (index == msr::IA32_MTRR_DEF_TYPE) {
        v = s_.mtrr_def_type;
    } else if (const int f = fixed_index(index); f >= 0) {
        v = s_.mtrr_fixed[f];
    } else if (variable_msr(index)) {
        v = s_.mtrr_var[index - msr::IA32_MTRR_PHYSBASE0];
    } else {
        return MsrResult::NotMine;
    }
    return MsrResult::Handled;
}

MsrResult Cpu::mtrr_write(uint32_t index, uint64_t v) {
    if (index == msr::IA32_MTRR_DEF_TYPE) {
        if ((v & ~msr::MTRR_DEF_WRITABLE) || !valid_mtrr_type(v & msr::MTRR_DEF_TYPE_MASK))
            return MsrResult::Fault;
        s_.mtrr_def_type = v;
    } else if (const int f = fixed_index(index); f >= 0) {
        for (int k = 0; k < 8; ++k)
            if (!valid_mtrr_type((v >> (8 * k)) & 0xFF)) return MsrResult::Fault;
        s_.mtrr_fixed[f] = v;
    } else if (variable_msr(index)) {
        const bool mask = (index - msr::IA32_MTRR_PHYSBASE0) & 1;
        if (v &
            (kAbovePhysAddr | (mask ? msr::MTRR_PHYSMASK_RESERVED : msr::MTRR_PHYSBASE_RESERVED)))
            return MsrResult::Fault;
        if (!mask && !valid_mtrr_type(v & 0xFF)) return MsrResult::Fault;
        s_.mtrr_var[index - msr::IA32_MTRR_PHYSBASE0] = v;
    } else {
        return MsrResult::NotMine;  // IA32_MTRRCAP is read-only: the caller's #GP
    }
    return MsrResult::Handled;
}

MemType Cpu::mtrr_type(uint64_t phys) const {
    const uint64_t def = s_.mtrr_def_type;
    if (!(def & msr::MTRR_DEF_ENABLE)) return MemType::UC;
    // Below 1 MiB the fixed ranges decide, when enabled: 8 x 64 KiB from 0, 16 x 16 KiB
    // from 0x80000, 64 x 4 KiB from 0xC0000, one type byte each.
    if ((def & msr::MTRR_DEF_FIXED_ENABLE) && phys < 0x100000) {
        int reg, byte;
        if (phys < 0x80000)
            reg = 0, byte = static_cast<int>(phys >> 16);
        else if (phys < 0xC0000)
            reg = 1 + static_cast<int>((phys - 0x80000) >> 17),
            byte = static_cast<int>(((phys - 0x80000) >> 14) & 7);
        else
            reg = 3 + static_cast<int>((phys - 0xC0000) >> 15),
            byte = static_cast<int>(((phys - 0xC0000) >> 12) & 7);
        return static_cast<MemType>((s_.mtrr_fixed[reg] >> (8 * byte)) & 0xFF);
    }
    // Variable ranges (§11.11.4.1): none matching gives the default type; one type, or
    // several alike, that type; UC wins over all; WT over WB. Other overlaps are
    // undefined; the model takes WB for them, as KVM does.
    unsigned seen = 0;  // bit t: some matching range has type t
    for (int r = 0; r < msr::kMtrrVarCount; ++r) {
        const uint64_t base = s_.mtrr_var[2 * r], mask = s_.mtrr_var[2 * r + 1];
        if (!(mask & msr::MTRR_PHYSMASK_VALID)) continue;
        const uint64_t m = mask & ~0xFFFull;
        if ((phys & m) == (base & m)) seen |= 1u << (base & 0xFF);
    }
    constexpr auto bit = [](MemType t) { return 1u << static_cast<unsigned>(t); };
    if (seen == 0) return static_cast<MemType>(def & msr::MTRR_DEF_TYPE_MASK);
    if ((seen & (seen - 1)) == 0) return static_cast<MemType>(std::countr_zero(seen));
    if (seen & bit(MemType::UC)) return MemType::UC;
    if ((seen & ~(bit(MemType::WT) | bit(MemType::WB))) == 0) return MemType::WT;
    return MemType::WB;
}

MemType Cpu::mtrr_pat_type(uint8_t pat_index, uint64_t phys) const {
    if (s_.cr0 & CR0_CD) return MemType::UC;
    return combine(mtrr_type(phys), static_cast<MemType>((s_.pat >> (8 * pat_index)) & 0x7));
}

MemType Cpu::memory_type(uint64_t lin) {
    if (s_.cr0 & CR0_CD) return MemType::UC;
    uint8_t pat_index = 0;
    uint64_t phys = lin;
    if ((s_.cr0 & CR0_PG) && (s_.efer & msr::EFER_LMA)) {
        uint64_t table = s_.cr3 & PTE_ADDR_MASK;
        for (int level = 3; level >= 0; --level) {
            const uint64_t ea = table + ((lin >> (12 + 9 * level)) & 0x1FF) * 8;
            const uint8_t* h = host_page(ea);
            if (!h) return MemType::UC;
            uint64_t e;
            std::memcpy(&e, h, 8);
            if (!(e & PTE_P)) return MemType::UC;  // not mapped: nothing to access
            const bool leaf = level == 0 || (level < 3 && (e & PTE_PS));
            if (leaf) {
                const bool pat = level == 0 ? (e & PTE_PS) : (e & (1ull << 12));
                pat_index = static_cast<uint8_t>((pat ? 4 : 0) | ((e & PTE_PCD) ? 2 : 0) |
                                                 ((e & PTE_PWT) ? 1 : 0));
                const uint64_t page_mask = (1ull << (12 + 9 * level)) - 1;
                phys = (e & PTE_ADDR_MASK & ~page_mask) | (lin & page_mask);
                break;
            }
            table = e & PTE_ADDR_MASK;
        }
    }
    return mtrr_pat_type(pat_index, phys);
}

}  // namespace softkvm::cpu
