// The Linux boot protocol loader with synthetic bzImage headers and vmlinux ELFs: the zero
// page, the placement of kernel, command line and initrd, the page tables, and every
// rejection.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

#include "vmm/bootparam.h"
#include "vmm/linux_boot.h"

namespace softkvm::vmm {
namespace {

namespace bp = bootparam;
namespace lay = linux_layout;

template <typename T>
void put(std::vector<uint8_t>& v, size_t at, T x) {
    std::memcpy(&v[at], &x, sizeof x);
}
template <typename T>
T get(GuestMemory& m, uint64_t at) {
    T x;
    std::memcpy(&x, m.host() + at, sizeof x);
    return x;
}

struct BzSpec {
    uint8_t setup_sects = 3;
    uint16_t version = 0x020F;
    uint8_t loadflags = bp::kLoadedHigh;
    uint16_t xloadflags = 0x7F;
    uint32_t pm_size = 0x3000;
    uint32_t init_size = 0x200000;
    uint32_t cmdline_size = 2047;
    uint32_t initrd_max = 0x7FFFFFFF;
    uint64_t pref = 0x1000000;
    uint32_t align = 0x200000;
};

// A bzImage-shaped file: setup sectors with a header, then `pm_size` bytes of kernel
// whose bytes are (offset & 0xFF) ^ 0x5A so that their placement can be checked.
std::vector<uint8_t> make_bzimage(const BzSpec& s) {
    const size_t setup = (s.setup_sects + 1u) * 512u;
    std::vector<uint8_t> v(setup + s.pm_size, 0);
    v[bp::kSentinel] = 0xFF;  // as a real bzImage: the loader must not copy it
    v[bp::kSetupSects] = s.setup_sects;
    put<uint32_t>(v, bp::kSysSize, s.pm_size / 16);
    put<uint16_t>(v, bp::kBootFlag, bp::kBootFlagValue);
    v[0x200] = 0xEB;         // jmp short to the end of the header
    v[bp::kJumpEnd] = 0x6A;  // header ends at 0x26C, as Linux 6.1's
    put<uint32_t>(v, bp::kHeaderMagicOff, bp::kHeaderMagic);
    put<uint16_t>(v, bp::kVersion, s.version);
    v[bp::kLoadFlags] = s.loadflags;
    put<uint32_t>(v, bp::kCode32Start, 0x100000);
    put<uint32_t>(v, bp::kInitrdAddrMax, s.initrd_max);
    put<uint32_t>(v, bp::kKernelAlignment, s.align);
    v[bp::kRelocatableKernel] = 1;
    put<uint16_t>(v, bp::kXLoadFlags, s.xloadflags);
    put<uint32_t>(v, bp::kCmdlineSize, s.cmdline_size);
    put<uint64_t>(v, bp::kPrefAddress, s.pref);
    put<uint32_t>(v, bp::kInitSize, s.init_size);
    v[0x268] = 0x77;  // last header byte copied (0x26B is the header's last)
    v[0x26C] = 0x99;  // past the header: not copied
    for (size_t k = 0; k < s.pm_size; ++k) v[setup + k] = static_cast<uint8_t>(k ^ 0x5A);
    return v;
}

class LinuxBootTest : public ::testing::Test {
  protected:
    LinuxBootTest() : mem_(std::move(GuestMemory::create(64 << 20)).value()) {}
    GuestMemory mem_;
    static constexpr uint64_t kZp = lay::kZeroPage;
};

TEST_F(LinuxBootTest, DetectsKinds) {
    EXPECT_EQ(detect_kernel(make_bzimage({})), KernelKind::BzImage);
    std::vector<uint8_t> elf(64, 0);
    std::memcpy(elf.data(),
                "\x7f"
                "ELF",
                4);
    EXPECT_EQ(detect_kernel(elf), KernelKind::Vmlinux);
    std::vector<uint8_t> mb(64, 0);
    put<uint32_t>(mb, 8, 0x1BADB002);
    put<uint32_t>(mb, 12, 0);
    put<uint32_t>(mb, 16, 0u - 0x1BADB002u);
    EXPECT_EQ(detect_kernel(mb), KernelKind::Multiboot);
    EXPECT_EQ(detect_kernel(std::vector<uint8_t>(4096, 0x90)), KernelKind::Unknown);
}

TEST_F(LinuxBootTest, BzImageZeroPageKernelAndCmdline) {
    const auto img = make_bzimage({});
    mem_.fill(kZp, 0xCC, 4096);  // stale bytes must not survive
    LinuxBootParams p;
    p.cmdline = "console=ttyS0 panic=1";
    p.rsdp = 0xF0000;
    auto r = load_linux(img, "bz", mem_, p);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_FALSE(r->vmlinux);
    EXPECT_EQ(r->entry, 0x100200u);
    EXPECT_EQ(r->version, 0x020F);
    EXPECT_EQ(r->kernel_low, 0x100000u);
    EXPECT_EQ(r->kernel_high, 0x103000u);
    // Decompression target: max(align_up(1 MiB, 2 MiB), pref 16 MiB) + init_size.
    EXPECT_EQ(r->reserved_end, 0x1000000u + 0x200000u);
    // Protected-mode code at 1 MiB, byte for byte.
    EXPECT_EQ(mem_.host()[0x100000], 0x5A);
    EXPECT_EQ(mem_.host()[0x100000 + 0x2FFF], static_cast<uint8_t>(0x2FFF ^ 0x5A));
    // The header copied from 0x1F1 to its end (0x26C), nothing before or after.
    EXPECT_EQ(mem_.host()[kZp + bp::kSentinel], 0);
    EXPECT_EQ(mem_.host()[kZp + 0x1F0], 0);
    EXPECT_EQ(mem_.host()[kZp + bp::kSetupSects], 3);
    EXPECT_EQ(get<uint16_t>(mem_, kZp + bp::kBootFlag), bp::kBootFlagValue);
    EXPECT_EQ(get<uint32_t>(mem_, kZp + bp::kHeaderMagicOff), bp::kHeaderMagic);
    EXPECT_EQ(mem_.host()[kZp + 0x268], 0x77);
    EXPECT_EQ(mem_.host()[kZp + 0x26C], 0);
    EXPECT_EQ(get<uint32_t>(mem_, kZp + bp::kPrefAddress), 0x1000000u);
    // The loader's fields.
    EXPECT_EQ(mem_.host()[kZp + bp::kTypeOfLoader], 0xFF);
    EXPECT_EQ(get<uint32_t>(mem_, kZp + bp::kCode32Start), 0x100000u);
    EXPECT_EQ(get<uint32_t>(mem_, kZp + bp::kCmdLinePtr), lay::kCmdline);
    EXPECT_EQ(get<uint32_t>(mem_, kZp + bp::kExtCmdLinePtr), 0u);
    EXPECT_STREQ(reinterpret_cast<const char*>(mem_.host() + lay::kCmdline), p.cmdline.c_str());
    EXPECT_EQ(get<uint32_t>(mem_, kZp + bp::kRamdiskImage), 0u);
    EXPECT_EQ(get<uint32_t>(mem_, kZp + bp::kRamdiskSize), 0u);
    EXPECT_EQ(get<uint64_t>(mem_, kZp + bp::kAcpiRsdpAddr), 0xF0000u);
    // Untouched parts of the zero page are zero.
    EXPECT_EQ(get<uint64_t>(mem_, kZp + 0x100), 0u);
    EXPECT_EQ(mem_.host()[kZp + 0xFFF], 0);
}

TEST_F(LinuxBootTest, E820MapHasLowRamReservedHolesAndHighRam) {
    auto r = load_linux(make_bzimage({}), "bz", mem_, {});
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(mem_.host()[kZp + bp::kE820Entries], 4);
    struct E {
        uint64_t addr, size;
        uint32_t type;
    };
    const E want[] = {{0, 0x9FC00, bp::kE820Ram},
                      {0x9FC00, 0x400, bp::kE820Reserved},
                      {0xF0000, 0x10000, bp::kE820Reserved},
                      {0x100000, (64u << 20) - 0x100000, bp::kE820Ram}};
    for (size_t k = 0; k < 4; ++k) {
        const uint64_t e = kZp + bp::kE820Table + k * bp::kE820EntrySize;
        EXPECT_EQ(get<uint64_t>(mem_, e), want[k].addr) << k;
        EXPECT_EQ(get<uint64_t>(mem_, e + 8), want[k].size) << k;
        EXPECT_EQ(get<uint32_t>(mem_, e + 16), want[k].type) << k;
    }
    EXPECT_EQ(get<uint16_t>(mem_, lay::kBdaBaseMemKb), 639);
    EXPECT_EQ(get<uint16_t>(mem_, lay::kBdaEbdaSegment), 0x9FC0);
}

TEST_F(LinuxBootTest, PageTablesIdentityMapFourGiBAndGdtIsFlat) {
    ASSERT_TRUE(load_linux(make_bzimage({}), "bz", mem_, {}).ok());
    EXPECT_EQ(get<uint64_t>(mem_, lay::kPml4), lay::kPdpt | 3);
    for (uint64_t d = 0; d < 4; ++d)
        EXPECT_EQ(get<uint64_t>(mem_, lay::kPdpt + 8 * d), (lay::kPageDirs + d * 4096) | 3);
    EXPECT_EQ(get<uint64_t>(mem_, lay::kPdpt + 8 * 4), 0u);
    EXPECT_EQ(get<uint64_t>(mem_, lay::kPageDirs), 0x83u);
    EXPECT_EQ(get<uint64_t>(mem_, lay::kPageDirs + 8), 0x200083u);
    // The last 2 MiB page below 4 GiB (LAPIC and IOAPIC live there).
    EXPECT_EQ(get<uint64_t>(mem_, lay::kPageDirs + 3 * 4096 + 511 * 8), 0xFFE00083u);
    EXPECT_EQ(get<uint64_t>(mem_, lay::kGdt + 0x10), 0x00AF9B000000FFFFull);
    EXPECT_EQ(get<uint64_t>(mem_, lay::kGdt + 0x18), 0x00CF93000000FFFFull);
}

TEST_F(LinuxBootTest, InitrdAtTopOfRamBelowInitrdMax) {
    std::vector<uint8_t> initrd(10000, 0xAB);
    LinuxBootParams p;
    p.initrd = &initrd;
    auto r = load_linux(make_bzimage({}), "bz", mem_, p);
    ASSERT_TRUE(r.ok()) << r.error().message;
    const uint64_t want = ((64u << 20) - 10000) & ~0xFFFull;
    EXPECT_EQ(r->initrd_addr, want);
    EXPECT_EQ(get<uint32_t>(mem_, kZp + bp::kRamdiskImage), want);
    EXPECT_EQ(get<uint32_t>(mem_, kZp + bp::kRamdiskSize), 10000u);
    EXPECT_EQ(get<uint32_t>(mem_, kZp + bp::kExtRamdiskImage), 0u);
    EXPECT_EQ(mem_.host()[want], 0xAB);
    EXPECT_EQ(mem_.host()[want + 9999], 0xAB);

    // initrd_addr_max below the top of RAM: the initrd's last byte stays at or below it.
    BzSpec s;
    s.initrd_max = (40u << 20) - 1;
    auto r2 = load_linux(make_bzimage(s), "bz", mem_, p);
    ASSERT_TRUE(r2.ok()) << r2.error().message;
    EXPECT_EQ(r2->initrd_addr, ((40u << 20) - 10000) & ~0xFFFull);
}

TEST_F(LinuxBootTest, InitrdNeverInsideTheKernelsDecompressionRange) {
    BzSpec s;
    s.init_size = (60u << 20) - 0x1000000;  // the kernel's range ends at 60 MiB
    std::vector<uint8_t> initrd(5u << 20, 1);
    LinuxBootParams p;
    p.initrd = &initrd;
    auto r = load_linux(make_bzimage(s), "bz", mem_, p);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, EFBIG);
    EXPECT_NE(r.error().message.find("does not fit"), std::string::npos) << r.error().message;
    initrd.resize(3u << 20);
    auto r2 = load_linux(make_bzimage(s), "bz", mem_, p);
    ASSERT_TRUE(r2.ok()) << r2.error().message;
    EXPECT_GE(r2->initrd_addr, 60u << 20);
}

TEST_F(LinuxBootTest, RejectsInitrdLargerThanMemory) {
    std::vector<uint8_t> initrd((64u << 20) + 1, 0);
    LinuxBootParams p;
    p.initrd = &initrd;
    auto r = load_linux(make_bzimage({}), "bz", mem_, p);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, EFBIG);
    EXPECT_NE(r.error().message.find("larger than guest memory"), std::string::npos);
}

