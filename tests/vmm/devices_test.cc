// fw_cfg (QEMU docs/specs/fw_cfg.rst) and pc-testdev (QEMU hw/misc/pc-testdev.c), driven
// through their ports as a guest drives them.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "vmm/devices/fw_cfg.h"
#include "vmm/devices/pc_testdev.h"

namespace softkvm::vmm {
namespace {

void select(FwCfg& f, uint16_t key) {
    const uint8_t b[2] = {static_cast<uint8_t>(key), static_cast<uint8_t>(key >> 8)};
    f.write(0, b, 2);
}
std::vector<uint8_t> read_bytes(FwCfg& f, size_t n) {
    std::vector<uint8_t> out(n);
    for (size_t k = 0; k < n; ++k) f.read(1, &out[k], 1);
    return out;
}
uint64_t read_le(FwCfg& f, uint16_t key, int bytes) {
    select(f, key);
    auto b = read_bytes(f, static_cast<size_t>(bytes));
    uint64_t v = 0;
    for (int k = bytes - 1; k >= 0; --k) v = (v << 8) | b[static_cast<size_t>(k)];
    return v;
}
uint32_t be32(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

TEST(FwCfg, SignatureAndIdWithoutDma) {
    FwCfg f;
    select(f, fwcfg::kSignature);
    auto sig = read_bytes(f, 4);
    EXPECT_EQ(std::string(sig.begin(), sig.end()), "QEMU");
    EXPECT_EQ(read_le(f, fwcfg::kId, 4), fwcfg::kIdTraditional);  // bit 1 (DMA) clear
}

TEST(FwCfg, MachineItems) {
    FwCfg f;
    populate_fw_cfg(f, {200ull << 20, 3, 4});
    EXPECT_EQ(read_le(f, fwcfg::kRamSize, 8), 200ull << 20);
    EXPECT_EQ(read_le(f, fwcfg::kNbCpus, 2), 3u);
    EXPECT_EQ(read_le(f, fwcfg::kMaxCpus, 2), 4u);
    select(f, fwcfg::kUuid);
    EXPECT_EQ(read_bytes(f, 16), std::vector<uint8_t>(16, 0));
    // Multiboot guests get no fw_cfg command line, as under QEMU.
    EXPECT_EQ(read_le(f, fwcfg::kCmdlineSize, 4), 0u);
}

TEST(FwCfg, ReadsPastTheEndAndOfAbsentItemsAreZeroAndSelectingRewinds) {
    FwCfg f;
    select(f, fwcfg::kSignature);
    read_bytes(f, 4);
    EXPECT_EQ(read_bytes(f, 3), std::vector<uint8_t>(3, 0));
    EXPECT_EQ(read_le(f, 0x1234, 4), 0u);
    EXPECT_EQ(read_le(f, fwcfg::kSignature, 1), 'Q');
    // Bit 14 (the write channel) does not change what is read.
    EXPECT_EQ(read_le(f, fwcfg::kSignature | fwcfg::kWriteChannel, 1), 'Q');
}

TEST(FwCfg, DataPortWritesAreIgnoredAndOnlyByteReadsDecode) {
    FwCfg f;
    select(f, fwcfg::kSignature);
    const uint8_t junk = 'X';
    f.write(1, &junk, 1);
    uint8_t wide[4];
    f.read(1, wide, 4);  // not decoded: all-ones, the offset stays
    EXPECT_EQ(wide[0], 0xFF);
    EXPECT_EQ(read_bytes(f, 1)[0], 'Q');
    const uint8_t lo = 0x01;  // a byte write to the selector selects nothing
    f.write(0, &lo, 1);
    EXPECT_EQ(read_bytes(f, 1)[0], 'E');
}

TEST(FwCfg, FileDirectoryInNameOrderWithE820) {
    FwCfg f;
    populate_fw_cfg(f, {128ull << 20, 1, 1});
    ASSERT_TRUE(f.add_file("etc/a-first", {1, 2, 3}).ok());
    ASSERT_TRUE(f.add_file("opt/zz", {9}).ok());
    EXPECT_EQ(f.add_file("etc/e820", {}).error().code, EEXIST);
    EXPECT_EQ(f.add_file(std::string(56, 'n'), {}).error().code, EINVAL);
    EXPECT_EQ(f.add_file("", {}).error().code, EINVAL);
    select(f, fwcfg::kFileDir);
    auto dir = read_bytes(f, 4 + 3 * fwcfg::kFileEntrySize);
    ASSERT_EQ(be32(dir.data()), 3u);
    const char* names[] = {"etc/a-first", "etc/e820", "opt/zz"};
    const uint32_t sizes[] = {3, 20, 1};
    for (int k = 0; k < 3; ++k) {
        const uint8_t* e = &dir[4 + fwcfg::kFileEntrySize * static_cast<size_t>(k)];
        EXPECT_EQ(be32(e), sizes[k]) << names[k];
        EXPECT_EQ(e[4] << 8 | e[5], fwcfg::kFileFirst + k) << names[k];
        EXPECT_EQ(e[6] | e[7], 0);
        EXPECT_STREQ(reinterpret_cast<const char*>(e + 8), names[k]);
    }
    // etc/e820: one RAM entry {address 0, length 128 MiB, type 1}, little-endian.
    EXPECT_EQ(read_le(f, fwcfg::kFileFirst + 1, 8), 0u);
    select(f, fwcfg::kFileFirst + 1);
    auto e820 = read_bytes(f, fwcfg::kE820EntrySize);
    uint64_t len;
    uint32_t type;
    std::memcpy(&len, &e820[8], 8);
    std::memcpy(&type, &e820[16], 4);
    EXPECT_EQ(len, 128ull << 20);
    EXPECT_EQ(type, fwcfg::kE820Ram);
    EXPECT_EQ(read_le(f, fwcfg::kFileFirst + 2, 1), 9u);
}

class TestdevTest : public ::testing::Test {
  protected:
    Bus pio_, mmio_;
    std::vector<std::pair<uint32_t, bool>> lines_;
    PcTestdev dev_{[this](uint32_t l, bool v) { lines_.push_back({l, v}); }};
    void SetUp() override { ASSERT_TRUE(dev_.attach(pio_, mmio_).ok()); }
    uint32_t in(uint16_t port, uint8_t size) {
        uint32_t v = 0;
        EXPECT_TRUE(pio_.read(port, reinterpret_cast<uint8_t*>(&v), size));
        return v;
    }
    void out(uint16_t port, uint32_t v, uint8_t size) {
        EXPECT_TRUE(pio_.write(port, reinterpret_cast<const uint8_t*>(&v), size));
    }
};

TEST_F(TestdevTest, DataRegisterAtEveryWidthAndOffset) {
    out(0xE0, 0x12345678, 4);
    EXPECT_EQ(in(0xE0, 4), 0x12345678u);
    EXPECT_EQ(in(0xE2, 2), 0x1234u);
    EXPECT_EQ(in(0xE1, 1), 0x56u);
    out(0xE1, 0xAB, 1);
    EXPECT_EQ(in(0xE0, 4), 0x1234AB78u);
    out(0xEA, 0xCDEF, 2);  // the byte-wide alias writes the same register
    EXPECT_EQ(in(0xE8, 4), 0xCDEFAB78u);
    EXPECT_EQ(dev_.data(), 0xCDEFAB78u);
}

TEST_F(TestdevTest, IrqLinesTakeByteWrites) {
    out(0x2000 + 10, 1, 1);
    out(0x2000 + 10, 0, 1);
    out(0x2000 + 23, 0x80, 1);
    out(0x2000 + 3, 1, 2);  // not a byte: ignored
    ASSERT_EQ(lines_.size(), 3u);
    EXPECT_EQ(lines_[0], std::make_pair(10u, true));
    EXPECT_EQ(lines_[1], std::make_pair(10u, false));
    EXPECT_EQ(lines_[2], std::make_pair(23u, true));
    EXPECT_FALSE(pio_.write(0x2000 + 24, reinterpret_cast<const uint8_t*>("x"), 1));
    EXPECT_EQ(in(0x2000 + 10, 1), 0u);  // reads give 0, as QEMU's
}

TEST_F(TestdevTest, IsaIrqZeroIsGsiTwo) {
    out(0x2000 + 0, 1, 1);
    out(0x2000 + 2, 1, 1);
    out(0x2000 + 15, 1, 1);
    ASSERT_EQ(lines_.size(), 3u);
    EXPECT_EQ(lines_[0], std::make_pair(2u, true));  // the MADT's IRQ 0 -> GSI 2
    EXPECT_EQ(lines_[1], std::make_pair(2u, true));
    EXPECT_EQ(lines_[2], std::make_pair(15u, true));
}

TEST_F(TestdevTest, WindowBehavesLikeRam) {
    const uint64_t v = 0x1122334455667788ull;
    ASSERT_TRUE(mmio_.write(PcTestdev::kWindow + 8, reinterpret_cast<const uint8_t*>(&v), 8));
    uint64_t r = 0;
    ASSERT_TRUE(mmio_.read(PcTestdev::kWindow + 10, reinterpret_cast<uint8_t*>(&r), 4));
    EXPECT_EQ(r, 0x33445566ull);
    r = 0;
    ASSERT_TRUE(mmio_.read(PcTestdev::kWindow + 15, reinterpret_cast<uint8_t*>(&r), 1));
    EXPECT_EQ(r, 0x11ull);
    // The last bytes: an access running past the window keeps only what is inside.
    const uint64_t end = PcTestdev::kWindow + PcTestdev::kWindowSize;
    ASSERT_TRUE(mmio_.write(end - 2, reinterpret_cast<const uint8_t*>(&v), 8));
    r = 0;
    ASSERT_TRUE(mmio_.read(end - 2, reinterpret_cast<uint8_t*>(&r), 4));
    EXPECT_EQ(r, 0xFFFF7788ull);
    EXPECT_FALSE(mmio_.read(end, reinterpret_cast<uint8_t*>(&r), 1));
}

}  // namespace
}  // namespace softkvm::vmm
