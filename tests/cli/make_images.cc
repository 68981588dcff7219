// Writes the small guest images the CLI tests run: make_images DIR.
#include <cstdio>
#include <fstream>
#include <string>

#include "../vmm/elf_builder.h"

using softkvm::test::build_elf;
using softkvm::test::ElfSpec;

static bool write(const std::string& path, const std::vector<uint8_t>& data) {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    return static_cast<bool>(f);
}

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_images DIR\n");
        return 2;
    }
    const std::string dir = argv[1];
    bool ok = true;
    // 32-bit code at the multiboot entry.
    ElfSpec good;  // 'A' to COM1, then exit code 5 to port 0xf4
    good.code = {0x66, 0xba, 0xf8, 0x03, 0xb0, 0x41, 0xee, 0x66, 0xba,
                 0xf4, 0x00, 0xb8, 0x05, 0x00, 0x00, 0x00, 0xef, 0xf4};
    ok &= write(dir + "/good.elf", build_elf(good));
    ElfSpec loop;  // jmp .
    loop.code = {0xeb, 0xfe};
    ok &= write(dir + "/loop.elf", build_elf(loop));
    ElfSpec halt;  // cli; hlt
    halt.code = {0xfa, 0xf4};
    ok &= write(dir + "/halt.elf", build_elf(halt));
    ElfSpec triple;  // ud2 with no IDT
    triple.code = {0x0f, 0x0b};
    ok &= write(dir + "/triple.elf", build_elf(triple));
    ElfSpec late;  // multiboot header at file offset 4096 + 8192
    late.header_offset = 8192;
    ok &= write(dir + "/late-header.elf", build_elf(late));
    ElfSpec sum;
    sum.bad_checksum = true;
    ok &= write(dir + "/bad-checksum.elf", build_elf(sum));
    ElfSpec big;  // 16 MiB of bss: outside a 4 MiB guest
    big.mem_extra = 16 << 20;
    ok &= write(dir + "/too-big.elf", build_elf(big));
    ok &= write(dir + "/not-elf.bin", std::vector<uint8_t>(64, 'x'));
    return ok ? 0 : 1;
}
