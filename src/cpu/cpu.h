// The software x86-64 CPU: fetch/decode through the decoded-block cache, execute through
// per-family handlers (cpu/exec/), memory through the MMU and software TLB, exceptions
// through the IDT. One Cpu is one vCPU; it reports events to its CpuOwner.
#pragma once
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cpu/arch.h"
#include "cpu/cpu_model.h"
#include "cpu/cpu_types.h"
#include "cpu/decoded_insn.h"
#include "cpu/lbr.h"
#include "cpu/owner.h"
#include "cpu/pmu.h"
#include "cpu/state.h"
#include "cpu/translate/translator.h"

namespace softkvm::cpu {

class Decoder;
struct Block;

class Cpu {
  public:
    explicit Cpu(CpuOwner& owner);
    ~Cpu();
    Cpu(const Cpu&) = delete;
    Cpu& operator=(const Cpu&) = delete;

    // Multi-vCPU: all CPUs of a VM share one code-page map; the owner relays
    // code_page_marked/code_page_written to the others (drop_write_tlb/forget_code_page).
    void share_code_pages(std::shared_ptr<std::vector<uint8_t>> pages) {
        code_pages_ = std::move(pages);
    }
    void drop_write_tlb(uint64_t page);
    void forget_code_page(uint64_t page) { invalidate_code_page(page); }

    // Back to the state of a Cpu newly made on the same owner (power-on registers, no RAM,
    // empty caches, counters at zero, the default model), but keeping its engine and the
    // allocations that cost most to make again: the translator (its code cache emptied),
    // the decoder and the jump cache. For harnesses that run many short guests (fuzz/).
    void reset() noexcept;

    // Bit (guest-physical page number mod 64) set for every RAM page the CPU may have
    // written since it was made or reset: every store to RAM goes through a write TLB
    // entry filled with its page, or through the slow path, and both set it. A harness
    // that puts RAM back between runs (fuzz/) compares only these pages.
    uint64_t written_pages() const { return written_pages_; }

    // Guest RAM at guest-physical [gpa, gpa+size), backed by `host`.
    void add_ram(uint64_t gpa, uint64_t size, uint8_t* host);

    // The host wrote guest RAM behind the CPU's back (a loader, a test): drop decoded code
    // of the pages in [gpa, gpa+len).
    void host_wrote(uint64_t gpa, uint64_t len);

    // The owner changed the registers while an instruction waited for an MMIO or port
    // read (KVM_SET_REGS after an exit): it is not completed, the new state runs afresh.
    void abandon_pending_read() { drop_mmio_log(); }

    CpuState& state() { return s_; }
    const CpuState& state() const { return s_; }
    // Call after changing state() from outside: recomputes the mode, flushes the TLB.
    void state_changed();

    // Runs until the owner asks to stop, `insn_limit` instructions have retired in total
    // (0 = no limit), or the guest cannot go on.
    StopReason run(uint64_t insn_limit);
    uint64_t instructions_retired() const { return icount_; }

    // The decoded-block cache holds at most `limit` decoded instructions (about 120 bytes
    // each). A block that would go past it first flushes the whole cache, as QEMU flushes
    // its translation buffer when it is full: a guest running code from ever new addresses
    // costs decoding time, never unbounded memory.
    static constexpr uint64_t kDefaultBlockCacheInsns = 1u << 18;
    void set_block_cache_limit(uint64_t limit) { cache_limit_ = limit ? limit : 1; }
    struct CacheStats {
        uint64_t blocks_built = 0;   // blocks decoded since the CPU was created
        uint64_t flushes = 0;        // whole-cache flushes at the limit
        uint64_t blocks = 0;         // blocks cached now
        uint64_t insns = 0;          // decoded instructions cached now
        uint64_t mmio_replays = 0;   // instructions re-executed to complete an MMIO read
        uint64_t insns_decoded = 0;  // instructions decoded into blocks, in all
    };
    CacheStats cache_stats() const {
        return {blocks_built_, cache_flushes_, blocks_.size(),
                cached_insns_, mmio_resumes_,  insns_decoded_};
    }
    // An exception or interrupt handler whose first instruction faults again (a #UD
    // handler that raises #UD) makes a loop of deliveries in which no instruction retires:
    // architecturally legal, endless on a real CPU, and on this one it stops the virtual
    // clock (which counts retired instructions), so no timer can end it and neither can
    // run()'s instruction limit. run() returns Stalled, at the instruction boundary after
    // a delivery, once `limit` events (exceptions, interrupts, NMIs, #DB traps; every
    // delivery attempt of a #DF chain) have been delivered since the last retired
    // instruction; stop_detail() names the last. Calling run() again goes on exactly
    // where a CPU that never stopped would be, with a new count. docs/architecture.md,
    // "Event loops that retire nothing". Not kept by reset().
    static constexpr uint64_t kDefaultStallLimit = 1u << 16;
    void set_stall_limit(uint64_t limit) { stall_limit_ = limit ? limit : 1; }
    uint64_t stall_limit() const { return stall_limit_; }
    // Execution engine (docs/translator.md). False if `e` is not available here.
    // `cache_bytes`: the translator's code cache (tests make it small to force flushes).
    bool set_engine(Engine e, size_t cache_bytes = Translator::kDefaultCacheBytes);
    Engine engine() const { return xlate_ ? Engine::Translate : Engine::Interp; }
    Translator* translator() { return xlate_.get(); }
    Translator::Stats translator_stats() const {
        return xlate_ ? xlate_->stats() : Translator::Stats{};
    }
    // Instruction trace: `fn` sees the RIP and disassembly of each of the next `count`
    // instructions before it runs (the CPU steps one instruction at a time meanwhile).
    using TraceFn = std::function<void(uint64_t rip, const std::string& text)>;
    void set_trace(TraceFn fn, uint64_t count);
    // Makes run() return Kicked at the next block boundary. Async-signal-safe.
    void kick() { kick_.store(true, std::memory_order_relaxed); }
    // Withdraws a kick that run() has not seen yet; returns whether there was one.
    bool take_kick() { return kick_.exchange(false, std::memory_order_relaxed); }
    // Bus-lock detector (docs/architecture.md): report every bus lock to CpuOwner::bus_lock(). The
    // detector runs only while this is on or DEBUGCTL.BUS_LOCK_DETECT is set.
    void set_bus_lock_reports(bool on);
    // Whether the CPUID the guest sees (model + owner) has bit `b`.
    bool cpuid_has(uint32_t leaf, uint32_t subleaf, uint8_t reg, uint8_t bit);

