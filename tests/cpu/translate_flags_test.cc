// The translator's status flags against the interpreter's where only a fault could see
// them (kept unmerged in the block's frame), after SETcc and CMOVcc fused with their ALU
// instruction, and in a block looping onto itself (docs/translator.md).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "translate_harness.h"

namespace softkvm::cpu::test {
namespace {

// Each producer before a load that faults (#PF at [R14 + 4096]) and an ADD that would
// overwrite all six flags: the fault's frame and the state must hold the producer's.
struct Producer {
    const char* name;
    std::vector<uint8_t> code;
};

const std::vector<Producer>& producers() {
    static const std::vector<Producer> p = {
        {"add", {0x01, 0xD0}},                          // add %edx,%eax
        {"sub", {0x29, 0xD0}},                          // sub %edx,%eax
        {"and", {0x21, 0xD0}},                          // and %edx,%eax
        {"cmp imm", {0x83, 0xF8, 0x01}},                // cmp $1,%eax
        {"shl", {0xC1, 0xE0, 0x03}},                    // shl $3,%eax
        {"shl 1", {0xD1, 0xE0}},                        // shl %eax
        {"shr", {0xC1, 0xE8, 0x05}},                    // shr $5,%eax
        {"sar", {0xC1, 0xF8, 0x07}},                    // sar $7,%eax
        {"inc", {0xFF, 0xC0}},                          // inc %eax
        {"dec", {0xFF, 0xC8}},                          // dec %eax
        {"neg", {0xF7, 0xD8}},                          // neg %eax
        {"cmp cmovl", {0x39, 0xD0, 0x0F, 0x4C, 0xCA}},  // cmp %edx,%eax; cmovl %edx,%ecx
        {"sub setg", {0x29, 0xD0, 0x0F, 0x9F, 0xC1}},   // sub %edx,%eax; setg %cl
        {"add m", {0x41, 0x03, 0x47, 0x08}},            // add 8(%r15),%eax
        {"cmp m cmovz", {0x41, 0x3B, 0x47, 0x08, 0x0F, 0x44, 0xCA}},  // cmp 8(%r15),%eax; cmovz
        {"add m imm", {0x41, 0x83, 0x47, 0x08, 0x05}},                // addl $5,8(%r15)
        {"xor m imm", {0x41, 0x83, 0x77, 0x08, 0x7F}},                // xorl $0x7f,8(%r15)
    };
    return p;
}

TEST(TranslateFlagsTest, FlagsOnlyAFaultSeesAreExactThere) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    const uint32_t values[][2] = {
        {0x7FFFFFFF, 1}, {0x80000000, 0x80000000}, {0, 1},
        {0x0F, 0x01},    {0xFFFFFFFF, 0xFFFFFFFF}, {0x12345678, 0x12345678}};
    for (const Producer& pr : producers()) {
        for (const auto& v : values) {
            std::vector<uint8_t> code = {0xB8, 0, 0, 0, 0, 0xBA, 0, 0, 0, 0};  // mov eax, edx
            for (int k = 0; k < 4; ++k) {
                code[1 + k] = static_cast<uint8_t>(v[0] >> (8 * k));
                code[6 + k] = static_cast<uint8_t>(v[1] >> (8 * k));
            }
            code.insert(code.end(), pr.code.begin(), pr.code.end());
            // mov 4096(%r14),%rcx (#PF); add %edx,%ecx; hlt
            for (uint8_t b : {0x49, 0x8B, 0x8E, 0x00, 0x10, 0x00, 0x00, 0x01, 0xD1, 0xF4})
                code.push_back(b);
            Pair p;
            ASSERT_TRUE(p.ok());
            p.load(code);
            p.both([&](BareMachine& m) {
                // Every status flag set before: the producer's must replace them.
                m.cpu_.state().rflags |= FLAGS_ARITH;
                m.cpu_.state().gpr[RCX] = 0x55;
                m.cpu_.state().gpr[R14] = kLastPage;
                m.cpu_.state().gpr[R15] = kScratch;
                std::memcpy(m.ram_ + kScratch + 8, &v[1], 4);
            });
            const std::string what =
                std::string(pr.name) + " " + std::to_string(v[0]) + "," + std::to_string(v[1]);
            p.run_compare({0}, what);
            EXPECT_GE(p.translated(), 1u) << what;
            EXPECT_EQ(p.translating().vector_taken(), VEC_PF) << what;
            if (::testing::Test::HasFailure()) return;
        }
    }
}

// The same producers with the load hitting (no fault) and an instruction limit at every
// instruction: the flags merged on every way out.
TEST(TranslateFlagsTest, FlagsBeforeALoadAreExactAtEveryLimit) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    for (const Producer& pr : producers()) {
        std::vector<uint8_t> code = {0xB8, 0xFF, 0xFF, 0xFF, 0x7F, 0xBA, 0x01, 0, 0, 0};
        code.insert(code.end(), pr.code.begin(), pr.code.end());
        // mov 16(%r15),%rcx; add %edx,%ecx; hlt
        for (uint8_t b : {0x49, 0x8B, 0x4F, 0x10, 0x01, 0xD1, 0xF4}) code.push_back(b);
        for (uint64_t limit = 1; limit <= 6; ++limit) {
            Pair p;
            ASSERT_TRUE(p.ok());
            p.load(code);
            p.both([](BareMachine& m) {
                m.cpu_.state().rflags |= FLAGS_ARITH;
                m.cpu_.state().gpr[R15] = kScratch;
            });
            p.run_compare({limit, 0}, std::string(pr.name) + " limit " + std::to_string(limit));
            if (::testing::Test::HasFailure()) return;
        }
    }
}

