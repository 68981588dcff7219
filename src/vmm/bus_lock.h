// The VMM's bus-lock policy (spec §4): QEMU's `bus-lock-ratelimit` semantics. One
// limiter per VM, shared by its vCPUs, with 1-second slices: after a run whose exit
// carries KVM_RUN_X86_BUS_LOCK the vCPU is delayed for as long as the limiter says. On
// emu the delay is taken in the vCPU's virtual time (deterministic); on kvm the vCPU
// thread sleeps. Statistics: count, split vs non-WB, total delay, counts by guest RIP.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>

#include "common/kvm_types.h"

namespace softkvm::vmm {

// A token-per-slice rate limiter: at most `per_slice` events per `slice_ns`, with the
// delay that brings an over-quota burst back to that rate (QEMU's RateLimit semantics:
// an exhausted slice is stretched in proportion to the events dispatched in it).
class RateLimiter {
  public:
    static constexpr uint64_t kSliceNs = 1'000'000'000;  // 1 s (QEMU BUS_LOCK_SLICE_TIME)
    explicit RateLimiter(uint64_t per_slice, uint64_t slice_ns = kSliceNs)
        : quota_(per_slice), slice_ns_(slice_ns) {}
    // Accounts one event at time `now_ns` (any monotonic clock); returns the delay in ns
    // the caller must wait before continuing (0: none). A quota of 0 never delays.
    uint64_t account(uint64_t now_ns);

  private:
    std::mutex mu_;
    uint64_t quota_, slice_ns_;
    uint64_t start_ = 0, end_ = 0, dispatched_ = 0;
    bool started_ = false;
};

struct BusLockStats {
    uint64_t count = 0;
    uint64_t split = 0, not_wb = 0, unknown = 0;  // unknown: kvm (the kind is not reported)
    uint64_t delay_ns = 0;
    std::map<uint64_t, uint64_t> by_rip;  // exact instruction RIP (emu only)
};

class BusLockPolicy {
  public:
    // `limit`: bus locks per second for the whole VM; 0 counts them without a limit.
    explicit BusLockPolicy(uint64_t limit) : limit_(limit), limiter_(limit) {}
    uint64_t limit() const { return limit_; }
    // After a run whose flags have KVM_RUN_X86_BUS_LOCK: records it and returns the
    // delay (ns) to impose on the vCPU, measured from `now_ns`.
    uint64_t on_bus_lock(const abi::RunState& rs, uint64_t now_ns);
    BusLockStats stats();

  private:
    uint64_t limit_;
    RateLimiter limiter_;
    std::mutex mu_;
    BusLockStats stats_;
};

}  // namespace softkvm::vmm
