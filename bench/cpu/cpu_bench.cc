// Micro-benchmarks of the interpreter's hot paths (Google Benchmark). Whole-guest
// figures against QEMU TCG come from scripts/bench.sh.
#include <benchmark/benchmark.h>

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

}  // namespace
}  // namespace softkvm::cpu::test

BENCHMARK_MAIN();
