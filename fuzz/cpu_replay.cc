// fuzz_cpu_replay: runs fuzz_cpu inputs outside libFuzzer, with the same oracle, and
// checks that the machines' reset is exact: every input gives the same digest (final
// state, events, RAM) whether the inputs run in name order, in reverse or interleaved,
// on machines reused across inputs, on new machines and (--alone) in a process that runs
// nothing else. Also a driver for profiling the target (--repeat).
//
// Usage: fuzz_cpu_replay [--repeat N [--interp] [--fresh]] [--list] [--alone] FILE|DIR...
//        fuzz_cpu_replay --digest FILE
//   --list: one line per input (instructions, run() calls, last stop reason, digest).
//   --alone: also runs each input in a process of its own (this program with --digest,
//   which prints the input's digest), which must give the digest it gave after the
//   inputs before it: nothing outside the machines (a static, the host's state) may
//   carry an input's effects over to the next.
//   --repeat N: runs the inputs N times and prints the CPU time per input; with --interp
//   the interpreter only, with --fresh a machine made for each input (as the target was
//   before its machines were reused), to measure what each part costs.
// As in the target, the interpreter's machine runs from the host floating-point status
// HostFpu::Set, the translator's and new machines from Clear (cpu_machine.h).
// Exit status: 0 all orders agree; 1 an input's digest depends on what ran before it, or
// the machines keep memory an input allocated; 2 bad usage or unreadable input. An oracle
// failure aborts (as under libFuzzer).
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "fuzz/cpu_machine.h"

namespace {

using softkvm::cpu::Engine;
using softkvm::fuzz::CpuFuzzHeader;
using softkvm::fuzz::CpuFuzzMachine;
using softkvm::fuzz::CpuFuzzResult;
using softkvm::fuzz::HostFpu;

struct Input {
    std::string name;
    std::vector<uint8_t> bytes;
};

[[noreturn]] void usage_error(const std::string& msg) {
    std::fprintf(stderr, "fuzz_cpu_replay: %s\n", msg.c_str());
    std::exit(2);
}

void load(const std::filesystem::path& p, std::vector<Input>& out) {
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) {
        std::vector<std::filesystem::path> files;
        for (const auto& e : std::filesystem::directory_iterator(p, ec))
            if (e.is_regular_file()) files.push_back(e.path());
        if (ec) usage_error("cannot list " + p.string() + ": " + ec.message());
        std::sort(files.begin(), files.end());
        for (const auto& f : files) load(f, out);
        return;
    }
    std::ifstream in(p, std::ios::binary);
    if (!in) usage_error("cannot read " + p.string());
    std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in),
                               std::istreambuf_iterator<char>()};
    if (bytes.size() >= sizeof(CpuFuzzHeader)) out.push_back({p.string(), std::move(bytes)});
}

// The target's check of one input on reused machines: interpreter == translator. Returns
// the digest of the result and the RAM, unless `profile` (the target computes none).
uint64_t run_input(CpuFuzzMachine& interp, CpuFuzzMachine* xlate, const Input& in,
                   bool list = false, bool profile = false) {
    const CpuFuzzResult a = interp.run(in.bytes.data(), in.bytes.size());
    if (xlate) {
        const CpuFuzzResult b = xlate->run(in.bytes.data(), in.bytes.size());
        if (std::memcmp(&a, &b, sizeof a) != 0 || !CpuFuzzMachine::same_ram(interp, *xlate)) {
            std::fprintf(stderr,
                         "fuzz_cpu_replay: %s: interpreter (host FPU status set) and translator "
                         "(clear) differ\n",
                         in.name.c_str());
            std::abort();
        }
    }
    if (profile) return 0;
    const uint64_t digest = softkvm::fuzz::cpu_fuzz_digest(a, interp.ram());
    if (list)
        std::printf(
            "%s %llu insns %llu runs stop %llu digest %016llx\n", in.name.c_str(),
            static_cast<unsigned long long>(a.icount), static_cast<unsigned long long>(a.runs),
            static_cast<unsigned long long>(a.stop), static_cast<unsigned long long>(digest));
    return digest;
}

