// Benchmark (not a test): encryption-ID charge+release pairs per second through the
// SQLite store, one process alone and several processes contending for one database.
//   eid_bench [SECONDS] [PROCESSES...]     default: 2 s; 1, 2 and 4 processes
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "eid/store.h"

using namespace softkvm::eid;

namespace {

// Runs acquire+release pairs for `seconds`; returns the number of pairs.
long pairs_for(const std::string& db, double seconds) {
    auto s = Store::open(db);
    if (!s) return -1;
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    const uint64_t st = process_start_time(getpid());
    long n = 0;
    while (std::chrono::steady_clock::now() < end) {
        auto l = s.value()->acquire("/bench", Type::Sev, getpid(), st);
        if (!l) return -1;
        if (!s.value()->release(l->id)) return -1;
        ++n;
    }
    return n;
}

double run(const std::string& db, int procs, double seconds) {
    std::vector<int> fds;
    std::vector<pid_t> kids;
    for (int p = 0; p < procs; ++p) {
        int fd[2];
        if (pipe(fd) != 0) return -1;
        const pid_t pid = fork();
        if (pid == 0) {
            close(fd[0]);
            const long n = pairs_for(db, seconds);
            if (write(fd[1], &n, sizeof n) != sizeof n) _exit(1);
            _exit(0);
        }
        close(fd[1]);
        fds.push_back(fd[0]);
        kids.push_back(pid);
    }
    long total = 0;
    for (size_t k = 0; k < kids.size(); ++k) {
        long n = -1;
        if (read(fds[k], &n, sizeof n) != sizeof n || n < 0) total = -1;
        if (total >= 0) total += n;
        close(fds[k]);
        waitpid(kids[k], nullptr, 0);
    }
    return total < 0 ? -1 : static_cast<double>(total) / seconds;
}

}  // namespace

int main(int argc, char** argv) {
    const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
    std::vector<int> procs;
    for (int k = 2; k < argc; ++k) procs.push_back(std::atoi(argv[k]));
    if (procs.empty()) procs = {1, 2, 4};
    const auto dir = std::filesystem::temp_directory_path() / fmt::format("eid-bench-{}", getpid());
    std::filesystem::create_directories(dir);
    const std::string db = (dir / "eid.db").string();
    {
        auto s = Store::init(db, AsidRange{509, 100});
        if (!s || !s.value()->update(
                      [](Controller& c, std::vector<EventRecord>&) { return c.mkdir("/bench"); })) {
            std::fprintf(stderr, "eid_bench: cannot create %s\n", db.c_str());
            return 1;
        }
    }
    std::printf("%-10s %16s\n", "processes", "pairs/s (total)");
    int status = 0;
    for (int p : procs) {
        const double rate = run(db, p, seconds);
        if (rate < 0) {
            std::fprintf(stderr, "eid_bench: a worker failed\n");
            status = 1;
            continue;
        }
        std::printf("%-10d %16.0f\n", p, rate);
    }
    std::filesystem::remove_all(dir);
    return status;
}
