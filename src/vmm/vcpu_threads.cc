// More than one vCPU on an accelerator whose vCPUs run in parallel (kvm): a thread per
// vCPU, as in QEMU and Firecracker. The application processors start in KVM's
// wait-for-SIPI state and are started by the guest through the in-kernel local APIC
// (INIT/SIPI); the VMM only runs them. Exits are dispatched one at a time (the devices
// are not thread-safe); the first vCPU whose exit ends the run (guest exit, triple fault,
// an error) or a stop request ends it for all: the others are kicked out of KVM_RUN and
// their threads joined before run() returns.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

#include "vmm/machine.h"

namespace softkvm::vmm {

RunReport Machine::run_threads() {
    std::vector<accel::Vcpu*> all = {vcpu_.get()};
    for (auto& ap : aps_) all.push_back(ap.get());
    std::mutex mu;  // guards everything below and the platform's devices
    RunReport rep;
    bool done = false;
    std::vector<bool> parked(all.size(), false);  // halted with nothing to wake it

    // Ends the run for every vCPU (mu held). `v`: the vCPU whose exit ended it.
    auto finish = [&](End end, std::string detail, accel::Vcpu* v) {
        if (done) return;
        done = true;
        rep.end = end;
        rep.detail = std::move(detail);
        if (v && (end == End::Shutdown || end == End::Stalled || end == End::InternalError ||
                  end == End::Failure))
            rep.state = v->dump_state();
        for (accel::Vcpu* other : all)
            if (other != v) other->kick();
    };
    auto vcpu_loop = [&](size_t index) {
        accel::Vcpu& v = *all[index];
        for (;;) {
            if (index == 0) {
                std::lock_guard<std::mutex> lock(mu);
                arm_pit();  // the bootstrap processor's thread keeps the PIT's IRQ 0
            }
            const Status st = v.run();
            std::lock_guard<std::mutex> lock(mu);
            if (done) return;
            if (!st) return finish(End::Failure, st.error().message, &v);
            if (stop_signal_) {
                rep.stop_signal = stop_signal_;
                return finish(End::Interrupted, "", nullptr);
            }
            abi::RunState& rs = v.run_state();
            rs.immediate_exit = 0;
            if (auto bl = after_run(v); !bl) return finish(End::Failure, bl.error().message, &v);
            if (index == 0 && pit_deadline_passed()) continue;
            if (rs.exit_reason == abi::KVM_EXIT_INTR) continue;  // a kick that was no stop
            if (rs.exit_reason == abi::KVM_EXIT_HLT) {
                parked[index] = true;
                if (std::find(parked.begin(), parked.end(), false) == parked.end())
                    return finish(End::Halted, "every vCPU halted with nothing to wake it",
                                  nullptr);
                continue;  // KVM_RUN again: another vCPU may still wake this one
            }
            parked[index] = false;
            Dispatch d = dispatch_exit(rs, platform_);
            if (d.stop) return finish(d.end, d.detail, &v);
        }
    };

    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (size_t k = 1; k < all.size(); ++k) threads.emplace_back(vcpu_loop, k);
    vcpu_loop(0);  // the bootstrap processor on this thread
    for (std::thread& t : threads) t.join();
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (accel::Vcpu* v : all) rep.instructions += v->instructions_retired();
    if (auto code = platform_.debug_exit->code()) rep.guest_code = *code;
    rep.stats = platform_.stats;
    collect_counters(rep);
    finish_report(rep);
    return rep;
}

}  // namespace softkvm::vmm
