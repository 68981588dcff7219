// The code generator of the translating engine (docs/translator.md): one BlockEmitter
// writes one decoded block's host code into a slice of the code cache. Its parts:
// emitter.cc (the block frame, handler calls, branches, memory operands), emit_cache.cc
// (guest registers in host registers), emit_forms.cc (the native register forms of
// forms.h), emit_flags.cc (the status flags: where they are needed, conditions, merges),
// emit_stack.cc (stack and indirect branches) and chain.cc (chaining between blocks).
#pragma once
#ifdef SOFTKVM_HAVE_TRANSLATOR
#include <xbyak/xbyak.h>

#include <cstring>
#include <deque>
#include <functional>
#include <initializer_list>
#include <optional>
#include <vector>

#include "cpu/block.h"
#include "cpu/lbr.h"
#include "cpu/translate/forms.h"
#include "cpu/translate/layout.h"

namespace softkvm::cpu {

// The frame code_cache.h describes: three callee-saved registers hold the CPU and the
// two run-loop variables across handler calls.
class BlockEmitter : public Xbyak::CodeGenerator {
  public:
    // One generator serves every block of a translator (building one per block costs
    // more than emitting a small block): start() points it at the next block's room.
    explicit BlockEmitter(const CpuLayout& off)
        : Xbyak::CodeGenerator(sizeof(scratch_), scratch_), off_(off) {}

    // The next block is written at `at` (at most `size` bytes), with native forms or not.
    void start(uint8_t* at, size_t size, bool native);

    // The RIP the block was built at (Block::host_rip): its LBR recording (emit_lbr.cc)
    // takes its branch's addresses from it.
    void set_start_rip(uint64_t rip) { start_rip_ = rip; }
    // BMI2 instructions (RORX in the software-TLB probe) in the blocks emitted from now
    // on: only where the host has them (Translator::set_bmi2).
    void set_bmi2(bool on) { bmi2_ = on; }
    // Room for the LBR recording of one chain exit (emit_lbr_record), in bytes.
    static constexpr size_t kLbrRecordCode = 512;

    // Where another block's code continues into this one (see emit_chain_entry), and
    // where a direct exit of a block whose every instruction is native and of the same
    // mode does while nothing is recorded per block (Block::host_fast).
    const uint8_t* chain_entry() const { return chain_entry_; }
    const uint8_t* chain_fast() const { return chain_fast_; }

    void emit(const Block& b);

    // The successor search a direct exit calls (emit_lookup_stub), one per kind of
    // exit, written once at `at` (at most `size` bytes, the code cache's front, which
    // its flushes keep) before any block: returns the bytes used. A block's calls to
    // them are relative, so the stubs and the blocks share one view of the cache.
    size_t emit_lookup_stubs(uint8_t* at, size_t size);
    static constexpr size_t kLookupStubCode = 8192;

  private:
    // Entry from another translated block (same frame: RBX, R12, R13 as set up by the
    // first block the run loop entered; *R12 holds the previous block's instruction
    // count, not yet in icount_; R9 the previous block). The previous block's exit
    // checked what its own instructions could have changed and the kick
    // (emit_chain_exit); here what only this block decides: the mode it was decoded for,
    // no interrupt request, no bus-lock detection if it holds locked instructions, and
    // the whole block within the instruction limit and before the next timer deadline.
    // Otherwise it returns to the run loop as the previous block, which ended normally
    // (entry_refused_). A `quiet` block (every instruction native: no handler that could
    // read them) neither notes itself as the running block here nor writes the run
    // loop's per-block variables for the PMU bookkeeping (which chains nothing:
    // kChainNever). Its second entry (chain_fast_) is this one after the mode check.
    void emit_chain_entry(const Block& b, bool quiet);
    // The entry's checks and counting (and with `variables`, the running block and the
    // run loop's per-block variables).
    void emit_entry(const Block& b, bool variables);
    // The entry checks of a block of `n` instructions (with `kick`, another thread's
    // kick; an interrupt request and, with `watch_lock`, bus-lock watching; the
    // instruction limit and the deadline), to `fail` when one stops it; then the block
    // before is counted retired (RAX: icount).
    void emit_entry_checks(uint64_t n, bool kick, bool watch_lock, Xbyak::Label& fail);

