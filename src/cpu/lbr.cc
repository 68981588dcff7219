// The LBR unit: its MSRs, its filter, and applying branches to the stack (lbr.h).
// Walking the trace translated code writes is lbr_trace.cc.
#include "cpu/lbr.h"

#include <algorithm>

#include "cpu/cpu_model.h"

namespace softkvm::cpu {
namespace {

bool canonical(uint64_t v) {
    return static_cast<uint64_t>(static_cast<int64_t>(v << 16) >> 16) == v;
}

}  // namespace

void Lbr::configure(const CpuModel& m) {
    format_ = m.lbr_format;
    depth_ = m.lbr_depth;
    info_ = m.lbr_info;
    from_mask_ = from_has_flags() ? kFromAddr : ~0ull;
    from_mispred_ = from_has_flags() ? msr::LBR_MISPRED : 0;
    info_mask_ = info_ ? ~0ull : 0;
    clear();
}

void Lbr::clear() {
    sync();  // the predictor's steps of the branches traced so far happen all the same
    select_ = 0;
    tos_ = 0;
    e_ = {};
    refresh_filter();
}

void Lbr::apply(uint64_t from, uint64_t to, BranchKind kind, uint8_t cpl, bool taken, bool miss,
                uint64_t now) const {
    using namespace msr;
    const uint8_t f = filter_[filter_index(kind, cpl)];
    if (!taken || !f) return;
    if (f & kFilterPop) {  // call-stack mode: a return pops its call
        tos_ = (tos_ == 0 ? depth_ : tos_) - 1;
        return;
    }
    const uint64_t mispred = miss ? LBR_MISPRED : 0;
    tos_ = tos_ + 1 == depth_ ? 0 : tos_ + 1;
    e_[tos_] = {(from & from_mask_) | (mispred & from_mispred_), to,
                (mispred | std::min(now - last_record_, LBR_INFO_CYCLES)) & info_mask_};
    last_record_ = now;
}

void Lbr::record(uint64_t from, uint64_t to, BranchKind kind, uint8_t cpl, bool mispredicted,
                 uint64_t now) {
    const bool taken = kind != BranchKind::None;
    if (tracing_) sync();  // (mid-chain: the chain's words so far come first)
    if (decoded_ == sh_.widx)
        apply(from, to, kind, cpl, taken, mispredicted, now);
    else
        append(from, to, 0, kind, cpl, taken, true, mispredicted, now);
}

void Lbr::branch(BranchKind kind, uint64_t from, uint64_t to, uint64_t next, bool taken,
                 uint8_t cpl, uint64_t now) {
    // A return that call-stack mode pops moves TOS back: the slots before it first.
    if (tracing_ || decoded_ == sh_.widx || (filter_[filter_index(kind, cpl)] & kFilterPop)) {
        branch_now(kind, from, to, next, taken, cpl, now);
        return;
    }
    append(from, to, next, kind, cpl, taken, false, false, now);
}

bool Lbr::branch_now(BranchKind kind, uint64_t from, uint64_t to, uint64_t next, bool taken,
                     uint8_t cpl, uint64_t now) {
    sync();
    const bool miss = bp_.resolve(kind, from, taken, to, next, now);
    apply(from, to, kind, cpl, taken, miss, now);
    kdecoded_ = ktotal_;
    return miss;
}

void Lbr::refresh_filter() {
    using namespace msr;
    filter_ = {};
    lazy_ = {};
    if (!depth_) {
        lazy_ = {true, true};
        return;
    }
    for (uint8_t cpl = 0; cpl < 4; ++cpl) {
        if (select_ & (cpl == 0 ? LBR_SELECT_CPL_EQ_0 : LBR_SELECT_CPL_NEQ_0)) continue;
        for (int k = static_cast<int>(BranchKind::Jcc); k <= static_cast<int>(BranchKind::Far);
             ++k) {
            const auto kind = static_cast<BranchKind>(k);
            // Class bits 2-8 follow BranchKind's order (Jcc = 1 ... Far = 7).
            if (select_ & (LBR_SELECT_JCC << (k - 1))) continue;
            filter_[filter_index(kind, cpl)] =
                (select_ & LBR_SELECT_CALLSTACK) && kind == BranchKind::NearRet ? kFilterPop
                                                                                : kFilterKeep;
        }
    }
    // The near classes (Jcc ... NearRelJmp) at CPL 0 and at CPL 3: all kept, or none
    // and no return popped.
    static_assert(static_cast<int>(BranchKind::Jcc) == 1 &&
                  static_cast<int>(BranchKind::NearRelJmp) == 6);
    for (int c = 0; c < 2; ++c) {
        int keep = 0, pop = 0;
        for (int k = 1; k <= 6; ++k) {
            const uint8_t f = filter_[filter_index(static_cast<BranchKind>(k), c ? 3 : 0)];
            keep += f == kFilterKeep;
            pop += f == kFilterPop;
        }
        keeps_all_[c] = keep == 6;
        lazy_[c] = pop == 0 && (keep == 6 || keep == 0);
    }
}

bool Lbr::owns(uint32_t i) {
    using namespace msr;
    return i == MSR_LBR_SELECT || i == MSR_LBR_TOS ||
           (i >= MSR_LBR_FROM0 && i < MSR_LBR_FROM0 + kLbrMaxDepth) ||
           (i >= MSR_LBR_TO0 && i < MSR_LBR_TO0 + kLbrMaxDepth) ||
           (i >= MSR_LBR_INFO0 && i < MSR_LBR_INFO0 + kLbrMaxDepth);
}

uint64_t Lbr::decode_from(uint64_t v) {
    return static_cast<uint64_t>(static_cast<int64_t>(v << 3) >> 3);
}

MsrResult Lbr::read(uint32_t i, uint64_t& v) const {
    using namespace msr;
    sync();
    if (i == MSR_LBR_SELECT) {
        v = select_;
    } else if (i == MSR_LBR_TOS) {
        v = tos_;
    } else if (i >= MSR_LBR_FROM0 && i < MSR_LBR_FROM0 + kLbrMaxDepth) {
        if (i - MSR_LBR_FROM0 >= depth_) return MsrResult::Fault;
        v = e_[i - MSR_LBR_FROM0].from;
    } else if (i >= MSR_LBR_TO0 && i < MSR_LBR_TO0 + kLbrMaxDepth) {
        if (i - MSR_LBR_TO0 >= depth_) return MsrResult::Fault;
        v = e_[i - MSR_LBR_TO0].to;
    } else if (i >= MSR_LBR_INFO0 && i < MSR_LBR_INFO0 + kLbrMaxDepth) {
        if (!info_ || i - MSR_LBR_INFO0 >= depth_) return MsrResult::Fault;
        v = e_[i - MSR_LBR_INFO0].info;
    } else {
        return MsrResult::NotMine;
    }
    return MsrResult::Handled;
}

MsrResult Lbr::write(uint32_t i, uint64_t v) {
    using namespace msr;
    sync();
    if (i == MSR_LBR_SELECT) {
        if (v & ~LBR_SELECT_VALID) return MsrResult::Fault;
        select_ = v;
        refresh_filter();
    } else if (i == MSR_LBR_TOS) {
        if (v >= depth_) return MsrResult::Fault;
        tos_ = static_cast<uint32_t>(v);
    } else if (i >= MSR_LBR_FROM0 && i < MSR_LBR_FROM0 + kLbrMaxDepth) {
        if (i - MSR_LBR_FROM0 >= depth_) return MsrResult::Fault;
        // With flags in FROM, bits 62:61 (TSX flags) are 0 on this model and the address
        // below them must be canonical; without (format 5), the whole value must be.
        if (from_has_flags() ? (v & (3ull << 61)) || !canonical(decode_from(v)) : !canonical(v))
            return MsrResult::Fault;
        e_[i - MSR_LBR_FROM0].from = v;
    } else if (i >= MSR_LBR_TO0 && i < MSR_LBR_TO0 + kLbrMaxDepth) {
        if (i - MSR_LBR_TO0 >= depth_ || !canonical(v)) return MsrResult::Fault;
        e_[i - MSR_LBR_TO0].to = v;
    } else if (i >= MSR_LBR_INFO0 && i < MSR_LBR_INFO0 + kLbrMaxDepth) {
        if (!info_ || i - MSR_LBR_INFO0 >= depth_) return MsrResult::Fault;
        if (v & ~(LBR_INFO_FLAGS | LBR_INFO_CYCLES)) return MsrResult::Fault;
        e_[i - MSR_LBR_INFO0].info = v;
    } else {
        return MsrResult::NotMine;
    }
    return MsrResult::Handled;
}

Lbr::Entry Lbr::recent(uint32_t k) const {
    if (!depth_) return {};
    sync();
    Entry e = e_[(tos_ + depth_ - k % depth_) % depth_];
    if (from_has_flags()) e.from = decode_from(e.from);
    return e;
}

}  // namespace softkvm::cpu