// The digest of `in` in a process that runs nothing else (`self` --digest NAME), or
// false when that process fails (an oracle failure aborts it).
bool digest_alone(const char* self, const Input& in, uint64_t& digest) {
    int fd[2];
    if (pipe(fd) != 0) return false;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    posix_spawn_file_actions_addclose(&fa, fd[1]);
    std::string digest_arg = "--digest", name = in.name;
    char* argv[] = {const_cast<char*>(self), digest_arg.data(), name.data(), nullptr};
    pid_t pid = -1;
    const int err = posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    std::string out;
    char buf[64];
    for (ssize_t n; err == 0 && (n = read(fd[0], buf, sizeof buf)) > 0;) out.append(buf, n);
    close(fd[0]);
    int status = 0;
    if (err != 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        return false;
    char* end = nullptr;
    digest = std::strtoull(out.c_str(), &end, 16);
    return end != out.c_str() && *end == '\n';
}

// C++ allocations not yet freed, counted by the replacement operator new and delete
// below; 0 under AddressSanitizer, whose allocator they are left to.
long live_allocations = 0;
size_t heap_in_use() {
    return static_cast<size_t>(live_allocations);
}

}  // namespace

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SOFTKVM_REPLAY_ASAN 1
#endif
#endif
#if !defined(SOFTKVM_REPLAY_ASAN) && !defined(__SANITIZE_ADDRESS__)
[[gnu::noinline]] void* operator new(size_t n) {
    if (void* p = std::malloc(n ? n : 1)) {
        ++live_allocations;
        return p;
    }
    throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
    if (p) --live_allocations;
    std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, size_t) noexcept {
    if (p) --live_allocations;
    std::free(p);
}
#endif

