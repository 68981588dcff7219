#include "vmm/bus_lock.h"

namespace softkvm::vmm {

uint64_t RateLimiter::account(uint64_t now) {
    std::lock_guard<std::mutex> lock(mu_);
    if (quota_ == 0) return 0;
    if (!started_ || now > end_) {
        // The previous slice (possibly stretched) is over: start counting afresh.
        started_ = true;
        start_ = now;
        end_ = now + slice_ns_;
        dispatched_ = 0;
    }
    ++dispatched_;
    if (dispatched_ < quota_) return 0;
    // Quota used up: the slice lasts as many slices as events were dispatched in it
    // per quota, and the caller waits until it ends.
    const long double slices = static_cast<long double>(dispatched_) / quota_;
    end_ = start_ + static_cast<uint64_t>(slices * slice_ns_);
    return end_ > now ? end_ - now : 0;
}

uint64_t BusLockPolicy::on_bus_lock(const abi::RunState& rs, uint64_t now_ns) {
    const uint64_t delay = limiter_.account(now_ns);
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.count;
    if (!rs.bus_lock.known)
        ++stats_.unknown;
    else if (rs.bus_lock.split)
        ++stats_.split;
    else
        ++stats_.not_wb;
    if (rs.bus_lock.known) ++stats_.by_rip[rs.bus_lock.rip];
    stats_.delay_ns += delay;
    return delay;
}

BusLockStats BusLockPolicy::stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
}

}  // namespace softkvm::vmm
