// Function symbols of a guest ELF image (its .symtab), to name guest addresses in
// statistics ("top bus-lock RIPs"). Images without a symbol table give an empty table.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace softkvm::vmm {

class SymbolTable {
  public:
    // Reads the STT_FUNC and STT_NOTYPE symbols of an ELF32 or ELF64 little-endian image;
    // anything malformed leaves the table empty (naming is best effort, never an error).
    static SymbolTable from_elf(const std::vector<uint8_t>& image);

    // "name+0xoff" for the symbol at or below `addr` (within its size when it has one),
    // or "" when none covers it.
    std::string describe(uint64_t addr) const;
    size_t size() const { return syms_.size(); }

  private:
    struct Sym {
        uint64_t addr, size;
        std::string name;
    };
    std::vector<Sym> syms_;  // sorted by address
};

}  // namespace softkvm::vmm
