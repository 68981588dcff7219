// Function symbols of a guest ELF image (its .symtab), to name guest addresses in
// statistics ("top bus-lock RIPs"). Images without a symbol table give an empty table.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace softkvm::vmm {

class SymbolTable {
  public:
    // Reads the STT_FUNC and STT_NOTYPE symbols of an ELF32 or ELF64 little-endian image;
    // anything malformed leaves the table empty (naming is best effort, never an error).
    static SymbolTable from_elf(const std::vector<uint8_t>& image);
    // A Linux System.map ("ADDRESS TYPE NAME" per line, as `nm` prints it): its text
    // symbols (types T, t, W, w). Any other line makes it an error (EINVAL, naming the line).
    static Result<SymbolTable> from_system_map(const std::string& text);

    struct Symbol {
        uint64_t addr, size;  // size 0: unknown (it ends where the next one starts)
        std::string name;
    };
    // The symbol covering `addr` (the one describe() names), or nullptr.
    const Symbol* find(uint64_t addr) const;

    // "name+0xoff" for the symbol at or below `addr` (within its size when it has one),
    // or "" when none covers it.
    std::string describe(uint64_t addr) const;
    size_t size() const { return syms_.size(); }

  private:
    using Sym = Symbol;
    void sort();
    std::vector<Sym> syms_;  // sorted by address
};

}  // namespace softkvm::vmm
