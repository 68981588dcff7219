// Memory types (SDM vol. 3 §11.5, §11.12): the PAT entry a translation selects with its
// PAT/PCD/PWT bits, combined with the MTRR type of the physical address. The CPU model
// has no variable or fixed MTRRs (IA32_MTRRCAP = 0), so the MTRR type is the default type
// when MTRRs are enabled and UC when they are not.
#include <cstring>

#include "cpu/cpu.h"
#include "cpu/msr_index.h"

namespace softkvm::cpu {
namespace {

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

MemType Cpu::mtrr_pat_type(uint8_t pat_index) const {
    const uint64_t def = s_.mtrr_def_type;
    const MemType mtrr =
        (def & msr::MTRR_DEF_ENABLE) ? static_cast<MemType>(def & 0xFF) : MemType::UC;
    if (s_.cr0 & CR0_CD) return MemType::UC;
    return combine(mtrr, static_cast<MemType>((s_.pat >> (8 * pat_index)) & 0x7));
}

MemType Cpu::memory_type(uint64_t lin) {
    if (s_.cr0 & CR0_CD) return MemType::UC;
    uint8_t pat_index = 0;
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
                break;
            }
            table = e & PTE_ADDR_MASK;
        }
    }
    return mtrr_pat_type(pat_index);
}

}  // namespace softkvm::cpu
