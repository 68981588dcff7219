// The last-branch-record unit of the software CPU (spec §2.1; SDM vol. 3 §18.4, §17.11):
// a stack of (FROM, TO, INFO) records in the model's format, LBR_SELECT filtering by CPL
// and branch class, call-stack mode, and TOS. The CPU calls record() for each taken
// branch, interrupt and exception while IA32_DEBUGCTL.LBR is set.
//
// record() only appends the branch to a small log (no TOS arithmetic, no encoding, no
// test of whether it is kept: a dropped branch is written past the end and not counted);
// everything that looks at the stack first applies the log's newest entries to it
// (sync()), so the MSRs read exactly as if each record had been written at once.
//
// Translated code that chains blocks while recording is on records the branch each block
// ends with itself (translate/emit_lbr.cc): it runs the predictor step and appends to the
// log as record() does, and tells the run loop whether the chain's last block did
// (trace_done()).
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cpu/decoded_insn.h"
#include "cpu/msr_index.h"
#include "cpu/owner.h"

namespace softkvm::cpu {

struct CpuModel;

// The deterministic branch predictor whose misses the PMU counts and the LBR reports:
// 2-bit counters per conditional branch, a last-target table for indirect jumps and
// calls, and a 16-entry return stack. Direct jumps, direct calls and far branches are
// always predicted.
class BranchPredictor {
  public:
    // Returns true if the branch at `from` (not taken: `taken` false) was mispredicted.
    bool resolve(BranchKind kind, uint64_t from, bool taken, uint64_t target, uint64_t next);

    // The steps of resolve() per class, for callers that know the class (the run loop's
    // recording path, branch_hooks.h). A conditional branch (`taken` 0 or 1): the
    // mispredict flag, 0 or 1.
    unsigned jcc(uint64_t from, unsigned taken) {
        uint8_t& c = counter_[slot(from, kCounters)];
        const size_t step = size_t{taken} * 8 + c;  // (c is 0, 1, 3 or 7)
        c = jcc_next_[step];
        return jcc_miss_[step];
    }
    // A call pushes its return address.
    void call(uint64_t next) { ras_[ras_top_++ % kReturns] = next; }
    // An indirect jump or call: mispredicted unless it went where it went last time.
    bool indirect(uint64_t from, uint64_t target) {
        uint64_t& t = target_[slot(from, kTargets)];
        const bool miss = t != target;
        t = target;
        return miss;
    }
    // A return: mispredicted unless it went to the address the last call pushed.
    bool ret(uint64_t target) { return ras_[--ras_top_ % kReturns] != target; }

  private:
    static constexpr size_t kCounters = 4096, kTargets = 512, kReturns = 16;
    friend class Translator;  // translated code updates the predictor itself (emit_lbr.cc)
    // A branch's entry in a table of n: its address's low bits, as a simple hardware
    // predictor indexes its tables (emit_lbr.cc has a copy).
    static size_t slot(uint64_t from, size_t n) { return from & (n - 1); }
    // A conditional branch's 2-bit saturating counter c (2 and 3 predict taken) as the
    // byte with its c low bits set (0, 1, 3 or 7): not taken shifts it right (c - 1,
    // down to 0), taken is a table (c + 1, up to 3). Translated code does the same with
    // one shift, or one table load for both the counter and the mispredict flag.
    std::array<uint8_t, kCounters> counter_ = [] {
        std::array<uint8_t, kCounters> a{};
        a.fill(1);  // weakly not taken
        return a;
    }();
    // The step of counter byte b, not taken (entry b) and taken (entry 8 + b): the byte
    // after it in bits 7:0, and in bits 15:8 the LBR log's mispredict flag (1: b predicted
    // the other way). Members, so translated code finds them at a fixed offset from the
    // CPU.
    static constexpr uint16_t jcc_step(unsigned i) {
        const unsigned b = i & 7;
        return static_cast<uint16_t>(i < 8 ? (b >> 1) | ((b & 2) ? 0x100 : 0)
                                           : ((2 * b + 1) & 7) | ((b & 2) ? 0 : 0x100));
    }
    // Translated code's taken step, entry b: the counter after it in bits 7:0, and in
    // bits 15:8 the LBR log's flags byte (the mispredict flag).
    std::array<uint16_t, 8> jcc_taken_ = [] {
        std::array<uint16_t, 8> t{};
        for (unsigned b = 0; b < 8; ++b) t[b] = jcc_step(8 + b);
        return t;
    }();
    // The same as two tables of bytes, for the run loop: the counter after step b, and
    // its mispredict flag.
    std::array<uint8_t, 16> jcc_next_ = [] {
        std::array<uint8_t, 16> t{};
        for (unsigned b = 0; b < 16; ++b) t[b] = static_cast<uint8_t>(jcc_step(b));
        return t;
    }();
    std::array<uint8_t, 16> jcc_miss_ = [] {
        std::array<uint8_t, 16> t{};
        for (unsigned b = 0; b < 16; ++b) t[b] = static_cast<uint8_t>(jcc_step(b) >> 8);
        return t;
    }();
    std::array<uint64_t, kTargets> target_{};
    std::array<uint64_t, kReturns> ras_{};
    uint32_t ras_top_ = 0;
};

class Lbr {
  public:
    struct Entry {
        uint64_t from = 0, to = 0, info = 0;
    };