    // After the block's last instruction: the block the run loop would pick next — its
    // successor links, then its jump cache, with the same keys and validity — and, if that
    // block has a translation, its chaining entry. Otherwise back to the run loop. Not
    // when the run loop's per-block bookkeeping (LBR, PMU) is on (with LBR recording
    // only, a `quiet` block built for it, recording_, records its end, emit_lbr_record,
    // and goes on; built for the other state, it goes on only without it), nor, unless the
    // block is `quiet` (every instruction native), when a handler left the run loop something to
    // do: halt, NMI, #DB, single-step, breakpoints, trace, LBR or PMU, an MMIO replay.
    // `way`: at the exits of a block ending with Jcc, which way it went there (its LBR
    // recording then needs no test).
    // `exit`: which of the block's direct exits this is (Block::direct: its successor
    // found there is remembered), or -1 (an indirect or far branch's).
    enum class JccWay : uint8_t { Unknown, Taken, NotTaken };
    // `slot`: false where the caller found the direct exit's slot (Block::direct) stale
    // already (emit_direct_exit): the untraced lookup then starts with the search.
    void emit_chain_exit(const Block& b, bool quiet, JccWay way, int exit, bool slot = true);
    // A direct exit of a quiet block `b` (the last Jcc's ways, a last JMP) to the RIP in
    // R10, not yet stored: with chaining free and the successor remembered for `exit`
    // (Block::direct) still valid, RIP and the done count (`count`) are stored and it
    // jumps there; otherwise, out of line, `check` (if not null: the handler's path for
    // a non-canonical target) and the whole emit_chain_exit. Built for LBR recording
    // (recording_): with kChainTrace (the block runs at start_rip_, so the target is a
    // constant: `check` is decided when translating), the stores, the record and the
    // traced lookup inline; otherwise, out of line, `check`, the stores and back to the
    // run loop.
    void emit_direct_exit(const Block& b, JccWay way, int exit, size_t count, Xbyak::Label* check);

    // The block the run loop would pick next after `b` — its successor links, then its
    // jump cache, with the same keys and validity — and, if that block has a translation,
    // a jump to its chaining entry; otherwise back to the run loop. `traced` (LBR
    // recording, after emit_lbr_record, with the guest's RIP in RAX): the successor must
    // also begin at the RIP it was built at, and the way back is refused_. An indirect
    // exit (`exit` -1) searches inline. A direct exit (`exit` 0 or 1) with `slot` first
    // tests the successor remembered in Block::direct[exit], inline (one compare of the
    // RIP, or while `traced` of the slot's trace_rip, and one of the slots' generation,
    // Cpu::direct_gen_, then a jump); then it calls the shared search (stubs_) and jumps
    // to the entry returned, one jump per exit for the host's branch prediction.
    void emit_successor_lookup(const Block& b, bool traced, int exit, bool slot);
    // The shared search of a direct exit `exit` (0 or 1), `traced` or not, of a `quiet`
    // block or not (whose remembered successor of the same mode is its fast entry,
    // Block::host_fast), called with R9 = the block: the links, then the jump cache; a
    // successor found with a translation is remembered for the exit (with whether it was
    // built at this RIP: always so when `traced`) and its chaining entry returned in R8.
    // Otherwise it drops its return address and leaves the block's frame for the run
    // loop as exit_ (`traced`: refused_) does.
    void emit_lookup_stub(int exit, bool traced, bool quiet);
    const uint8_t* stubs_[2][2][2] = {};   // [exit][traced][quiet], in the write view
    const uint8_t* loaded_[2][2][2] = {};  // their second entries, after RAX's and R11's loads
    // The successor links of the block in R9 for the RIP in RAX (`traced`: only a link
    // whose block was built at that RIP): RDX gets the links' generation; a valid link's
    // block into RCX, then `on_hit`'s code (which must leave: it ends in a jump or a
    // return), one copy per link; after both, the code falls through (no link).
    // (Defined in chain.cc, its only user.)
    template <class OnHit>
    void link_probe(bool traced, const OnHit& on_hit);
    // The chaining entry of the successor in RCX into R8, or to `out` when it has no
    // translation.
    void host_chain_or(Xbyak::Label& out);
    // The jump cache's entry for the RIP in RAX (RDX: the links' generation) into RCX
    // (`traced`: built at that RIP, in the chain's mode and CPL: Cpu::trace_jump_tag_),
    // else to `miss`. `cs_zero`: the block runs in 64-bit mode (the RIP is linear).
    void jump_cache_probe(bool traced, Xbyak::Label& miss, bool cs_zero = false);
    // The frame's end: back to the run loop (code_cache.h: kFrameBytes); with
    // `trace_in_rbp` (a recording translation, a traced lookup stub) the LBR trace's open
    // word goes back to memory first.
    void emit_epilogue(bool trace_in_rbp);
    // A recording translation keeps the LBR trace's open word in RBP and its target
    // ring's next index in R15D while it and the blocks it continues into run: to the
    // Lbr's memory before a handler or the way out, and back.
    void trace_regs_out();
    void trace_regs_in();