    // Virtual time (docs/architecture.md "The software CPU"): one tick per retired instruction plus
    // the ticks skipped while halted. The TSC is clock() + the guest's TSC offset. Inside a
    // block (an instruction's handler, a device it reaches) the instructions the block has
    // retired so far count too, though icount_ takes them at the block's end: the engines
    // split code into blocks differently, and time must not depend on where blocks start.
    uint64_t clock() const { return icount_ + idle_ + (block_done_ ? *block_done_ : 0); }
    // The vCPU was stalled for `ticks` (a VMM's bus-lock delay): the clock jumps ahead;
    // timer deadlines it passes fire at the next instruction boundary.
    void skip_time(uint64_t ticks) {
        idle_ += ticks;
        update_chain_bound();
    }
    static constexpr uint64_t kNever = ~0ull;
    // The owner wants CpuOwner::deadline() called when clock() reaches `at` (kNever: no).
    // An earlier deadline set inside a block (a timer programmed by an instruction) ends
    // the block after that instruction, so the deadline is seen at the same instruction
    // boundary wherever blocks start.
    void set_deadline(uint64_t at) {
        if (block_done_ && at < deadline_) stop_flags_ |= kStopDeadline;
        deadline_ = at;
        update_chain_bound();
    }
    uint64_t deadline() const { return deadline_; }
    // The owner has an interrupt that may be deliverable: at the next boundary where
    // RFLAGS.IF allows, the CPU calls CpuOwner::acknowledge_interrupt().
    void request_interrupt_check() {
        irq_requested_ = true;
        update_chain_bound();
    }
    // A non-maskable interrupt: taken at the next boundary whatever RFLAGS.IF says, then
    // further NMIs wait until the next IRET (SDM vol. 3 §6.7.1).
    void request_nmi() { nmi_pending_ = true; }
    bool halted() const { return halted_; }
    void wake() { halted_ = false; }
    const std::string& stop_detail() const { return stop_detail_; }

    // The CPU model (cpuid, PMU version, LBR format and depth). Resets the PMU and the
    // LBR unit; IA32_PERF_CAPABILITIES becomes the model's.
    void set_model(const CpuModel& m);
    const CpuModel& model() const { return *model_; }
    // IA32_PERF_CAPABILITIES as the guest reads it (the owner checks what it sets).
    uint64_t perf_capabilities() const { return perf_caps_; }
    void set_perf_capabilities(uint64_t v) { perf_caps_ = v; }
    Pmu& pmu() { return pmu_; }
    Lbr& lbr() { return lbr_; }
    const Lbr& lbr() const { return lbr_; }
    // While intercepted (the default under an owner that asks), LBR MSR accesses go to
    // the owner first; otherwise they reach the LBR unit directly (pass-through).
    void set_lbr_intercept(bool on) { lbr_intercept_ = on; }
    bool lbr_intercepted() const { return lbr_intercept_; }
    // Set whenever a passed-through LBR MSR is accessed; the owner clears it.
    bool take_lbr_touched() { return std::exchange(lbr_touched_, false); }
    // IA32_DEBUGCTL as software reads it. While GLOBAL_STATUS.LBR_Frz freezes the stack
    // (PMU version 4), its LBR bit reads 1 but the CPU's recording bit in state().debugctl
    // is clear; set_debugctl() stores a value under the same rule.
    uint64_t debugctl() const {
        return s_.debugctl | (lbr_held_ ? static_cast<uint64_t>(msr::DEBUGCTL_LBR) : 0);
    }
    void set_debugctl(uint64_t v);
    // Whether WRMSR may write `v` to IA32_DEBUGCTL (no bit the model lacks, #GP otherwise).
    bool debugctl_writable(uint64_t v);
    // While a host-side LBR user owns the unit, LBR_Frz does not stop its recording.
    void set_lbr_host_owned(bool on);
    // RDPMC (SDM vol. 2): counts of instructions already retired in this block first.
    uint64_t rdpmc(const DecodedInsn& at, uint32_t ecx);
    // Brings the PMU's counts up to the instruction `at` of the running block (before a
    // handler reads or writes a PMU MSR); `inclusive`: `at` itself retires under the
    // counters' present configuration (a WRMSR that changes it).
    void pmu_catch_up(const DecodedInsn& at, bool inclusive = false);
    std::string dump_state() const;

    // ---- Interface for instruction handlers (cpu/exec/) ----
    [[noreturn]] void fault(uint8_t vector) { throw GuestFault{vector, false, 0}; }
    [[noreturn]] void fault(uint8_t vector, uint32_t error) {
        throw GuestFault{vector, true, error};
    }
    [[noreturn]] void undefined() { fault(VEC_UD); }

    uint64_t next_rip() const { return next_rip_; }
    // The current instruction runs again (a REP string instruction yielding).
    void restart_instruction() { next_rip_ = s_.rip; }
    // REP string instructions: iterations this execution may run within the instruction
    // limit and the next deadline (at least 1), and iterations beyond the first one that
    // it ran (each counts as a retired instruction, as under QEMU's -icount).
    uint64_t rep_room() const { return rep_room_; }
    void count_iterations(uint64_t extra) { icount_ += extra; }
    // The current instruction read or wrote MMIO: a REP string instruction ends its
    // execution after that iteration, so each iteration's MMIO completes on its own.
    bool touched_mmio() const { return stop_flags_ & kStopMmio; }
    void jump(uint64_t target);  // sets the next RIP (canonical check in 64-bit mode)

