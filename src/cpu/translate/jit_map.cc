// The translator's code map for profilers (jit_map.h). One line per translation:
//   <host start> <size> <epoch> <guest physical start> <rip> <mode> <mnemonic>[*] ...
// hexadecimal numbers without 0x, decimal epoch and mode (cpu::Mode); `*` marks an
// instruction translated to host code, the others call their interpreter handler. Before
// a cache's first translation in an epoch: `# epoch <epoch> at <CLOCK_MONOTONIC ns>`.
#include "cpu/translate/jit_map.h"

#include <Zydis/Zydis.h>

#include <cstdlib>
#include <ctime>

#include "cpu/block.h"
#include "cpu/state.h"
#include "cpu/translate/forms.h"

namespace softkvm::cpu {

std::shared_ptr<JitMap> JitMap::from_environment() {
    static const std::shared_ptr<JitMap> map = []() -> std::shared_ptr<JitMap> {
        const char* path = std::getenv("SOFTKVM_JIT_MAP");
        if (!path || !*path) return nullptr;
        std::FILE* f = std::fopen(path, "w");
        if (!f) {
            std::fprintf(stderr, "softkvm: SOFTKVM_JIT_MAP: cannot write %s; no code map\n", path);
            return nullptr;
        }
        return std::make_shared<JitMap>(f);
    }();
    return map;
}

JitMap::~JitMap() {
    std::fclose(out_);
}

void JitMap::record(const Block& b, const void* host, size_t size, uint64_t rip, uint64_t epoch,
                    const void* cache) {
    const auto mode = static_cast<Mode>(b.key & 3);
    std::lock_guard<std::mutex> hold(lock_);
    if (auto [at, added] = epochs_.try_emplace(cache, epoch); added || at->second != epoch) {
        at->second = epoch;
        timespec now{};
        clock_gettime(CLOCK_MONOTONIC, &now);
        std::fprintf(out_, "# epoch %llu at %lld\n", static_cast<unsigned long long>(epoch),
                     static_cast<long long>(now.tv_sec) * 1000000000LL + now.tv_nsec);
    }
    std::fprintf(out_, "%llx %zx %llu %llx %llx %u",
                 static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(host)), size,
                 static_cast<unsigned long long>(epoch),
                 static_cast<unsigned long long>(b.key >> 3), static_cast<unsigned long long>(rip),
                 static_cast<unsigned>(mode));
    for (const DecodedInsn& in : b.insns) {
        Alu kind{};
        const bool native =
            native_form(in, kind) != Native::None || native_branch(in, mode) != Native::None;
        const char* name = ZydisMnemonicGetString(static_cast<ZydisMnemonic>(in.mnemonic));
        std::fprintf(out_, " %s%s", name ? name : "?", native ? "*" : "");
    }
    std::fputc('\n', out_);
    std::fflush(out_);  // complete lines even if the run ends abruptly
}

}  // namespace softkvm::cpu
