// The last-branch-record unit of the software CPU (spec §2.1; SDM vol. 3 §18.4, §17.11):
// a stack of (FROM, TO, INFO) records in the model's format, LBR_SELECT filtering by CPL
// and branch class, call-stack mode, and TOS, with the branch predictor that supplies the
// mispredict flags (branch_predictor.h).
//
// The run loop hands it every branch it sees retire while IA32_DEBUGCTL.LBR is set
// (branch(); interrupts and exceptions as far branches, record()). Translated code that
// chains blocks while recording is on does not: it writes a trace (docs/lbr.md "How
// recording works"): the outcome of each conditional branch as one bit shifted into a
// host register, stored as a word of 64 with where its walk starts, and the target of
// each indirect branch and return in a ring; nothing for a direct jump or call. Whatever
// looks at the stack first walks the trace's newest part through the blocks it ran (the
// CPU resolves a RIP to its block: set_resolver) and applies the branches it finds, with
// those the run loop handed in between, in order (sync()): so the MSRs read exactly as if
// each record had been written at once. Because the predictor's state depends on the
// current epoch only, a walk needs only the newest records and the epoch before them,
// however long the trace grew; TOS follows from the count of kept records in the
// skipped slots.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "cpu/branch_predictor.h"
#include "cpu/decoded_insn.h"
#include "cpu/msr_index.h"
#include "cpu/owner.h"

namespace softkvm::cpu {

struct CpuModel;

// The trace translated code writes (emit_lbr.cc) and the run loop's branches between its
// chains, in one ring of slots. A slot is a word of the trace or a branch the run loop
// handed in. A word holds the outcomes of the conditional branches (and, as 0, the ends
// without a branch) of a run of blocks a chain recorded, the oldest first, with where its
// walk starts and how many blocks it covers: the blocks between that end with a direct
// jump or call need nothing else, those that end with an indirect branch or a return
// take their targets from the target ring in order.
struct TraceSlot {
    uint64_t bits;   // word: outcomes (under a sentinel bit unless kFullWord)
    uint64_t rip;    // word: the RIP its first block starts at; branch: FROM
    uint64_t stamp;  // word: the count before its first block; branch: the count it retired at
    uint64_t to;     // branch: TO
    uint64_t aux;    // branch: the instruction after it
    uint32_t tidx;   // the target ring's index where the slot starts
    uint32_t kcum;   // records kept before the slot (taken, kept at its CPL), mod 2^32
    uint32_t bstart, bend;  // word: the chain's block count at its start and end, mod 2^32
    uint8_t cpl;
    // Word: kWord or kFullWord (64 outcomes, no sentinel); branch: kind | taken << 4 |
    // given << 5 | mispredicted << 6 (given: a record with its flag, not the predictor's).
    uint8_t kind;
    uint8_t pad[6];
    static constexpr uint8_t kWord = 0x80, kFullWord = 0x81;
};
static_assert(sizeof(TraceSlot) == 64);

struct TraceRing {
    static constexpr uint32_t kSlots = 1u << 15, kTargets = 1u << 16;
    std::array<TraceSlot, kSlots> slot;
    // The targets of indirect branches and returns, in order.
    std::array<uint64_t, kTargets> targets;
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
    // `cpl`, with its mispredict flag (interrupts and exceptions: far branches, always
    // predicted); `now` is the core cycle count (LBR_INFO's elapsed cycles). None: not
    // kept.
    void record(uint64_t from, uint64_t to, BranchKind kind, uint8_t cpl, bool mispredicted,
                uint64_t now);
    // A branch the run loop saw retire at `now`, taken or not: the predictor's step for
    // it (`next`: the instruction after it, which a call pushes) and, if taken, its
    // record.
    void branch(BranchKind kind, uint64_t from, uint64_t to, uint64_t next, bool taken, uint8_t cpl,
                uint64_t now);
    // The same at once: its mispredict flag (the PMU counts branch misses).
    bool branch_now(BranchKind kind, uint64_t from, uint64_t to, uint64_t next, bool taken,
                    uint8_t cpl, uint64_t now);
    // Recording starts (DEBUGCTL.LBR set): elapsed cycles count from here.
    void started(uint64_t now) {
        sync();
        last_record_ = now;
    }
    // The predictor, up to date (the PMU counts branch misses with LBR off).
    BranchPredictor& predictor() {
        sync();
        return bp_;
    }

