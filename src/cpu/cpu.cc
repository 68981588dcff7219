// Run loop, decoded-block cache, and exception/interrupt delivery.
#include "cpu/cpu.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "cpu/block.h"
#include "cpu/branch_hooks.h"
#include "cpu/decoder.h"
#include "cpu/msr_index.h"

namespace softkvm::cpu {
namespace {

// Exception classes for the double-fault rule (SDM vol. 3 table 6-5).
bool contributory(uint8_t v) {
    return v == VEC_DE || (v >= VEC_TS && v <= VEC_GP);
}

}  // namespace

Cpu::Cpu(CpuOwner& owner) : owner_(owner), decoder_(std::make_unique<Decoder>()) {
    connect_lbr();
    set_model(default_cpu_model());
    update_mode();
}

void Cpu::connect_lbr() {
    lbr_.set_resolver(
        [this](uint64_t rip, uint8_t cpl, Lbr::TraceStep& st) { return trace_step(rip, cpl, st); });
    lbr_.set_block_counter(&chained_blocks_);
}

void Cpu::set_model(const CpuModel& m) {
    model_ = &m;
    perf_caps_ = model_perf_capabilities(m);
    pmu_.set_version(m.pmu_version);
    lbr_held_ = false;
    lbr_.configure(m);
}

Cpu::~Cpu() = default;

bool Cpu::set_engine(Engine e, size_t cache_bytes) {
    if ((e == Engine::Translate) == static_cast<bool>(xlate_)) return true;
    std::unique_ptr<Translator> t;
    if (e == Engine::Translate) {
        t = std::make_unique<Translator>(*this, cache_bytes);
        if (!t->ok()) return false;
    }
    // Translations belong to the code cache that goes away here.
    for (auto& [key, block] : blocks_) block->drop_translation();
    for (auto& block : retired_blocks_) block->drop_translation();
    xlate_ = std::move(t);
    return true;
}

void Cpu::update_mode() {
    if (!(s_.cr0 & CR0_PE))
        s_.mode = Mode::Real16;
    else if ((s_.efer & msr::EFER_LMA) && s_.seg[CS].l)
        s_.mode = Mode::Long64;
    else
        s_.mode = s_.seg[CS].db ? Mode::Prot32 : Mode::Prot16;
    for (int k = 0; k < SEG_COUNT; ++k)
        seg_base_[k] = (s_.mode == Mode::Long64 && k != FS && k != GS) ? 0 : s_.seg[k].base;
    flags_changed();
    update_link_key();  // (every change of CPL, mode or CS base ends here)
}

void Cpu::flags_changed() {
    // Alignment checking (SDM vol. 3 §6.15, #AC): CR0.AM, RFLAGS.AC and CPL 3.
    align_check_ = (s_.cr0 & CR0_AM) && (s_.rflags & FLAG_AC) && s_.cpl == 3;
}

void Cpu::state_changed() {
    // CPL is SS.DPL, as VMX and KVM define it for a loaded state; first, since the mode's
    // derived state (alignment checking at CPL 3) depends on it.
    s_.cpl = (s_.cr0 & CR0_PE) ? s_.seg[SS].dpl : 0;
    update_mode();
    update_debug();
    update_bus_lock_watch();
    flush_tlb();
}

void Cpu::jump(uint64_t target) {
    if (s_.mode == Mode::Long64) {
        if (static_cast<uint64_t>(static_cast<int64_t>(target << 16) >> 16) != target)
            fault(VEC_GP, 0);
    } else {
        target &= s_.mode == Mode::Prot32 ? 0xFFFFFFFFull : 0xFFFFull;
    }
    next_rip_ = target;
}

void Cpu::unsupported(const char* what) {
    stop_detail_ = what;
    throw StopBeforeRetire{};  // turned into StopReason::Emulation by run()
}

Block* Cpu::build_block(uint64_t phys, uint64_t key) {
    auto b = std::make_unique<Block>();
    b->key = key;
    b->host_rip = s_.rip;
    // Decoded into a buffer kept across blocks, then copied once: one allocation of the
    // block's size instead of a vector growing instruction by instruction.
    std::vector<DecodedInsn>& insns = decode_buf_;
    insns.clear();
    uint64_t lin = s_.rip + seg_base_[CS];
    const uint64_t start_lin = lin;
    const Mode mode = s_.mode;
    uint64_t first_page = phys >> 12;
    uint64_t last_page = first_page;
    // The page being fetched from: one translation per page, not per byte.
    uint64_t fetch_page = ~0ull;
    const uint8_t* fetch_host = nullptr;
    const auto smc = smc_pages_.find(first_page);
    const size_t max_insns =
        smc != smc_pages_.end() && smc->second >= kSmcThreshold ? 1 : Block::kMaxInsns;
    while (insns.size() < max_insns) {
        uint8_t bytes[16] = {};
        size_t avail = 0;
        // Fetch up to 15 bytes; a fault on a later page only matters if the instruction
        // really extends there, so stop at the first untranslatable byte (or the first
        // byte outside RAM: code is never fetched from MMIO).
        bool mmio = false;
        try {
            for (; avail < 15; ++avail) {
                const uint64_t at = lin + avail;
                if ((at & ~0xFFFull) != fetch_page) {
                    const uint64_t pa = fetch_phys(at, user_access()) & ~0xFFFull;
                    uint8_t* h = host_page(pa);
                    fetch_host = h && host_page(pa + 0xFFF) == h + 0xFFF ? h : nullptr;
                    fetch_page = at & ~0xFFFull;
                }
                if (!fetch_host) {
                    mmio = true;
                    break;
                }
                bytes[avail] = fetch_host[at & 0xFFF];
            }
        } catch (const GuestFault&) {
            if (avail == 0) throw;
        }
        if (avail == 0) unsupported("instruction fetch from MMIO");
        DecodedInsn in;
        bool ok = decoder_->decode(mode, bytes, avail, in);
        if (!ok) {
            if (in.len == 15 && avail < 15 && insns.empty()) {
                // The instruction runs into a page that cannot be fetched: refetch to
                // raise that #PF.
                if (mmio) unsupported("instruction fetch from MMIO");
                translate(lin + avail, Access::Exec, user_access());
            }
            if (!insns.empty()) break;  // end the block; the bad insn starts the next
            in = DecodedInsn{};
            in.fn = [](Cpu& c, const DecodedInsn&) { c.undefined(); };
            in.len = 1;
            in.ends_block = true;
            in.block_off = static_cast<uint16_t>(lin - start_lin);
            insns.push_back(in);
            break;
        }
        // A REP string instruction starts a block of its own: run() can then hold its
        // iterations to the instruction budget (rep_room_).
        if (!insns.empty() && in.ends_block && (in.prefixes & (PFX_REP | PFX_REPNE))) break;
        uint64_t end_phys = phys + (lin - (s_.rip + seg_base_[CS])) + in.len - 1;
        last_page = std::max(last_page, end_phys >> 12);
        in.block_off = static_cast<uint16_t>(lin - start_lin);
        insns.push_back(in);
        b->has_lock |= in.lockable_mem;
        lin += in.len;
        if (in.ends_block || ((lin & 0xFFF) < in.len && (lin & 0xFFF) != 0)) break;
        if ((lin & 0xFFF) == 0) break;  // do not run into the next page within a block
    }
    b->insns.assign(insns.begin(), insns.end());
    for (uint64_t p = first_page; p <= last_page; ++p) {
        page_blocks_[p].push_back(key);
        if (p < code_pages_->size() && !(*code_pages_)[p]) {
            (*code_pages_)[p] = 1;
            owner_.code_page_marked(p);
            drop_write_tlb(p);
        }
    }
    if (cached_insns_ + b->insns.size() > cache_limit_) flush_block_cache();
    cached_insns_ += b->insns.size();
    insns_decoded_ += b->insns.size();
    ++blocks_built_;
    Block* raw = b.get();
    blocks_[key] = std::move(b);
    return raw;
}

// Drops every decoded block. Called between blocks (find_block), so nothing executes from
// them; they live in retired_blocks_ until the run loop's next step, and the generation
// bump kills every link and jump-cache entry that points at them.
void Cpu::flush_block_cache() {
    lbr_.drain_trace();  // (its walk reads the blocks)
    for (auto& [key, block] : blocks_) retired_blocks_.push_back(std::move(block));
    blocks_.clear();
    std::fill(block_slots_.begin(), block_slots_.end(), BlockSlot{});
    page_blocks_.clear();
    smc_pages_.clear();
    cached_insns_ = 0;
    ++cache_flushes_;
    new_block_gen();
}

void Cpu::invalidate_code_page(uint64_t page) {
    auto it = page_blocks_.find(page);
    if (it == page_blocks_.end()) return;
    lbr_.drain_trace();  // (its walk reads the blocks)
    for (uint64_t key : it->second) {
        auto bit = blocks_.find(key);
        if (bit == blocks_.end()) continue;
        cached_insns_ -= bit->second->insns.size();
        if (BlockSlot& slot = block_slots_[block_slot(key)]; slot.key == key) slot = BlockSlot{};
        retired_blocks_.push_back(std::move(bit->second));
        blocks_.erase(bit);
    }
    page_blocks_.erase(it);
    new_block_gen();
    stop_flags_ |= kStopBlockGone;
    // Code that keeps rewriting its own page would otherwise pay for a whole block's
    // decoding per instruction: after a few invalidations the page gets blocks of one
    // instruction (as QEMU does for self-modifying code) until the next cache flush.
    if (smc_pages_.size() < kMaxSmcPages) ++smc_pages_[page];
}

bool Cpu::continue_after_exit(Block& b, size_t at) {
    static_assert(Block::kMaxInsns <= 64);
    const uint64_t bit = at < 64 ? uint64_t{1} << at : 0;
    const bool again = b.exits & bit;
    b.exits |= bit;
    return again && xlate_ && b.host_code;
}

void Cpu::update_recording_key() {
    const uint64_t rec =
        xlate_ && (s_.debugctl & msr::DEBUGCTL_LBR) && !pmu_.active() ? kLinkRecording : 0;
    if ((link_gen_ & kLinkRecording) == rec) return;
    link_gen_ ^= kLinkRecording;
    direct_gen_ ^= kLinkRecording;
}

uint64_t Cpu::fetch_phys(uint64_t lin, bool user) {
    TlbEntry& t = tlb_exec_[(lin >> 12) & (kTlbSize - 1)];
    if (t.tag == tlb_tag(lin, user)) return t.phys() | (lin & 0xFFF);
    const uint64_t phys = translate(lin, Access::Exec, user);
    uint8_t* h = host_page(phys & ~0xFFFull);
    if (h && host_page((phys & ~0xFFFull) + 0xFFF) == h + 0xFFF) fill_tlb(t, lin, user, h, phys);
    return phys;
}

Block* Cpu::find_block() {
    uint64_t lin = s_.rip + seg_base_[CS];
    const uint64_t phys = fetch_phys(lin, user_access());
    uint64_t key = (phys << 3) | ((link_gen_ & kLinkRecording) ? Block::kRecordingKey : 0) |
                   static_cast<uint64_t>(s_.mode);
    BlockSlot& slot = block_slots_[block_slot(key)];
    if (slot.key == key) return slot.block;
    auto it = blocks_.find(key);
    Block* b;
    if (it != blocks_.end()) {
        b = it->second.get();
    } else {
        if (!host_page(phys)) unsupported("instruction fetch from MMIO");
        b = build_block(phys, key);
    }
    block_slots_[block_slot(key)] = {key, b};  // (build_block may flush the cache)
    return b;
}

// Events at an instruction boundary: a due deadline, a halted CPU, a pending interrupt.
// Returns true when run() must return `stop`.
bool Cpu::boundary_events(StopReason& stop) {
    bool owner_stop = false;
    if (clock() >= deadline_) {
        deadline_ = kNever;
        owner_stop = owner_.deadline();  // may set a new deadline and request an interrupt
        update_chain_bound();
    }
    if (nmi_pending_ && !nmi_blocked_) {
        nmi_pending_ = false;
        nmi_blocked_ = true;
        halted_ = false;
        try {
            raise_fault(GuestFault{VEC_NMI, false, 0}, s_.rip);
        } catch (const StopBeforeRetire&) {
            if (stop_detail_.empty()) stop_detail_ = "NMI delivery touched MMIO";
            stop = StopReason::Emulation;
            return true;
        }
        if (shutdown_) {
            stop = StopReason::Shutdown;
            return true;
        }
    }
    const bool window = (s_.rflags & FLAG_IF) && icount_ >= inhibit_until_;
    if (irq_requested_ && window) {
        const int vector = owner_.acknowledge_interrupt();
        if (vector < 0) {
            irq_requested_ = false;
            update_chain_bound();
        } else {
            halted_ = false;
            try {
                raise_fault(GuestFault{static_cast<uint8_t>(vector), false, 0}, s_.rip);
            } catch (const StopBeforeRetire&) {
                if (stop_detail_.empty()) stop_detail_ = "interrupt delivery touched MMIO";
                stop = StopReason::Emulation;
                return true;
            }
            if (shutdown_) {
                stop = StopReason::Shutdown;
                return true;
            }
        }
    }
    if (owner_stop) {  // (a halted CPU stays halted: no time skips past the owner's event)
        stop = StopReason::Deadline;
        return true;
    }
    if (halted_) {
        // With IF clear no timer can wake the CPU (only an NMI, INIT or SMI): the halt is
        // final for the owner's devices too, as KVM's HLT with IF clear.
        if (deadline_ == kNever || !(s_.rflags & FLAG_IF)) {
            // (A kick now, e.g. by a signal, ends the run as a kick.)
            stop = take_kick() ? StopReason::Kicked : StopReason::Halted;
            return true;
        }
        idle_ += deadline_ - clock();  // virtual time skips to the next timer event
        update_chain_bound();
    }
    return false;
}

StopReason Cpu::run(uint64_t insn_limit) {
    // block_done_ points into this frame while a block runs; never past the return.
    struct BetweenBlocks {
        const size_t*& at;
        ~BetweenBlocks() { at = nullptr; }
    } between{block_done_};
    stop_flags_ = 0;
    stop_detail_.clear();
    // MMIO writes of a retired instruction that the owner has not seen yet go first.
    if (!mmio_writes_.empty() && deliver_mmio_writes()) return StopReason::Owner;
    if (!resume_insn_) drop_mmio_log();
    mmio_replay_ = 0;
    read_exit_ = false;
    Block* prev = nullptr;
    const uint64_t limit = insn_limit ? insn_limit : kNever;
    run_limit_ = limit;
    update_chain_bound();
    for (;;) {
        if (icount_ >= limit) return StopReason::InsnLimit;
        if (kick_.load(std::memory_order_relaxed)) {
            kick_.store(false, std::memory_order_relaxed);
            return StopReason::Kicked;
        }
        if (stalled_ >= stall_limit_) {
            stop_detail_ = fmt::format(
                "{} events delivered without an instruction retiring (the last: vector {} "
                "at rip {:#x}, to its handler at rip {:#x})",
                stalled_, stall_vector_, stall_rip_, s_.rip);
            stalled_ = 0;
            return StopReason::Stalled;
        }
        // An instruction abandoned for an MMIO or port read completes before any
        // interrupt or timer event is taken (as KVM completes it on the next KVM_RUN).
        if (!resume_insn_ && (halted_ || irq_requested_ || nmi_pending_ || clock() >= deadline_)) {
            StopReason stop;
            if (boundary_events(stop)) return stop;
            // (A kick during the events ends the run at this boundary.)
            if (halted_ || kick_.load(std::memory_order_relaxed)) continue;
            prev = nullptr;
        }
        // Event delivery may have written an exception frame to MMIO.
        if ((stop_flags_ & kStopMmio) && finish_mmio()) return StopReason::Owner;
        retired_blocks_.clear();
        Block* b = nullptr;
        size_t first = 0;  // index in `b` of the first instruction to run
        size_t done = 0;
        uint64_t rsp_before = s_.gpr[RSP];
        const DecodedInsn* in = nullptr;
        uint64_t rip_before = s_.rip;  // (after a chain of blocks: where the last one began)
        const uint64_t cs_base = seg_base_[CS];
        const uint8_t cpl_before = s_.cpl;
        // Branch and PMU bookkeeping after the block: one test when both are off. (While
        // `tracing`, translated code records the branches: kChainTrace.)
        bool hooks = (s_.debugctl & msr::DEBUGCTL_LBR) || pmu_.active(), tracing = false;
        // One instruction at a time while single-stepping, while RF suppresses a
        // breakpoint, or while any breakpoint is enabled.
        const uint64_t step_flags = s_.rflags & (FLAG_TF | FLAG_RF);
        const bool careful = step_flags || debug_active_ || trace_left_;
        // The running instruction is abandoned (StopBeforeRetire, or translated code's
        // load that met an MMIO read exit without unwinding: Translator::load_for_code).
        auto abandon = [&]() -> StopReason {
            end_block(done);
            if (hooks && done)
                after_block_cold(block_insns_, done, rip_before, cs_base, cpl_before);
            soft_delivered_ = false;  // (an INT n delivered again records itself again)
            // The instruction is abandoned: RSP as before, its MMIO writes unsent. For a
            // read the owner must answer, it runs again first thing in the next run(),
            // replaying the MMIO reads it completed.
            s_.gpr[RSP] = rsp_before;
            mmio_writes_.resize(mmio_write_next_);
            stop_flags_ &= ~kStopMmio;
            const bool read_exit = read_exit_;
            read_exit_ = false;
            if (!stop_detail_.empty() || !read_exit) {
                drop_mmio_log();
                return stop_detail_.empty() ? StopReason::Owner : StopReason::Emulation;
            }
            resume_insn_ = true;
            mmio_replay_ = 0;
            ++mmio_resumes_;
            // The translating engine may start a block at the instruction instead
            // (continue_after_exit).
            if (b && !(stop_flags_ & kStopBlockGone) && !continue_after_exit(*b, first + done))
                resume_ = {b, first + done, s_.rip, block_gen_};
            return StopReason::Owner;
        };
        try {
            if (pending_db_) {
                // A #DB held back by a bus-lock exit (owner.h: bus_lock) is due first.
                const uint64_t bits = pending_db_;
                pending_db_ = 0;
                prev = nullptr;
                debug_trap(bits);
                if (shutdown_) return StopReason::Shutdown;
                continue;
            }
            if (debug_active_ && !(step_flags & FLAG_RF)) {
                if (const uint32_t hit = code_breakpoints(s_.rip + seg_base_[CS])) {
                    // Instruction breakpoint: a fault, before the instruction runs.
                    s_.dr[6] = (s_.dr[6] & ~0xFull) | hit;
                    prev = nullptr;
                    raise_debug_trap();
                    if (shutdown_) return StopReason::Shutdown;
                    continue;
                }
            }
            db_hits_ = 0;
            update_recording_key();
            // Go on inside the block that stopped part-way (an MMIO or I/O exit, the
            // instruction budget) instead of decoding a new block from the middle of it.
            if (resume_.block && resume_.gen == block_gen_ && resume_.rip == s_.rip) {
                b = resume_.block;
                first = resume_.index;
            }
            resume_.block = nullptr;
            // Follow a cached link from the previous block when it is still valid.
            if (!b && prev) {
                for (const Block::Link& l : prev->links) {
                    if (l.rip == s_.rip && l.gen == link_gen_) {
                        b = l.block;
                        break;
                    }
                }
            }
            if (!b) {
                // The jump cache maps a linear RIP to its block without the TLB and the
                // hash table (indirect branches, returns); entries die with the generation.
                const uint64_t lin = s_.rip + seg_base_[CS];
                JumpEntry& j = jump_cache_[(lin ^ (lin >> 10)) & (kJumpCacheSize - 1)];
                const uint32_t tag = jump_tag();
                if (j.lin == lin && j.gen == link_gen_ && j.tag == tag) {
                    b = j.block;
                } else {
                    const uint64_t gen = block_gen_;
                    b = find_block();
                    // Building it may have flushed the block cache, `prev` with it.
                    if (block_gen_ != gen) prev = nullptr;
                    j = {lin,
                         link_gen_,
                         b,
                         tag,
                         b->host_rip == s_.rip ? static_cast<uint16_t>(tag) : kNoTraceTag,
                         global_code(lin, *b)};
                    note_code_lin(lin);  // (the link below leads there too)
                    if (!j.global) note_nonglobal_link(&j.gen);
                }
                if (prev) {
                    Block::Link& slot = prev->links[prev->links[0].gen == link_gen_ ? 1 : 0];
                    slot = {s_.rip, b, link_gen_, b->host_rip == s_.rip ? s_.rip : ~0ull};
                    if (!j.global) note_nonglobal_link(&slot.gen);
                }
            }
            size_t n = b->insns.size() - first;
            uint64_t budget = limit - icount_;
            if (deadline_ != kNever && deadline_ > clock())
                budget = std::min(budget, deadline_ - clock());
            // A REP string instruction always starts its block (build_block), so its
            // iterations can be held to the whole budget.
            rep_room_ = budget;
            // An interrupt waiting for the STI shadow to pass also goes one at a time.
            if (careful || (irq_requested_ && icount_ < inhibit_until_)) budget = 1;
            // Stop where a counter overflows, so its PMI follows that instruction.
            if (pmu_.active()) budget = std::min(budget, pmu_.instructions_to_overflow(s_.cpl));
            if (budget < n) n = budget;
            in = b->insns.data() + first;
            block_insns_ = in;
            block_cpl_ = cpl_before;
            pmu_synced_ = 0;
            block_done_ = &done;  // clock() counts the block's retired instructions
            if (trace_left_ && n) trace_instruction(in[0]);
            if (bus_lock_watch_ && b->has_lock) {
                run_watched(in, n, done, rsp_before);  // the same loop with the detector
            } else {
                // The translating engine runs whole blocks only; a block cut by the
                // budget, a resumed block and careful stepping stay in the interpreter.
                if (xlate_ && first == 0 && n == b->insns.size() && !careful) {
                    if (Translator::BlockFn fn = xlate_->code_for(*b)) {
                        // It may continue into other blocks: `b` is the last one run.
                        chained_ = b;
                        // With LBR recording alone, chained blocks record their branches
                        // themselves (translate/emit_lbr.cc); the PMU counts in the run loop.
                        // Its LBR recording takes its addresses from the RIP it was
                        // built at: elsewhere the run loop records its branch.
                        set_chain_mode(!hooks                                       ? kChainFree
                                       : pmu_.active() || b->host_rip != rip_before ? kChainNever
                                                                                    : kChainTrace);
                        tracing = no_chain_ >= kChainTrace;
                        if (tracing) {
                            lbr_.trace_begin(s_.cpl, s_.rip, icount_, s_.mode == Mode::Long64);
                            trace_jump_tag_ = static_cast<uint16_t>(jump_tag());
                            // The chain's trace stays a fraction of the unit's ring.
                            chain_bound_ =
                                std::min(chain_bound_, icount_ + (lbr_.trace_keeps_all(s_.cpl)
                                                                      ? kTraceChainInsnsKeepAll
                                                                      : kTraceChainInsns));
                        }
                        fn(this, &done, &rsp_before);
                        if (tracing) lbr_.trace_end(), update_chain_bound();
                        // The chain's last block began at the RIP of its translation; it
                        // may have recorded its own end (Lbr::trace_done).
                        if (tracing) rip_before = chained_->host_rip, hooks = !lbr_.trace_done();
                        if (chained_ != b) b = chained_, in = b->insns.data(), n = b->insns.size();
                        block_insns_ = in;  // (a quiet block's chaining entry may leave it)
                        chained_ = nullptr;
                        if (abandoned_) {
                            abandoned_ = false;
                            return abandon();
                        }
                        if (stop_flags_ && !mmio_stays_in_block()) n = done;
                    }
                }
                // `done` counts an instruction once it has retired, before its MMIO writes
                // reach the owner (mmio_stays_in_block), as in translated code.
                while (done < n) {
                    next_rip_ = s_.rip + in[done].len;
                    rsp_before = s_.gpr[RSP];
                    in[done].fn(*this, in[done]);
                    s_.rip = next_rip_;
                    ++done;
                    if (stop_flags_ && !mmio_stays_in_block()) break;
                }
            }
            end_block(done);
            if (hooks && done) after_block(in, done, rip_before, cs_base, cpl_before);
            if (resume_insn_) drop_mmio_log();
            if ((stop_flags_ & kStopMmio) && finish_mmio()) stop_flags_ |= kStopOwner;
            // After an exit to the owner (MMIO, ports) the translating engine may go on
            // with a block starting at the next instruction (continue_after_exit).
            if (!(stop_flags_ & kStopBlockGone) && first + done < b->insns.size() &&
                !((stop_flags_ & kStopOwner) && continue_after_exit(*b, first + done)))
                resume_ = {b, first + done, s_.rip, block_gen_};
            if (stop_flags_ & kStopShadow) {
                inhibit_until_ = icount_ + 1;
                stop_flags_ &= ~kStopShadow;
            }
            if (stop_flags_ & kStopBlockGone)
                prev = nullptr, stop_flags_ &= ~kStopBlockGone;
            else
                prev = b;
            uint64_t db_bits = 0;
            if (careful && done == 1) {
                if (step_flags & FLAG_RF) s_.rflags &= ~FLAG_RF;  // RF lasts one instruction
                // Traps after the instruction (SDM vol. 3 §17.3.1): single-step (DR6.BS)
                // and data breakpoints (DR6.Bn).
                // With DEBUGCTL.BTF, TF traps only after taken branches (SDM §17.4.3).
                const DecodedInsn& last = in[0];
                const bool taken =
                    last.branch != BranchKind::None &&
                    (last.branch != BranchKind::Jcc || s_.rip != rip_before + last.len ||
                     (last.op[0].value == 0 && jump_to_next_taken(last)));
                const bool step =
                    (step_flags & FLAG_TF) && (!(s_.debugctl & kDebugctlBtf) || taken);
                db_bits = (step && !db_merged_ ? kDr6SingleStep : 0) | db_hits_;
            }
            db_merged_ = false;
            // MOV SS / POP SS hold back single-step and data-breakpoint traps until after
            // the next instruction, whose traps they join (SDM vol. 3 §6.8.3).
            if (stop_flags_ & kStopMovSs) {
                stop_flags_ &= ~kStopMovSs;
                mov_ss_db_ = db_bits;
                db_bits = 0;
            } else if (mov_ss_db_) {
                if (careful && done == 1) db_bits |= mov_ss_db_;
                mov_ss_db_ = 0;
            }
            // A bus lock's #DB joins the single-step and data-breakpoint bits in one
            // delivery (spec §3).
            if ((stop_flags_ & kStopBusLock) && bus_lock_retired()) db_bits |= msr::DR6_BLD;
            if (db_bits) {
                prev = nullptr;
                if (bus_lock_exit_) {
                    pending_db_ = db_bits;  // the exit comes first; the trap on resuming
                } else {
                    debug_trap(db_bits);
                    if (shutdown_) return StopReason::Shutdown;
                }
            }
            if (bus_lock_exit_) {
                bus_lock_exit_ = false;
                return StopReason::Owner;
            }
            if (stop_flags_ & kStopOwner) return StopReason::Owner;
        } catch (const GuestFault& f) {
            if (tracing) lbr_.trace_end(), update_chain_bound();
            if (tracing && chained_) rip_before = chained_->host_rip;
            if (chained_) block_insns_ = chained_->insns.data();
            chained_ = nullptr;
            end_block(done);
            // The faulting instruction did not retire: only those before it count. (Of
            // the block translated code was running, which block_insns_ points to.)
            if (hooks && done)
                after_block_cold(block_insns_, done, rip_before, cs_base, cpl_before);
            soft_delivered_ = false;
            prev = nullptr;
            // A faulting instruction has no effect on RSP or on devices; the reads it
            // made are not replayed. It has not retired: no bus lock is reported for it.
            s_.gpr[RSP] = rsp_before;
            mmio_writes_.resize(mmio_write_next_);
            drop_mmio_log();
            stop_flags_ &= ~(kStopBlockGone | kStopShadow | kStopMmio | kStopBusLock | kStopMovSs);
            mov_ss_db_ = 0;  // a fault ends the MOV SS shadow: its traps are dropped
            db_merged_ = false;
            try {
                raise_fault(f, s_.rip, true);
            } catch (const StopBeforeRetire&) {
                // Delivery needed something the model lacks (or an MMIO read).
                if (stop_detail_.empty()) stop_detail_ = "exception delivery touched MMIO";
                return StopReason::Emulation;
            }
            if (shutdown_) return StopReason::Shutdown;
            if ((stop_flags_ & kStopMmio) && finish_mmio()) return StopReason::Owner;
            if (stop_flags_ & kStopOwner) return StopReason::Owner;
        } catch (const StopBeforeRetire&) {
            if (tracing) lbr_.trace_end(), update_chain_bound();
            if (chained_)  // the translated block that stopped
                b = chained_, chained_ = nullptr, block_insns_ = b->insns.data();
            return abandon();
        }
    }
}

// Delivers #DB between instructions; a delivery that needs MMIO ends the run as an
// emulation failure rather than as a read exit of no instruction.
void Cpu::raise_debug_trap() {
    try {
        raise_fault(GuestFault{VEC_DB, false, 0}, s_.rip);
    } catch (const StopBeforeRetire&) {
        if (stop_detail_.empty()) stop_detail_ = "#DB delivery touched MMIO";
        throw;
    }
}

// Delivers a fault raised by an instruction, applying the double-fault and triple-fault
// rules when delivery itself faults.
void Cpu::raise_fault(const GuestFault& f, uint64_t return_rip, bool fault_class) {
    rf_in_image_ = fault_class && f.vector != VEC_DB;
    // The chain of faults, formatted only for a triple fault: faults are frequent (demand
    // paging) and a string built for each would cost more than delivering it.
    const uint64_t fault_rip = s_.rip;
    GuestFault chain[3];
    uint8_t chain_delivering[3] = {};
    uint8_t vector = f.vector;
    bool has_err = f.has_error;
    uint32_t err = f.error;
    uint8_t prev_class = 0xFF;  // vector whose delivery faulted
    for (int depth = 0;; ++depth) {
        try {
            deliver(vector, has_err, err, return_rip, false);
            return;
        } catch (const GuestFault& g) {
            chain[depth] = g;
            chain_delivering[depth] = vector;
            if (vector == VEC_DF || depth >= 2) {
                shutdown_ = true;
                stop_detail_ = fmt::format("triple fault: #{} error={:#x} at rip={:#x}", f.vector,
                                           f.error, fault_rip);
                for (int k = 0; k <= depth; ++k)
                    stop_detail_ +=
                        fmt::format(" -> #{} error={:#x} while delivering #{}", chain[k].vector,
                                    chain[k].error, chain_delivering[k]);
                return;
            }
            prev_class = vector;
            bool df = (contributory(prev_class) && contributory(g.vector)) ||
                      (prev_class == VEC_PF && (contributory(g.vector) || g.vector == VEC_PF));
            if (df) {
                vector = VEC_DF, has_err = true, err = 0;
            } else {
                vector = g.vector, has_err = g.has_error, err = g.error;
            }
        }
    }
}

// Delivers an exception or interrupt through the IDT (SDM vol. 3 §6.14, 64-bit mode).
void Cpu::deliver(uint8_t vector, bool has_error, uint32_t error, uint64_t return_rip, bool soft) {
    note_delivery_attempt(vector, return_rip);
    if (!(s_.efer & msr::EFER_LMA)) {
        deliver_legacy(vector, has_error, error, return_rip, soft);
        return;
    }
    uint64_t off = static_cast<uint64_t>(vector) * 16;
    if (off + 15 > s_.idtr.limit) fault(VEC_GP, vector * 8 + 2);
    uint64_t lo = read_sys(s_.idtr.base + off, 8);
    uint64_t hi = read_sys(s_.idtr.base + off + 8, 8);
    uint8_t type = (lo >> 40) & 0xF;
    uint8_t dpl = (lo >> 45) & 3;
    bool present = (lo >> 47) & 1;
    if (type != GATE_INTR64 && type != GATE_TRAP64) fault(VEC_GP, vector * 8 + 2);
    if (soft && dpl < s_.cpl) fault(VEC_GP, vector * 8 + 2);
    if (!present) fault(VEC_NP, vector * 8 + 2);
    uint16_t sel = static_cast<uint16_t>(lo >> 16);
    uint64_t target = (lo & 0xFFFF) | ((lo >> 32) & 0xFFFF0000ull) | (hi << 32);
    uint8_t ist = (lo >> 32) & 7;

    // Target code segment.
    if ((sel & ~3) == 0) fault(VEC_GP, 0);
    uint64_t dlo = read_sys(s_.gdtr.base + (sel & ~7), 8);
    if ((sel | 7) > s_.gdtr.limit) fault(VEC_GP, sel & ~3);
    uint8_t new_cpl = (dlo >> 45) & 3;
    if (!((dlo >> 47) & 1)) fault(VEC_NP, sel & ~3);
    if (!((dlo >> 53) & 1)) unsupported("interrupt gate to a non-64-bit code segment");

    uint64_t old_ss = s_.seg[SS].selector;
    uint64_t old_rsp = s_.gpr[RSP];
    uint64_t rsp = old_rsp;
    uint64_t tss = s_.tr.base;
    if (ist) {
        rsp = read_sys(tss + 0x24 + 8 * (ist - 1), 8);
    } else if (new_cpl < s_.cpl) {
        rsp = read_sys(tss + 4 + 8 * new_cpl, 8);
    }
    rsp &= ~0xFull;
    uint64_t frame[6];
    int nf = 0;
    if (has_error) frame[nf++] = error;
    frame[nf++] = return_rip;
    frame[nf++] = s_.seg[CS].selector;
    frame[nf++] = s_.rflags | (rf_in_image_ ? FLAG_RF : 0);
    frame[nf++] = old_rsp;
    frame[nf++] = old_ss;
    // Push SS, RSP, RFLAGS, CS, RIP, error (highest address first).
    for (int k = nf - 1; k >= 0; --k) {
        rsp -= 8;
        write_slow(rsp, 8, frame[k], false);
    }
    if (new_cpl < s_.cpl) {
        s_.seg[SS] = Segment{};
        s_.seg[SS].selector = new_cpl;
        s_.seg[SS].unusable = true;
        s_.seg[SS].dpl = new_cpl;
    }
    s_.gpr[RSP] = rsp;
    const uint64_t from = (soft ? s_.rip : return_rip) + seg_base_[CS];
    load_cs(static_cast<uint16_t>((sel & ~3) | new_cpl), new_cpl);
    s_.rip = target;
    next_rip_ = target;
    s_.rflags &= ~(FLAG_TF | FLAG_NT | FLAG_RF | FLAG_VM);
    if (type == GATE_INTR64) s_.rflags &= ~FLAG_IF;
    note_delivery(from, target + seg_base_[CS], soft);
}

// Protected-mode delivery through 8-byte gates (SDM vol. 3 §6.11-6.12), to a handler at
// the same privilege level; real-mode IVT delivery is not in the model.
void Cpu::deliver_legacy(uint8_t vector, bool has_error, uint32_t error, uint64_t return_rip,
                         bool soft) {
    if (!(s_.cr0 & CR0_PE)) unsupported("real-mode interrupt delivery is not implemented");
    const uint64_t off = static_cast<uint64_t>(vector) * 8;
    if (off + 7 > s_.idtr.limit) fault(VEC_GP, vector * 8 + 2);
    const uint64_t g = read_sys(s_.idtr.base + off, 8);
    const uint8_t type = (g >> 40) & 0xF;
    const uint8_t dpl = (g >> 45) & 3;
    if (type != 0xE && type != 0xF) fault(VEC_GP, vector * 8 + 2);  // 32-bit gates only
    if (soft && dpl < s_.cpl) fault(VEC_GP, vector * 8 + 2);
    if (!((g >> 47) & 1)) fault(VEC_NP, vector * 8 + 2);
    const uint16_t sel = static_cast<uint16_t>(g >> 16);
    const uint64_t target = (g & 0xFFFF) | ((g >> 32) & 0xFFFF0000ull);
    if ((sel & 3) != s_.cpl && s_.cpl != 0)
        unsupported("32-bit interrupt to another privilege level is not implemented");
    push(s_.rflags | (rf_in_image_ ? FLAG_RF : 0), 4);
    push(s_.seg[CS].selector, 4);
    push(return_rip, 4);
    if (has_error) push(error, 4);
    const uint64_t from = (soft ? s_.rip : return_rip) + seg_base_[CS];
    load_cs(static_cast<uint16_t>((sel & ~3) | s_.cpl), s_.cpl);
    s_.rip = next_rip_ = target;
    s_.rflags &= ~(FLAG_TF | FLAG_NT | FLAG_RF | FLAG_VM);
    if (type == 0xE) s_.rflags &= ~FLAG_IF;
    note_delivery(from, target + seg_base_[CS], soft);
}

// ICEBP after MOV SS / POP SS: the single-step and data-breakpoint traps that instruction
// held back (SDM vol. 3 §6.8.3) and ICEBP's own #DB are one delivery, DR6 reporting the
// held conditions; ICEBP itself sets no DR6 bit. Its own single-step trap is that #DB too.
void Cpu::icebp() {
    if (mov_ss_db_) {
        s_.dr[6] = (s_.dr[6] & ~0xFull) | mov_ss_db_;
        mov_ss_db_ = 0;
        db_merged_ = true;
    }
    deliver_software_interrupt(VEC_DB, true);
}

void Cpu::deliver_software_interrupt(uint8_t vector, bool privileged) {
    // INT n / INT3 / INTO are traps: the frame holds the next instruction's RIP.
    // A fault while delivering it is an ordinary fault of the INT instruction.
    deliver(vector, false, 0, next_rip_, !privileged);
}

void Cpu::set_trace(TraceFn fn, uint64_t count) {
    trace_ = std::move(fn);
    trace_left_ = trace_ ? count : 0;
}

// Reports the instruction about to run (RIP and Intel-syntax text) to the trace sink.
void Cpu::trace_instruction(const DecodedInsn& in) {
    --trace_left_;
    uint8_t bytes[16] = {};
    try {
        read_bytes(s_.rip + seg_base_[CS], bytes, in.len, Access::Exec, false);
    } catch (const GuestFault&) {
        // The block was decoded from these bytes a moment ago; a racing unmap just
        // leaves the disassembly short.
    }
    trace_(s_.rip, decoder_->disassemble(s_.mode, bytes, in.len, s_.rip));
}

}  // namespace softkvm::cpu