    // A block that branches back to its own start and whose instructions are all native
    // register forms (no memory access, no handler: nothing in it can change the block's
    // validity, mode, CPL or the run loop's block variables) loops without the successor
    // lookup: with nothing recorded per block (kChainFree), no kick or interrupt request,
    // and the whole block within the instruction limit and the deadline, as
    // emit_chain_entry checks, it counts the instructions and runs again from loop_top_
    // (its registers still in their host registers). Otherwise on to emit_chain_exit.
    void emit_self_loop(const Block& b);
    bool self_loop_ = false;
    Xbyak::Label loop_top_;
    // A block whose last instruction is a direct branch back to its start, every
    // instruction native (memory forms too: their handlers' paths end the block on any
    // stop condition, such as a store into a code page, and change nothing else that the
    // run loop would look at between two blocks), is looped tightly when RIP and the done
    // count in memory are still the block's start and 0 at that branch (no instruction
    // synced them: emit_branch knows it as it emits): the way taken, with no kick,
    // chaining free, no bus-lock watching for a locked instruction and the block's next
    // run within the bound of emit_entry_checks, counts the run retired and goes on at
    // loop_top_, its registers still in their host registers, storing only the
    // instruction count and chained_blocks. Otherwise to `fail`.
    void emit_tight_loop(const Block& b, Xbyak::Label& fail);
    bool loops_to_start_ = false;  // the block's last branch targets its start
    bool tight_loop_ = false;      // and emit_branch emitted emit_tight_loop for it
    uint64_t loop_bytes_ = 0;      // the block's length in bytes

    // LBR recording of a `quiet` block's end while it chains (kChainTrace),
    // before its successor is looked up: the branch it ended with goes into the LBR
    // unit's trace (Lbr, docs/lbr.md "How recording works"): its outcome as one bit shifted into
    // RBP (a full word is stored out of line), an indirect branch's or return's target into the
    // trace's target ring; the unit learns the rest from the block itself when it walks the trace
    // (the successor lookup and the run loop make sure that the block began at start_rip_). A
    // branch without a native form (every branch outside 64-bit mode) returns to the run loop,
    // which hands it to the unit: then it returns false (nothing follows), else it leaves the
    // guest's RIP in RAX and returns true. `rip_in_r10`: the guest's RIP is in R10 (as stored), not
    // read back, and stays there (RAX is not set). (emit_lbr.cc)
    bool emit_lbr_record(const Block& b, JccWay way, bool rip_in_r10);
    // Whether the branch `b` ends with is recorded by its own code at that exit (else the
    // run loop records it).
    bool lbr_native(const Block& b, JccWay way) const;
    // The outcome bit of the block's branch (taken or not) into RBP; where that fills a
    // word, out of line: the word stored in the trace's next slot and the slot after it
    // started, from `to` (the RIP the block went to) after the block's `n` instructions.
    void emit_trace_bit(bool taken, const Xbyak::Reg64& to, size_t n);
    // A recording exit's way on, with kChainTrace: `body`; `out` with
    // any other mode or a kick.
    void emit_recording_ways(Xbyak::Label& out, const std::function<void()>& body);
    // Compares `r` with `v`, through R8 when `v` does not fit a sign-extended imm32.
    void cmp_imm(const Xbyak::Reg64& r, uint64_t v);
    // Stores the 64-bit `v` at `a`, through R8 when it does not fit a sign-extended imm32.
    void store_imm(const Xbyak::Address& a, uint64_t v);

    // Guest register `g` (its low `size` bytes) where the block keeps it now: its host
    // register when the block caches it (see cache_), else the CPU state. gpr_at reads;
    // wgpr_at is for a write (the register is then written back at the next flush).
    // The operands live until the block is finished.
    const Xbyak::Operand& gpr_at(uint8_t g, uint8_t size);
    const Xbyak::Operand& wgpr_at(uint8_t g, uint8_t size);
    const Xbyak::Operand& gpr(uint8_t g) { return gpr_at(g, 8); }
    const Xbyak::Operand& wgpr(uint8_t g) { return wgpr_at(g, 8); }
    // Guest register `g` in the CPU state, whatever the cache holds.
    Xbyak::Address mem_gpr(uint8_t g, uint8_t size) { return frame(size)[rbx + off_.gpr + 8 * g]; }

