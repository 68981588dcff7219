// The multiboot loader: accepted images, the boot information, and every rejection.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

#include "elf_builder.h"
#include "vmm/loader.h"
#include "vmm/multiboot.h"

namespace softkvm::vmm {
namespace {

using test::build_elf;
using test::ElfSpec;

uint32_t read32(GuestMemory& m, uint64_t at) {
    uint32_t v;
    std::memcpy(&v, m.host() + at, 4);
    return v;
}

class LoaderTest : public ::testing::Test {
  protected:
    LoaderTest() : mem_(std::move(GuestMemory::create(4 << 20)).value()) {}
    GuestMemory mem_;
};

TEST_F(LoaderTest, LoadsElf32SegmentZeroesBssAndWritesBootInfo) {
    ElfSpec s;
    s.code = {0xf4};
    s.mem_extra = 64;
    mem_.fill(0x100000, 0xAA, 0x1000);
    auto r = load_multiboot(build_elf(s), "g.elf", mem_);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->entry, 0x100000u + 12);
    EXPECT_EQ(mem_.host()[0x100000 + 12], 0xf4);
    EXPECT_EQ(mem_.host()[0x100000 + 13], 0);  // bss zeroed
    EXPECT_EQ(r->info_addr, multiboot::kInfoAddr);
    const uint32_t flags = read32(mem_, multiboot::kInfoAddr);
    using namespace multiboot;
    EXPECT_EQ(flags, kInfoHasMemory | kInfoHasBootDevice | kInfoHasCmdline | kInfoHasMods |
                         kInfoHasMmap | kInfoHasBootLoaderName);
    EXPECT_EQ(read32(mem_, kInfoAddr + kInfoBootDevice), kBootDevice);
    EXPECT_EQ(read32(mem_, kInfoAddr + kInfoModsCount), 0u);
    EXPECT_EQ(read32(mem_, multiboot::kInfoAddr + multiboot::kInfoMemLower), 639u);
    EXPECT_EQ(read32(mem_, multiboot::kInfoAddr + multiboot::kInfoMemUpper), 3u * 1024);
    EXPECT_EQ(read32(mem_, multiboot::kInfoAddr + multiboot::kInfoMmapLength), 4u * 24);
    // The last map entry: 1 MiB to the top, available.
    const uint64_t e = multiboot::kMmapAddr + 3 * 24;
    EXPECT_EQ(read32(mem_, e), 20u);
    EXPECT_EQ(read32(mem_, e + 4), 0x100000u);
    EXPECT_EQ(read32(mem_, e + 12), 3u << 20);
    EXPECT_EQ(read32(mem_, e + 20), multiboot::kMmapAvailable);
}

TEST_F(LoaderTest, LoadsElf64) {
    ElfSpec s;
    s.elf64 = true;
    s.code = {0x90, 0xf4};
    auto r = load_multiboot(build_elf(s), "g64.elf", mem_);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(mem_.host()[r->entry + 1], 0xf4);
}

TEST_F(LoaderTest, RejectsFilesThatAreNotElf) {
    std::vector<uint8_t> junk(100, 'x');
    auto r = load_multiboot(junk, "junk", mem_);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ENOEXEC);
    EXPECT_NE(r.error().message.find("no multiboot header"), std::string::npos);
}

TEST_F(LoaderTest, RejectsAHeaderBeyondTheFirst8KiB) {
    ElfSpec s;
    s.header_offset = 8192;  // segment starts at file offset 4096: header at 12288
    auto r = load_multiboot(build_elf(s), "late.elf", mem_);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ENOEXEC);
    EXPECT_NE(r.error().message.find("first 8 KiB"), std::string::npos);
}

TEST_F(LoaderTest, RejectsABadChecksum) {
    ElfSpec s;
    s.bad_checksum = true;
    auto r = load_multiboot(build_elf(s), "sum.elf", mem_);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("checksum"), std::string::npos);
}

TEST_F(LoaderTest, RejectsSegmentsOutsideGuestMemory) {
    ElfSpec s;
    s.load_addr = 0x3FF000;
    s.mem_extra = 0x10000;
    auto r = load_multiboot(build_elf(s), "big.elf", mem_);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ERANGE);
    EXPECT_NE(r.error().message.find("outside guest memory"), std::string::npos);
}

// QEMU's option ROM writes the memory map and the information before it copies the
// image, so an image over them is loaded and wins; softkvm does the same.
TEST_F(LoaderTest, AnImageOverTheBootInformationIsLoadedAndWins) {
    ElfSpec s;
    s.load_addr = 0x8000;
    s.code = std::vector<uint8_t>(0x2000, 0x90);  // [0x8000, 0xA00C) covers 0x9000-0x9558
    s.code.back() = 0xf4;
    auto r = load_multiboot(build_elf(s), "low.elf", mem_);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->low, 0x8000u);
    EXPECT_EQ(r->info_addr, multiboot::kInfoAddr);
    EXPECT_EQ(read32(mem_, multiboot::kInfoAddr), 0x90909090u);  // the image's bytes
    EXPECT_EQ(read32(mem_, multiboot::kMmapAddr), 0x90909090u);
}

TEST_F(LoaderTest, AcceptsALowSegmentThatMissesTheBootInformation) {
    ElfSpec s;  // code at 1 MiB and a bss segment at [0x1000, 0x8000): below 0x9000
    s.bss_segments = {{0x1000, 0x7000}};
    auto r = load_multiboot(build_elf(s), "low.elf", mem_);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->low, 0x1000u);
}

