// A map of the translator's generated code for profilers (docs/translator.md, "Profiling
// translated code"): with SOFTKVM_JIT_MAP=FILE in the environment, every translation
// appends one line to FILE naming its host code range, the guest block it runs and the
// block's instructions, so `scripts/jit_profile.py` can attribute the samples that
// `perf record` takes in the code cache (a memfd mapping perf cannot resolve) to guest
// code and tell which instructions ran as host code and which through their handlers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace softkvm::cpu {

struct Block;

class JitMap {
  public:
    // The process's map named by SOFTKVM_JIT_MAP (one for every vCPU's translator), or
    // null when it is unset or empty. A file that cannot be opened is reported on stderr
    // and the run goes on without a map.
    static std::shared_ptr<JitMap> from_environment();
    explicit JitMap(std::FILE* out) : out_(out) {}
    ~JitMap();
    JitMap(const JitMap&) = delete;
    JitMap& operator=(const JitMap&) = delete;

    // One translation: `size` bytes of host code at `host` for block `b`, entered with the
    // guest at `rip`, in epoch `epoch` of code cache `cache` (a flush reuses host
    // addresses). The first translation of each epoch of a cache is preceded by a line
    // `# epoch E at NS` (CLOCK_MONOTONIC nanoseconds), so that a profiler can tell a
    // sample taken before a flush from one taken after it (scripts/jit_profile.py).
    void record(const Block& b, const void* host, size_t size, uint64_t rip, uint64_t epoch,
                const void* cache);

  private:
    std::mutex lock_;  // vCPU threads translate concurrently
    std::FILE* out_;
    std::unordered_map<const void*, uint64_t> epochs_;  // each cache's last epoch recorded
};

}  // namespace softkvm::cpu
