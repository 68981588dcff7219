// Effective addresses in translated code (emit_ea: one LEA of the base and index where the
// block keeps them, with the displacement) and the block's loads of the guest registers it
// keeps in host registers (none for one its first instructions write whole), against the
// interpreter.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "translate_harness.h"

namespace softkvm::cpu::test {
namespace {

// Every way an address is made: base + index * scale + disp32 and disp8, a 32-bit address
// (the upper halves of ECX and EDX dropped), an index without a base, an absolute
// address, RBP as base and index, RIP-relative with a displacement that does not fit
// 32 bits once the next instruction's offset is added; the registers used twice or more
// are kept in host registers by the block. Three times round.
const std::vector<uint8_t> kAddresses = {
    0x48, 0x8D, 0x84, 0x91, 0x78, 0x56, 0x34, 0x12,  // top: lea 0x12345678(%rcx,%rdx,4),%rax
    0x48, 0x8D, 0x44, 0xC8, 0xF8,                    //      lea -8(%rax,%rcx,8),%rax
    0x8D, 0x74, 0x51, 0x07,                          //      lea 7(%rcx,%rdx,2),%esi
    0x67, 0x8D, 0x7C, 0x51, 0x07,                    //      lea 7(%ecx,%edx,2),%edi
    0x48, 0x8B, 0x1C, 0xD5, 0x00, 0x00, 0x10, 0x00,  //      mov 0x100000(,%rdx,8),%rbx
    0x4C, 0x8B, 0x04, 0x25, 0x10, 0x00, 0x10, 0x00,  //      mov 0x100010,%r8
    0x4D, 0x03, 0x4C, 0xD7, 0x08,                    //      add 8(%r15,%rdx,8),%r9
    0x4C, 0x8D, 0x15, 0x00, 0x01, 0x00, 0x00,        //      lea 0x100(%rip),%r10
    0x4C, 0x8D, 0x1C, 0x4D, 0x00, 0x00, 0x00, 0x00,  //      lea 0(,%rcx,2),%r11
    0x48, 0x8D, 0x6C, 0x6D, 0x01,                    //      lea 1(%rbp,%rbp,2),%rbp
    0x4C, 0x8D, 0x35, 0xF0, 0xFF, 0xFF, 0x7F,        //      lea 0x7ffffff0(%rip),%r14
    0x41, 0x89, 0x44, 0x0F, 0x10,                    //      mov %eax,0x10(%r15,%rcx)
    0x41, 0xFF, 0xCC,                                //      dec %r12d
    0x75, 0xB0,                                      //      jnz top
    0xF4,                                            //      hlt
};

TEST(TranslateEaTest, EveryAddressFormAsTheInterpreterMakesIt) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    ASSERT_EQ(kAddresses.size(), 0x51u);  // jnz top: rel8 -0x50 from 0x50
    for (uint64_t seed = 1; seed <= 40; ++seed) {
        Pair p;
        ASSERT_TRUE(p.ok());
        p.load(kAddresses);
        std::mt19937_64 rng(seed);
        // Small RCX and RDX (the loads and the store stay in the scratch page), but with
        // garbage above bit 31 every other seed (the 32-bit address drops it; the store
        // through RCX then faults in both engines).
        const uint64_t high = seed % 2 ? (rng() << 32) : 0;
        const uint64_t rcx = rng() % 256 | high, rdx = rng() % 256 | high;
        const uint64_t rax = rng(), rbp = rng(), r9 = rng();
        p.both([&](BareMachine& m) {
            CpuState& s = m.cpu_.state();
            s.gpr[RAX] = rax, s.gpr[RCX] = rcx, s.gpr[RDX] = rdx, s.gpr[RBP] = rbp;
            s.gpr[R9] = r9, s.gpr[R12] = 3, s.gpr[R15] = kScratch;
            for (uint64_t k = 0; k < 4096; k += 8) m.put64(kScratch + k, k * 0x9E3779B97F4A7C15ull);
        });
        p.run_compare({7, 0}, "seed " + std::to_string(seed));
        if (::testing::Test::HasFailure()) return;
    }
}

// A loop whose first instructions write registers whole before reading them (their loads
// at the block's start are left out) or not: an 8-bit write keeps the rest, a register
// moved onto itself or used in its own address is read first. Every register here is used
// often enough to be kept in a host register.
const std::vector<uint8_t> kLeadingWrites = {
    0x88, 0xD0,        // top: mov %dl,%al          (RAX: the low byte only)
    0x89, 0xC1,        //      mov %eax,%ecx        (RCX written whole)
    0x8D, 0x14, 0x0A,  //      lea (%rdx,%rcx),%edx (RDX read first)
    0x0F, 0xB6, 0xF1,  //      movzx %cl,%esi       (RSI written whole)
    0x89, 0xFF,        //      mov %edi,%edi        (RDI read first)
    0x01, 0xC1,        //      add %eax,%ecx
    0x01, 0xD6,        //      add %edx,%esi
    0x01, 0xCF,        //      add %ecx,%edi
    0x0F, 0xAF, 0xF7,  //      imul %edi,%esi
    0x01, 0xF0,        //      add %esi,%eax
    0x31, 0xF2,        //      xor %esi,%edx
    0x41, 0xFF, 0xC8,  //      dec %r8d
    0x75, 0xE2,        //      jnz top
    0xF4,              //      hlt
};

TEST(TranslateEaTest, LeadingWholeWritesAsTheInterpreterHasThem) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    ASSERT_EQ(kLeadingWrites.size(), 0x1Fu);  // jnz top: rel8 -0x1E from 0x1E
    for (uint64_t seed = 1; seed <= 20; ++seed) {
        Pair p;
        ASSERT_TRUE(p.ok());
        p.load(kLeadingWrites);
        std::mt19937_64 rng(seed);
        uint64_t v[8];
        for (uint64_t& x : v) x = rng();
        p.both([&](BareMachine& m) {
            CpuState& s = m.cpu_.state();
            s.gpr[RAX] = v[0], s.gpr[RCX] = v[1], s.gpr[RDX] = v[2], s.gpr[RSI] = v[3];
            s.gpr[RDI] = v[4], s.gpr[R8] = 5;
        });
        p.run_compare({3, 14, 0}, "seed " + std::to_string(seed));
        if (::testing::Test::HasFailure()) return;
        EXPECT_EQ(p.translating_cpu().instructions_retired(), 5 * 13 + 1u);
    }
}