TEST_F(LinuxBootTest, RejectsKernelThatNeedsMoreMemory) {
    BzSpec s;
    s.init_size = 64u << 20;
    auto r = load_linux(make_bzimage(s), "bz", mem_, {});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, EFBIG);
    EXPECT_NE(r.error().message.find("needs at least 80 MiB"), std::string::npos)
        << r.error().message;
}

TEST_F(LinuxBootTest, CommandLineLimitIsCmdlineSize) {
    BzSpec s;
    s.cmdline_size = 16;
    LinuxBootParams p;
    p.cmdline = std::string(16, 'x');
    ASSERT_TRUE(load_linux(make_bzimage(s), "bz", mem_, p).ok());
    p.cmdline += 'y';
    auto r = load_linux(make_bzimage(s), "bz", mem_, p);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, EINVAL);
    EXPECT_NE(r.error().message.find("17 bytes"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("at most 16"), std::string::npos) << r.error().message;
}

TEST_F(LinuxBootTest, RejectsBadImages) {
    auto expect_noexec = [&](const std::vector<uint8_t>& img, const char* what) {
        auto r = load_linux(img, "k", mem_, {});
        ASSERT_FALSE(r.ok()) << what;
        EXPECT_EQ(r.error().code, ENOEXEC) << what;
        EXPECT_NE(r.error().message.find(what), std::string::npos) << r.error().message;
    };
    expect_noexec(std::vector<uint8_t>(8192, 0x90), "neither a bzImage");
    auto bz = make_bzimage({});
    expect_noexec(std::vector<uint8_t>(bz.begin(), bz.begin() + 0x240), "truncated bzImage");
    expect_noexec(std::vector<uint8_t>(bz.begin(), bz.end() - 17), "truncated bzImage");
    expect_noexec(std::vector<uint8_t>(bz.begin(), bz.begin() + 2048), "truncated bzImage");
    BzSpec old;
    old.version = 0x020B;
    expect_noexec(make_bzimage(old), "boot protocol 2.11 is older than 2.12");
    BzSpec no64;
    no64.xloadflags = 0x2;
    expect_noexec(make_bzimage(no64), "no 64-bit entry point");
    BzSpec zimage;
    zimage.loadflags = 0;
    expect_noexec(make_bzimage(zimage), "zImage");
}

