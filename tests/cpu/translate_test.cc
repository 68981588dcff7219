// The translating engine against the interpreter (docs/translator.md): the same program on
// two bare machines, one per engine (native forms on, and off), must leave identical state after
// every run() step — registers, RFLAGS, RIP, the retired count, port events and memory. Programs
// are random instruction streams (random operands and flags, memory operands, and instructions that
// fault), plus fixed programs for self-modifying code and a code cache that fills up.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cpu/block.h"
#include "cpu/translate/translator.h"
#include "translate_harness.h"

namespace softkvm::cpu::test {
namespace {

TEST(TranslateTest, EngineNamesParse) {
    Engine e = Engine::Translate;
    EXPECT_TRUE(parse_engine("interp", e));
    EXPECT_EQ(e, Engine::Interp);
    EXPECT_TRUE(parse_engine("translate", e));
    EXPECT_EQ(e, Engine::Translate);
    EXPECT_FALSE(parse_engine("jit", e));
    EXPECT_STREQ(engine_name(Engine::Interp), "interp");
    EXPECT_STREQ(engine_name(Engine::Translate), "translate");
}

// The fields that chained entries store to (the instruction count, the running block,
// the chained-block count) lie at offsets that, modulo 4096, are none of a guest general
// register, RIP or RFLAGS, which the next block loads: the host's memory disambiguation
// would take each such load for one of the store (4K aliasing) and delay it (Cpu's
// layout keeps them right after the CPU state). The fields it reads at every block are
// kept off those offsets too.
TEST(TranslateTest, PerBlockFieldsDoNotAliasGuestRegistersModulo4096) {
    BareMachine m;
    if (!m.cpu_.set_engine(Engine::Translate)) GTEST_SKIP() << "no translator in this build";
    const CpuLayout& l = m.cpu_.translator()->layout();
    const int32_t first = l.gpr % 4096, last = (l.rflags + 8) % 4096;
    ASSERT_LT(first, last);  // the registers, RIP and RFLAGS within one 4 KiB stretch
    for (int32_t at : {l.icount, l.chained, l.chained_blocks, l.chain_bound, l.kick, l.no_chain,
                       l.run_limit, l.links_gen, l.direct_gen}) {
        const int32_t mod = at % 4096;
        EXPECT_TRUE(mod < first || mod >= last) << "a per-block field at offset " << at;
    }
    // A chaining exit tests the kick and the chain mode with one 16-bit compare.
    EXPECT_EQ(l.no_chain, l.kick + 1);
}

// `native`: frequent forms as host instructions (the default), or every instruction
// through its handler.
void random_streams(bool native, bool narrow = false) {
    uint64_t translated = 0;
    for (uint64_t seed = 1; seed <= 300; ++seed) {
        Pair p;
        ASSERT_TRUE(p.ok());
        p.translating_cpu().translator()->set_native(native);
        StreamGen g(seed, narrow);
        p.load(g.program(48));
        std::mt19937_64 rng(seed * 7919);
        p.both([&](BareMachine& m) {
            CpuState& s = m.cpu_.state();
            std::mt19937_64 r(seed);
            // Random values, and the edges where flags change (sign, carry, overflow).
            static const uint64_t edges[] = {
                0,          1,          0x7F,       0x80,  0x7FFFFFFF,  0x80000000,
                0xFFFFFFFF, ~0ull >> 1, 1ull << 63, ~0ull, 0x100000000, 0xFFFFFFFF80000000};
            for (int k = 0; k < 16; ++k)
                s.gpr[k] = r() % 3 ? r() >> (r() % 64) : edges[r() % std::size(edges)];
            s.gpr[RSP] = BareMachine::kStack;
            s.gpr[R13] = kScratch32;
            s.gpr[R14] = kLastPage;
            s.gpr[R15] = kScratch;
            s.rflags = FLAG_FIXED1 | (r() & 0x8D5);
            for (uint64_t a = 0; a < 4096; a += 8) m.put64(kScratch + a, r());
        });
        // Whole runs and runs cut at random instruction limits (blocks that would
        // overrun the budget are finished by the interpreter).
        std::vector<uint64_t> limits;
        uint64_t at = 0;
        for (int k = 0; k < 12; ++k) limits.push_back(at += 1 + rng() % (seed % 2 ? 40 : 6));
        limits.push_back(0);
        p.run_compare(limits, "seed " + std::to_string(seed));
        if (::testing::Test::HasFailure()) return;
        translated += p.translated();
    }
    EXPECT_GT(translated, 300u);  // the translating machine really ran translated blocks
}

TEST(TranslateTest, RandomStreamsMatchTheInterpreterAfterEveryStep) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    random_streams(true);
}

// Three registers only: nearly every instruction reads what the one before wrote.
TEST(TranslateTest, RandomStreamsOnThreeRegistersMatchTheInterpreter) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    random_streams(true, true);
}

TEST(TranslateTest, RandomStreamsThroughHandlersOnlyMatchTheInterpreter) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    random_streams(false);
}

