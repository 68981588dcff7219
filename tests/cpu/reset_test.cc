// Cpu::reset(): the CPU is as newly made (registers, MSRs, counters, caches), keeps its
// engine, and runs a program again exactly as the first time.
#include <gtest/gtest.h>

#include "bare_machine.h"
#include "cpu/translate/translator.h"

namespace softkvm::cpu::test {
namespace {

// mov rax, 5; add rax, rbx; mov ecx, IA32_KERNEL_GS_BASE; xor edx, edx; wrmsr; hlt
const uint8_t kProgram[] = {0x48, 0xC7, 0xC0, 0x05, 0x00, 0x00, 0x00, 0x48, 0x01, 0xD8,
                            0xB9, 0x02, 0x01, 0x00, 0xC0, 0x31, 0xD2, 0x0F, 0x30, 0xF4};

struct Run {
    uint64_t rax, rip, icount, kernel_gs_base;
    int hlts;
};

Run run_program(BareMachine& m) {
    m.owner_.hlts = 0;
    EXPECT_EQ(m.cpu_.run(1000), StopReason::Owner);
    const CpuState& s = m.cpu_.state();
    return {s.gpr[RAX], s.rip, m.cpu_.instructions_retired(), s.kernel_gs_base, m.owner_.hlts};
}

void expect_as_new(Cpu& cpu) {
    const CpuState& s = cpu.state();
    const CpuState fresh;
    EXPECT_EQ(s.rip, fresh.rip);
    EXPECT_EQ(s.rflags, fresh.rflags);
    EXPECT_EQ(s.cr0, fresh.cr0);
    EXPECT_EQ(s.cr3, fresh.cr3);
    EXPECT_EQ(s.efer, fresh.efer);
    EXPECT_EQ(s.gpr[RAX], 0u);
    EXPECT_EQ(s.gpr[RBX], 0u);
    EXPECT_EQ(s.kernel_gs_base, 0u);
    EXPECT_EQ(s.mode, Mode::Real16);
    EXPECT_EQ(cpu.instructions_retired(), 0u);
    const Cpu::CacheStats c = cpu.cache_stats();
    EXPECT_EQ(c.blocks_built, 0u);
    EXPECT_EQ(c.blocks, 0u);
    EXPECT_EQ(c.insns, 0u);
    EXPECT_EQ(c.insns_decoded, 0u);
}

void check_reset(Engine engine) {
    BareMachine m;
    ASSERT_TRUE(m.cpu_.set_engine(engine));
    m.load(kProgram);
    m.cpu_.state().gpr[RBX] = 37;
    m.cpu_.state_changed();
    const CpuState start = m.cpu_.state();
    const Run first = run_program(m);
    EXPECT_EQ(first.rax, 42u);
    EXPECT_EQ(first.kernel_gs_base, 42u);
    EXPECT_EQ(first.hlts, 1);
    if (engine == Engine::Translate) {
        EXPECT_GT(m.cpu_.translator_stats().blocks_translated, 0u);
    }

    m.cpu_.reset();
    expect_as_new(m.cpu_);
    EXPECT_EQ(m.cpu_.engine(), engine);
    EXPECT_EQ(m.cpu_.translator_stats().blocks_translated, 0u);
    EXPECT_EQ(m.cpu_.translator_stats().cache_flushes, 0u);

    m.cpu_.add_ram(0, BareMachine::kRamSize, m.ram_);
    m.cpu_.state() = start;
    m.cpu_.state_changed();
    const Run again = run_program(m);
    EXPECT_EQ(again.rax, first.rax);
    EXPECT_EQ(again.rip, first.rip);
    EXPECT_EQ(again.icount, first.icount);
    EXPECT_EQ(again.kernel_gs_base, first.kernel_gs_base);
    EXPECT_EQ(again.hlts, 1);
}

TEST(ResetTest, InterpreterIsNewAgainAndRunsTheSame) {
    check_reset(Engine::Interp);
}

TEST(ResetTest, TranslatorKeepsItsEngineAndRunsTheSame) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    check_reset(Engine::Translate);
}

// written_pages(): every page stored to since the CPU was made, through a TLB flush too,
// and no page only read or executed.
void check_written_pages(Engine engine) {
    BareMachine m;
    if (!m.cpu_.set_engine(engine)) GTEST_SKIP() << "engine not available";
    // mov [0x5000], al; mov rax, cr3; mov cr3, rax; mov [0x7008], al; mov al, [0x6000];
    // mov edi, 0x9000; mov ecx, 64; rep stosb; hlt
    const uint8_t code[] = {0x88, 0x04, 0x25, 0x00, 0x50, 0x00, 0x00, 0x0F, 0x20, 0xD8,
                            0x0F, 0x22, 0xD8, 0x88, 0x04, 0x25, 0x08, 0x70, 0x00, 0x00,
                            0x8A, 0x04, 0x25, 0x00, 0x60, 0x00, 0x00, 0xBF, 0x00, 0x90,
                            0x00, 0x00, 0xB9, 0x40, 0x00, 0x00, 0x00, 0xF3, 0xAA, 0xF4};
    m.load(code);
    EXPECT_EQ(m.cpu_.written_pages(), 0u);
    EXPECT_EQ(m.cpu_.run(1000), StopReason::Owner);
    EXPECT_EQ(m.owner_.hlts, 1);
    const uint64_t w = m.cpu_.written_pages();
    for (int page : {5, 7, 9}) EXPECT_TRUE(w >> page & 1) << page;
    for (int page : {6, 8, 16}) EXPECT_FALSE(w >> page & 1) << page;  // read, none, code
    m.cpu_.reset();
    EXPECT_EQ(m.cpu_.written_pages(), 0u);
}

TEST(ResetTest, WrittenPagesInterpreter) {
    check_written_pages(Engine::Interp);
}

TEST(ResetTest, WrittenPagesTranslator) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    check_written_pages(Engine::Translate);
}

}  // namespace
}  // namespace softkvm::cpu::test