    // Guest registers in host registers within a block (docs/translator.md): the block's
    // most used registers (by its native instructions) get a host register each for the
    // whole block, loaded at its start. Written ones are stored back (flush_cache) before
    // anything that reads the CPU state — a handler call, a handler's path, the block's
    // end, a branch — and all are loaded again (reload_cache) after a handler.
    static constexpr int kCacheRegs = 5;
    void choose_cache(const Block& b, const std::vector<Native>& forms);
    void flush_cache();
    // (At the block's start, not the guest registers in `skip`: bit g, see written_first.)
    void reload_cache(uint32_t skip = 0);
    // The guest registers (bit g) that the block's first instructions write whole (32 or
    // 64 bits) before anything reads them: their load at the block's start is dead.
    static uint32_t written_first(const Block& b, const std::vector<Native>& forms);
    bool is_cached(uint8_t g) const { return g < 16 && slot_of_[g] >= 0; }
    // The host register of cached guest register `g`, which a native instruction writes
    // in place (host 8-, 16- and 32-bit writes behave as the guest's: the rest kept, or
    // zero-extended); `written` marks it for the next flush.
    Xbyak::Reg64 host_of(uint8_t g) const;
    void written(uint8_t g) { dirty_ |= 1u << g; }

    // RIP and the done count as the interpreter has them before instruction `k`.
    void sync(size_t k);

    // The interpreter's step: next RIP, RSP for a fault's restore, the handler, RIP :=
    // next RIP, one more instruction done, leave on a stop flag.
    void call_handler(const DecodedInsn& in, size_t k);

    // A label that lives until the block is finished (out-of-line paths refer to it).
    Xbyak::Label& block_label() { return labels_.emplace_back(); }
    // The handler's path of native instruction `k`, placed after the block's epilogue so
    // the fast path runs straight on: at `slow` (RIP and the done count as `pending` and
    // `done_before` leave them; with `load`, a MOV load's Translator::load_for_code
    // first), then back to `done` (with `flags_to_eax`, RFLAGS in EAX as the fast path
    // leaves the flags it merged: see eax_flags_).
    // With `lazy` (the memory forms), the fast path neither syncs RIP and the done count
    // before the instruction nor stores them after it (join_handler_path): the handler's
    // path syncs them first and, back from the handler, sets them where the fast path
    // leaves them (rejoin_lazy).
    // `tail`: emitted last on that path, before it rejoins (a fused consumer's).
    void defer_handler(const DecodedInsn& in, size_t k, Xbyak::Label& slow, Xbyak::Label& done,
                       bool load = false, bool flags_to_eax = false, bool lazy = false,
                       std::function<void()> tail = nullptr);
    void rejoin_lazy(const DecodedInsn& in, uint64_t pending, size_t done_before);

    // JMP rel32/rel8 and Jcc (op_jmp, op_jcc): RIP := next RIP, plus the displacement
    // when taken (the condition read from RFLAGS as Cpu::cond reads it); a
    // non-canonical target goes to the handler, which raises #GP. A Jcc that ends block
    // `last` (null: not the last instruction) emits the taken way's chain exit itself.
    void emit_branch(const DecodedInsn& in, Native f, size_t k, const Block* last, bool quiet,
                     uint64_t flags_in_eax);

    // The effective address of `o` into RAX (Cpu::effective_address): displacement,
    // base (RIP: the next instruction's), index << scale, wrapped to the address size.
    void emit_ea(const DecodedInsn& in, const Operand& o);
    // LEA (op_lea): the effective address, truncated to the operand size, into the
    // destination register.
    void emit_lea(const DecodedInsn& in);

    // MOV r, m; MOV m, r; ALU r, m (fast.cc's mov_rm, mov_mr, alu_rm): the address, then
    // the software TLB as Cpu::read_mem/write_mem probe it — an entry for the page at this
    // privilege, no page crossing, no alignment checking. On a hit the access goes to the
    // host page; otherwise the instruction's handler runs it (faults, MMIO, code pages).
    void emit_mem(const DecodedInsn& in, Native f, Alu k, size_t idx, bool flags_live);

    // Read-modify-writes of memory (emit_atomic.cc): ALU m, r; LOCK ALU m, imm; INC/DEC m;
    // XCHG, XADD, CMPXCHG m, r. Both software-TLB entries must hit and lead to the same
    // host address; a locked one must not split a 64-byte line (the host's locked
    // instruction would take a split lock): otherwise the instruction's handler runs it.
    void emit_rmw(const DecodedInsn& in, Native f, Alu k, size_t idx, bool flags_live);
    // The end of memory form `in`: label `done` placed where its handler's path rejoins,
    // its RIP advance pending (RIP and the done count in memory as before it), and the
    // emitter's tracking reset to what both paths leave.
    void join_handler_path(const DecodedInsn& in, Xbyak::Label& done);
    // The same for forms that store RIP themselves (stack and branch forms): the count
    // stored, RIP and the count synced at `done`.
    void join_synced(size_t idx, Xbyak::Label& done);