// Every native form on operands at the flag edges (sign, carry and overflow boundaries,
// zero), with all status flags set or clear before it; PUSHF then makes its flags
// visible.
TEST(TranslateTest, NativeFormsAtOperandEdgesMatchTheInterpreter) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    // Each form works on RAX (destination) and RCX (source).
    const std::vector<std::vector<uint8_t>> forms = {
        {0x48, 0xFF, 0xC0},                    // inc %rax
        {0xFF, 0xC0},                          // inc %eax
        {0x48, 0xFF, 0xC8},                    // dec %rax
        {0xFF, 0xC8},                          // dec %eax
        {0x48, 0xD1, 0xE0},                    // shl $1,%rax
        {0x48, 0xC1, 0xE0, 0x05},              // shl $5,%rax
        {0xC1, 0xE0, 0x1F},                    // shl $31,%eax
        {0x48, 0xD1, 0xE8},                    // shr $1,%rax
        {0x48, 0xC1, 0xE8, 0x3F},              // shr $63,%rax
        {0xC1, 0xE8, 0x20},                    // shr $32,%eax (count masks to 0)
        {0x48, 0xD1, 0xF8},                    // sar $1,%rax
        {0xC1, 0xF8, 0x1F},                    // sar $31,%eax
        {0x48, 0xD1, 0xC0},                    // rol $1,%rax
        {0x48, 0xC1, 0xC8, 0x07},              // ror $7,%rax
        {0xD1, 0xC8},                          // ror $1,%eax
        {0xC1, 0xC0, 0x1F},                    // rol $31,%eax
        {0x66, 0xD1, 0xE0},                    // shl $1,%ax
        {0x66, 0xC1, 0xE8, 0x05},              // shr $5,%ax
        {0x66, 0xC1, 0xE8, 0x0F},              // shr $15,%ax
        {0x66, 0xC1, 0xF8, 0x0F},              // sar $15,%ax
        {0x66, 0xC1, 0xE0, 0x10},              // shl $16,%ax (the handler: CF undefined)
        {0x48, 0xD3, 0xE0},                    // shl %cl,%rax (counts 0, 1, 31, 63)
        {0xD3, 0xE8},                          // shr %cl,%eax
        {0x48, 0xD3, 0xF8},                    // sar %cl,%rax
        {0xD3, 0xE1},                          // shl %cl,%ecx
        {0x39, 0xC8, 0xD3, 0xE0},              // cmp; shl %cl (count 0: CMP's flags)
        {0x48, 0x0F, 0xAF, 0xC1},              // imul %rcx,%rax
        {0x0F, 0xAF, 0xC1},                    // imul %ecx,%eax
        {0x48, 0x6B, 0xC1, 0xF9},              // imul $-7,%rcx,%rax
        {0x69, 0xC1, 0x00, 0x00, 0x01, 0x00},  // imul $0x10000,%ecx,%eax
        {0x48, 0x01, 0xC8},                    // add %rcx,%rax
        {0x29, 0xC8},                          // sub %ecx,%eax
        {0x48, 0x39, 0xC8},                    // cmp %rcx,%rax
        {0x48, 0x85, 0xC8},                    // test %rcx,%rax
        {0x31, 0xC8},                          // xor %ecx,%eax
        {0x48, 0x83, 0xC0, 0x01},              // add $1,%rax
        {0x3D, 0xFF, 0xFF, 0xFF, 0x7F},        // cmp $0x7fffffff,%eax
        {0x48, 0x89, 0xC8},                    // mov %rcx,%rax
        {0x48, 0x11, 0xC8},                    // adc %rcx,%rax
        {0x11, 0xC8},                          // adc %ecx,%eax
        {0x48, 0x19, 0xC8},                    // sbb %rcx,%rax
        {0x19, 0xC8},                          // sbb %ecx,%eax
        {0x48, 0x83, 0xD0, 0x01},              // adc $1,%rax
        {0x83, 0xD8, 0xFF},                    // sbb $-1,%eax
        {0x48, 0xF7, 0xD8},                    // neg %rax
        {0xF7, 0xD8},                          // neg %eax
        {0x48, 0xF7, 0xD0},                    // not %rax
        {0xF7, 0xD0},                          // not %eax
        // A 64-bit result, then a 32-bit use of the same register (the translator keeps
        // it in a host register between the two).
        {0x48, 0x01, 0xC8, 0x89, 0xC1},        // add %rcx,%rax; mov %eax,%ecx
        {0x48, 0x01, 0xC8, 0xD1, 0xE8},        // add %rcx,%rax; shr $1,%eax
        {0x48, 0x01, 0xC8, 0xC1, 0xE0, 0x20},  // add %rcx,%rax; shl $32,%eax (count 0)
        {0x48, 0x31, 0xC8, 0x83, 0xF8, 0x05},  // xor %rcx,%rax; cmp $5,%eax
        {0x48, 0xFF, 0xC0, 0x0F, 0xAF, 0xC1},  // inc %rax; imul %ecx,%eax
        {0x48, 0x01, 0xC8, 0x88, 0xC1},        // add %rcx,%rax; mov %al,%cl
        // CF from a native instruction into ADC/SBB of the same block (its flags are live).
        {0x48, 0x01, 0xC8, 0x48, 0x11, 0xC8},        // add %rcx,%rax; adc %rcx,%rax
        {0x48, 0xF7, 0xD8, 0x19, 0xC0},              // neg %rax; sbb %eax,%eax
        {0x39, 0xC8, 0xF7, 0xD0, 0x48, 0x19, 0xC1},  // cmp %ecx,%eax; not %eax; sbb %rax,%rcx
    };
    static const uint64_t edges[] = {0,          1,          0x7F,        0x80,
                                     0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,  ~0ull >> 1,
                                     1ull << 63, ~0ull,      0x100000000, 0xFFFFFFFF80000000};
    for (const auto& form : forms) {
        Pair p;
        ASSERT_TRUE(p.ok());
        std::vector<uint8_t> code = form;
        code.insert(code.end(), {0x9C, 0x41, 0x5D, 0xF4});  // pushfq; pop %r13; hlt
        p.load(code);
        for (uint64_t a : edges) {
            for (uint64_t c : edges) {
                for (uint64_t f : {FLAG_FIXED1, FLAG_FIXED1 | FLAGS_ARITH}) {
                    p.both([&](BareMachine& m) {
                        CpuState& s = m.cpu_.state();
                        s.gpr[RAX] = a, s.gpr[RCX] = c, s.gpr[R13] = 0;
                        s.gpr[RSP] = BareMachine::kStack;
                        s.rflags = f;
                        s.rip = BareMachine::kCode;
                    });
                    // (CALL RSP: only the CALL; its target is the stack.)
                    p.run_compare({form[1] == 0xD4 ? 1u : 0u}, "form " + std::to_string(form[0]) +
                                                                   "," + std::to_string(form[1]) +
                                                                   " a=" + std::to_string(a) +
                                                                   " c=" + std::to_string(c));
                    if (::testing::Test::HasFailure()) return;
                }
            }
        }
        EXPECT_GE(p.translated(), 1u);
    }
}

