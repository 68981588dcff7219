// Writes synthetic Linux kernels for the command-line tests of `softkvm run --kernel`:
// a bzImage whose 64-bit entry checks the boot protocol's entry state and exits with 42,
// and malformed ones (truncated, protocol 2.11, no 64-bit entry, a tiny cmdline_size).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

bool write(const std::string& path, const std::vector<uint8_t>& data) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return false;
    const bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size();
    return std::fclose(f) == 0 && ok;
}

template <typename T>
void put(std::vector<uint8_t>& v, size_t at, T x) {
    std::memcpy(&v[at], &x, sizeof x);
}

struct Spec {
    uint16_t version = 0x020F;
    uint16_t xloadflags = 0x7F;
    uint32_t cmdline_size = 2047;
};

// Setup (4 sectors + the boot sector) and 4 KiB of protected-mode code. At the 64-bit
// entry (+0x200), in 64-bit mode: exit code 42 if RSI = 0x7000, CS = 0x10, type_of_loader
// = 0xFF and the command line starts with 'q'; 43, 44, 45, 46 name the first check that
// failed (the later ones win).
std::vector<uint8_t> bzimage(const Spec& s) {
    const size_t setup = 5 * 512;
    std::vector<uint8_t> v(setup + 0x1000, 0);
    v[0x1EF] = 0xFF;
    v[0x1F1] = 4;
    put<uint32_t>(v, 0x1F4, 0x1000 / 16);
    put<uint16_t>(v, 0x1FE, 0xAA55);
    v[0x200] = 0xEB;
    v[0x201] = 0x6A;
    put<uint32_t>(v, 0x202, 0x53726448);
    put<uint16_t>(v, 0x206, s.version);
    v[0x211] = 0x01;
    put<uint32_t>(v, 0x214, 0x100000);
    put<uint32_t>(v, 0x22C, 0x7FFFFFFF);
    put<uint32_t>(v, 0x230, 0x200000);
    v[0x234] = 1;
    put<uint16_t>(v, 0x236, s.xloadflags);
    put<uint32_t>(v, 0x238, s.cmdline_size);
    put<uint64_t>(v, 0x258, 0x1000000);
    put<uint32_t>(v, 0x260, 0x100000);
    const uint8_t code[] = {
        0xBA, 0xF4, 0x00, 0x00, 0x00,                    // mov edx, 0xf4
        0x31, 0xC0,                                      // xor eax, eax
        0x48, 0x81, 0xFE, 0x00, 0x70, 0x00, 0x00,        // cmp rsi, 0x7000
        0x0F, 0x95, 0xC0,                                // setne al
        0x66, 0x8C, 0xC9,                                // mov cx, cs
        0x66, 0x83, 0xF9, 0x10,                          // cmp cx, 0x10
        0x74, 0x02, 0xB0, 0x02,                          // je +2; mov al, 2
        0x80, 0xBE, 0x10, 0x02, 0x00, 0x00, 0xFF,        // cmp byte [rsi+0x210], 0xff
        0x74, 0x02, 0xB0, 0x03,                          // je +2; mov al, 3
        0x80, 0x3C, 0x25, 0x00, 0x00, 0x02, 0x00, 0x71,  // cmp byte [0x20000], 'q'
        0x74, 0x02, 0xB0, 0x04,                          // je +2; mov al, 4
        0x04, 0x2A,                                      // add al, 42
        0xEE, 0xF4,                                      // out dx, al; hlt
    };
    std::memcpy(&v[setup + 0x200], code, sizeof code);
    return v;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_bzimages DIR\n");
        return 2;
    }
    const std::string dir = argv[1];
    bool ok = write(dir + "/bz-good.bin", bzimage({}));
    std::vector<uint8_t> cut = bzimage({});
    cut.resize(cut.size() - 0x800);
    ok &= write(dir + "/bz-truncated.bin", cut);
    Spec old;
    old.version = 0x020B;
    ok &= write(dir + "/bz-old.bin", bzimage(old));
    Spec no64;
    no64.xloadflags = 0x02;
    ok &= write(dir + "/bz-no64.bin", bzimage(no64));
    Spec small;
    small.cmdline_size = 8;
    ok &= write(dir + "/bz-cmdline8.bin", bzimage(small));
    ok &= write(dir + "/not-a-kernel.bin", std::vector<uint8_t>(8192, 0x90));
    ok &= write(dir + "/initrd-17m.bin", std::vector<uint8_t>(17u << 20, 0xA5));
    if (!ok) std::perror("make_bzimages");
    return ok ? 0 : 1;
}