    uint64_t& gpr(uint8_t r) { return s_.gpr[r]; }
    uint64_t read_gpr(uint8_t r, uint8_t size, bool hi8 = false) const {
        const uint64_t v = s_.gpr[r];
        if (hi8) return (v >> 8) & 0xFF;
        return size >= 8 ? v : v & ((1ull << (size * 8)) - 1);
    }
    void write_gpr(uint8_t r, uint8_t size, uint64_t v, bool hi8 = false) {
        uint64_t& g = s_.gpr[r];
        switch (size) {
            case 1:
                if (hi8)
                    g = (g & ~0xFF00ull) | ((v & 0xFF) << 8);
                else
                    g = (g & ~0xFFull) | (v & 0xFF);
                break;
            case 2:
                g = (g & ~0xFFFFull) | (v & 0xFFFF);
                break;
            case 4:
                g = v & 0xFFFFFFFFull;
                break;  // 32-bit writes zero-extend
            default:
                g = v;
                break;
        }
    }

    uint64_t seg_base(uint8_t seg) const { return seg_base_[seg]; }
    uint64_t effective_address(const Operand& o) const;
    // The linear address of a memory operand; remembers its segment so that a
    // non-canonical address faults as #SS for stack references and #GP otherwise.
    uint64_t linear(const Operand& o) const {
        last_seg_ = o.seg;
        return seg_base_[o.seg] + effective_address(o);
    }
    void note_segment(uint8_t seg) const { last_seg_ = seg; }
    // Operand access; registers and immediates inline, the rest out of line.
    uint64_t read_op(const DecodedInsn& i, int n) {
        const Operand& o = i.op[n];
        if (o.kind == OpKind::Gpr) return read_gpr(o.reg, o.size, o.hi8);
        if (o.kind == OpKind::Imm) return static_cast<uint64_t>(o.value);
        return read_op_slow(o);
    }
    void write_op(const DecodedInsn& i, int n, uint64_t v) {
        const Operand& o = i.op[n];
        if (o.kind == OpKind::Gpr) return write_gpr(o.reg, o.size, v, o.hi8);
        write_op_slow(o, v);
    }
    uint64_t read_op_slow(const Operand& o);
    void write_op_slow(const Operand& o, uint64_t v);

    // RFLAGS changed outside the arithmetic flags (POPF, IRET...): re-derive what
    // depends on it.
    void flags_changed();

    uint64_t read_mem(uint64_t lin, uint8_t size, Access acc = Access::Read) {
        if (align_check_ && (lin & (size - 1))) fault(VEC_AC, 0);
        const TlbEntry& t = tlb_read_[(lin >> 12) & (kTlbSize - 1)];
        if (t.tag == tlb_tag(lin, user_access()) && (lin & 0xFFF) + size <= 0x1000) {
            return load_le(t.at(lin), size);
        }
        return read_slow(lin, size, acc, user_access());
    }
    void write_mem(uint64_t lin, uint8_t size, uint64_t v) {
        if (align_check_ && (lin & (size - 1))) fault(VEC_AC, 0);
        const TlbEntry& t = tlb_write_[(lin >> 12) & (kTlbSize - 1)];
        if (t.tag == tlb_tag(lin, user_access()) && (lin & 0xFFF) + size <= 0x1000) {
            store_le(t.at(lin), size, v);
            return;
        }
        write_slow(lin, size, v, user_access());
    }
    // The host address of guest-linear `lin` when the software TLB holds its page for
    // `acc` (Read or Write) at the current privilege: accesses from there to the page's
    // end need no walk and raise no fault, and a write page is RAM without decoded code.
    // Null on a miss or with alignment checking on (REP MOVS/STOS a page at a time; their
    // first access to a page goes through read_mem/write_mem, which fill the TLB).
    uint8_t* tlb_host(uint64_t lin, Access acc) const;
    // Reads `n` bytes of guest-linear memory (used by the decoder and descriptor loads).
    void read_bytes(uint64_t lin, void* dst, size_t n, Access acc, bool supervisor);
    // System-structure accesses (GDT, IDT, TSS, page tables) ignore CPL.
    uint64_t read_sys(uint64_t lin, uint8_t size);
    void write_sys(uint64_t lin, uint8_t size, uint64_t v);

    void push(uint64_t v, uint8_t size);
    uint64_t pop(uint8_t size);
    uint8_t stack_size() const { return s_.mode == Mode::Long64 ? 8 : (s_.seg[SS].db ? 4 : 2); }
    uint64_t stack_mask() const;

    uint64_t flags() const { return s_.rflags; }
    void set_arith_flags(uint64_t f) { s_.rflags = (s_.rflags & ~FLAGS_ARITH) | f; }
    bool cond(uint8_t cc) const;