// A store into the running block rewrites its next instruction: both engines must run
// the new bytes (the block and its translation are dropped).
TEST(TranslateTest, SelfModifyingCodeDropsTheTranslation) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    Pair p;
    ASSERT_TRUE(p.ok());
    const std::vector<uint8_t> code = {
        0xB9, 0x03, 0x00, 0x00, 0x00,              // mov $3,%ecx
        0x48, 0x8D, 0x3D, 0x04, 0x00, 0x00, 0x00,  // loop: lea 4(%rip),%rdi: add's imm8
        0xFE, 0x07,                                // incb (%rdi)
        0x83, 0xC0, 0x01,                          // add $1,%eax  (imm8 at code+16)
        0xFF, 0xC9,                                // dec %ecx
        0x75, 0xF1,                                // jnz loop
        0xF4,                                      // hlt
    };
    p.load(code);
    p.both([](BareMachine& m) { m.cpu_.state().gpr[RAX] = 0; });
    p.run_compare({0}, "smc");
    EXPECT_EQ(p.translating_cpu().state().gpr[RAX], 2u + 3u + 4u);  // imm 1 -> 2, 3, 4
}

// A native store (MOV to memory) into the running block: code pages have no write TLB
// entries, so the store takes the handler's path, which drops the block.
TEST(TranslateTest, NativeStoreIntoTheRunningBlockIsSeen) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    Pair p;
    ASSERT_TRUE(p.ok());
    const std::vector<uint8_t> code = {
        0xB9, 0x03, 0x00, 0x00, 0x00,        // mov $3,%ecx
        0xB8, 0x00, 0x00, 0x00, 0x00,        // mov $0,%eax
        0x8D, 0x51, 0x10,                    // loop: lea 0x10(%rcx),%edx
        0x89, 0x15, 0x01, 0x00, 0x00, 0x00,  // mov %edx,1(%rip): the add's imm32
        0x05, 0x01, 0x00, 0x00, 0x00,        // add $1,%eax (imm32 at code+20)
        0xFF, 0xC9,                          // dec %ecx
        0x75, 0xEE,                          // jnz loop
        0xF4,                                // hlt
    };
    p.load(code);
    p.run_compare({0}, "native smc");
    EXPECT_EQ(p.translating_cpu().state().gpr[RAX], 0x13u + 0x12u + 0x11u);
}

// The longest block (Block::kMaxInsns instructions) of the longest native form, a memory
// access, still fits its translation's size bound: it is translated and runs natively.
TEST(TranslateTest, LongestBlockOfMemoryFormsIsTranslated) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    Pair p;
    ASSERT_TRUE(p.ok());
    std::vector<uint8_t> code;
    for (size_t k = 0; k < Block::kMaxInsns; ++k) {
        // add 0x7f(%r15,%rcx,8),%rax: base, index, displacement, flags
        code.insert(code.end(), {0x49, 0x03, 0x44, 0xCF, 0x7F});
    }
    code.push_back(0xF4);
    p.load(code);
    p.both([](BareMachine& m) {
        m.cpu_.state().gpr[R15] = kScratch;
        m.cpu_.state().gpr[RCX] = 3;
        m.put64(kScratch + 0x7F + 24, 0x0123456789ABCDEFull);
    });
    p.run_compare({0}, "longest block");
    EXPECT_EQ(p.translated(), 2u);  // the 64 additions, then the HLT
    EXPECT_EQ(p.translating_cpu().state().gpr[RAX], 0x0123456789ABCDEFull * 64);
}

// A block cut by the length limit after a register form, then a block whose first
// instruction reads that register: the second translation must load it (what the first
// left in a host register belongs to the first).
TEST(TranslateTest, RegisterReuseStopsAtTheBlockEnd) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    Pair p;
    ASSERT_TRUE(p.ok());
    std::vector<uint8_t> code;
    for (size_t k = 0; k < Block::kMaxInsns; ++k) code.insert(code.end(), {0x48, 0x01, 0xC8});
    code.insert(code.end(), {0x89, 0xC3, 0xF4});  // mov %eax,%ebx; hlt
    p.load(code);
    p.both([](BareMachine& m) {
        m.cpu_.state().gpr[RAX] = 0x100000001ull;
        m.cpu_.state().gpr[RCX] = 0x300000003ull;
    });
    p.run_compare({0}, "register reuse at a block end");
    EXPECT_EQ(p.translated(), 2u);  // the 64 additions; MOV and HLT
    EXPECT_EQ(p.translating_cpu().state().gpr[RBX], (1 + 64 * 3) & 0xFFFFFFFFull);
}