// A minimal ELF64 vmlinux: one PT_LOAD at 16 MiB (virtual 0xffffffff81000000).
std::vector<uint8_t> make_vmlinux(uint64_t entry, uint64_t memsz) {
    std::vector<uint8_t> v(0x1000 + 0x100, 0);
    std::memcpy(v.data(),
                "\x7f"
                "ELF",
                4);
    v[4] = 2, v[5] = 1, v[6] = 1;
    put<uint16_t>(v, 16, 2);
    put<uint16_t>(v, 18, 62);
    put<uint32_t>(v, 20, 1);
    put<uint64_t>(v, 24, entry);
    put<uint64_t>(v, 32, 64);
    put<uint16_t>(v, 52, 64);
    put<uint16_t>(v, 54, 56);
    put<uint16_t>(v, 56, 1);
    uint8_t* ph = &v[64];
    const uint32_t type = 1, flags = 5;
    const uint64_t f[] = {0x1000, 0xffffffff81000000ull, 0x1000000, 0x100, memsz, 0x200000};
    std::memcpy(ph, &type, 4);
    std::memcpy(ph + 4, &flags, 4);
    std::memcpy(ph + 8, f, sizeof f);
    for (size_t k = 0; k < 0x100; ++k) v[0x1000 + k] = static_cast<uint8_t>(k + 1);
    return v;
}