    // System operations the handlers need.
    void write_cr(uint8_t n, uint64_t v);
    uint64_t read_cr8();
    uint64_t read_msr(uint32_t index);
    void write_msr(uint32_t index, uint64_t v);
    uint64_t descriptor_address(uint16_t selector);
    void load_segment(SegReg sr, uint16_t selector);
    void load_cs(uint16_t selector, uint8_t new_cpl);
    // The same with the descriptor already read (by check_far_target: one read, as the
    // processor makes).
    void load_cs(uint16_t selector, uint8_t new_cpl, uint64_t descriptor);
    // The checks a far JMP or CALL to `selector`:`offset` makes before it changes anything
    // (SDM vol. 2, JMP and CALL: code segments at the current privilege level). Returns
    // the descriptor for load_cs (0 outside protected mode).
    uint64_t check_far_target(uint16_t selector, uint64_t offset);
    // INT n, INT3, INTO (gate DPL checked) and ICEBP (`privileged`: no DPL check).
    void deliver_software_interrupt(uint8_t vector, bool privileged = false);
    // ICEBP (INT1): its #DB, which takes in the traps a MOV SS / POP SS held back.
    void icebp();
    void iret(uint8_t opsize);
    void cpuid(uint32_t leaf, uint32_t subleaf, CpuidRegs& r);
    uint64_t tsc() const;
    void flush_tlb();
    // MOV to CR3 (SDM vol. 3A §4.10.4.1): drops every translation but the global ones,
    // and the links and jump-cache entries into code on non-global pages.
    void flush_tlb_nonglobal();
    void invlpg(uint64_t lin);
    // Effective memory type of a linear address (UC when it is not mapped).
    MemType memory_type(uint64_t lin);
    void check_io(uint16_t port, uint8_t size);
    void port_in(uint16_t port, uint8_t size, uint32_t& value);
    void port_out(uint16_t port, uint8_t size, uint32_t value);
    void halt();
    void sti_shadow() { stop_flags_ |= kStopShadow; }
    // MOV to DR7: enables instruction and data breakpoints (SDM vol. 3 §17.2.4).
    void write_dr7(uint64_t v);
    // MOV to DR6: the value DR6 takes (fixed and writable bits; BLD per CPUID).
    uint64_t dr6_value(uint64_t v);
    // IA32_DEBUGCTL bits this CPU accepts besides the LBR unit's.
    uint64_t debugctl_bus_lock_bits();
    void debugctl_written() { update_bus_lock_watch(); }
    void swapgs();
    void syscall();
    void sysret(uint8_t opsize);
    void sysenter();
    void hypercall(CpuOwner::HypercallInsn insn) {
        if (!owner_.hypercall(insn)) undefined();
    }
    void sysexit(uint8_t opsize);
    // Translates `lin` for `acc` at the current privilege (#PF if it cannot be accessed).
    void check_access(uint64_t lin, Access acc) { translate(lin, acc, user_access()); }
    void require_cpl0() {
        if (s_.cpl != 0) fault(VEC_GP, 0);
    }
    [[noreturn]] void unsupported(const char* what);

  private:
    struct Kept;  // what reset() carries over (cpu/reset.cc)
    Cpu(CpuOwner& owner, Kept&& kept);

    struct TlbEntry {
        uint64_t tag = ~0ull;  // linear page | kTlbValid | kTlbUser
        // The host address of the page less its linear address (QEMU's "addend"): the
        // host address of a linear address on the page is the sum, one addition (also
        // in generated code's TLB probe).
        uint64_t addend = 0;
        uint8_t* at(uint64_t lin) const { return reinterpret_cast<uint8_t*>(addend + lin); }
        // Guest-physical page | kTlbGlobal | the large page it is a 4 KiB part of
        // (kTlb2M, kTlb1G; none for a 4 KiB page).
        uint64_t phys_bits = 0;
        uint64_t phys() const { return phys_bits & ~0xFFFull; }
        // Pads the entry to 32 bytes: the generated probe turns a page number into the
        // entry's offset with one shift and one mask (no multiplication by 3).
        uint64_t unused = 0;
    };
    static constexpr size_t kTlbSize = 1024;
    static constexpr uint64_t kTlbValid = 1, kTlbUser = 2;
    static constexpr uint64_t kTlbGlobal = 1, kTlb2M = 2, kTlb1G = 4;
    // walk_bits_ only: the translation must not be cached (fill_tlb).
    static constexpr uint64_t kTlbNoFill = 8;

    struct Ram {
        uint64_t gpa, size;
        uint8_t* host;
    };

    uint8_t* host_page(uint64_t gpa);
    uint64_t translate(uint64_t lin, Access acc, bool user);
    uint64_t walk(uint64_t lin, Access acc, bool user);
    // The physical address an instruction fetch reads `lin` from: the instruction TLB's
    // entry where it has one, else a walk whose result fills the entry (RAM pages only),
    // as the hardware's fetch does. Running blocks, the block lookup and a block's
    // decoding all fetch this way, so they see the same page after a paging entry
    // changed without INVLPG.
    uint64_t fetch_phys(uint64_t lin, bool user);
    // Fills `t` for `lin` with the translation the last translate() made (walk_bits_).
    void fill_tlb(TlbEntry& t, uint64_t lin, bool user, uint8_t* host, uint64_t phys);
    // INVLPG's part for large pages: drops every entry made from the 2 MiB (shift 21) or
    // 1 GiB (shift 30) page holding `lin`. True when some link may lead into that page.
    bool invlpg_large(uint64_t lin, unsigned shift, uint64_t bit);
    uint64_t tlb_tag(uint64_t lin, bool user) const {
        return (lin & ~0xFFFull) | kTlbValid | (user ? kTlbUser : 0);
    }
    bool user_access() const { return s_.cpl == 3; }
    uint64_t read_slow(uint64_t lin, uint8_t size, Access acc, bool user);
    void write_slow(uint64_t lin, uint8_t size, uint64_t v, bool user);
    uint64_t phys_read(uint64_t gpa, uint8_t size);
    void phys_write(uint64_t gpa, uint8_t size, uint64_t v);
    uint64_t mmio_read(uint64_t gpa, uint8_t size);
    // mmio_read without unwinding: false (read_exit_ set) where mmio_read throws
    // StopBeforeRetire because the owner must answer first.
    bool mmio_read_or_exit(uint64_t gpa, uint8_t size, uint64_t& v);
    // The instruction retired or faulted: forget its MMIO reads and hand its MMIO
    // writes to the owner in order. True when the owner wants run() to return.
    bool finish_mmio();
    // An instruction of a block set stop_flags_: true when the block goes on. MMIO that
    // needed no exit (the in-kernel APIC) stays in the block, unless its writes went to
    // the owner or it made an interrupt deliverable (taken at once).
    bool mmio_stays_in_block();
    bool deliver_mmio_writes();
    void drop_mmio_log() {
        mmio_reads_.clear();
        mmio_replay_ = 0;
        resume_insn_ = false;
    }
    void code_written(uint64_t gpa_page);

