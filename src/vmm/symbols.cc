#include "vmm/symbols.h"

#include <elf.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace softkvm::vmm {
namespace {

template <typename T>
bool read_at(const std::vector<uint8_t>& img, uint64_t off, T& out) {
    if (off > img.size() || img.size() - off < sizeof(T)) return false;
    std::memcpy(&out, img.data() + off, sizeof(T));
    return true;
}

template <typename Ehdr, typename Shdr, typename Sym, unsigned char (*Type)(unsigned char)>
void collect(const std::vector<uint8_t>& img, std::vector<std::pair<uint64_t, Sym>>& out,
             std::vector<std::string>& names) {
    Ehdr eh;
    if (!read_at(img, 0, eh) || eh.e_shentsize != sizeof(Shdr)) return;
    for (unsigned k = 0; k < eh.e_shnum; ++k) {
        Shdr sh;
        if (!read_at(img, eh.e_shoff + uint64_t{k} * sizeof(Shdr), sh)) return;
        if (sh.sh_type != SHT_SYMTAB || sh.sh_entsize != sizeof(Sym)) continue;
        Shdr strtab;
        if (!read_at(img, eh.e_shoff + uint64_t{sh.sh_link} * sizeof(Shdr), strtab)) return;
        if (strtab.sh_offset > img.size() || img.size() - strtab.sh_offset < strtab.sh_size) return;
        for (uint64_t at = 0; at + sizeof(Sym) <= sh.sh_size; at += sizeof(Sym)) {
            Sym s;
            if (!read_at(img, sh.sh_offset + at, s)) return;
            const unsigned char type = Type(s.st_info);
            if ((type != STT_FUNC && type != STT_NOTYPE) || s.st_shndx == SHN_UNDEF ||
                s.st_name >= strtab.sh_size)
                continue;
            const char* p =
                reinterpret_cast<const char*>(img.data() + strtab.sh_offset) + s.st_name;
            const size_t len = strnlen(p, strtab.sh_size - s.st_name);
            if (len == 0 || p[0] == '.' || p[0] == '$') continue;  // section and mapping names
            names.emplace_back(p, len);
            out.push_back({s.st_value, s});
        }
    }
}

unsigned char type32(unsigned char info) {
    return ELF32_ST_TYPE(info);
}
unsigned char type64(unsigned char info) {
    return ELF64_ST_TYPE(info);
}

}  // namespace

SymbolTable SymbolTable::from_elf(const std::vector<uint8_t>& img) {
    SymbolTable t;
    if (img.size() < EI_NIDENT || std::memcmp(img.data(), ELFMAG, SELFMAG) != 0 ||
        img[EI_DATA] != ELFDATA2LSB)
        return t;
    std::vector<std::string> names;
    if (img[EI_CLASS] == ELFCLASS64) {
        std::vector<std::pair<uint64_t, Elf64_Sym>> syms;
        collect<Elf64_Ehdr, Elf64_Shdr, Elf64_Sym, type64>(img, syms, names);
        for (size_t k = 0; k < syms.size(); ++k)
            t.syms_.push_back({syms[k].first, syms[k].second.st_size, names[k]});
    } else if (img[EI_CLASS] == ELFCLASS32) {
        std::vector<std::pair<uint64_t, Elf32_Sym>> syms;
        collect<Elf32_Ehdr, Elf32_Shdr, Elf32_Sym, type32>(img, syms, names);
        for (size_t k = 0; k < syms.size(); ++k)
            t.syms_.push_back({syms[k].first, syms[k].second.st_size, names[k]});
    }
    // Sized symbols last among equal addresses: describe() meets them first, so a
    // function wins over a label at the same address.
    std::stable_sort(t.syms_.begin(), t.syms_.end(), [](const Sym& a, const Sym& b) {
        return a.addr != b.addr ? a.addr < b.addr : a.size < b.size;
    });
    return t;
}

std::string SymbolTable::describe(uint64_t addr) const {
    auto it = std::upper_bound(syms_.begin(), syms_.end(), addr,
                               [](uint64_t a, const Sym& s) { return a < s.addr; });
    while (it != syms_.begin()) {
        --it;
        if (it->size == 0 || addr - it->addr < it->size) {
            if (addr == it->addr) return it->name;
            return fmt::format("{}+{:#x}", it->name, addr - it->addr);
        }
        if (it->size) return "";  // inside the gap after a sized function
    }
    return "";
}

}  // namespace softkvm::vmm