    // Takes the format and depth of `m` and clears the stack (reset: zeros, spec §2.1).
    void configure(const CpuModel& m);
    void clear();

    // The LBR MSRs (select, TOS, and the FROM/TO/INFO ranges up to 32 entries, whether or
    // not the model has them): the hv layer intercepts exactly these.
    static bool owns(uint32_t index);
    // NotMine if not an LBR MSR; Fault for an entry beyond the depth, INFO without
    // format 5, or a reserved bit.
    MsrResult read(uint32_t index, uint64_t& value) const;
    MsrResult write(uint32_t index, uint64_t value);

    // A taken branch of class `kind` from linear `from` to linear `to`, landing at CPL
    // `cpl`; `now` is the core cycle count (LBR_INFO's elapsed cycles).
    void record(uint64_t from, uint64_t to, BranchKind kind, uint8_t cpl, bool mispredicted,
                uint64_t now);
    // The same for a branch of a class that call-stack mode never pops (not NearRet),
    // recorded if `taken` (0 or 1) and its class is kept; `mispredicted` 0 or 1. The run
    // loop's recording path (branch_hooks.h), which knows the class, calls it.
    void record_unpopped(uint64_t from, uint64_t to, BranchKind kind, unsigned taken, uint8_t cpl,
                         unsigned mispredicted, uint64_t now);
    // Recording starts (DEBUGCTL.LBR set): elapsed cycles count from here.
    void started(uint64_t now) {
        sync();
        last_record_ = now;
    }

    // Translated blocks chain while recording is on, at CPL `cpl` for the whole chain
    // (translated code that records changes neither CPL nor CS). Each block of the chain
    // began at the RIP it was built at (Block::host_rip: the run loop checks the first,
    // each block's successor lookup the next). trace_done() says whether the last
    // block of the chain recorded its own end: it is set where a block that did gives
    // up chaining (its successor lookup failed, or the successor's chaining entry
    // refused), and nowhere else.
    void trace_begin(uint8_t cpl) {
        trace_done_ = 0;
        trace_keep_ = keep_bytes_[cpl != 0];
        trace_pop_ret_ = (pop_ >> class_bit(BranchKind::NearRet, cpl)) & 1;
    }
    // Nothing waits to be recorded: translated code records each branch at once. (Callers
    // that order records before a change of the recording state may still call it.)
    void drain_trace() const {}
    bool trace_done() const { return trace_done_; }
    // Whether the filter keeps, at `cpl`, every class translated code records (all the
    // near ones; a return that call-stack mode pops goes to the run loop): then each of
    // its records counts one (ChainMode kChainTraceKept).
    bool trace_keeps_all(uint8_t cpl) const { return keeps_all_[cpl != 0]; }

    // The predictor of the branch-misses event and the mispredict bits.
    BranchPredictor& predictor() { return bp_; }