    Block* find_block();
    // An exit to the owner stopped block `b` before its instruction `at`: true when the
    // next run() goes on with a block that starts at that instruction (decoded, then
    // translated in its turn) instead of resuming `b` in its middle (interpreted). So it
    // is for a block with a translation that stopped there before, as a polling loop
    // around a device register does: the loop stays in generated code. Straight-line code
    // that exits at instruction after instruction (device set-up, random code) resumes
    // in its middle instead of decoding and translating a new block per exit.
    bool continue_after_exit(Block& b, size_t at);
    // The running block ends with `done` instructions retired: they join icount_.
    void end_block(size_t done) {
        icount_ += done;
        block_done_ = nullptr;
        stop_flags_ &= ~kStopDeadline;
    }
    Block* build_block(uint64_t phys, uint64_t key);
    void invalidate_code_page(uint64_t page);
    void flush_block_cache();
    void update_mode();

    void deliver(uint8_t vector, bool has_error, uint32_t error, uint64_t return_rip, bool soft);
    bool boundary_events(StopReason& stop);
    void trace_instruction(const DecodedInsn& in);
    void deliver_legacy(uint8_t vector, bool has_error, uint32_t error, uint64_t return_rip,
                        bool soft);
    // Delivers `f`; `fault_class` marks an instruction fault, whose pushed RFLAGS image
    // has RF set so the restarted instruction does not hit its breakpoint again.
    void raise_fault(const GuestFault& f, uint64_t return_rip, bool fault_class = false);
    void raise_debug_trap();
    void update_debug();
    // Per-block branch and PMU bookkeeping (LBR records, predictor, counters), inline in
    // cpu/branch_hooks.h; the PMU's part of it out of line.
    inline void after_block(const DecodedInsn* in, size_t done, uint64_t rip_before,
                            uint64_t cs_base, uint8_t cpl);
    inline void record_branch(const DecodedInsn& last, uint64_t from_lin, uint64_t cs_base);
    void pmu_after_block(size_t done, uint8_t cpl, bool branch, bool mispredicted);
    // The same out of line, for blocks a fault or an exit ended, the PMU's counting and
    // the end of a chain of translated blocks.
    void after_block_cold(const DecodedInsn* in, size_t done, uint64_t rip_before, uint64_t cs_base,
                          uint8_t cpl);
    void raise_pmi();
    // Moves DEBUGCTL.LBR between the recording bit and lbr_held_ as LBR_Frz says.
    void sync_lbr_freeze();
    // An interrupt or exception was delivered: a far branch for the LBR unit.
    void note_delivery(uint64_t from_lin, uint64_t to_lin, bool soft);
    // Instructions retired so far, those of the running block included (clock() without
    // the halted ticks): the LBR unit's cycle count when a handler starts recording or
    // records mid-block.
    uint64_t retired_now() const { return icount_ + (block_done_ ? *block_done_ : 0); }
    // A conditional branch to the next instruction (rel 0) that retired as the block's
    // last: whether it was taken, from the state after it (RIP says nothing then).
    bool jump_to_next_taken(const DecodedInsn& in) const;
    uint32_t code_breakpoints(uint64_t lin) const;
    void check_data_breakpoints(uint64_t lin, uint8_t size, bool write);
    // Delivers a trap-like #DB with DR6 status `bits` (DR6_BLD meaning "clear BLD").
    void debug_trap(uint64_t bits);

    // Bus-lock detector (cpu/buslock.cc).
    void update_bus_lock_watch();
    bool bus_lock_detect_exposed();
    void run_watched(const DecodedInsn* in, size_t n, size_t& done, uint64_t& rsp_before);
    void check_locked_access(uint64_t lin, uint8_t size);
    // An implicitly locked update (descriptor accessed bit) of `size` bytes at `lin`.
    void check_implicit_lock(uint64_t lin, uint8_t size);
    // Page-table A/D update in a paging structure its parent (CR3 or an entry) maps.
    void check_paging_lock(uint64_t parent, uint64_t entry_addr);
    void note_bus_lock(bool split);
    // Effective type of a locked access: MMIO (no RAM behind it) is uncacheable.
    MemType lock_memory_type(uint64_t lin, bool user);
    // Effective type of physical address `phys` accessed through PAT entry `pat_index`.
    MemType mtrr_pat_type(uint8_t pat_index, uint64_t phys) const;
    // The MTRRs' type of a physical address (SDM vol. 3A §11.11.4.1).
    MemType mtrr_type(uint64_t phys) const;
    // RDMSR/WRMSR of the MTRR MSRs (memtype.cc): NotMine for any other index.
    MsrResult mtrr_read(uint32_t index, uint64_t& v) const;
    MsrResult mtrr_write(uint32_t index, uint64_t v);
    // The retired instruction took a bus lock: tell the owner; true if a #DB is due.
    bool bus_lock_retired();