int main(int argc, char** argv) {
    long repeat = 0;
    bool list = false, interp_only = false, fresh_each = false, alone = false, digest = false;
    std::vector<Input> inputs;
    for (int k = 1; k < argc; ++k) {
        const std::string arg = argv[k];
        if (arg == "--repeat") {
            char* end = nullptr;
            if (k + 1 >= argc) usage_error("--repeat needs a count");
            repeat = std::strtol(argv[++k], &end, 10);
            if (*end || repeat < 1 || repeat > 1000000) usage_error("bad --repeat count");
        } else if (arg == "--list") {
            list = true;
        } else if (arg == "--interp") {
            interp_only = true;
        } else if (arg == "--fresh") {
            fresh_each = true;
        } else if (arg == "--alone") {
            alone = true;
        } else if (arg == "--digest") {
            digest = true;
        } else {
            load(arg, inputs);
        }
    }
    if (inputs.empty()) usage_error("no inputs (usage: fuzz_cpu_replay [--repeat N] FILE|DIR...)");

    if (digest && inputs.size() != 1) usage_error("--digest takes one input");
    CpuFuzzMachine interp(Engine::Interp, HostFpu::Set);
    std::unique_ptr<CpuFuzzMachine> xlate;
    if (!interp_only && CpuFuzzMachine::available(Engine::Translate))
        xlate = std::make_unique<CpuFuzzMachine>(Engine::Translate);

    if (digest) {
        std::printf("%016llx\n",
                    static_cast<unsigned long long>(run_input(interp, xlate.get(), inputs[0])));
        return 0;
    }
    if (repeat) {  // profiling: the same work as the fuzz target, no order checks or digests
        const std::clock_t t0 = std::clock();
        for (long r = 0; r < repeat; ++r) {
            for (const Input& in : inputs) {
                if (!fresh_each) {
                    run_input(interp, xlate.get(), in, false, true);
                    continue;
                }
                CpuFuzzMachine a(Engine::Interp, HostFpu::Set);
                std::unique_ptr<CpuFuzzMachine> b;
                if (xlate) b = std::make_unique<CpuFuzzMachine>(Engine::Translate);
                run_input(a, b.get(), in, false, true);
            }
        }
        const double cpu = static_cast<double>(std::clock() - t0) / CLOCKS_PER_SEC;
        const double runs = static_cast<double>(repeat) * static_cast<double>(inputs.size());
        std::printf(
            "fuzz_cpu_replay: %zu inputs run %ld times (%s, %s): %.1f us CPU per input, "
            "%.0f inputs per CPU second\n",
            inputs.size(), repeat, xlate ? "interpreter and translator" : "interpreter",
            fresh_each ? "a new machine per input" : "reused machines", 1e6 * cpu / runs,
            runs / cpu);
        return 0;
    }

    const size_t n = inputs.size();
    std::vector<uint64_t> first(n);
    for (size_t k = 0; k < n; ++k) {
        first[k] = run_input(interp, xlate.get(), inputs[k], list);
    }
    // Reverse order, then the even-numbered inputs after the odd ones: each input follows
    // different inputs each time.
    std::vector<size_t> order;
    for (size_t k = n; k-- > 0;) order.push_back(k);
    for (size_t k = 1; k < n; k += 2) order.push_back(k);
    for (size_t k = 0; k < n; k += 2) order.push_back(k);
    for (size_t k : order) {
        // Each input frees what it allocated before run() returns (the machines reset after
        // it): else libFuzzer runs every input twice to look for a leak. The first pass
        // has grown the buffers the machines keep.
        const size_t heap_before = heap_in_use();
        const uint64_t again = run_input(interp, xlate.get(), inputs[k]);
        const size_t heap_after = heap_in_use();
        if (heap_after != heap_before) {
            std::fprintf(stderr,
                         "fuzz_cpu_replay: %s leaves %lld more allocations than before it: "
                         "the machines keep what an input allocated\n",
                         inputs[k].name.c_str(),
                         static_cast<long long>(heap_after) - static_cast<long long>(heap_before));
            return 1;
        }
        if (again != first[k]) {
            std::fprintf(stderr,
                         "fuzz_cpu_replay: %s gives digest %016llx after other inputs, "
                         "%016llx the first time: the reset between inputs is not exact\n",
                         inputs[k].name.c_str(), static_cast<unsigned long long>(again),
                         static_cast<unsigned long long>(first[k]));
            return 1;
        }
    }
    // Machines made for one input alone agree as well.
    for (size_t k = 0; k < n; ++k) {
        CpuFuzzMachine fresh(Engine::Interp);
        if (run_input(fresh, nullptr, inputs[k]) != first[k]) {
            std::fprintf(stderr, "fuzz_cpu_replay: %s: a new machine and a reused one differ\n",
                         inputs[k].name.c_str());
            return 1;
        }
    }
    // Each input in a process of its own.
    for (size_t k = 0; alone && k < n; ++k) {
        uint64_t d = 0;
        if (!digest_alone(argv[0], inputs[k], d)) {
            std::fprintf(stderr, "fuzz_cpu_replay: %s: its process of its own failed\n",
                         inputs[k].name.c_str());
            return 1;
        }
        if (d != first[k]) {
            std::fprintf(stderr,
                         "fuzz_cpu_replay: %s gives digest %016llx in a process of its own, "
                         "%016llx after the inputs before it: something outside the machines "
                         "carries over\n",
                         inputs[k].name.c_str(), static_cast<unsigned long long>(d),
                         static_cast<unsigned long long>(first[k]));
            return 1;
        }
    }
    uint64_t all = 0;
    for (uint64_t d : first) all = all * 0x100000001B3ull ^ d;
    std::printf(
        "fuzz_cpu_replay: %zu inputs, %s, same digests in 3 orders, on new machines%s "
        "(%016llx)\n",
        n, xlate ? "interpreter == translator" : "interpreter only", alone ? " and alone" : "",
        static_cast<unsigned long long>(all));
    return 0;
}
