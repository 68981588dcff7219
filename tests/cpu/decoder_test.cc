// The facts the decoder records for the features (docs/architecture.md "The software CPU"): branch
// classes in LBR_SELECT's terms, and which instructions lock the bus (spec §2.1, §3).
#include "cpu/decoder.h"

#include <gtest/gtest.h>

#include <vector>

namespace softkvm::cpu {
namespace {

struct Case {
    const char* text;
    std::vector<uint8_t> bytes;
    BranchKind branch;
    bool lockable;
};

const Case kCases[] = {
    {"jz .", {0x74, 0xfe}, BranchKind::Jcc, false},
    {"loop .", {0xe2, 0xfe}, BranchKind::Jcc, false},
    {"call rel32", {0xe8, 0xfb, 0xff, 0xff, 0xff}, BranchKind::NearRelCall, false},
    {"call *%rax", {0xff, 0xd0}, BranchKind::NearIndCall, false},
    {"ret", {0xc3}, BranchKind::NearRet, false},
    {"ret $8", {0xc2, 0x08, 0x00}, BranchKind::NearRet, false},
    {"jmp *%rax", {0xff, 0xe0}, BranchKind::NearIndJmp, false},
    {"jmp .", {0xeb, 0xfe}, BranchKind::NearRelJmp, false},
    {"ljmp *(%rax)", {0xff, 0x28}, BranchKind::Far, false},
    {"iretq", {0x48, 0xcf}, BranchKind::Far, false},
    {"syscall", {0x0f, 0x05}, BranchKind::Far, false},
    {"sysretq", {0x48, 0x0f, 0x07}, BranchKind::Far, false},
    {"int $0x80", {0xcd, 0x80}, BranchKind::Far, false},
    {"lock addl $1,(%rax)", {0xf0, 0x83, 0x00, 0x01}, BranchKind::None, true},
    {"lock cmpxchg %ecx,(%rdx)", {0xf0, 0x0f, 0xb1, 0x0a}, BranchKind::None, true},
    {"xchg %eax,(%rbx) (implicit lock)", {0x87, 0x03}, BranchKind::None, true},
    {"xchg %eax,%ebx", {0x93}, BranchKind::None, false},
    {"addl $1,(%rax) (no lock)", {0x83, 0x00, 0x01}, BranchKind::None, false},
    {"mov %eax,%ebx", {0x89, 0xc3}, BranchKind::None, false},
};

TEST(Decoder, RecordsBranchClassAndBusLockingForEachForm) {
    Decoder d;
    for (const Case& c : kCases) {
        DecodedInsn in;
        ASSERT_TRUE(d.decode(Mode::Long64, c.bytes.data(), c.bytes.size(), in)) << c.text;
        EXPECT_EQ(in.len, c.bytes.size()) << c.text;
        EXPECT_EQ(in.branch, c.branch) << c.text;
        EXPECT_EQ(in.lockable_mem, c.lockable) << c.text;
    }
}

TEST(Decoder, BranchesEndBlocks) {
    Decoder d;
    for (const Case& c : kCases) {
        DecodedInsn in;
        ASSERT_TRUE(d.decode(Mode::Long64, c.bytes.data(), c.bytes.size(), in));
        if (c.branch != BranchKind::None) {
            EXPECT_TRUE(in.ends_block) << c.text;
        }
    }
}

TEST(Decoder, InvalidAndTruncatedBytesAreReported) {
    Decoder d;
    DecodedInsn in;
    const uint8_t bad[] = {0x0f, 0xff};  // UD0 needs a ModRM byte: truncated
    EXPECT_FALSE(d.decode(Mode::Long64, bad, 1, in));
    const uint8_t invalid64[] = {0x06};  // push %es: invalid in 64-bit mode
    EXPECT_FALSE(d.decode(Mode::Long64, invalid64, 1, in));
    EXPECT_TRUE(d.decode(Mode::Prot32, invalid64, 1, in));  // valid in 32-bit mode
}

TEST(Decoder, DisassemblesInIntelSyntax) {
    Decoder d;
    const uint8_t b[] = {0xf0, 0x83, 0x00, 0x01};
    EXPECT_EQ(d.disassemble(Mode::Long64, b, sizeof b, 0x1000), "lock add dword ptr [rax], 0x01");
}

}  // namespace
}  // namespace softkvm::cpu