    CpuOwner& owner_;
    CpuState s_;
    // What the run loop and translated code read and write at every block, right after
    // s_: within the object's first 4 KiB and past s_, no field here has the offset
    // modulo 4096 of a guest register, RIP or RFLAGS, so a store to one (a chained entry
    // counts itself) never looks to the host CPU like a store to the guest register that
    // the next block loads (4K aliasing: with chained_blocks_ at RFLAGS's offset modulo
    // 4096, the first 10^9 instructions of a Linux boot ran a quarter slower).
    uint64_t icount_ = 0;
    std::atomic<bool> kick_{false};
    // ChainMode: the run loop's per-block bookkeeping. Right after kick_: a block's exit
    // tests both with one 16-bit compare (chain.cc), nonzero when it must not go on freely.
    uint8_t no_chain_ = kChainFree;
    // While translated code records LBRs (kChainTrace): the jump-cache tag
    // of the chain's mode and CPL (jump_tag()), which quiet blocks do not change; the
    // traced probe compares it with JumpEntry::trace_tag (chain.cc).
    uint16_t trace_jump_tag_ = 0;
    std::unique_ptr<Translator> xlate_;  // set: the translating engine runs blocks
    // Translated blocks continue into their successors inside the code cache
    // (docs/translator.md, Chaining); the run loop tells them what it knows.
    uint64_t run_limit_ = kNever;  // run()'s instruction limit
    // The largest icount_ a block entered from another block's code may reach when it
    // ends (chain.cc): the run's instruction limit and the next timer deadline in one
    // number (clock() is icount_ + idle_ between blocks); 0 while an interrupt request
    // waits or blocks must not chain (kChainNever), which no chained entry passes.
    // update_chain_bound() recomputes it whenever one of them changes.
    uint64_t chain_bound_ = kNever;
    void update_chain_bound() {
        const uint64_t to_deadline = deadline_ > idle_ ? deadline_ - idle_ : 0;
        chain_bound_ =
            irq_requested_ || no_chain_ == kChainNever ? 0 : std::min(run_limit_, to_deadline);
    }
    void set_chain_mode(uint8_t mode) {  // no_chain_ (ChainMode), and the bound with it
        if (mode == no_chain_) return;
        no_chain_ = mode;
        update_chain_bound();  // 0 for kChainNever
    }
    // The block translated code runs now: set by the run loop, and by translated code
    // where the run loop may look (a block's way out, a handler call; chain.cc).
    Block* chained_ = nullptr;
    uint64_t chained_blocks_ = 0;  // blocks entered from another block's translation
    // The block generation (bumped by every TLB flush or code invalidation). It and the
    // two generations below are read at every translated block's exit: here, clear of
    // the guest registers' offsets modulo 4096.
    uint64_t block_gen_ = 1;
    // What links (Block::Link) and jump-cache entries are made with and followed while it
    // is equal: block_gen_ with the link key, what a link's RIP alone does not say: whether
    // CPL is 3 (bit 63) and the mode (bits 61-62). One block may run at either privilege
    // (code on a user page at CPL 0), and one far JMP may reach one offset in a 64-bit and
    // in a 32-bit code segment: a link made at CPL 0 into a page only the supervisor may
    // fetch from must not carry CPL 3 there without the fetch's #PF (SDM vol. 3A §4.6.1),
    // nor one made at CPL 3 carry CPL 0 into a user page under SMEP, nor one made in one
    // mode run the other's decoding. A link made under another key is not followed:
    // find_block looks the successor up and checks its fetch. A new CS base (links are by
    // RIP, not by linear address) makes a new block generation. Set by update_mode().
    // Bit 60, the recording bit: whether the translating engine records LBRs in its
    // chained blocks (DEBUGCTL.LBR set, the PMU idle: the run loop's kChainTrace). Blocks
    // are decoded and translated for one recording state (Block::key), their exits carry
    // only that state's way on (translate/chain.cc); a link or slot made under the other
    // state is not followed. Set by update_recording_key() before every block lookup.
    static constexpr uint64_t kLinkRecording = 1ull << 60;
    static constexpr uint64_t kLinkKeyBits = 15ull << 60;
    uint64_t link_gen_ = 1;
    uint64_t link_cs_base_ = 0;
    // The generation of the direct exits' slots (Block::DirectExit), which the generated
    // code fills and no list names: it changes with every new block generation and with
    // every MOV to CR3 that keeps global translations (flush_tlb_nonglobal), where links
    // into non-global pages die one by one. It carries the link key as link_gen_ does.
    uint64_t direct_gen_ = 1;
    // A new block generation: every link, jump-cache entry and slot made before is dead.
    void new_block_gen() {
        ++block_gen_;
        ++direct_gen_;
        link_gen_ = block_gen_ | (link_gen_ & kLinkKeyBits);
    }
    void update_link_key() {
        if (seg_base_[CS] != link_cs_base_) {
            link_cs_base_ = seg_base_[CS];
            new_block_gen();
        }
        const uint64_t key = (s_.cpl == 3 ? 1ull << 63 : 0) | static_cast<uint64_t>(s_.mode) << 61 |
                             (link_gen_ & kLinkRecording);
        link_gen_ = block_gen_ | key;
        direct_gen_ = (direct_gen_ & ~kLinkKeyBits) | key;
    }
    // The recording bit of the link key from the state the run loop's chain mode follows
    // (cpu.cc: kChainTrace). Every change of it (WRMSR to DEBUGCTL or the PMU's MSRs,
    // LBR freeze on a PMI) ends the chain before the next block: a block with a handler
    // tests DEBUGCTL.LBR and the PMU at its exits, the PMI is delivered by the run loop.
    void update_recording_key();
    // A chain that records LBRs runs at most this many instructions, so its trace stays
    // a fraction of the LBR unit's ring (TraceRing: one target per instruction at most);
    // where the filter keeps every near class, only the chain's newest part matters.
    static constexpr uint64_t kTraceChainInsns = uint64_t{1} << 15;
    static constexpr uint64_t kTraceChainInsnsKeepAll = uint64_t{1} << 20;
    // The LBR trace's resolver (Lbr::set_resolver): the recording translation's block at
    // `rip` (64-bit code) fetched at CPL `cpl`.
    bool trace_step(uint64_t rip, uint8_t cpl, Lbr::TraceStep& st);
    // Gives the LBR unit trace_step and the chained-block count (both constructors).
    void connect_lbr();
    const CpuModel* model_ = &default_cpu_model();
    uint64_t perf_caps_ = 0;
    Pmu pmu_;
    Lbr lbr_;  // with the branch predictor
    bool lbr_intercept_ = false;
    bool lbr_touched_ = false;
    bool lbr_held_ = false;                     // DEBUGCTL.LBR is 1 but LBR_Frz stops recording
    bool lbr_host_owned_ = false;               // set_lbr_host_owned
    bool soft_delivered_ = false;               // INT n recorded its own LBR entry
    const DecodedInsn* block_insns_ = nullptr;  // the running block (pmu_catch_up)
    uint8_t block_cpl_ = 0;
    size_t pmu_synced_ = 0;  // instructions of the running block already counted
    // The run loop's count of the running block's retired instructions (the `done` that
    // translated code keeps at *R12), not yet in icount_; null between blocks.
    const size_t* block_done_ = nullptr;
    std::vector<Ram> ram_;
    TraceFn trace_;
    uint64_t trace_left_ = 0;
    uint64_t idle_ = 0;           // virtual ticks spent halted
    uint64_t deadline_ = kNever;  // clock() value of the owner's next timer event
    uint64_t inhibit_until_ = 0;  // interrupts blocked while icount_ < this (STI shadow)
    bool irq_requested_ = false;
    bool halted_ = false;
    bool align_check_ = false;  // #AC on misaligned data accesses (flags_changed())
    bool nmi_pending_ = false;
    bool nmi_blocked_ = false;       // an NMI handler runs: until IRET
    bool debug_active_ = false;      // some DR7 breakpoint is enabled
    bool data_bp_ = false;           // some enabled breakpoint watches data (TLB fills off)
    bool rf_in_image_ = false;       // the exception being delivered is a fault (RF pushed)
    uint32_t db_hits_ = 0;           // DR6.B0-B3 of data breakpoints hit by this instruction
    bool bus_lock_reports_ = false;  // the owner wants every bus lock (VM-exit path)
    bool bus_lock_watch_ = false;    // detector on: reports or DEBUGCTL.BUS_LOCK_DETECT
    bool bus_lock_exit_ = false;     // the owner asked to stop after this bus lock
    BusLock bus_lock_;               // the current instruction's bus lock (kStopBusLock)
    uint64_t pending_db_ = 0;        // #DB status bits to deliver when run() resumes
    uint64_t mov_ss_db_ = 0;         // #DB traps of a MOV SS, due after the next insn
    bool db_merged_ = false;         // ICEBP delivered this instruction's #DB traps itself
    struct LockType {                // memory type of a page locked instructions used
        uint64_t page = ~0ull, gen = 0;
        MemType type = MemType::UC;
    };
    static constexpr size_t kLockTypes = 64;
    std::array<LockType, kLockTypes> lock_types_{};
    mutable uint8_t last_seg_ = DS;  // segment of the latest data access (see linear())
    uint64_t next_rip_ = 0;
    static constexpr uint32_t kStopOwner = 1;               // the owner asked to stop
    static constexpr uint32_t kStopBlockGone = 2;           // the executing block was invalidated
    static constexpr uint32_t kStopShadow = 4;              // STI opened IF: one-instruction shadow
    static constexpr uint32_t kStopMmio = 8;                // the instruction read or wrote MMIO
    static constexpr uint32_t kStopBusLock = 16;            // the instruction took a bus lock
    static constexpr uint32_t kStopMovSs = 32;              // MOV/POP SS: #DB traps wait
    static constexpr uint32_t kStopDeadline = 64;           // an earlier deadline was set
    static constexpr uint64_t kDr6SingleStep = 1ull << 14;  // DR6.BS
    static constexpr uint64_t kDebugctlBtf = 1ull << 1;     // IA32_DEBUGCTL.BTF
    uint32_t stop_flags_ = 0;  // kStop* bits, checked after every instruction
    std::string stop_detail_;
    std::array<uint64_t, SEG_COUNT> seg_base_{};