// A code cache much smaller than the program's translations flushes again and again;
// the results stay the interpreter's.
TEST(TranslateTest, FullCodeCacheFlushesAndStaysExact) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    Pair p(16 * 1024);
    ASSERT_TRUE(p.ok());
    // 200 blocks of `add $k,%eax; jmp next`, run 50 times by an outer loop on ECX.
    std::vector<uint8_t> code = {0xB9, 0x32, 0x00, 0x00, 0x00};  // mov $50,%ecx
    const size_t top = code.size();
    for (int k = 0; k < 200; ++k) {
        code.insert(code.end(), {0x83, 0xC0, static_cast<uint8_t>(k), 0xEB, 0x00});
    }
    code.insert(code.end(), {0xFF, 0xC9, 0x0F, 0x85});  // dec %ecx; jnz top (rel32)
    const int32_t rel = static_cast<int32_t>(top) - static_cast<int32_t>(code.size() + 4);
    for (int k = 0; k < 4; ++k) code.push_back(static_cast<uint8_t>(rel >> (8 * k)));
    code.push_back(0xF4);
    p.load(code);
    p.both([](BareMachine& m) { m.cpu_.state().gpr[RAX] = 0; });
    p.run_compare({777, 5000, 0}, "flushes");
    EXPECT_GT(p.translating_cpu().translator_stats().cache_flushes, 2u);
    int64_t sum = 0;  // ADD's imm8 is sign-extended
    for (int k = 0; k < 200; ++k) sum += static_cast<int8_t>(k);
    EXPECT_EQ(p.translating_cpu().state().gpr[RAX],
              static_cast<uint32_t>(static_cast<uint64_t>(sum * 50)));
}

// Resident shared memory of this process in KiB (/proc/self/status), -1 if not reported.
long rss_shmem_kib() {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (std::fgets(line, sizeof line, f))
        if (std::sscanf(line, "RssShmem: %ld kB", &kib) == 1) break;
    std::fclose(f);
    return kib;
}

// The code cache is one memory file mapped twice (written through one view, run from the
// other); written code leaves the writing view, so the process's RSS counts it once.
TEST(TranslateTest, WrittenCodeIsResidentOnce) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    const long before = rss_shmem_kib();
    if (before < 0) GTEST_SKIP() << "the host does not report RssShmem";
    Pair p;
    ASSERT_TRUE(p.ok());
    // 4000 blocks of `add $k,%eax; jmp next`, then HLT: each block translated once.
    std::vector<uint8_t> code;
    for (int k = 0; k < 4000; ++k)
        code.insert(code.end(), {0x83, 0xC0, static_cast<uint8_t>(k), 0xEB, 0x00});
    code.push_back(0xF4);
    p.load(code);
    p.run_compare({0}, "4000 blocks");
    const Translator::Stats st = p.translating_cpu().translator_stats();
    ASSERT_GE(st.blocks_translated, 4001u);
    ASSERT_GT(st.cache_bytes_used, 1u << 20);  // several of the 256 KiB unmapping steps
    const long grown = rss_shmem_kib() - before;
    EXPECT_LE(grown, static_cast<long>(st.cache_bytes_used / 1024 + 512))
        << "KiB of shared memory for " << st.cache_bytes_used / 1024 << " KiB of code";
}

// A fault in the middle of a translated block: the exception unwinds through generated
// code, the faulting instruction does not retire, RIP and RSP are its own.
TEST(TranslateTest, FaultInsideATranslatedBlockIsPrecise) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    Pair p;
    ASSERT_TRUE(p.ok());
    // push %rax; mov $1,%eax; div %ecx (ecx = 0); nop; hlt: one block, translated when
    // first entered.
    p.load({0x50, 0xB8, 0x01, 0x00, 0x00, 0x00, 0xF7, 0xF1, 0x90, 0xF4});
    p.both([](BareMachine& m) { m.cpu_.state().gpr[RCX] = 0; });
    p.run_compare({0}, "fault");
    EXPECT_GE(p.translated(), 1u);
    EXPECT_EQ(p.translating().vector_taken(), VEC_DE);
    EXPECT_EQ(p.translating().frame(0), BareMachine::kCode + 6);   // RIP of DIV
    EXPECT_EQ(p.translating().frame(3), BareMachine::kStack - 8);  // RSP after the PUSH
}

// Guest registers a block keeps in host registers: written back before a handler call
// (BSWAP has none of its own) and loaded again after it, and written back before a load
// that faults (#PF), so the fault sees every instruction before it.
TEST(TranslateTest, CachedRegistersAreInTheStateAtHandlersAndFaults) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    Pair p;
    ASSERT_TRUE(p.ok());
    p.load({
        0x48, 0x01, 0xC8,  // add %rcx,%rax
        0x48, 0x01, 0xC8,  // add %rcx,%rax
        0x48, 0x0F, 0xC8,  // bswap %rax (its handler)
        0x48, 0x01, 0xC1,  // add %rax,%rcx
        0x48, 0x01, 0xC1,  // add %rax,%rcx
        0x48, 0x89, 0xCA,  // mov %rcx,%rdx
        0x48, 0x8B, 0x16,  // mov (%rsi),%rdx: #PF (not mapped)
        0xF4,              // hlt
    });
    constexpr uint64_t a = 0x0123456789ABCDEFull, c = 0x1111222233334444ull;
    p.both([](BareMachine& m) {
        m.cpu_.state().gpr[RAX] = a;
        m.cpu_.state().gpr[RCX] = c;
        m.cpu_.state().gpr[RSI] = 0x800000;  // above the two mapped 2 MiB pages
    });
    p.run_compare({0}, "cached registers");
    EXPECT_GE(p.translated(), 1u);
    EXPECT_EQ(p.translating().vector_taken(), VEC_PF);
    EXPECT_EQ(p.translating().frame(1),
              BareMachine::kCode + 18);  // RIP of the load (after the error code)
    const uint64_t x = __builtin_bswap64(a + 2 * c);
    EXPECT_EQ(p.translating_cpu().state().gpr[RCX], c + 2 * x);
    EXPECT_EQ(p.translating_cpu().state().gpr[RDX], c + 2 * x);
}