    // The trace. What a walk needs of a block that translated code recorded in: where its
    // last instruction is (`from`), the instruction after it, a direct branch's target,
    // its instruction count and its branch class (None: ended without a branch).
    struct TraceStep {
        uint64_t from = 0, next = 0, target = 0;
        uint32_t insns = 0;
        BranchKind kind = BranchKind::None;
    };
    // Finds the block translated code ran at `rip` at CPL `cpl` (the CPU: its recording
    // translation at that RIP in the current address space, which does not change while
    // the trace holds words that ran there: the CPU drains the trace first).
    using Resolver = std::function<bool(uint64_t rip, uint8_t cpl, TraceStep& step)>;
    void set_resolver(Resolver r) { resolve_ = std::move(r); }
    // Translated blocks chain while recording is on, at CPL `cpl` for the whole chain
    // (translated code that records changes neither CPL nor CS), from the block at `rip`
    // with `now` instructions retired. trace_done() says whether the last block of the
    // chain recorded its own end: it is set where a block that did gives up chaining
    // (its successor lookup failed, or the successor's chaining entry refused), and
    // nowhere else. trace_end() when the chain returns, also by an exception.
    // (`long64`: 64-bit code; elsewhere translated code records no branch, and the chain's
    // blocks leave no trace.)
    void trace_begin(uint8_t cpl, uint64_t rip, uint64_t now, bool long64);
    void trace_end();
    // The CPU's count of blocks entered from another translated block (the first block
    // of a chain is not), which a word's block range counts in.
    void set_block_counter(const uint64_t* blocks) { sh_.blocks = blocks; }
    bool trace_done() const { return trace_done_; }
    // Everything traced so far applied (before a change of what a walk would see: the
    // address space, the blocks); the walk's resolved blocks are forgotten.
    void drain_trace() const {
        sync();
        ++memo_gen_;
    }
    // Whether the stack can wait for the words of a chain at `cpl`: the filter keeps
    // every near class there or none, without call-stack mode. Otherwise the chain's
    // words are walked as it returns (its records then count one by one).
    bool trace_lazy(uint8_t cpl) const { return lazy_[cpl != 0]; }
    // Whether the filter keeps every near class at `cpl` (a chain there may run longer:
    // the stack's records are its newest branches, whose walk needs little of it).
    bool trace_keeps_all(uint8_t cpl) const { return keeps_all_[cpl != 0]; }

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
    // Byte kind * 4 + cpl of filter_ (BranchKind has 8 values, None included).
    static size_t filter_index(BranchKind kind, uint8_t cpl) {
        return static_cast<size_t>(kind) * 4 + cpl;
    }
    // Recomputes filter_ and lazy_ from the depth and LBR_SELECT.
    void refresh_filter();
    static constexpr uint8_t kFilterKeep = 1, kFilterPop = 2;
    bool kept(BranchKind kind, uint8_t cpl, bool taken) const {
        return taken && (filter_[filter_index(kind, cpl)] & kFilterKeep);
    }

    // The stack as of `decoded_` slots: applies a branch to it.
    void apply(uint64_t from, uint64_t to, BranchKind kind, uint8_t cpl, bool taken, bool miss,
               uint64_t now) const;
    // Walks the slots not yet applied (from where the newest records need it).
    void sync() const {
        if (tracing_) close_word(false);
        if (decoded_ != sh_.widx) decode();
    }
    void decode() const;
    // The slot a walk must start at for the newest records and the predictor's state.
    uint32_t walk_start() const;
    void walk_slot(uint32_t s) const;
    // The open word while a chain runs, committed as a slot if it recorded anything: at
    // the chain's end, or mid-chain (a handler looks at the stack) walked at once, the
    // next word starting where the walk ended.
    void close_word(bool at_end) const;
    // The records the chain's committed words keep (kcum, ktotal_).
    void count_kept() const;
    // Syncs when the ring would otherwise lose what a walk needs.
    void keep_ring_safe() const;
    TraceRing& ring() const;
    // A branch of the run loop as a slot.
    void append(uint64_t from, uint64_t to, uint64_t aux, BranchKind kind, uint8_t cpl, bool taken,
                bool given, bool miss, uint64_t now);

    uint8_t format_ = 0;
    uint32_t depth_ = 0;
    bool info_ = false;
    uint64_t select_ = 0;
    std::array<uint8_t, 32> filter_{};
    std::array<bool, 2> lazy_{};  // trace_lazy() per CPL (0, not 0)
    std::array<bool, 2> keeps_all_{};
    // FROM of formats 3-5: the address bits and the mispredict flag; all bits before.
    uint64_t from_mask_ = ~0ull, from_mispred_ = 0;
    uint64_t info_mask_ = 0;  // LBR_INFO's bits (format 5), else 0

    // Where translated code finds the trace (Translator's layout has the offsets).
    struct Shared {
        uint64_t bits = 1;  // the open word (RBP while a chain runs): its sentinel, no bits
        uint32_t widx = 0;  // the next slot
        uint32_t tidx = 0;  // the next target
        TraceRing* ring = nullptr;
        const uint64_t* blocks = nullptr;  // the CPU's count of chained blocks
    };
    mutable std::unique_ptr<TraceRing> ring_store_;
    mutable Shared sh_;
    friend class Translator;
    uint8_t trace_done_ = 0;
    mutable bool tracing_ = false;
    mutable uint8_t trace_cpl_ = 0;
    bool trace_long64_ = false;
    mutable uint32_t trace_first_ = 0;  // the chain's first slot
    mutable uint32_t ktotal_ = 0;       // kept records before slot widx (as ring kcum)
    mutable uint32_t appended_ = 0;     // run-loop slots since the last ring check
    // Where the last walk of a word ended: the next block's RIP, the count, the target.
    mutable uint64_t walk_rip_ = 0, walk_now_ = 0;
    mutable uint32_t walk_t_ = 0;
    Resolver resolve_;
    // The blocks walks resolved, by RIP and CPL, valid in generation memo_gen_ (until the
    // next drain_trace()).
    struct Memo {
        uint64_t rip = 0, gen = 0;
        uint8_t cpl = 0;
        TraceStep step;
    };
    static constexpr size_t kMemo = 1024;
    mutable std::array<Memo, kMemo> memo_{};
    mutable uint64_t memo_gen_ = 1;
    const TraceStep& step_at(uint64_t rip, uint8_t cpl) const;

    // The architectural stack, as of `decoded_` slots.
    mutable uint32_t decoded_ = 0;
    mutable uint32_t kdecoded_ = 0;  // kept records before decoded_
    mutable uint32_t tdecoded_ = 0;  // targets before decoded_
    // Some slot since decoded_ keeps records its kcum does not count (a chain's words
    // where the filter keeps some near classes only): the walk starts at decoded_.
    mutable bool walk_all_ = false;
    mutable uint32_t tos_ = 0;
    mutable uint64_t last_record_ = 0;  // cycle count of the newest applied record
    mutable std::array<Entry, msr::kLbrMaxDepth> e_{};
    mutable BranchPredictor bp_;
};

}  // namespace softkvm::cpu
