#include "vmm/symbols.h"

#include <elf.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
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
    t.sort();
    return t;
}

// Sized symbols last among equal addresses: find() meets them first, so a function wins
// over a label at the same address.
void SymbolTable::sort() {
    std::stable_sort(syms_.begin(), syms_.end(), [](const Sym& a, const Sym& b) {
        return a.addr != b.addr ? a.addr < b.addr : a.size < b.size;
    });
}

Result<SymbolTable> SymbolTable::from_system_map(const std::string& text) {
    SymbolTable t;
    size_t line_no = 0, lines = 0;
    for (size_t at = 0; at < text.size();) {
        size_t end = text.find('\n', at);
        if (end == std::string::npos) end = text.size();
        const std::string line = text.substr(at, end - at);
        at = end + 1;
        ++line_no;
        if (line.empty()) continue;
        auto bad = [&] {
            return make_error(fmt::format("line {} is not 'ADDRESS TYPE NAME'", line_no), EINVAL);
        };
        // ADDRESS: 1-16 hex digits; TYPE: one letter (nm's symbol types); NAME: no blanks.
        size_t k = 0;
        uint64_t addr = 0;
        while (k < line.size() && std::isxdigit(static_cast<unsigned char>(line[k]))) {
            if (k == 16) return bad();
            const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(line[k])));
            addr = addr * 16 + static_cast<uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
            ++k;
        }
        if (k == 0 || k + 3 > line.size() || line[k] != ' ' || line[k + 2] != ' ' ||
            !std::isalpha(static_cast<unsigned char>(line[k + 1])))
            return bad();
        const char type = line[k + 1];
        std::string name = line.substr(k + 3);
        if (name.empty() || name.find_first_of(" \t\r") != std::string::npos) return bad();
        ++lines;
        if (type == 'T' || type == 't' || type == 'W' || type == 'w')
            t.syms_.push_back({addr, 0, std::move(name)});
    }
    if (!lines) return make_error("no 'ADDRESS TYPE NAME' lines", EINVAL);
    t.sort();
    return t;
}

const SymbolTable::Symbol* SymbolTable::find(uint64_t addr) const {
    auto it = std::upper_bound(syms_.begin(), syms_.end(), addr,
                               [](uint64_t a, const Sym& s) { return a < s.addr; });
    while (it != syms_.begin()) {
        --it;
        if (it->size == 0 || addr - it->addr < it->size) return &*it;
        if (it->size) return nullptr;  // inside the gap after a sized function
    }
    return nullptr;
}

std::string SymbolTable::describe(uint64_t addr) const {
    const Symbol* s = find(addr);
    if (!s) return "";
    if (addr == s->addr) return s->name;
    return fmt::format("{}+{:#x}", s->name, addr - s->addr);
}

}  // namespace softkvm::vmm