    // The slow path of MOV r, m (Translator::load_for_code) with the linear address in
    // RAX: the value, an abandoned instruction (to the run loop) or, falling through,
    // the handler's path.
    // With `lazy`, the fast path's RIP advance `pending` and count `done_before` to rejoin.
    void emit_load_slow(const DecodedInsn& in, size_t idx, Xbyak::Label& done, bool lazy,
                        uint64_t pending, size_t done_before);

    // The linear address of memory operand `m` into RAX (its segment's base added where
    // it has one). Unlike Cpu::linear it does not note the segment (Cpu::last_seg_): only
    // a fault reads it (#SS or #GP for a non-canonical address), and a fault can happen
    // only on the slow path, where the handler notes it itself and emit_load_slow before
    // its call.
    void emit_lin(const DecodedInsn& in, const Operand& m);
    // The software-TLB probe of Cpu::read_mem/write_mem for `size` bytes at the linear
    // address in RAX, in the table at offset `table` (read or write entries): no
    // alignment checking, no page crossing, an entry for the page at this privilege. On a
    // hit RDX = the host address, the entry's addend plus RAX (R8 = the entry's offset in
    // the table, R9 = the tag); otherwise to `slow`. Without `add_lin`, RDX = the addend
    // alone and the host address is [RDX + RAX] (one addition less, for an access that
    // reads or writes memory before anything overwrites RAX).
    void emit_probe(uint8_t size, int32_t table, Xbyak::Label& slow, bool add_lin = true);
    // The same for the linear address `lin` (a register plus a displacement, or RAX),
    // leaving RDX = the entry's addend: the host address is [lin + RDX].
    void emit_probe_at(uint8_t size, int32_t table, Xbyak::Label& slow, const Xbyak::RegExp& lin);
    // The host has BMI2 (RORX) and the translator lets the probe use it (set_bmi2).
    bool bmi2_ = false;
    // The low bits of emit_probe's tag into the frame ([RSP + kProbeBitsAt]): valid, user
    // (CPL 3) and, while alignment checking is on, kProbeNoEntry, a bit no valid entry's
    // tag has (an invalid one has bits 3-11 set, which a probe's never has). Computed when
    // the run loop enters a block and after every handler call, the only places CPL,
    // CR0.AM and RFLAGS.AC can change while blocks run (native forms change none; an
    // interrupt or exception returns to the run loop). Clobbers RAX, RCX.
    void emit_probe_bits();
    static constexpr int32_t kProbeBitsAt = 8;
    static constexpr uint64_t kProbeNoEntry = 4;
    // To `to` unless condition `cc` (Cpu::cond) holds on the guest's RFLAGS. Clobbers
    // RCX, R8.
    // `in_eax`: status flags EAX holds as RFLAGS has them (emit_alu, emit_unary just
    // before), tested there instead.
    void jump_unless(uint8_t cc, Xbyak::Label& to, uint64_t in_eax = 0);
    // To `slow` if the address in `r` is not canonical (Cpu::jump's #GP). Clobbers R8.
    void canonical_or(const Xbyak::Reg64& r, Xbyak::Label& slow);
    // PUSH/POP r64, CALL rel32/r64/m64, RET, JMP r64/m64 in 64-bit mode; the handler on a
    // TLB miss or a non-canonical target.
    void emit_stack_branch(const DecodedInsn& in, Native f, size_t idx);
    // A near CALL (op_call) with its target in R10 and the next RIP in R11
    // (next_rip_to_r11): the target's canonical check, the push, the jump; to `slow` (the
    // handler) before anything is written.
    void emit_call_push(Xbyak::Label& slow);
    void next_rip_to_r11(const DecodedInsn& in);

    static Xbyak::Reg sized(const Xbyak::Reg64& r, uint8_t size);  // RDX -> DL, DX, EDX
    static const Xbyak::AddressFrame& frame(uint8_t size);         // byte ... qword
    // Writes `v` to guest register `g` as an instruction of `size` bytes does: 8- and
    // 16-bit writes keep the rest of the register, `v` holds a 32-bit result zero-extended.
    void store_gpr(uint8_t g, uint8_t size, const Xbyak::Reg64& v);

