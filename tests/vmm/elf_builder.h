// Builds small multiboot ELF images in memory for loader and CLI tests (no binary blobs
// in the tree): one PT_LOAD segment holding a multiboot header and the given code.
#pragma once
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace softkvm::test {

struct ElfSpec {
    uint32_t load_addr = 0x100000;
    uint32_t mem_extra = 0;  // bss bytes after the file contents
    std::vector<uint8_t> code;
    bool multiboot = true;
    uint32_t header_offset = 0;  // of the multiboot header within the segment
    bool bad_checksum = false;
    bool elf64 = false;
    // More PT_LOAD segments, bss only: (guest-physical address, memory size).
    std::vector<std::pair<uint64_t, uint64_t>> bss_segments;
};

inline void put32(std::vector<uint8_t>& v, size_t at, uint32_t x) {
    std::memcpy(&v[at], &x, 4);
}
inline void put16(std::vector<uint8_t>& v, size_t at, uint16_t x) {
    std::memcpy(&v[at], &x, 2);
}
inline void put64(std::vector<uint8_t>& v, size_t at, uint64_t x) {
    std::memcpy(&v[at], &x, 8);
}

// Segment contents: [multiboot header at header_offset][code after the header].
inline std::vector<uint8_t> build_elf(const ElfSpec& s) {
    const size_t ehdr = s.elf64 ? 64 : 52, phdr = s.elf64 ? 56 : 32;
    const size_t seg_off = 0x1000;
    std::vector<uint8_t> seg(s.header_offset + 12, 0);
    if (s.multiboot) {
        const uint32_t magic = 0x1BADB002, flags = 0x3;
        put32(seg, s.header_offset, magic);
        put32(seg, s.header_offset + 4, flags);
        put32(seg, s.header_offset + 8, 0u - magic - flags + (s.bad_checksum ? 1 : 0));
    }
    const uint32_t entry = s.load_addr + static_cast<uint32_t>(seg.size());
    seg.insert(seg.end(), s.code.begin(), s.code.end());
    std::vector<uint8_t> f(seg_off + seg.size(), 0);
    std::memcpy(&f[0],
                "\x7f"
                "ELF",
                4);
    f[4] = s.elf64 ? 2 : 1;  // class
    f[5] = 1;                // little endian
    f[6] = 1;                // version
    put16(f, 16, 2);         // ET_EXEC
    put16(f, 18, s.elf64 ? 62 : 3);
    put32(f, 20, 1);
    if (s.elf64) {
        put64(f, 24, entry);
        put64(f, 32, ehdr);  // phoff
        put16(f, 52, static_cast<uint16_t>(ehdr));
        put16(f, 54, static_cast<uint16_t>(phdr));
        put16(f, 56, static_cast<uint16_t>(1 + s.bss_segments.size()));
        const size_t p = ehdr;
        put32(f, p, 1);  // PT_LOAD
        put32(f, p + 4, 7);
        put64(f, p + 8, seg_off);
        put64(f, p + 16, s.load_addr);
        put64(f, p + 24, s.load_addr);
        put64(f, p + 32, seg.size());
        put64(f, p + 40, seg.size() + s.mem_extra);
        for (size_t k = 0; k < s.bss_segments.size(); ++k) {
            const size_t q = p + phdr * (k + 1);
            put32(f, q, 1);
            put32(f, q + 4, 6);
            put64(f, q + 8, seg_off);
            put64(f, q + 16, s.bss_segments[k].first);
            put64(f, q + 24, s.bss_segments[k].first);
            put64(f, q + 40, s.bss_segments[k].second);
        }
    } else {
        put32(f, 24, entry);
        put32(f, 28, static_cast<uint32_t>(ehdr));
        put16(f, 40, static_cast<uint16_t>(ehdr));
        put16(f, 42, static_cast<uint16_t>(phdr));
        put16(f, 44, static_cast<uint16_t>(1 + s.bss_segments.size()));
        const size_t p = ehdr;
        put32(f, p, 1);
        put32(f, p + 4, seg_off);
        put32(f, p + 8, s.load_addr);
        put32(f, p + 12, s.load_addr);
        put32(f, p + 16, static_cast<uint32_t>(seg.size()));
        put32(f, p + 20, static_cast<uint32_t>(seg.size() + s.mem_extra));
        put32(f, p + 24, 7);
        for (size_t k = 0; k < s.bss_segments.size(); ++k) {
            const size_t q = p + phdr * (k + 1);
            put32(f, q, 1);
            put32(f, q + 4, seg_off);
            put32(f, q + 8, static_cast<uint32_t>(s.bss_segments[k].first));
            put32(f, q + 12, static_cast<uint32_t>(s.bss_segments[k].first));
            put32(f, q + 20, static_cast<uint32_t>(s.bss_segments[k].second));
            put32(f, q + 24, 6);
        }
    }
    std::memcpy(&f[seg_off], seg.data(), seg.size());
    return f;
}

}  // namespace softkvm::test