    // MMIO inside one instruction, as KVM's instruction emulator handles it (its read
    // cache and write fragments): an instruction may make several MMIO reads, and each
    // read the owner cannot answer at once abandons the instruction until the next run().
    // The reads it completed are logged and replayed, in order, when it is re-executed, so
    // every read reaches the device once and the instruction completes. MMIO writes wait
    // until the instruction retires (an abandoned or faulting instruction writes nothing
    // to devices), then go to the owner one at a time; writes left when the owner stops
    // go out at the start of the next run().
    struct MmioAccess {
        uint64_t gpa;
        uint64_t value;
        uint8_t size;
    };
    std::vector<MmioAccess> mmio_reads_;
    size_t mmio_replay_ = 0;  // next logged read a re-execution takes
    std::vector<MmioAccess> mmio_writes_;
    size_t mmio_write_next_ = 0;  // next queued write to hand to the owner
    bool resume_insn_ = false;    // run() must first re-execute the abandoned instruction
    bool read_exit_ = false;      // the StopBeforeRetire in flight is a read for the owner
    // Translated code's loads (Translator::load_for_code): a data read from MMIO that
    // the owner must answer sets read_deferred_ instead of throwing; the caller abandons
    // the instruction before it changes anything (abandoned_ tells the run loop).
    bool defer_read_exit_ = false;
    bool read_deferred_ = false;
    bool abandoned_ = false;
    // Where a block stopped part-way: the next step continues there if nothing changed.
    struct ResumePoint {
        Block* block = nullptr;
        size_t index = 0;
        uint64_t rip = 0, gen = 0;
    } resume_;
    uint64_t rep_room_ = 1;

    TlbEntry tlb_read_[kTlbSize], tlb_write_[kTlbSize], tlb_exec_[kTlbSize];
    // Bit (guest-physical page mod 64) set for every page a tlb_write_ entry was filled
    // with since the last flush: drop_write_tlb skips its scan for a page no entry holds.
    uint64_t write_tlb_pages_ = 0;
    uint64_t written_pages_ = 0;  // written_pages(): not cleared by a flush
    // What the last translate() found besides the address: kTlbGlobal, kTlb2M, kTlb1G.
    uint64_t walk_bits_ = 0;
    // Linear 2 MiB regions (bit (lin >> 21) mod 4096) and 1 GiB regions (bit (lin >> 30)
    // mod 64) that some entry was filled from a large page in, since the last flush:
    // INVLPG elsewhere has no large page's entries to look for.
    static constexpr size_t kLarge2MBits = 4096;
    std::array<uint64_t, kLarge2MBits / 64> tlb_2m_regions_{};
    uint64_t tlb_1g_regions_ = 0;