// A loop of blocks joined by Jcc, JMP, CALL and RET (the RETs through the jump cache):
// translated blocks continue into each other without the run loop, yet every
// instruction limit still stops both engines at the same instruction.
const std::vector<uint8_t> kChainLoop = {
    0xB9, 0xC8, 0x00, 0x00, 0x00,  //       mov $200,%ecx
    0x01, 0xC8,                    // top:  add %ecx,%eax
    0xF6, 0xC1, 0x01,              //       test $1,%cl
    0x74, 0x0A,                    //       jz even
    0x6B, 0xC0, 0x03,              //       imul $3,%eax,%eax
    0xE8, 0x0F, 0x00, 0x00, 0x00,  //       call f
    0xEB, 0x08,                    //       jmp next
    0x83, 0xF0, 0x55,              // even: xor $0x55,%eax
    0xE8, 0x08, 0x00, 0x00, 0x00,  //       call g
    0xFF, 0xC9,                    // next: dec %ecx
    0x75, 0xE3,                    //       jnz top
    0xF4,                          //       hlt
    0xFF, 0xC2,                    // f:    inc %edx
    0xC3,                          //       ret
    0x83, 0xC2, 0x07,              // g:    add $7,%edx
    0xC3,                          //       ret
};

TEST(TranslateTest, ChainedBlocksStopAtEveryInstructionLimit) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    for (uint64_t seed = 1; seed <= 20; ++seed) {
        Pair p;
        ASSERT_TRUE(p.ok());
        p.load(kChainLoop);
        std::mt19937_64 rng(seed);
        std::vector<uint64_t> limits;
        uint64_t at = 0;
        for (int k = 0; k < 40; ++k) limits.push_back(at += 1 + rng() % (seed * 5));
        limits.push_back(0);
        p.run_compare(limits, "chain seed " + std::to_string(seed));
        if (::testing::Test::HasFailure()) return;
        EXPECT_EQ(p.translating_cpu().state().rip, BareMachine::kCode + 0x23);  // after HLT
    }
    // Unlimited: most blocks are entered from other blocks' code.
    Pair p;
    ASSERT_TRUE(p.ok());
    p.load(kChainLoop);
    p.run_compare({0}, "chain");
    EXPECT_GT(p.translating_cpu().translator_stats().chained_blocks, 600u);
    // mov, 100 odd rounds of 10 instructions and 100 even ones of 9, hlt.
    EXPECT_EQ(p.translating_cpu().instructions_retired(), 1u + 100 * 10 + 100 * 9 + 1);
}

// Runs `code` on both engines with a timer interrupt (vector 0x30, IF set) due at
// `deadline`: the engines must agree, and the translator must take the interrupt when the
// clock reached the deadline (the vector stub's 3 instructions after it). False on failure.
bool interrupts_at_deadline(const std::vector<uint8_t>& code, uint64_t deadline,
                            const std::string& what) {
    Pair p;
    EXPECT_TRUE(p.ok());
    if (!p.ok()) return false;
    p.load(code);
    p.both([&](BareMachine& m) {
        m.owner_.irq_vector = 0x30;
        m.cpu_.state().rflags |= FLAG_IF;
        m.cpu_.set_deadline(deadline);
    });
    p.run_compare({0}, what + " " + std::to_string(deadline));
    if (::testing::Test::HasFailure()) return false;
    EXPECT_EQ(p.translating().vector_taken(), 0x30);
    EXPECT_EQ(p.translating_cpu().clock(), deadline + 3) << what << " " << deadline;
    return !::testing::Test::HasFailure();
}

// A timer deadline falls inside a run of chained blocks: the interrupt is taken at the
// same instruction boundary (the same clock and RIP) as in the interpreter.
TEST(TranslateTest, DeadlineInsideChainedBlocksInterruptsAtTheSameInstruction) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    for (uint64_t deadline = 1; deadline < 400; deadline += 13)
        if (!interrupts_at_deadline(kChainLoop, deadline, "deadline")) return;
}

// A block that branches back to its own start loops in its own code (emit_self_loop):
// instruction limits and timer deadlines still stop it at the same instruction as the
// interpreter, and it counts as a chained block each time round.
TEST(TranslateTest, SelfLoopStopsAtEveryInstructionLimitAndDeadline) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    std::vector<uint8_t> code = {
        0xB9, 0xF4, 0x01, 0x00, 0x00,  //       mov $500,%ecx
        0x01, 0xC8,                    // top:  add %ecx,%eax
        0xC1, 0xC0, 0x03,              //       rol $3,%eax
        0x31, 0xC2,                    //       xor %eax,%edx
        0xFF, 0xC9,                    //       dec %ecx
        0x75, 0xF5,                    //       jnz top
        0xF4,                          //       hlt
    };
    for (uint64_t seed = 1; seed <= 10; ++seed) {
        Pair p;
        ASSERT_TRUE(p.ok());
        p.load(code);
        std::mt19937_64 rng(seed);
        std::vector<uint64_t> limits;
        uint64_t at = 0;
        for (int k = 0; k < 40; ++k) limits.push_back(at += 1 + rng() % (seed * 7));
        limits.push_back(0);
        p.run_compare(limits, "self loop seed " + std::to_string(seed));
        if (::testing::Test::HasFailure()) return;
    }
    for (uint64_t deadline = 1; deadline < 600; deadline += 37)
        if (!interrupts_at_deadline(code, deadline, "self loop deadline")) return;
    Pair p;
    ASSERT_TRUE(p.ok());
    p.load(code);
    p.run_compare({0}, "self loop");
    EXPECT_EQ(p.translating_cpu().instructions_retired(), 1u + 500 * 5 + 1);
    EXPECT_GT(p.translating_cpu().translator_stats().chained_blocks, 490u);
}

