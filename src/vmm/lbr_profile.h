// The host-side LBR sampler behind `softkvm profile --lbr` (spec §2.3: the host-side LBR
// user). It takes the bootstrap processor's LBR unit from the guest, reads the branch
// stack every `period` retired instructions (exact points in virtual time, so a run is
// repeatable), and aggregates the from->to pairs and the call chains the records imply.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "accel/accel.h"
#include "common/result.h"
#include "vmm/symbols.h"

namespace softkvm::vmm {

class Machine;

class LbrProfile {
  public:
    // `symbols` names addresses for the call chains; it must outlive the profile.
    LbrProfile(uint64_t period, const SymbolTable& symbols) : period_(period), symbols_(symbols) {}

    // Takes the unit (LBR_SELECT 0: every branch class at every CPL) and installs the
    // sampler. Errors: EINVAL when the machine cannot be sampled (kvm, several vCPUs).
    Status attach(Machine& m);
    // Gives the unit back to the guest.
    void detach(Machine& m);

    // One sample: the branch stack, newest record first.
    void add_sample(const std::vector<accel::Vcpu::BranchRecord>& newest_first);

    struct Pair {
        uint64_t from = 0, to = 0, count = 0;
    };
    // Every from->to pair seen, most frequent first (ties: by address, so output is stable).
    std::vector<Pair> pairs() const;
    // Call chains "outer;...;inner" (function names, or hex addresses without a symbol),
    // with the number of samples that ended in each.
    const std::map<std::string, uint64_t>& chains() const { return chains_; }

    uint64_t period() const { return period_; }
    uint64_t samples() const { return samples_; }
    uint64_t records() const { return records_; }

  private:
    struct PairHash {
        size_t operator()(const std::pair<uint64_t, uint64_t>& p) const {
            return std::hash<uint64_t>()(p.first * 0x9E3779B97F4A7C15ull ^ p.second);
        }
    };
    std::string chain_of(const std::vector<accel::Vcpu::BranchRecord>& newest_first) const;
    std::string name_of(uint64_t addr) const;

    uint64_t period_;
    const SymbolTable& symbols_;
    uint64_t samples_ = 0, records_ = 0;
    std::unordered_map<std::pair<uint64_t, uint64_t>, uint64_t, PairHash> counts_;
    std::map<std::string, uint64_t> chains_;
};

}  // namespace softkvm::vmm
