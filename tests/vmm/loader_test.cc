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
    EXPECT_EQ(flags, multiboot::kInfoHasMemory | multiboot::kInfoHasMmap);
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

TEST_F(LoaderTest, RejectsAnImageOverTheBootInformation) {
    ElfSpec s;
    s.load_addr = 0x8000;
    s.mem_extra = 0x2000;  // [0x8000, 0xA00C) covers 0x9000
    auto r = load_multiboot(build_elf(s), "low.elf", mem_);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ERANGE);
}

TEST_F(LoaderTest, AcceptsALowSegmentThatMissesTheBootInformation) {
    ElfSpec s;  // code at 1 MiB and a bss segment at [0x1000, 0x8000): below 0x9000
    s.bss_segments = {{0x1000, 0x7000}};
    auto r = load_multiboot(build_elf(s), "low.elf", mem_);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->low, 0x1000u);
}

TEST_F(LoaderTest, RejectsALowSegmentThatOverlapsTheBootInformation) {
    ElfSpec s;
    s.bss_segments = {{0x1000, multiboot::kBootDataStart - 0x1000 + 1}};  // one byte too far
    auto r = load_multiboot(build_elf(s), "low.elf", mem_);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ERANGE);
    EXPECT_NE(r.error().message.find("[0x1000, 0x9001)"), std::string::npos) << r.error().message;
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
