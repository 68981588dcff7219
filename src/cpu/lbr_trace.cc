// The LBR unit's trace (lbr.h, docs/lbr.md "How recording works"): the slots translated code and
// the run loop write, and the walk that turns them into the stack's records.
#include <bit>
#include <stdexcept>
#include <string>

#include "cpu/lbr.h"

namespace softkvm::cpu {

namespace {

constexpr uint32_t kSlots = TraceRing::kSlots, kTargets = TraceRing::kTargets;

// A word's outcomes: 64, or those below its sentinel.
int word_bits(const TraceSlot& w) {
    return w.kind == TraceSlot::kFullWord ? 64 : 63 - std::countl_zero(w.bits);
}

}  // namespace

TraceRing& Lbr::ring() const {
    if (!ring_store_) {
        ring_store_ = std::make_unique_for_overwrite<TraceRing>();
        sh_.ring = ring_store_.get();
    }
    return *ring_store_;
}

void Lbr::trace_begin(uint8_t cpl, uint64_t rip, uint64_t now, bool long64) {
    TraceRing& r = ring();
    trace_done_ = 0;
    tracing_ = true;
    trace_long64_ = long64;
    trace_cpl_ = cpl;
    trace_first_ = sh_.widx;
    TraceSlot& w = r.slot[sh_.widx % kSlots];
    w.rip = rip;
    w.stamp = now;
    w.tidx = sh_.tidx;
    w.cpl = cpl;
    // The chain's first block is not counted as chained: the word's count starts one less.
    w.bstart = static_cast<uint32_t>(*sh_.blocks) - 1;
    sh_.bits = 1;
}

void Lbr::close_word(bool at_end) const {
    TraceRing& r = *sh_.ring;
    TraceSlot& w = r.slot[sh_.widx % kSlots];
    // The blocks that recorded their end: those entered, but for the running one (at the
    // chain's end: unless it recorded its end, trace_done_).
    const uint32_t bend = static_cast<uint32_t>(*sh_.blocks) - (at_end && trace_done_ ? 0 : 1);
    if (sh_.bits == 1 && (bend == w.bstart || !trace_long64_)) return;  // nothing since it opened
    w.bits = sh_.bits;
    w.kind = TraceSlot::kWord;
    w.bend = bend;
    ++sh_.widx;
    sh_.bits = 1;
    count_kept();
    if (at_end) return;
    // Mid-chain: the chain goes on from where the walk of the word ends.
    decode();
    TraceSlot& next = r.slot[sh_.widx % kSlots];
    next.rip = walk_rip_;
    next.stamp = walk_now_;
    next.tidx = walk_t_;
    next.cpl = trace_cpl_;
    next.bstart = bend;
}

void Lbr::count_kept() const {
    TraceRing& r = *sh_.ring;
    for (; trace_first_ != sh_.widx; ++trace_first_) {
        TraceSlot& w = r.slot[trace_first_ % kSlots];
        w.kcum = ktotal_;
        walk_all_ |= !lazy_[w.cpl != 0];
        if (!keeps_all_[w.cpl != 0]) continue;
        // Taken: its 1 bits, and the blocks without a bit (direct and indirect jumps,
        // calls, returns).
        const int bits = word_bits(w);
        const int ones = std::popcount(w.bits) - (w.kind == TraceSlot::kFullWord ? 0 : 1);
        ktotal_ += static_cast<uint32_t>(ones) + (w.bend - w.bstart) - static_cast<uint32_t>(bits);
    }
}

void Lbr::trace_end() {
    if (!tracing_) return;
    close_word(true);
    tracing_ = false;
    if (!lazy_[trace_cpl_ != 0])
        sync();
    else if (sh_.widx - decoded_ > kSlots / 4 || sh_.tidx - tdecoded_ > kTargets / 4)
        keep_ring_safe();
}

void Lbr::append(uint64_t from, uint64_t to, uint64_t aux, BranchKind kind, uint8_t cpl, bool taken,
                 bool given, bool miss, uint64_t now) {
    TraceRing& r = ring();
    TraceSlot& b = r.slot[sh_.widx % kSlots];
    b.rip = from;
    b.to = to;
    b.aux = aux;
    b.stamp = now;
    b.tidx = sh_.tidx;
    b.cpl = cpl;
    b.kind = static_cast<uint8_t>(static_cast<unsigned>(kind) | (taken ? 16u : 0u) |
                                  (given ? 32u : 0u) | (miss ? 64u : 0u));
    b.kcum = ktotal_;
    ktotal_ += kept(kind, cpl, taken) ? 1 : 0;
    ++sh_.widx;
    if (++appended_ >= 1024) {
        appended_ = 0;
        keep_ring_safe();
    }
}

uint32_t Lbr::walk_start() const {
    const TraceRing& r = *sh_.ring;
    if (walk_all_) return decoded_;
    const uint32_t end = sh_.widx, need = depth_ + 1, fresh = ktotal_ - kdecoded_;
    // (Slot `end` holds the open word's start: the ring keeps kSlots - 1 before it.)
    const uint32_t lo = end - decoded_ < kSlots ? decoded_ : end - (kSlots - 1);
    auto after = [&](uint32_t i) { return ktotal_ - r.slot[i % kSlots].kcum; };  // kept from i on
    auto last_with = [&](uint32_t a, uint32_t b, auto&& pred) {  // pred(a), !pred(b) or b past
        while (b - a > 1) {
            const uint32_t m = a + (b - a) / 2;
            (pred(m) ? a : b) = m;
        }
        return a;
    };
    // The slot whose epoch the walk must start in: that of the newest record but
    // `depth_` (the one before the stack's oldest: its count starts that one's LBR_INFO);
    // with fewer new records, that of the first of them (all of them go on the stack);
    // with none, the last slot's (the predictor's state).
    uint32_t anchor = end - 1;
    if (fresh) {
        const uint32_t k = std::min(fresh, need);
        if (after(lo) < k) {
            if (lo == decoded_) return decoded_;
            throw std::logic_error("LBR trace: the newest records left the ring");
        }
        anchor = last_with(lo, end, [&](uint32_t i) { return after(i) >= k; });
    }
    const uint64_t boundary = r.slot[anchor % kSlots].stamp & ~(BranchPredictor::kEpochInsns - 1);
    if (r.slot[lo % kSlots].stamp > boundary) {
        if (lo == decoded_) return decoded_;
        throw std::logic_error("LBR trace: the newest records' epoch left the ring");
    }
    return last_with(lo, anchor + 1,
                     [&](uint32_t i) { return r.slot[i % kSlots].stamp <= boundary; });
}

void Lbr::keep_ring_safe() const {
    if (decoded_ == sh_.widx) return;
    const uint32_t s = walk_start();
    if (sh_.widx - s > kSlots / 2 || sh_.tidx - sh_.ring->slot[s % kSlots].tidx > kTargets / 2)
        sync();
}

void Lbr::decode() const {
    const TraceRing& r = *sh_.ring;
    const uint32_t end = sh_.widx;
    uint32_t s = walk_start();
    if (s != decoded_) {
        // The records before `s` are all overwritten by those after it (or there are
        // none): only TOS moves past them (depth_ divides 2^32).
        if (depth_)
            tos_ = static_cast<uint32_t>((tos_ + (r.slot[s % kSlots].kcum - kdecoded_)) % depth_);
        bp_.forget();
    }
    for (; s != end; ++s) walk_slot(s);
    decoded_ = end;
    walk_all_ = false;
    kdecoded_ = ktotal_;
    tdecoded_ = sh_.tidx;
}

const Lbr::TraceStep& Lbr::step_at(uint64_t rip, uint8_t cpl) const {
    Memo& m = memo_[(rip ^ (rip >> 10)) & (kMemo - 1)];
    if (m.gen != memo_gen_ || m.rip != rip || m.cpl != cpl) {
        if (!resolve_ || !resolve_(rip, cpl, m.step))
            throw std::logic_error("LBR trace: no recorded block at " + std::to_string(rip));
        m.rip = rip, m.cpl = cpl, m.gen = memo_gen_;
    }
    return m.step;
}

void Lbr::walk_slot(uint32_t i) const {
    const TraceRing& r = *sh_.ring;
    const TraceSlot& w = r.slot[i % kSlots];
    if (!(w.kind & TraceSlot::kWord)) {  // a branch the run loop handed in
        const auto kind = static_cast<BranchKind>(w.kind & 15);
        const bool taken = w.kind & 16;
        bool miss = w.kind & 64;
        if (!(w.kind & 32)) miss = bp_.resolve(kind, w.rip, taken, w.to, w.aux, w.stamp);
        apply(w.rip, w.to, kind, w.cpl, taken, miss, w.stamp);
        return;
    }
    uint64_t rip = w.rip, now = w.stamp;
    uint32_t t = w.tidx;
    int bit = word_bits(w);
    for (uint32_t n = w.bend - w.bstart; n; --n) {
        const TraceStep& st = step_at(rip, w.cpl);
        now += st.insns;
        uint64_t to = st.target;
        bool taken = true, miss = false;
        switch (st.kind) {
            case BranchKind::None:
            case BranchKind::Jcc:
                if (bit == 0) throw std::logic_error("LBR trace: a word's bits ran out");
                taken = (w.bits >> --bit) & 1;
                if (st.kind == BranchKind::None) {
                    to = st.next;
                    taken = false;
                } else {
                    if (!taken) to = st.next;
                    miss = bp_.jcc(st.from, taken, now);
                }
                break;
            case BranchKind::NearRelCall:
                bp_.call(st.next, now);
                break;
            case BranchKind::NearIndCall:
                bp_.call(st.next, now);
                to = r.targets[t++ % kTargets];
                miss = bp_.indirect(st.from, to, now);
                break;
            case BranchKind::NearIndJmp:
                to = r.targets[t++ % kTargets];
                miss = bp_.indirect(st.from, to, now);
                break;
            case BranchKind::NearRet:
                to = r.targets[t++ % kTargets];
                miss = bp_.ret(to, now);
                break;
            default:  // NearRelJmp
                break;
        }
        apply(st.from, to, st.kind, w.cpl, taken, miss, now);
        rip = to;
    }
    walk_rip_ = rip;
    walk_now_ = now;
    walk_t_ = t;
}

}  // namespace softkvm::cpu