    // MOV r, r/imm: a 32-bit destination is zero-extended.
    void emit_mov(const DecodedInsn& in, Native f);
    // MOVZX/MOVSX/MOVSXD from `src` (a guest register or the host address of a load).
    void emit_extend(const DecodedInsn& in, const Xbyak::Operand& src);
    void emit_setcc(const DecodedInsn& in);
    void emit_cmovcc(const DecodedInsn& in);

    // The status flags a native instruction computes are needed unless a later native
    // instruction of the block overwrites all six first (MOVs in between read none;
    // anything else, or the block's end, may read them): Dead. FaultOnly: one later
    // instruction overwrites all six, and in between only register moves and the memory
    // moves (MOV r, m; MOV m, r/imm; MOVZX/MOVSX r, m), whose handler's path alone could
    // see them (a fault, or the handler's RFLAGS); the overwriting instruction may be an
    // ALU r, m or m, imm form, whose handler's path may see them too. (emit_flags.cc)
    enum class FlagUse : uint8_t { Dead, FaultOnly, Live };
    static FlagUse flags_use_after(const std::vector<Native>& f, const Block& b, size_t k) {
        return flags_use_from(f, b, k + 1);
    }
    // The same for the flags in RFLAGS before instruction `from`.
    static FlagUse flags_use_from(const std::vector<Native>& f, const Block& b, size_t from);
    // A block that loops onto itself tightly (emit_tight_loop) and ends with an ALU
    // register form and a Jcc whose flags, when the loop goes round, are FaultOnly or Dead
    // from the block's start on: the ALU form leaves them pending (its LAHF result in the
    // frame, not merged), the Jcc tests the host's flags themselves, and the loop's exits
    // and handlers' paths merge them (merge_pending). The frame gets the pending flags from
    // R13 where the block is entered, before loop_top_, so that from loop_top_ on until
    // their first overwriting both ways in hold the flags there. Returns the pending kind
    // (0: not so).
    uint8_t tight_flags_kind(const Block& b, const std::vector<Native>& forms,
                             const std::vector<Alu>& alus) const;
    uint8_t tight_kind_ = 0;     // tight_flags_kind of the block
    bool tight_alu_ = false;     // the ALU form being emitted is that one
    bool cond_in_host_ = false;  // the host's flags hold the next Jcc's (jump_unless)
    // Host Jcc of condition `cc` to `to`.
    void host_jcc(uint8_t cc, Xbyak::Label& to);
    // Flags needed only on handlers' paths (FaultOnly after an ALU form, alu_tail): the
    // host's LAHF (and SETO) result in the frame ([RSP + kFlagsRawAt]: AX, or AH alone
    // after AND/OR/XOR/TEST), merged into RFLAGS only by the paths that need it
    // (defer_handler); R13 keeps older flags meanwhile, which the overwriting
    // instruction replaces. pending_flags_: what the frame holds now (0: nothing, else its
    // kind: PendingArith, AX after an arithmetic ALU form; PendingLogic, AH after a logic
    // one or SAR; PendingShr, AH and SHR's OF in AL; PendingShl, AH after SHL);
    // pending_ok_: the form being emitted may leave its flags so (ALU register and ALU
    // r, m forms, shifts by an immediate); pending_end_: the instruction being emitted
    // ends the pending flags' span.
    static constexpr int32_t kFlagsRawAt = 16;
    static constexpr uint8_t PendingArith = 1, PendingLogic = 2, PendingShr = 3, PendingShl = 4;
    uint8_t pending_flags_ = 0;
    bool pending_ok_ = false, pending_end_ = false;
    // The pending kind the ALU form of kind `k` being emitted leaves (0: none).
    uint8_t alu_pending_kind(Alu k) const;
    // The pending flags of kind `kind` into R13 (a handler's path, before it flushes).
    void merge_pending(uint8_t kind);
    // The frame's pending flags of kind `kind` from R13, on the handler's path of the ALU
    // form that left them, so that both paths leave the frame alike.
    void pending_from_rflags(uint8_t kind);

    // Merges host-computed status flags in EAX into the guest's RFLAGS, replacing `mask`.
    void merge_flags(uint64_t mask);
    void load(const Xbyak::Reg64& r, uint8_t g, bool q);
    // Guest register `g`'s low `size` bytes into RDX as a load does (1: zero-extended, 4:
    // zero-extended, 8), from RDX itself when the instruction before left the whole
    // register there (rdx_known_).
    void load_rdx(uint8_t g, uint8_t size);

    // INC/DEC (op_incdec): the host's OF SF ZF AF PF equal the interpreter's; CF is kept.
    // NOT and NEG of a 32- or 64-bit register (op_not, op_neg): NEG's flags as SUB 0, r.
    void emit_unary(const DecodedInsn& in, Native f, bool flags_live);

