#include "vmm/lbr_profile.h"

#include <fmt/format.h>

#include <algorithm>

#include "vmm/machine.h"

namespace softkvm::vmm {

Status LbrProfile::attach(Machine& m) {
    auto st = m.set_sampler(period_, [this](accel::Vcpu& v) { add_sample(v.host_lbr_read()); });
    if (!st) return st;
    // LBR_SELECT 0 suppresses nothing: what `perf record -b` asks for (any branch).
    return m.boot_vcpu().host_lbr_acquire(0);
}

void LbrProfile::detach(Machine& m) {
    m.boot_vcpu().host_lbr_release();
}

void LbrProfile::add_sample(const std::vector<accel::Vcpu::BranchRecord>& newest_first) {
    ++samples_;
    records_ += newest_first.size();
    for (const accel::Vcpu::BranchRecord& r : newest_first) ++counts_[{r.from, r.to}];
    if (!newest_first.empty()) ++chains_[chain_of(newest_first)];
}

std::vector<LbrProfile::Pair> LbrProfile::pairs() const {
    std::vector<Pair> out;
    out.reserve(counts_.size());
    for (const auto& [k, n] : counts_) out.push_back({k.first, k.second, n});
    std::sort(out.begin(), out.end(), [](const Pair& a, const Pair& b) {
        if (a.count != b.count) return a.count > b.count;
        return a.from != b.from ? a.from < b.from : a.to < b.to;
    });
    return out;
}

std::string LbrProfile::name_of(uint64_t addr) const {
    const SymbolTable::Symbol* s = symbols_.find(addr);
    return s ? s->name : fmt::format("{:#x}", addr);
}

// The records carry no branch class, so the chain comes from the symbols: a branch that
// lands on a function's first byte enters it (a call, an interrupt or a tail jump), a
// branch from one function into the middle of another leaves it (a return, an IRET).
// Starting from the function of the oldest record's source, the chain follows the
// records oldest to newest; a return to a function that is not the caller on record
// starts the chain again from that function (the stack holds only the last branches).
std::string LbrProfile::chain_of(const std::vector<accel::Vcpu::BranchRecord>& newest_first) const {
    constexpr size_t kMaxDepth = 64;
    std::vector<std::string> chain{name_of(newest_first.back().from)};
    for (auto it = newest_first.rbegin(); it != newest_first.rend(); ++it) {
        const SymbolTable::Symbol* from = symbols_.find(it->from);
        const SymbolTable::Symbol* to = symbols_.find(it->to);
        if (to && it->to == to->addr) {  // entering a function
            if (chain.size() < kMaxDepth) chain.push_back(to->name);
            continue;
        }
        if (from == to && from) continue;  // inside one function
        const std::string dest = to ? to->name : fmt::format("{:#x}", it->to);
        if (chain.size() > 1 && chain[chain.size() - 2] == dest) {
            chain.pop_back();  // back to the caller
        } else if (chain.back() != dest) {
            chain.assign(1, dest);  // a caller the records do not show
        }
    }
    std::string out;
    for (const std::string& f : chain) out += (out.empty() ? "" : ";") + f;
    return out;
}

}  // namespace softkvm::vmm
