// Micro-benchmarks of the interpreter's hot paths (Google Benchmark). Whole-guest
// figures against QEMU TCG come from scripts/bench.sh.
#include <benchmark/benchmark.h>

#include <memory>

#include "bare_machine.h"

namespace softkvm::cpu::test {
namespace {

// mov $N,%ecx; xor %eax,%eax; mov $0x12345,%edx
// 1: add %edx,%eax; xor $0x55,%eax; rol $3,%eax; lea 1(%rdx,%rax),%edx;
//    mov %eax,-8(%rsp); add -8(%rsp),%edx; imul $7,%eax,%eax; dec %ecx; jnz 1b
// hlt
constexpr uint8_t kIntLoop[] = {0xb9, 0x80, 0x96, 0x98, 0x00, 0x31, 0xc0, 0xba, 0x45, 0x23,
                                0x01, 0x00, 0x01, 0xd0, 0x83, 0xf0, 0x55, 0xc1, 0xc0, 0x03,
                                0x8d, 0x54, 0x02, 0x01, 0x89, 0x44, 0x24, 0xf8, 0x03, 0x54,
                                0x24, 0xf8, 0x6b, 0xc0, 0x07, 0xff, 0xc9, 0x75, 0xe5, 0xf4};

// state.range(1): the engine (0 interp, 1 translate: docs/translator.md).
void BM_IntegerLoop(benchmark::State& state) {
    uint64_t insns = 0;
    for (auto _ : state) {
        BareMachine m;
        if (state.range(1) && !m.cpu_.set_engine(Engine::Translate)) {
            state.SkipWithError("no translating engine in this build");
            return;
        }
        m.load(kIntLoop);
        const uint32_t iterations = static_cast<uint32_t>(state.range(0));
        std::memcpy(m.ram_ + BareMachine::kCode + 1, &iterations, 4);
        m.cpu_.run(0);
        insns += m.cpu_.instructions_retired();
    }
    state.counters["guest_insns/s"] =
        benchmark::Counter(static_cast<double>(insns), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_IntegerLoop)
    ->Args({1000000, 0})
    ->Args({1000000, 1})
    ->ArgNames({"iterations", "translate"})
    ->Unit(benchmark::kMillisecond);

// kBlocks straight-line blocks, each run once: add %ebx,%eax; xor $0x55,%eax;
// mov %eax,-8(%rsp); add -8(%rsp),%edx; lea 1(%rdx,%rax),%edx; imul $7,%eax,%eax; jmp
// to the next (the last one: hlt). Under translate (which the CPU library does at a
// block's first run) this is the cost of translating a block; beside interp, what
// translation adds per block.
constexpr uint8_t kFirstRunBlock[] = {0x01, 0xd8, 0x83, 0xf0, 0x55, 0x89, 0x44, 0x24,
                                      0xf8, 0x03, 0x54, 0x24, 0xf8, 0x8d, 0x54, 0x02,
                                      0x01, 0x6b, 0xc0, 0x07, 0xeb, 0x00};
constexpr size_t kBlocks = 2000;

void BM_FirstRunBlocks(benchmark::State& state) {
    static_assert(BareMachine::kCode + kBlocks * sizeof(kFirstRunBlock) < BareMachine::kStubs);
    uint64_t blocks = 0, translated = 0;
    for (auto _ : state) {
        state.PauseTiming();  // a new machine: nothing decoded or translated yet
        auto m = std::make_unique<BareMachine>();
        if (state.range(0) && !m->cpu_.set_engine(Engine::Translate)) {
            state.SkipWithError("no translating engine in this build");
            return;
        }
        for (size_t k = 0; k < kBlocks; ++k)
            std::memcpy(m->ram_ + BareMachine::kCode + k * sizeof(kFirstRunBlock), kFirstRunBlock,
                        sizeof(kFirstRunBlock));
        m->ram_[BareMachine::kCode + kBlocks * sizeof(kFirstRunBlock)] = 0xf4;  // hlt
        state.ResumeTiming();
        m->cpu_.run(0);
        if (m->owner_.hlts != 1) {
            state.SkipWithError("the guest did not reach its HLT");
            return;
        }
        blocks += kBlocks;
        translated += m->cpu_.translator_stats().blocks_translated;
        state.PauseTiming();
        m.reset();
        state.ResumeTiming();
    }
    state.counters["blocks"] = benchmark::Counter(
        static_cast<double>(blocks), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    state.counters["translated/run"] =
        static_cast<double>(translated) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_FirstRunBlocks)->Arg(0)->Arg(1)->ArgName("translate")->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace softkvm::cpu::test

BENCHMARK_MAIN();