    // Shifts and rotates by an immediate (op_shift, op_rotate) with the count masked as
    // the interpreter masks it. Result, CF, SF, ZF, PF come from the host; AF is 0 and OF
    // follows shift.cc's formulas for every count (the SDM defines it for 1 only).
    // SHL/SHR/SAR of a 32- or 64-bit register by CL too: a masked count of 0 skips the
    // flags at run time.
    void emit_shift(const DecodedInsn& in, Native f, bool flags_live);
    // The flags of shift or rotate `f` of the `bits`-bit result in `r` (AH: LAHF after
    // it; R8: a SHR's source), into RFLAGS.
    void shift_flags(Native f, const Xbyak::Reg64& r, uint8_t bits);

    // IMUL r, r/m and IMUL r, r/m, imm (op_imul, set_mul_flags): CF = OF = the host's
    // overflow; SF, ZF, PF from the truncated result; AF 0.
    void emit_imul(const DecodedInsn& in, Native f, bool flags_live);

    // The host instruction of the same kind and size computes the same result and the
    // same defined flags (SDM vol. 1 appendix A); AF, undefined after AND/OR/XOR/TEST,
    // is 0 there in the interpreter (flags.h), so it is not taken from the host.
    // ALU r, [host] after a TLB hit: as emit_alu with the loaded operand.
    void emit_alu_value(const DecodedInsn& in, Alu k, const Xbyak::Operand& src, bool flags_live);

    void emit_alu(const DecodedInsn& in, Native f, Alu k, bool flags_live);
    // ALU with a cached destination: the host instruction on its host register.
    void emit_alu_cached(const DecodedInsn& in, Alu k, const Xbyak::Operand& src, bool flags_live);
    void alu_cached_flags(const DecodedInsn& in, Alu k, bool flags_live);

    // After the host ALU instruction, its result in RDX: the destination and the flags.
    void alu_flags(const DecodedInsn& in, Alu k, bool flags_live);
    // The host's status flags after an instruction into RAX, where RFLAGS has them (OF
    // only if `of`: else 0). Clobbers the host's flags.
    void capture_flags(bool of);
    // The flags capture_flags() took after a host ALU instruction, into RFLAGS.
    void merge_alu_flags(bool logic);
    // Captured flags `take` into RFLAGS, whose `replace` bits are cleared first.
    void merge_host_flags(uint64_t take, uint64_t replace);

    // A flag consumer fused with the ALU instruction before it (emit_flags.cc): SETcc
    // and CMOVcc after an ALU register or ALU r, m form read the host's flags, which are
    // the guest's for every condition (CF ZF SF OF PF), between the host instruction and
    // the merge into RFLAGS (LAHF and SETO change no flag); the merge itself only if the
    // flags are live after the consumer. A Jcc on a signed condition (L, GE, LE, G) after
    // one gets its condition from the host's flags in CL (SETcc), tested at the branch
    // (jump_unless) instead of SF, OF and ZF picked out of RFLAGS. The ALU r, m form's
    // handler path runs the consumer (or, for a Jcc, sets CL) from RFLAGS itself.
    struct Fused {
        const DecodedInsn* in = nullptr;  // the consumer (null: none)
        Native f = Native::None;          // its form: Setcc, Cmovcc or Jcc
        FlagUse use = FlagUse::Live;      // the flags after it
    };
    // Whether consumer `c` of form `cf` can be fused with producer form `pf`.
    static bool fusable(Native pf, Native cf, const DecodedInsn& c);
    // The consumer fuse_ names, on the host's flags (after the ALU instruction's result is
    // written back).
    void emit_fused_consumer();
    // The same from RFLAGS (R13), on the producer's handler path; a Jcc's condition into CL.
    void emit_consumer_from_rflags(const Fused& c);
    // After an ALU instruction (its result in RDX unless `cached`): the write-back, the
    // fused consumer and the flags (alu_flags, alu_cached_flags).
    void alu_tail(const DecodedInsn& in, Alu k, bool flags_live, bool cached);
    // Host SETcc and CMOVcc of condition `cc` (Cpu::cond's numbering, the opcode's).
    void host_setcc(uint8_t cc, const Xbyak::Operand& op);
    void host_cmovcc(uint8_t cc, const Xbyak::Reg& r, const Xbyak::Operand& op);
    Fused fuse_;                  // the consumer of the instruction being emitted
    bool cond_in_cl_ = false;     // CL holds the next Jcc's condition (jump_unless)
    uint8_t fused_rdx_ = kNoGpr;  // the guest register RDX holds after the fused consumer