TEST_F(LoaderTest, ALowBssSegmentOverTheBootInformationZeroesIt) {
    ElfSpec s;
    s.bss_segments = {{0x1000, multiboot::kBootDataEnd}};
    auto r = load_multiboot(build_elf(s), "low.elf", mem_);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(read32(mem_, multiboot::kInfoAddr), 0u);
}

// QEMU's layout (hw/i386/multiboot.c): from the page after the image, the module entries,
// the module command lines, the command line and the loader's name; then each module on
// a page boundary.
TEST_F(LoaderTest, CommandLineAndModulesFollowTheImage) {
    using namespace multiboot;
    ElfSpec s;
    s.mem_extra = 0x1800;  // the image ends at 0x10180c: the blocks start at 0x102000
    BootParams boot;
    boot.cmdline = "g.elf console=ttyS0";
    boot.modules = {{{1, 2, 3}, "a.bin x=1"}, {std::vector<uint8_t>(5000, 7), "b.bin"}};
    auto r = load_multiboot(build_elf(s), "g.elf", mem_, boot);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->mods_addr, 0x102000u);
    EXPECT_EQ(read32(mem_, kInfoAddr + kInfoModsAddr), 0x102000u);
    EXPECT_EQ(read32(mem_, kInfoAddr + kInfoModsCount), 2u);
    const uint32_t m0 = 0x102000, m1 = m0 + kModEntrySize;
    // Strings: "a.bin x=1" at 0x102020, "b.bin" at 0x10202a, the command line at 0x102030.
    EXPECT_EQ(read32(mem_, m0 + kModString), 0x102020u);
    EXPECT_STREQ(reinterpret_cast<const char*>(mem_.host() + 0x102020), "a.bin x=1");
    EXPECT_EQ(read32(mem_, m1 + kModString), 0x10202Au);
    EXPECT_EQ(r->cmdline_addr, 0x102030u);
    EXPECT_EQ(read32(mem_, kInfoAddr + kInfoCmdline), 0x102030u);
    EXPECT_STREQ(reinterpret_cast<const char*>(mem_.host() + 0x102030), "g.elf console=ttyS0");
    const uint32_t name = read32(mem_, kInfoAddr + kInfoBootLoaderName);
    EXPECT_EQ(name, 0x102030u + boot.cmdline.size() + 1);
    EXPECT_STREQ(reinterpret_cast<const char*>(mem_.host() + name), "softkvm");
    // Modules: page-aligned, end exclusive.
    EXPECT_EQ(read32(mem_, m0 + kModStart), 0x103000u);
    EXPECT_EQ(read32(mem_, m0 + kModEnd), 0x103003u);
    EXPECT_EQ(mem_.host()[0x103002], 3);
    EXPECT_EQ(read32(mem_, m1 + kModStart), 0x104000u);
    EXPECT_EQ(read32(mem_, m1 + kModEnd), 0x104000u + 5000);
    EXPECT_EQ(mem_.host()[0x104000 + 4999], 7);
    EXPECT_EQ(read32(mem_, m1 + 12), 0u);
    EXPECT_EQ(r->boot_end, 0x106000u);
}

TEST_F(LoaderTest, ModulesThatDoNotFitAreRefused) {
    ElfSpec s;
    BootParams boot;
    boot.modules = {{std::vector<uint8_t>(3 << 20, 1), "big"}};  // 3 MiB above 1 MiB in 4 MiB
    auto r = load_multiboot(build_elf(s), "g.elf", mem_, boot);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, EFBIG);
    EXPECT_NE(r.error().message.find("do not fit in guest memory (4 MiB)"), std::string::npos)
        << r.error().message;
}

TEST(ModuleList, SplitsAsQemuDoes) {
    auto r = parse_module_list("a.bin,b.bin x=1 y,,z,c");
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->size(), 3u);
    EXPECT_EQ((*r)[0].path, "a.bin");
    EXPECT_EQ((*r)[0].cmdline, "a.bin");
    EXPECT_EQ((*r)[1].path, "b.bin");
    EXPECT_EQ((*r)[1].cmdline, "b.bin x=1 y,z");
    EXPECT_EQ((*r)[2].path, "c");
}

TEST(ModuleList, RejectsEmptyModules) {
    for (const char* bad : {"", ",a", "a,", "a,,,", " a", "a, b"}) {
        auto r = parse_module_list(bad);
        EXPECT_FALSE(r.ok()) << bad;
        if (!r.ok()) {
            EXPECT_EQ(r.error().code, EINVAL) << bad;
        }
    }
}

TEST_F(LoaderTest, AWrappingSegmentIsReportedWithoutABackwardsRange) {
    ElfSpec s;
    s.elf64 = true;
    s.bss_segments = {{0x102000, ~0ull - 0xFFF}};  // the end wraps to 0x101000
    auto r = load_multiboot(build_elf(s), "wrap.elf", mem_);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ERANGE);
    EXPECT_EQ(r.error().message.find("0x101000"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("past the end of the address space"), std::string::npos)
        << r.error().message;
}

TEST_F(LoaderTest, RejectsTruncatedProgramHeaders) {
    ElfSpec s;
    auto img = build_elf(s);
    test::put32(img, 28, 0xFFFFFF00);  // e_phoff far past the end
    auto r = load_multiboot(img, "trunc.elf", mem_);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ENOEXEC);
}

TEST(ReadFile, MissingFileIsEnoent) {
    auto r = read_file("/nonexistent/softkvm-guest.elf");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ENOENT);
    EXPECT_NE(r.error().message.find("/nonexistent/softkvm-guest.elf"), std::string::npos);
}

}  // namespace
}  // namespace softkvm::vmm
