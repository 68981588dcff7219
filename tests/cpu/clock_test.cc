// Virtual time inside a block (Cpu::clock()): RDTSC, RDMSR and WRMSR of IA32_TSC and the
// devices an instruction reaches see the instructions the running block has retired so
// far, in both engines, whatever instruction the block started at; a deadline an
// instruction sets is taken at the instruction boundary it names. Also the alignment-check
// state derived from a loaded CPL (Cpu::state_changed()).
#include <gtest/gtest.h>

#include <vector>

#include "bare_machine.h"
#include "cpu/translate/translator.h"

namespace softkvm::cpu::test {
namespace {

constexpr uint64_t kMmio = BareMachine::kDevice;  // the device page above RAM
constexpr uint64_t kScratch = 0x100000;           // where the programs store what they read
constexpr uint32_t kIa32Tsc = 0x10;               // IA32_TSC (SDM vol. 4, table 2-2)

// MMIO reads exit to the owner first and are answered on the next run() (a VMM behind
// KVM_EXIT_MMIO); an MMIO write programs the timer: its value is the next deadline.
class TimerDevice : public RecordingOwner {
  public:
    uint64_t pending = ~0ull;
    std::vector<uint64_t> fired_at;  // clock() at each deadline() call

    Action mmio_read(uint64_t gpa, uint8_t, uint64_t& value) override {
        if (pending != gpa) {
            pending = gpa;
            return Action::Exit;
        }
        pending = ~0ull;
        value = 0x5A;
        return Action::Done;
    }
    Action mmio_write(uint64_t, uint8_t, uint64_t value) override {
        cpu->set_deadline(value);
        return Action::Done;
    }
    bool deadline() override {
        fired_at.push_back(cpu->clock());
        return false;
    }
};

// A bare machine with the device page above RAM, on either engine (every block translated
// at its first run).
struct Machine {
    explicit Machine(Engine e) : cpu(dev) {
        m.share_with_device_page(cpu);
        dev.cpu = &cpu;
        if (e == Engine::Translate) {
            ok = cpu.set_engine(Engine::Translate);
            if (ok) cpu.translator()->set_translate_after(1);
        }
    }
    void load(const std::vector<uint8_t>& code) {
        std::memcpy(m.ram_ + BareMachine::kCode, code.data(), code.size());
    }
    bool run_to_hlt() {
        for (int k = 0; k < 100; ++k) {
            cpu.run(0);
            if (dev.hlts) return true;
        }
        return false;
    }
    uint32_t scratch(int k) const {
        uint32_t v;
        std::memcpy(&v, m.ram_ + kScratch + 4 * k, 4);
        return v;
    }
    BareMachine m;
    TimerDevice dev;
    Cpu cpu;
    bool ok = true;
};

class ClockTest : public ::testing::TestWithParam<Engine> {
  protected:
    void SetUp() override {
        if (GetParam() == Engine::Translate && !translator_available())
            GTEST_SKIP() << "no translating engine on this host";
    }
};

std::vector<uint8_t> nops(size_t n) {
    return std::vector<uint8_t>(n, 0x90);
}
void append(std::vector<uint8_t>& c, const std::vector<uint8_t>& more) {
    c.insert(c.end(), more.begin(), more.end());
}

// RDTSC after k instructions of its block reads the clock + k.
TEST_P(ClockTest, RdtscCountsTheInstructionsOfItsBlock) {
    Machine x(GetParam());
    ASSERT_TRUE(x.ok);
    std::vector<uint8_t> c = nops(5);
    append(c, {0x0F, 0x31});  // rdtsc (instruction 5)
    append(c, {0x89, 0xC6});  // mov esi, eax
    append(c, nops(2));
    append(c, {0x0F, 0x31, 0xF4});  // rdtsc (instruction 9); hlt
    x.load(c);
    x.cpu.skip_time(1000);  // halted time counts as well
    ASSERT_TRUE(x.run_to_hlt());
    EXPECT_EQ(x.cpu.state().gpr[RSI], 1005u);
    EXPECT_EQ(x.cpu.state().gpr[RAX], 1009u);
    EXPECT_EQ(x.cpu.instructions_retired(), 11u);  // the HLT retired too
    if (GetParam() == Engine::Translate) {
        EXPECT_GE(x.cpu.translator_stats().blocks_translated, 1u);
    }
}

// WRMSR IA32_TSC sets the TSC as of that instruction; RDTSC and RDMSR later in the block
// read it plus the instructions between (with halted time before the write).
TEST_P(ClockTest, TscWrittenInsideABlock) {
    Machine x(GetParam());
    ASSERT_TRUE(x.ok);
    std::vector<uint8_t> c = {0xB9, kIa32Tsc, 0, 0, 0,  // mov ecx, IA32_TSC
                              0xB8, 0,        0, 1, 0,  // mov eax, 0x10000
                              0x31, 0xD2,               // xor edx, edx
                              0x0F, 0x30};              // wrmsr (instruction 3)
    append(c, nops(2));
    append(c, {0x0F, 0x31, 0x89, 0xC6});  // rdtsc: 0x10000 + 3; mov esi, eax
    append(c, {0x0F, 0x32, 0xF4});        // rdmsr: 0x10000 + 5; hlt
    x.load(c);
    x.cpu.skip_time(777);
    ASSERT_TRUE(x.run_to_hlt());
    EXPECT_EQ(x.cpu.state().gpr[RSI], 0x10003u);
    EXPECT_EQ(x.cpu.state().gpr[RAX], 0x10005u);
}

// A deadline an instruction sets through a device (an in-kernel timer's MMIO write, which
// does not leave the block) fires at the instruction boundary where the clock reaches it,
// not at the end of the block.
TEST_P(ClockTest, DeadlineSetInsideABlockFiresOnTime) {
    Machine x(GetParam());
    ASSERT_TRUE(x.ok);
    std::vector<uint8_t> c = {0xB8, 9,    0,    0,    0,                  // mov eax, 9
                              0x89, 0x04, 0x25, 0x00, 0x00, 0x40, 0x00};  // mov [kMmio], eax
    append(c, nops(20));
    c.push_back(0xF4);  // hlt
    x.load(c);
    ASSERT_TRUE(x.run_to_hlt());
    ASSERT_EQ(x.dev.fired_at.size(), 1u);
    EXPECT_EQ(x.dev.fired_at[0], 9u);
    EXPECT_EQ(x.cpu.instructions_retired(), 23u);
}

// The fuzz_cpu finding: after MMIO read exits, the translating engine starts a block at the
// instruction that exited (a polling loop, Cpu::continue_after_exit) while the interpreter
// resumes the old block, so the RDTSC after it belongs to blocks that start 24 instructions
// apart. Each RDTSC reads the number of instructions retired before it.
TEST(ClockEngines, RdtscAfterMmioExitsWhereTheEnginesSplitBlocksDifferently) {
    if (!translator_available()) GTEST_SKIP() << "no translating engine on this host";
    std::vector<uint8_t> c = {0xB9, 3,   0, 0,    0,  // mov ecx, 3
                              0xBF, 0,   0, 0x10, 0,  // mov edi, kScratch
                              0xEB, 0x00};            // jmp loop (ends the block)
    const size_t loop = c.size();
    append(c, nops(40));
    append(c, {0x8B, 0x04, 0x25, 0x00, 0x00, 0x40, 0x00});  // mov eax, [kMmio]: 40th
    append(c, nops(23));                                    // the block's 64 instructions end here
    append(c, nops(5));
    append(c, {0x0F, 0x31});              // rdtsc
    append(c, {0x89, 0x07});              // mov [rdi], eax
    append(c, {0x48, 0x83, 0xC7, 0x04});  // add rdi, 4
    append(c, {0xFF, 0xC9});              // dec ecx
    c.push_back(0x75);                    // jnz loop
    c.push_back(static_cast<uint8_t>(loop - (c.size() + 1)));
    c.push_back(0xF4);  // hlt
    Machine i(Engine::Interp), t(Engine::Translate);
    ASSERT_TRUE(t.ok);
    for (Machine* x : {&i, &t}) {
        x->load(c);
        ASSERT_TRUE(x->run_to_hlt());
    }
    // 3 instructions before the loop, 74 per iteration, 69 of them before its RDTSC.
    for (int k = 0; k < 3; ++k) {
        EXPECT_EQ(i.scratch(k), 3u + 74u * k + 69u) << "interpreter, iteration " << k;
        EXPECT_EQ(t.scratch(k), 3u + 74u * k + 69u) << "translator, iteration " << k;
    }
    EXPECT_EQ(i.cpu.instructions_retired(), t.cpu.instructions_retired());
    // The premise: the translating engine decoded a block starting at the MMIO load.
    EXPECT_GT(t.cpu.cache_stats().blocks_built, i.cpu.cache_stats().blocks_built);
}

INSTANTIATE_TEST_SUITE_P(Engines, ClockTest, ::testing::Values(Engine::Interp, Engine::Translate),
                         [](const auto& p) { return std::string(engine_name(p.param)); });

// state_changed() derives alignment checking from the CPL it loads (SS.DPL), not from the
// CPL before: CR0.AM, RFLAGS.AC and CPL 3 make a misaligned load raise #AC (SDM vol. 3
// §6.15, interrupt 17).
TEST(AlignmentCheck, LoadedAtCpl3) {
    BareMachine m;
    m.cpu_.state().cr0 |= CR0_AM;
    m.cpu_.state().rflags |= FLAG_AC;
    m.enter_ring3();                                        // state_changed() with SS.DPL 3
    const uint8_t code[] = {0x8B, 0x44, 0x24, 0x01, 0xF4};  // mov eax, [rsp + 1]; hlt
    m.load(code);
    m.cpu_.run(100);
    EXPECT_EQ(m.vector_taken(), VEC_AC);
}

}  // namespace
}  // namespace softkvm::cpu::test