    // A branch that translated code records (emit_lbr.cc), with what its translation
    // knows: FROM, the block's instructions (the record's count is the count before the
    // block plus these), TO where the branch is direct, and whether it is always
    // predicted (a direct jump or call: the record's flags byte is not written). Such a
    // record stores the site's index (log_site_) and, of the rest, only what the
    // translation does not know. Indices stay valid until forget_sites().
    struct Site {
        uint64_t from = 0, to = 0;
        uint32_t insns = 0;
        bool to_known = false, predicted = false;
        bool operator==(const Site&) const = default;
    };
    uint32_t add_site(const Site& s) {
        // (A recording exit's two ways, one per chain mode, record the same branch.)
        if (sites_.size() > 1 && sites_.back() == s)
            return static_cast<uint32_t>(sites_.size() - 1);
        sites_.push_back(s);
        return static_cast<uint32_t>(sites_.size() - 1);
    }
    size_t sites() const { return sites_.size() - 1; }
    // No code records at the sites added so far any more (the translator emptied its code
    // cache): the log's records are applied to the stack first, so none still needs its
    // site (apply_log never reads a record it applied before).
    void forget_sites() {
        sync();
        sites_.resize(1);
    }

    uint32_t depth() const { return depth_; }
    uint32_t tos() const {
        sync();
        return tos_;
    }
    uint64_t select() const { return select_; }
    // Entry `k` (0 = the most recent), decoded: plain linear addresses in from/to.
    Entry recent(uint32_t k) const;

  private:
    // Formats 3 and 4 keep flags in FROM bits 63:61 and the address in bits 60:0. Format 5
    // moved the flags to LBR_INFO: its FROM is the whole sign-extended address (the SDM's
    // LBR_FMT encodings, 000101B; Linux's perf driver takes FROM as a plain address when
    // the format has LBR_INFO, so a flag there would make a user branch look like a
    // kernel one and be dropped by its branch filter). The project spec's §2.1 describes
    // format 5 as format 4 plus LBR_INFO: docs/lbr.md says why this follows the kernel.
    static constexpr uint64_t kFromAddr = (1ull << 61) - 1;
    bool from_has_flags() const { return format_ >= 3 && !info_; }
    static uint64_t decode_from(uint64_t v);
    // Byte kind * 4 + cpl of filter_ (BranchKind has 8 values, None included): with the
    // class a constant, one load indexed by the CPL.
    static size_t filter_index(BranchKind kind, uint8_t cpl) {
        return static_cast<size_t>(kind) * 4 + cpl;
    }
    // Bit (cpl != 0) * 8 + kind of a class mask.
    static unsigned class_bit(BranchKind kind, uint8_t cpl) {
        return (cpl ? 8u : 0u) + static_cast<unsigned>(kind);
    }
    // Recomputes filter_, keep_bytes_ and pop_ from the depth and LBR_SELECT.
    void refresh_filter();
    // Applies the logged records to the stack (the architectural state).
    void sync() const {
        if (logged_ != synced_) apply_log();
    }
    void apply_log() const;
    void log(uint64_t from, uint64_t to, BranchKind kind, uint8_t cpl, bool mispredicted,
             uint64_t now);
    void pop() const;

    uint8_t format_ = 0;
    uint32_t depth_ = 0;
    bool info_ = false;
    uint64_t select_ = 0;
    // LBR_SELECT and the depth folded per CPL and class (filter_index), so recording
    // loads one byte: kFilterKeep for the branches written to the stack, kFilterPop for
    // the returns call-stack mode pops; pop_ the latter as bits (class_bit).
    static constexpr uint8_t kFilterKeep = 1, kFilterPop = 2;
    static_assert(kFilterKeep == 1);  // record_unpopped adds it
    std::array<uint8_t, 32> filter_{};
    uint16_t pop_ = 0;
    // The kept classes per CPL (0, not 0) as 8 bytes, byte k 1 when class k is kept:
    // translated code adds byte `kind` of the chain's copy (trace_keep_) to logged_.
    std::array<uint64_t, 2> keep_bytes_{};
    std::array<bool, 2> keeps_all_{};  // trace_keeps_all() per CPL (0, not 0)
    // FROM of formats 3-5: the address bits and the mispredict flag; all bits before.
    uint64_t from_mask_ = ~0ull, from_mispred_ = 0;
    uint64_t info_mask_ = 0;  // LBR_INFO's bits (format 5), else 0

