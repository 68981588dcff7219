// The LBR unit and the branch predictor (spec §2.1).
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
    select_ = 0;
    tos_ = 0;
    e_ = {};
    synced_ = logged_;  // records not yet applied are cleared with the rest
    refresh_filter();
}

void Lbr::apply_log() const {
    using namespace msr;
    const uint64_t logged = logged_, n = logged - synced_;
    // Of n new records only the newest `k` survive in a stack of depth_ entries; TOS moves
    // past the others as if they had been written and overwritten. (n > 0 implies a
    // depth: filter_ keeps nothing without one.)
    const uint64_t k = std::min<uint64_t>(n, depth_);
    tos_ = static_cast<uint32_t>((tos_ + (n - k)) % depth_);
    uint64_t prev = n > k ? log_stamp((logged - k - 1) % kLog) : last_record_;
    for (uint64_t r = logged - k; r != logged; ++r) {
        const size_t i = r % kLog;
        uint64_t from = log_from_[i], to = log_to_[i], now = log_stamp_[i];
        bool miss = log_flags_[i] & kLogMispred;
        if (const uint32_t s = log_site_[i]) {  // recorded by translated code
            const Site& site = sites_[s];
            from = site.from;
            now += site.insns;
            if (site.to_known) to = site.to;
            if (site.predicted) miss = false;
        }
        const uint64_t mispred = miss ? LBR_MISPRED : 0;
        tos_ = tos_ + 1 == depth_ ? 0 : tos_ + 1;
        e_[tos_] = {(from & from_mask_) | (mispred & from_mispred_), to,
                    (mispred | std::min(now - prev, LBR_INFO_CYCLES)) & info_mask_};
        prev = now;
    }
    last_record_ = prev;
    synced_ = logged_;
}

void Lbr::pop() const {
    if (logged_ != synced_) apply_log();
    tos_ = (tos_ == 0 ? depth_ : tos_) - 1;
}

void Lbr::refresh_filter() {
    using namespace msr;
    pop_ = 0;
    filter_ = {};
    keep_bytes_ = {};
    keeps_all_ = {};
    if (!depth_) return;
    for (uint8_t cpl = 0; cpl < 4; ++cpl) {
        if (select_ & (cpl == 0 ? LBR_SELECT_CPL_EQ_0 : LBR_SELECT_CPL_NEQ_0)) continue;
        for (int k = static_cast<int>(BranchKind::Jcc); k <= static_cast<int>(BranchKind::Far);
             ++k) {
            const auto kind = static_cast<BranchKind>(k);
            // Class bits 2-8 follow BranchKind's order (Jcc = 1 ... Far = 7).
            if (select_ & (LBR_SELECT_JCC << (k - 1))) continue;
            const uint16_t bit = static_cast<uint16_t>(1u << class_bit(kind, cpl));
            if ((select_ & LBR_SELECT_CALLSTACK) && kind == BranchKind::NearRet)
                pop_ |= bit, filter_[filter_index(kind, cpl)] = kFilterPop;
            else
                keep_bytes_[cpl != 0] |= 1ull << (8 * k),
                    filter_[filter_index(kind, cpl)] = kFilterKeep;
        }
    }
    // The near classes (Jcc ... NearRelJmp), kept or (a return in call-stack mode) popped.
    constexpr uint64_t kNear = 0x0001010101010100ull;
    static_assert(static_cast<int>(BranchKind::Jcc) == 1 &&
                  static_cast<int>(BranchKind::NearRelJmp) == 6);
    for (int c = 0; c < 2; ++c) {
        const bool pops = (pop_ >> class_bit(BranchKind::NearRet, static_cast<uint8_t>(c))) & 1;
        const uint64_t ret = pops ? 1ull << (8 * static_cast<int>(BranchKind::NearRet)) : 0;
        keeps_all_[c] = ((keep_bytes_[c] | ret) & kNear) == kNear;
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