    // The host instruction of ALU kind `k` (ADC and SBB after carry_in).
    void alu_op(Alu k, const Xbyak::Reg& d, const Xbyak::Operand& s);
    void alu_imm(Alu k, const Xbyak::Reg& d, uint32_t v);
    // The guest's CF into the host's CF (for ADC and SBB, just before them).
    void carry_in();
    // Fixed instruction sequences (the handler call, sync) encoded here, not through
    // xbyak's general encoder and label tables, which took most of a block's translation
    // time: collected in a Raw, copied into the block at once by put().
    struct Raw {
        uint8_t b[128];
        size_t n = 0;
        void u8(uint8_t v) { b[n++] = v; }
        void bytes(std::initializer_list<uint8_t> v) {
            for (uint8_t x : v) b[n++] = x;
        }
        void u32(uint32_t v);
        void u64(uint64_t v);
        // `op` with ModRM reg field `reg` and memory operand [RBX + disp] (disp8 when it
        // fits), after a REX prefix unless `rex` is 0.
        void rbx_mem(uint8_t rex, uint8_t op, uint8_t reg, int32_t disp);
        // JNE rel32 to offset `target` of the block, these bytes being put at `base`.
        void jne_to(size_t target, size_t base);
    };
    void put(const Raw& r);  // throws Xbyak::Error past the block's room, as xbyak does

    uint8_t scratch_[16] = {};  // the generator's buffer until the first start()
    size_t exit_at_ = 0;        // exit_'s offset in the block (placed before the body)
    CpuLayout off_;
    uint64_t start_rip_ = 0;  // set_start_rip()
    bool native_ = false;
    const uint8_t* chain_entry_ = nullptr;
    const uint8_t* chain_fast_ = nullptr;
    bool quiet_ = false;  // every instruction of the block native
    Mode mode_ = Mode::Long64;
    // Built for LBR recording in chained blocks (Block::kRecordingKey): a quiet block's
    // exits carry only the recording way on, any other block's only the other.
    bool recording_ = false;
    // Back to the run loop, the block noted as the running one (Cpu::chained_).
    Xbyak::Label exit_;
    // Back to the run loop as exit_ does, after noting that the block recorded its LBR
    // branch (Lbr::trace_done): where a recording block's successor lookup fails.
    Xbyak::Label refused_;
    // The same where a chaining entry refuses (only recording blocks chain to one while
    // recording), as the previous block (R9); ret_: the frame's epilogue.
    Xbyak::Label entry_refused_, ret_;
    const Block* block_ = nullptr;             // the block being emitted
    bool direct_end_ = false;                  // its last branch's ways end in emit_direct_exit
    std::deque<Xbyak::Label> labels_;          // block_label()
    std::vector<std::function<void()>> cold_;  // out-of-line paths, emitted after the block
    void emit_cold();                          // emits them (and those they add)
    // Between two register forms: the guest register whose whole value RDX holds after
    // the previous one (rdx_gpr_, set as it is emitted; rdx_known_, what the current one
    // may use), and the status flags EAX holds after a flag merge (eax_flags_ for the
    // next instruction; merged_, the last merge's). Reset for every other instruction.
    static constexpr uint8_t kNoGpr = 0xFF;
    uint8_t rdx_gpr_ = kNoGpr, rdx_known_ = kNoGpr;
    uint64_t eax_flags_ = 0, merged_ = 0;
    // The register cache: host register of each guest register (-1: none), the guest
    // register of each host register (kNoGpr: unused), the cached guest registers written
    // since the last flush (bit g), and the operands handed out (gpr_at: a ring, each
    // one in use only within the instruction that asked for it; no heap allocation).
    int8_t slot_of_[16] = {};
    uint8_t cached_[kCacheRegs] = {};
    uint32_t dirty_ = 0;
    // RFLAGS in R13 for the whole block (flags_cached_), like a cached register: dirty_
    // bit kFlagsBit once a native instruction merged flags into it.
    static constexpr uint32_t kFlagsBit = 1u << 16;
    bool flags_cached_ = false;
    static constexpr size_t kOperandRing = 16;
    Xbyak::Reg op_regs_[kOperandRing];
    std::optional<Xbyak::Address> op_addrs_[kOperandRing];
    size_t op_next_ = 0;
    uint64_t pending_rip_ = 0;  // RIP advance of native instructions not yet stored
    size_t done_ = 0;           // the value the run loop's `done` has now
};

}  // namespace softkvm::cpu
#endif