    // The log: the newest kLog records, record n in slot n % kLog of five arrays (linear
    // FROM and TO, the cycle count, flags with the mispredict flag in bit 0, and the
    // index of a translated record's Site, else 0). It holds more than the deepest stack,
    // so the record before the oldest one that still counts is there too (its cycle
    // count starts that one's LBR_INFO). Translated code writes it too: with 256 slots
    // the low byte of logged_ is the next slot's index (no masking), the flags byte is as
    // the predictor's steps leave it (a SETNE, or the high byte of
    // BranchPredictor::jcc_taken_), and what its site knows is not written (FROM, the
    // count's last part, a direct branch's TO, a direct jump's or call's flags).
    static constexpr uint64_t kLog = 256;
    static constexpr uint8_t kLogMispred = 1;
    uint64_t log_stamp(size_t i) const {
        return log_stamp_[i] + (log_site_[i] ? sites_[log_site_[i]].insns : 0);
    }
    static_assert(kLog > msr::kLbrMaxDepth && kLog == 256);
    // Written by translated code too (Translator's layout has the offsets).
    std::array<uint64_t, kLog> log_from_{}, log_to_{}, log_stamp_{};
    std::array<uint32_t, kLog> log_site_{};
    std::array<uint8_t, kLog> log_flags_{};
    std::vector<Site> sites_ = std::vector<Site>(1);  // sites_[0]: none
    // Records ever logged (kept ones: a dropped one is written to the next slot and not
    // counted).
    uint64_t logged_ = 0;
    BranchPredictor bp_;
    friend class Translator;
    // The chain translated code is recording (trace_begin): the filter at its CPL
    // (keep_bytes_ for it, and whether call-stack mode pops returns: those blocks return
    // to the run loop, which records them), and trace_done().
    uint64_t trace_keep_ = 0;
    uint8_t trace_pop_ret_ = 0, trace_done_ = 0;
    // The architectural stack, as of `synced_` logged records.
    mutable uint64_t synced_ = 0;
    mutable uint32_t tos_ = 0;
    mutable uint64_t last_record_ = 0;  // cycle count of the newest applied record
    mutable std::array<Entry, msr::kLbrMaxDepth> e_{};
};

// Inline: the CPU calls it for every branch while DEBUGCTL.LBR is set (a not-taken one
// as BranchKind::None, which no class keeps). No test decides whether the branch is
// kept: the slot past the log's end is written either way and only counted if kept.
inline void Lbr::record(uint64_t from, uint64_t to, BranchKind kind, uint8_t cpl, bool mispredicted,
                        uint64_t now) {
    log(from, to, kind, cpl, mispredicted, now);
}

inline void Lbr::log(uint64_t from, uint64_t to, BranchKind kind, uint8_t cpl, bool mispredicted,
                     uint64_t now) {
    if (filter_[filter_index(kind, cpl)] & kFilterPop) [[unlikely]]
        return pop();  // call-stack mode: a return pops its call
    record_unpopped(from, to, kind, 1, cpl, mispredicted, now);
}

inline void Lbr::record_unpopped(uint64_t from, uint64_t to, BranchKind kind, unsigned taken,
                                 uint8_t cpl, unsigned mispredicted, uint64_t now) {
    const unsigned f = filter_[filter_index(kind, cpl)];
    const size_t i = logged_ % kLog;
    log_from_[i] = from;
    log_to_[i] = to;
    log_stamp_[i] = now;
    log_flags_[i] = static_cast<uint8_t>(mispredicted * kLogMispred);
    log_site_[i] = 0;
    logged_ += f & taken;  // (kFilterKeep is bit 0)
}

// Inline: the CPU calls it for every branch while DEBUGCTL.LBR is set or a counter counts
// branch misses.
inline bool BranchPredictor::resolve(BranchKind kind, uint64_t from, bool taken, uint64_t target,
                                     uint64_t next) {
    switch (kind) {
        case BranchKind::Jcc:
            return jcc(from, taken);
        case BranchKind::NearRelCall:
            call(next);
            return false;
        case BranchKind::NearIndCall:
            call(next);
            return indirect(from, target);
        case BranchKind::NearIndJmp:
            return indirect(from, target);
        case BranchKind::NearRet:
            return ret(target);
        default:
            return false;
    }
}

}  // namespace softkvm::cpu