    // A jump-cache entry's tag: the mode and CPL its block runs in.
    uint32_t jump_tag() const { return static_cast<uint32_t>(s_.mode) | (s_.cpl << 4); }
    static constexpr uint16_t kNoTraceTag = 0xFFFF;  // no jump_tag() is this
    struct JumpEntry {
        uint64_t lin = ~0ull, gen = 0;
        Block* block = nullptr;
        uint32_t tag = 0;  // jump_tag(): mode | CPL << 4
        // `tag` if `block` was built at this RIP (Block::host_rip), else kNoTraceTag:
        // translated code that records LBRs continues only into those (emit_lbr.cc), and
        // compares this with the chain's tag alone (trace_jump_tag_).
        uint16_t trace_tag = kNoTraceTag;
        uint16_t global = 0;  // global_code(): MOV to CR3 leaves it valid
    };
    static constexpr size_t kJumpCacheSize = 4096;
    std::vector<JumpEntry> jump_cache_ = std::vector<JumpEntry>(kJumpCacheSize);
    // The block at linear `lin` lies on one page whose translation is global (its exec
    // TLB entry says so): links and jump-cache entries into it survive MOV to CR3.
    bool global_code(uint64_t lin, const Block& b) const;
    // The `gen` fields of the links and jump-cache entries into code on non-global pages
    // made in block generation nonglobal_gen_ (older ones are dead already): MOV to CR3
    // clears these alone, or bumps block_gen_ when more were made than the list holds.
    std::vector<uint64_t*> nonglobal_links_;
    uint64_t nonglobal_gen_ = 0;
    bool nonglobal_overflow_ = false;
    static constexpr size_t kMaxNonGlobalLinks = 4096;
    void note_nonglobal_link(uint64_t* gen);
    // Some TLB entry was filled with a global translation since the last flush_tlb().
    bool tlb_has_global_ = false;
    // The TLB entries filled with a non-global translation since the last flush (in the
    // order filled, an entry once per fill): flush_tlb_nonglobal invalidates these
    // instead of looking at every entry, unless more were filled than the list holds
    // (nonglobal_fill_count_ past kMaxNonGlobalFills).
    static constexpr size_t kMaxNonGlobalFills = 256;
    std::array<TlbEntry*, kMaxNonGlobalFills> nonglobal_fills_{};
    size_t nonglobal_fill_count_ = 0;
    // Linear pages that a link or jump-cache entry of the current block generation leads
    // into (one bit per page number mod kCodeLinBits; valid while code_lin_gen_ equals
    // block_gen_): INVLPG of any other page leaves every link and entry valid.
    static constexpr size_t kCodeLinBits = 4096;
    std::array<uint64_t, kCodeLinBits / 64> code_lin_{};
    uint64_t code_lin_gen_ = 0;
    // A link or jump-cache entry now leads to the block at linear `lin` (whose last
    // instruction may run into the next page: invlpg checks the page before too).
    void note_code_lin(uint64_t lin);
    bool code_lin_has(uint64_t page) const {
        return code_lin_gen_ == block_gen_ &&
               ((code_lin_[(page / 64) % (kCodeLinBits / 64)] >> (page % 64)) & 1);
    }
    // Some of the `count` pages from `first` (both multiples of 64) is in code_lin_.
    bool code_lin_any(uint64_t first, uint64_t count) const;
    // Decoded blocks by key, in front of blocks_ (its hash lookup), for find_block:
    // direct-mapped, entries dropped with their blocks.
    struct BlockSlot {
        uint64_t key = ~0ull;
        Block* block = nullptr;
    };
    static constexpr size_t kBlockSlots = 16384;
    std::vector<BlockSlot> block_slots_ = std::vector<BlockSlot>(kBlockSlots);
    static size_t block_slot(uint64_t key) {
        const uint64_t phys = key >> 3;
        return (phys ^ (phys >> 12) ^ key) & (kBlockSlots - 1);
    }

    std::unique_ptr<Decoder> decoder_;
    std::vector<DecodedInsn> decode_buf_;  // build_block's instructions before the copy
    std::unordered_map<uint64_t, std::unique_ptr<Block>> blocks_;
    std::unordered_map<uint64_t, std::vector<uint64_t>> page_blocks_;  // page -> block keys
    // Per 4 KiB page of RAM slot 0: some CPU of the VM holds decoded code from it. Shared
    // by the VM's CPUs (share_code_pages()) so that a store by any of them is seen.
    std::shared_ptr<std::vector<uint8_t>> code_pages_ = std::make_shared<std::vector<uint8_t>>();
    std::vector<std::unique_ptr<Block>> retired_blocks_;
    uint64_t cache_limit_ = kDefaultBlockCacheInsns;
    // Invalidations per code page (self-modifying code), bounded; see invalidate_code_page.
    std::unordered_map<uint64_t, uint32_t> smc_pages_;
    static constexpr uint32_t kSmcThreshold = 8;
    static constexpr size_t kMaxSmcPages = 4096;
    uint64_t cached_insns_ = 0;
    uint64_t blocks_built_ = 0;
    uint64_t insns_decoded_ = 0;
    uint64_t cache_flushes_ = 0;
    uint64_t mmio_resumes_ = 0;
    // Native forms of translated code sent to their handler (a TLB probe's miss, a
    // non-canonical target; Translator::Stats::slow_paths).
    uint64_t slow_paths_ = 0;

    // Deliveries since the last retired instruction (set_stall_limit): the retired count
    // at the last delivery, how many since it retired, and the last one's vector and RIP.
    uint64_t stall_limit_ = kDefaultStallLimit;
    uint64_t stall_mark_ = 0;
    uint64_t stalled_ = 0;
    uint64_t stall_rip_ = 0;
    uint8_t stall_vector_ = 0;
    void note_delivery_attempt(uint8_t vector, uint64_t return_rip) {
        const uint64_t retired = icount_ + (block_done_ ? *block_done_ : 0);
        if (retired != stall_mark_) stall_mark_ = retired, stalled_ = 0;
        ++stalled_;
        stall_vector_ = vector;
        stall_rip_ = return_rip;
    }

    // Exception nesting while delivering (for #DF and triple fault).
    int delivering_ = 0;
    uint8_t first_vector_ = 0;
    bool shutdown_ = false;

    friend class Decoder;
    friend class Translator;
};

}  // namespace softkvm::cpu