// A block with loads, a store and a read-modify-write that branches back to its own start
// loops in its own code too (emit_tight_loop): limits and deadlines stop it at the same
// instruction as the interpreter. With its store into its own code page instead, every
// store ends the block (the page's blocks are dropped), as in the interpreter.
TEST(TranslateTest, SelfLoopWithMemoryAccessesStopsAtEveryLimitAndStoreIntoCode) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    for (const uint8_t store_page : {uint8_t{0x10}, uint8_t{0x01}}) {  // scratch, code
        const std::vector<uint8_t> code = {
            0xB9, 0x2C, 0x01, 0x00, 0x00,                    //       mov $300,%ecx
            0x0F, 0xB6, 0x81, 0x00, 0x00,       0x10, 0x00,  // top:  movzbl 0x100000(%rcx),%eax
            0x01, 0xC2,                                      //       add %eax,%edx
            0x88, 0x91, 0x00, 0x08, store_page, 0x00,        //       mov %dl,0x..0800(%rcx)
            0x83, 0x81, 0x00, 0x0C, 0x10,       0x00, 0x03,  //       addl $3,0x100c00(%rcx)
            0xFF, 0xC9,                                      //       dec %ecx
            0x75, 0xE6,                                      //       jnz top
            0xF4,                                            //       hlt
        };
        const std::string what = store_page == 0x10 ? "memory loop" : "code-storing loop";
        for (uint64_t seed = 1; seed <= 6; ++seed) {
            Pair p;
            ASSERT_TRUE(p.ok());
            p.load(code);
            p.both([&](BareMachine& m) {
                for (int k = 0; k < 1024; ++k) m.ram_[kScratch + k] = static_cast<uint8_t>(k * 7);
            });
            std::mt19937_64 rng(seed);
            std::vector<uint64_t> limits;
            uint64_t at = 0;
            for (int k = 0; k < 40; ++k) limits.push_back(at += 1 + rng() % (seed * 9));
            limits.push_back(0);
            p.run_compare(limits, what + " seed " + std::to_string(seed));
            if (::testing::Test::HasFailure()) return;
            EXPECT_EQ(p.translating_cpu().instructions_retired(), 1u + 300 * 6 + 1) << what;
        }
        for (uint64_t deadline = 1; deadline < 1000; deadline += 53)
            if (!interrupts_at_deadline(code, deadline, what + " deadline")) return;
        Pair p;
        ASSERT_TRUE(p.ok());
        p.load(code);
        p.run_compare({0}, what);
        if (store_page == 0x10) {
            EXPECT_GT(p.translating_cpu().translator_stats().chained_blocks, 290u);
        }
    }
}

// A loop of two blocks whose first writes to a port each time round.
const std::vector<uint8_t> kOutLoop = {
    0xB9, 0xC8, 0x00, 0x00, 0x00,  //       mov $200,%ecx
    0x01, 0xC8,                    // top:  add %ecx,%eax
    0xE6, 0x21,                    //       out %al,$0x21
    0xE8, 0x05, 0x00, 0x00, 0x00,  //       call f
    0xFF, 0xC9,                    //       dec %ecx
    0x75, 0xF3,                    //       jnz top
    0xF4,                          //       hlt
    0xFF, 0xC2,                    // f:    inc %edx
    0xC3,                          //       ret
};

// A device asks for an interrupt check (request_interrupt_check) or stalls the CPU
// (skip_time past the next timer deadline) from inside an instruction of a chained block:
// the blocks after it are not entered from generated code (the bound they check drops),
// so the interrupt is taken at the same instruction boundary as in the interpreter.
TEST(TranslateTest, InterruptRequestedOrClockSkippedInsideChainedBlocks) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    for (int skip = 0; skip < 2; ++skip) {
        for (size_t k = 1; k <= 60; k += 7) {
            Pair p;
            ASSERT_TRUE(p.ok());
            p.load(kOutLoop);
            p.both([&](BareMachine& m) {
                m.cpu_.state().rflags |= FLAG_IF;
                if (skip) {
                    m.owner_.irq_vector = 0x30;
                    m.cpu_.set_deadline(1000000);
                }
                m.owner_.on_out = [&m, k, skip] {
                    if (m.owner_.outs.size() != k) return;
                    if (skip) {
                        m.cpu_.skip_time(2000000);
                    } else {
                        m.owner_.irq_vector = 0x30;
                        m.cpu_.request_interrupt_check();
                    }
                };
            });
            const std::string what =
                (skip ? "skip_time at out " : "interrupt at out ") + std::to_string(k);
            p.run_compare({0}, what);
            if (::testing::Test::HasFailure()) return;
            EXPECT_EQ(p.translating().vector_taken(), 0x30) << what;
            EXPECT_GE(p.translating_cpu().translator_stats().chained_blocks, 2 * k - 2) << what;
        }
    }
}