TEST_F(LinuxBootTest, VmlinuxLoadsAtPaddrWithSyntheticHeader) {
    mem_.fill(0x1000000 + 0x100, 0xEE, 0x100);
    LinuxBootParams p;
    p.cmdline = "quiet";
    auto r = load_linux(make_vmlinux(0x1000000, 0x200), "vmlinux", mem_, p);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_TRUE(r->vmlinux);
    EXPECT_EQ(r->entry, 0x1000000u);
    EXPECT_EQ(mem_.host()[0x1000000], 1);
    EXPECT_EQ(mem_.host()[0x1000000 + 0x100], 0);  // bss
    EXPECT_EQ(get<uint16_t>(mem_, kZp + bp::kBootFlag), bp::kBootFlagValue);
    EXPECT_EQ(get<uint32_t>(mem_, kZp + bp::kHeaderMagicOff), bp::kHeaderMagic);
    EXPECT_EQ(mem_.host()[kZp + bp::kTypeOfLoader], 0xFF);
    EXPECT_EQ(get<uint32_t>(mem_, kZp + bp::kCmdLinePtr), lay::kCmdline);
    EXPECT_EQ(mem_.host()[kZp + bp::kE820Entries], 4);
    // A virtual entry point is translated through its segment.
    auto v = load_linux(make_vmlinux(0xffffffff81000040ull, 0x200), "vmlinux", mem_, p);
    ASSERT_TRUE(v.ok()) << v.error().message;
    EXPECT_EQ(v->entry, 0x1000040u);
    auto bad = load_linux(make_vmlinux(0x5000000, 0x200), "vmlinux", mem_, p);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code, ENOEXEC);
    auto cut = make_vmlinux(0x1000000, 0x200);
    cut.resize(0x1080);
    auto c = load_linux(cut, "vmlinux", mem_, p);
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message.find("past the end of the file"), std::string::npos);
}

}  // namespace
}  // namespace softkvm::vmm