// A block looping onto itself, a load first and CMP + JNE last: when it goes round, the
// CMP's flags are needed only if the load faults before the ADD overwrites them. The
// fault in its 513th run (R14 + 4096) and its way out after 300 runs both see them.
TEST(TranslateFlagsTest, TightLoopFlagsAreExactAtAFaultAndItsExits) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    for (const uint16_t runs : {uint16_t{1000}, uint16_t{300}}) {
        const std::vector<uint8_t> code = {
            0x31,
            0xD2,  //      xor %edx,%edx
            0x49,
            0x8B,
            0x0C,
            0xD6,  // top: mov (%r14,%rdx,8),%rcx
            0x83,
            0xC2,
            0x01,  //      add $1,%edx
            0x81,
            0xFA,
            static_cast<uint8_t>(runs),
            static_cast<uint8_t>(runs >> 8),
            0x00,
            0x00,
            0x75,
            0xF1,  //      jne top (cmp $runs,%edx before)
            0xF4,  //      hlt
        };
        for (uint64_t step : {uint64_t{0}, uint64_t{7}, uint64_t{97}}) {
            Pair p;
            ASSERT_TRUE(p.ok());
            p.load(code);
            p.both([](BareMachine& m) {
                m.cpu_.state().rflags |= FLAGS_ARITH;
                m.cpu_.state().gpr[R14] = kLastPage;
            });
            std::vector<uint64_t> limits;
            if (step)
                for (uint64_t at = step; at < 4000; at += step) limits.push_back(at);
            limits.push_back(0);
            const std::string what =
                "runs " + std::to_string(runs) + " step " + std::to_string(step);
            p.run_compare(limits, what);
            if (::testing::Test::HasFailure()) return;
            EXPECT_EQ(p.translating().vector_taken(), runs == 1000 ? VEC_PF : -1) << what;
            // (Its limits stop the loop every few runs with `step`.)
            if (step != 7) {
                EXPECT_GT(p.translating_cpu().translator_stats().chained_blocks, 250u) << what;
            }
        }
    }
}

}  // namespace
}  // namespace softkvm::cpu::test