// A loop's direct CALL to linear 0x300000 (its block remembers the translated function as
// that exit's successor: Block::exits), six times; after the fourth call, `change` makes
// that address hold other code: a remapped page made visible by INVLPG or by a CR3 load,
// or a store into the function. The last two calls must run the new code (EAX 2, not 1),
// as in the interpreter: ESI = 4 * 1 + 2 * 2.
void remembered_successor_follows(const std::vector<uint8_t>& change, const std::string& what) {
    std::vector<uint8_t> code = {0xB9, 0x06, 0x00, 0x00, 0x00};  // mov $6,%ecx
    const size_t top = code.size();
    const uint32_t rel = static_cast<uint32_t>(0x300000 - (BareMachine::kCode + top + 5));
    code.insert(code.end(), {0xE8, static_cast<uint8_t>(rel), static_cast<uint8_t>(rel >> 8),
                             static_cast<uint8_t>(rel >> 16), static_cast<uint8_t>(rel >> 24)});
    code.insert(code.end(), {0x01, 0xC6,        // add %eax,%esi
                             0x83, 0xF9, 0x03,  // cmp $3,%ecx
                             0x75, 0x00});      // jne next
    const size_t jne = code.size();
    code.insert(code.end(), change.begin(), change.end());
    code[jne - 1] = static_cast<uint8_t>(code.size() - jne);
    code.insert(code.end(), {0xFF, 0xC9, 0x75, 0x00});  // next: dec %ecx; jnz top
    code.back() = static_cast<uint8_t>(top - code.size());
    code.insert(code.end(), {0x89, 0xF0, 0xE7, 0x10, 0xF4});  // mov %esi,%eax; out; hlt
    Pair p;
    ASSERT_TRUE(p.ok());
    p.load(code);
    p.load({0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3}, 0x300000);  // mov $1,%eax; ret
    p.load({0xB8, 0x02, 0x00, 0x00, 0x00, 0xC3}, 0x100000);  // mov $2,%eax; ret
    p.run_compare({0}, what);
    const auto& outs = p.translating().owner_.outs;
    ASSERT_EQ(outs.size(), 1u) << what;
    EXPECT_EQ(outs[0].value, 8u) << what;
}

TEST(TranslateTest, RememberedSuccessorIsDroppedWithItsCode) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    // Linear 2-4 MiB to physical 0-2 MiB (the PD entry of the second 2 MiB page), so
    // linear 0x300000 reaches physical 0x100000.
    const std::vector<uint8_t> remap = {0xB8, 0x83, 0x00, 0x00, 0x00,  // mov $0x83,%eax
                                        0x48, 0x89, 0x04, 0x25, 0x08, 0x30, 0x00, 0x00};
    std::vector<uint8_t> invlpg = remap;  // mov $0x300000,%ebx; invlpg (%rbx)
    invlpg.insert(invlpg.end(), {0xBB, 0x00, 0x00, 0x30, 0x00, 0x0F, 0x01, 0x3B});
    remembered_successor_follows(invlpg, "invlpg");
    std::vector<uint8_t> cr3 = remap;  // mov %cr3,%rax; mov %rax,%cr3
    cr3.insert(cr3.end(), {0x0F, 0x20, 0xD8, 0x0F, 0x22, 0xD8});
    remembered_successor_follows(cr3, "cr3");
    // movb $2,0x300001: the function's immediate
    remembered_successor_follows({0xC6, 0x04, 0x25, 0x01, 0x00, 0x30, 0x00, 0x02}, "store");
}

// CALL through a register and through memory (native in 64-bit mode): a canonical target,
// a non-canonical one (#GP after nothing written: RIP and RSP the CALL's own), a pointer
// on the last mapped page, across its end and past it (#PF), a stack whose push crosses
// into the unmapped page or lies in it (#PF), CALL RSP (the old RSP is the target).
TEST(TranslateTest, IndirectCallsAtTheirEdgesMatchTheInterpreter) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    const std::vector<std::vector<uint8_t>> forms = {
        {0xFF, 0xD0},        // call *%rax
        {0x41, 0xFF, 0xD0},  // call *%r8
        {0xFF, 0xD4},        // call *%rsp
        {0xFF, 0x11},        // call *(%rcx)
        {0xFF, 0x51, 0x08},  // call *8(%rcx)
    };
    const uint64_t hlt_at = BareMachine::kCode + 0x40;
    const uint64_t targets[] = {hlt_at, 1ull << 47, 0xFFFF800000000000ull};
    const uint64_t pointers[] = {kScratch, kLastPage + 4088, kLastPage + 4092, kLastPage + 4096};
    const uint64_t stacks[] = {BareMachine::kStack, kLastPage + 4096 + 4, kLastPage + 4096 + 8,
                               kLastPage + 4096 + 16, 0x0000800000000008ull};
    for (const auto& form : forms) {
        Pair p;
        ASSERT_TRUE(p.ok());
        std::vector<uint8_t> code(0x41, 0x90);  // the form, NOPs, HLT at hlt_at
        std::copy(form.begin(), form.end(), code.begin());
        code[0x40] = 0xF4;
        p.load(code);
        for (uint64_t t : targets) {
            for (uint64_t ptr : pointers) {
                for (uint64_t sp : stacks) {
                    p.both([&](BareMachine& m) {
                        CpuState& s = m.cpu_.state();
                        s.gpr[RAX] = s.gpr[R8] = t;
                        // The pointer at (%rcx) and 8(%rcx) (RCX 8 lower for the second).
                        s.gpr[RCX] = form[1] == 0x51 ? ptr - 8 : ptr;
                        if (ptr + 8 <= kLastPage + 4096) std::memcpy(m.ram_ + ptr, &t, 8);
                        s.gpr[RSP] = sp;
                        s.rip = BareMachine::kCode;
                    });
                    // (CALL RSP: only the CALL; its target is the stack.)
                    p.run_compare({form[1] == 0xD4 ? 1u : 0u},
                                  "form " + std::to_string(form[0]) + "," +
                                      std::to_string(form[1]) + " target " + std::to_string(t) +
                                      " pointer " + std::to_string(ptr) + " rsp " +
                                      std::to_string(sp));
                    if (::testing::Test::HasFailure()) return;
                }
            }
        }
        EXPECT_GE(p.translated(), 1u);
    }
    // The interpreter's #GP for a non-canonical target: on the CALL, RSP as before it.
    Pair p;
    ASSERT_TRUE(p.ok());
    p.load({0xFF, 0xD0, 0xF4});
    p.both([](BareMachine& m) { m.cpu_.state().gpr[RAX] = 1ull << 47; });
    p.run_compare({0}, "non-canonical");
    EXPECT_EQ(p.translating().vector_taken(), VEC_GP);
    EXPECT_EQ(p.translating().frame(1), BareMachine::kCode);   // RIP of the CALL
    EXPECT_EQ(p.translating().frame(4), BareMachine::kStack);  // RSP before it
}

