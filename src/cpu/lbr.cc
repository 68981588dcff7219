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
    clear();
}

void Lbr::clear() {
    select_ = 0;
    tos_ = 0;
    e_ = {};
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
    if (i == MSR_LBR_SELECT) {
        if (v & ~LBR_SELECT_VALID) return MsrResult::Fault;
        select_ = v;
    } else if (i == MSR_LBR_TOS) {
        if (v >= depth_) return MsrResult::Fault;
        tos_ = static_cast<uint32_t>(v);
    } else if (i >= MSR_LBR_FROM0 && i < MSR_LBR_FROM0 + kLbrMaxDepth) {
        if (i - MSR_LBR_FROM0 >= depth_) return MsrResult::Fault;
        // Bits 62:61 (TSX flags) are 0 on this model; the address must be canonical.
        if ((v & (3ull << 61)) || !canonical(decode_from(v))) return MsrResult::Fault;
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
    Entry e = e_[(tos_ + depth_ - k % depth_) % depth_];
    if (format_ >= 3) e.from = decode_from(e.from);
    return e;
}

bool BranchPredictor::resolve(BranchKind kind, uint64_t from, bool taken, uint64_t target,
                              uint64_t next) {
    switch (kind) {
        case BranchKind::Jcc: {
            uint8_t& c = counter_[slot(from, kCounters)];
            const bool predicted = c >= 2;
            if (taken && c < 3) ++c;
            if (!taken && c > 0) --c;
            return predicted != taken;
        }
        case BranchKind::NearRelCall:
            ras_[ras_top_++ % kReturns] = next;
            return false;
        case BranchKind::NearIndCall:
        case BranchKind::NearIndJmp: {
            if (kind == BranchKind::NearIndCall) ras_[ras_top_++ % kReturns] = next;
            uint64_t& t = target_[slot(from, kTargets)];
            const bool miss = t != target;
            t = target;
            return miss;
        }
        case BranchKind::NearRet: {
            const uint64_t predicted = ras_[--ras_top_ % kReturns];
            return predicted != target;
        }
        default:
            return false;
    }
}

}  // namespace softkvm::cpu