// A non-canonical address raises #SS in an SS-relative reference and #GP otherwise (SDM
// vol. 3A §6.15). The translated MOV load notes its segment only on its slow path, where
// the fault happens; the instruction before it in the block noted another segment: a
// stack access (PUSH: SS) before a DS load, a DS load that hits the TLB before an
// RBP-based (SS) load.
TEST(TranslateEaTest, NonCanonicalLoadFaultsByItsOwnSegment) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    const uint64_t kNonCanonical = 0x800000000000ull;
    struct Case {
        std::vector<uint8_t> code;
        int vector;
    };
    const Case cases[] = {
        // push %rax; mov (%rsi),%eax; hlt
        {{0x50, 0x8B, 0x06, 0xF4}, VEC_GP},
        // mov (%r15),%ecx; mov 0x0(%rbp),%eax; hlt
        {{0x41, 0x8B, 0x0F, 0x8B, 0x45, 0x00, 0xF4}, VEC_SS},
    };
    for (const Case& c : cases) {
        Pair p;
        ASSERT_TRUE(p.ok());
        p.load(c.code);
        p.both([&](BareMachine& m) {
            CpuState& s = m.cpu_.state();
            s.gpr[RSI] = s.gpr[RBP] = kNonCanonical;
            s.gpr[R15] = kScratch;
        });
        p.run_compare({0}, "vector " + std::to_string(c.vector));
        p.both([&](BareMachine& m) { EXPECT_EQ(m.vector_taken(), c.vector); });
        EXPECT_GE(p.translated(), 1u);
    }
}

// The software-TLB probe's two forms (with BMI2's RORX where the host has it, and the
// form without it that hosts without BMI2 run): loads and stores of every size through a
// register alone and through base + index, walking across a page end one byte at a time,
// into a mapped page and into an unmapped one (#PF at the crossing access).
const std::vector<uint8_t> kPageWalk = {
    0x48, 0x8B, 0x06,        // top: mov (%rsi),%rax
    0x89, 0x06,              //      mov %eax,(%rsi)
    0x66, 0x8B, 0x14, 0x0E,  //      mov (%rsi,%rcx),%dx
    0x88, 0x14, 0x0E,        //      mov %dl,(%rsi,%rcx)
    0x0F, 0xB6, 0x1E,        //      movzbl (%rsi),%ebx
    0x03, 0x2E,              //      add (%rsi),%ebp
    0x4C, 0x8B, 0x4E, 0x08,  //      mov 8(%rsi),%r9
    0x48, 0xFF, 0xC6,        //      inc %rsi
    0x41, 0xFF, 0xC8,        //      dec %r8d
    0x75, 0xE3,              //      jnz top
    0xF4,                    //      hlt
};

TEST(TranslateEaTest, ProbesWithAndWithoutBmi2AcrossAPageEnd) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    ASSERT_EQ(kPageWalk.size(), 0x1Eu);  // jnz top: rel8 -0x1D from 0x1D
    for (bool bmi2 : {true, false}) {
        for (uint64_t page : {kScratch, kLastPage}) {
            for (uint64_t rcx = 0; rcx < 4; ++rcx) {
                Pair p;
                ASSERT_TRUE(p.ok());
                p.translating_cpu().translator()->set_bmi2(bmi2);
                p.load(kPageWalk);
                p.both([&](BareMachine& m) {
                    CpuState& s = m.cpu_.state();
                    s.gpr[RSI] = page + 4096 - 24, s.gpr[RCX] = rcx, s.gpr[R8] = 24;
                    s.gpr[RBP] = 0;
                    for (uint64_t k = 0; k < 4096; k += 8)
                        m.put64(page + k, k * 0x9E3779B97F4A7C15ull);
                });
                const std::string what = std::string(bmi2 ? "RORX" : "SHR") + " page " +
                                         std::to_string(page) + " rcx " + std::to_string(rcx);
                p.run_compare({5, 37, 0}, what);
                if (::testing::Test::HasFailure()) return;
                EXPECT_GE(p.translated(), 1u) << what;
                // The probes hit: of the 168 accesses (seven in each of the 24 runs), only
                // the 21 that cross the page end take the handler's path (the first run,
                // cut by the limit of 5, is the interpreter's and fills the TLB).
                EXPECT_LE(p.translating_cpu().translator()->stats().slow_paths, 21u) << what;
            }
        }
    }
}

}  // namespace
}  // namespace softkvm::cpu::test