// POPF sets RFLAGS.AC at CPL 3 with CR0.AM in translated code, in a loop's second
// iteration: the native load after it must see alignment checking on (#AC on the
// misaligned load, SDM vol. 3 §6.15), though the page's entry is in the TLB and the
// generated software-TLB probe took its tag bits when the run loop entered the chain
// (before the POPF). Fails when those bits are not computed again after a handler.
TEST(TranslateTest, AlignmentCheckTurnedOnByAHandlerReachesNativeLoads) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    Pair p;
    ASSERT_TRUE(p.ok());
    // mov $0x30000,%esi; xor %edi,%edi; 1: mov (%rsi),%eax; pushfq; or %edi,(%rsp);
    // popfq; mov 1(%rsi),%eax; mov $0x40000,%edi; jmp 1b
    p.load({0xBE, 0x00, 0x00, 0x03, 0x00, 0x31, 0xFF, 0x8B, 0x06, 0x9C, 0x09, 0x3C,
            0x24, 0x9D, 0x8B, 0x46, 0x01, 0xBF, 0x00, 0x00, 0x04, 0x00, 0xEB, 0xEF});
    p.both([](BareMachine& m) {
        m.cpu_.state().cr0 |= CR0_AM;
        m.enter_ring3();
    });
    p.run_compare({200}, "alignment check");
    EXPECT_GE(p.translated(), 2u);
    EXPECT_EQ(p.translating().vector_taken(), VEC_AC);
    EXPECT_EQ(p.translating().frame(1), BareMachine::kCode + 14);  // the misaligned load
}

// POPF sets TF inside a chained loop: single-stepping starts after the same instruction
// in both engines (a block is not entered from another while TF is set).
TEST(TranslateTest, TrapFlagSetInsideChainedBlocksStepsAsTheInterpreter) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    std::vector<uint8_t> code = {
        0xB9, 0x40, 0x00, 0x00, 0x00,  //       mov $64,%ecx
        0xFF, 0xC0,                    // top:  inc %eax
        0x83, 0xF9, 0x05,              //       cmp $5,%ecx
        0x75, 0x09,                    //       jne skip
        0x9C,                          //       pushf
        0x48, 0x81, 0x0C, 0x24,        //       orq $0x100,(%rsp)
        0x00, 0x01, 0x00, 0x00,        //
        0x9D,                          //       popf
        0xFF, 0xC9,                    // skip: dec %ecx
        0x75, 0xE9,                    //       jnz top
        0xF4,                          //       hlt
    };
    Pair p;
    ASSERT_TRUE(p.ok());
    p.load(code);
    p.run_compare({0}, "tf");
    EXPECT_EQ(p.translating().vector_taken(), VEC_DB);
    // The trap follows the instruction after POPF (DEC at +22): RIP +24.
    EXPECT_EQ(p.translating().frame(0), BareMachine::kCode + 24);
    EXPECT_GT(p.translating_cpu().translator_stats().chained_blocks, 50u);
}

// With the VMs' threshold a block runs in the interpreter until it starts for the
// kHotRuns-th time; both engines still agree, before and after.
TEST(TranslateTest, BlocksAreTranslatedOnlyOnceHot) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    constexpr int hot = Translator::kHotRuns;
    for (int r : {3, hot, hot + 1, hot + 6}) {
        const uint8_t rounds = static_cast<uint8_t>(r);
        Pair p;
        ASSERT_TRUE(p.ok());
        p.translating_cpu().translator()->set_translate_after(Translator::kHotRuns);
        const std::vector<uint8_t> code = {
            0xB9, rounds, 0x00, 0x00, 0x00,  //       mov $rounds,%ecx
            0x01, 0xC8,                      // top:  add %ecx,%eax
            0xFF, 0xC9,                      //       dec %ecx
            0x75, 0xFA,                      //       jnz top
            0xF4,                            //       hlt
        };
        p.load(code);
        p.run_compare({0}, "rounds " + std::to_string(rounds));
        // The first block runs MOV to JNZ once; the loop's block from `top` runs
        // rounds - 1 times: translated from its kHotRuns-th run on.
        EXPECT_EQ(p.translated(), r - 1 >= hot ? 1u : 0u) << r;
    }
}
}  // namespace
}  // namespace softkvm::cpu::test
