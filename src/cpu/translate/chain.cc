// Chaining: one translated block continuing into the next (emitter.h).
#ifdef SOFTKVM_HAVE_TRANSLATOR
#include "cpu/translate/emitter.h"

#include "cpu/exec/flags.h"
#include "cpu/msr_index.h"

namespace softkvm::cpu {

using namespace Xbyak::util;

namespace {

// What canonical_or tests at run time (bits 63:47 equal: 48-bit linear addresses).
bool canonical48(uint64_t v) {
    return static_cast<uint64_t>(static_cast<int64_t>(v << 16) >> 16) == v;
}

}  // namespace

void BlockEmitter::emit_entry_checks(uint64_t n, bool kick, bool watch_lock, Xbyak::Label& fail) {
    // Set from outside the block: another thread's kick (a chaining exit tested it
    // already: emit_chain_exit); bus-lock watching.
    if (kick) {
        cmp(byte[rbx + off_.kick], 0);
        jne(fail, T_NEAR);
    }
    if (watch_lock) {
        cmp(byte[rbx + off_.bus_lock_watch], 0);
        jne(fail, T_NEAR);
    }
    // The instruction limit, the deadline and an interrupt request (Cpu::chain_bound_):
    // icount + the block before + n <= the bound.
    mov(rax, qword[rbx + off_.icount]);
    add(rax, qword[r12]);  // the instructions of the block before
    lea(rcx, ptr[rax + n]);
    cmp(rcx, qword[rbx + off_.chain_bound]);
    ja(fail, T_NEAR);
    // Enter: the block before is retired (RAX: the new icount).
    mov(qword[rbx + off_.icount], rax);
    mov(qword[r12], 0);
}

void BlockEmitter::emit_chain_entry(const Block& b, bool quiet) {
    // Not entered: back to the run loop as the previous block (entry_refused_: R9 holds
    // it; while recording LBRs, that block recorded its end).
    cmp(byte[rbx + off_.mode], static_cast<uint8_t>(b.key & 3));
    jne(entry_refused_, T_NEAR);
    // The second entry (Block::host_fast), from a direct exit of a block whose every
    // instruction is native and of this mode: without the mode check.
    chain_fast_ = getCurr();
    emit_entry(b, !quiet);
}

void BlockEmitter::emit_entry(const Block& b, bool variables) {
    emit_entry_checks(b.insns.size(), false, b.has_lock, entry_refused_);
    bool rep = false;
    for (const DecodedInsn& in : b.insns) rep |= (in.prefixes & (PFX_REP | PFX_REPNE)) != 0;
    if (rep) {
        // rep_room_ (string instructions only): the budget as the run loop computes it.
        Xbyak::Label no_deadline;
        mov(rdx, qword[rbx + off_.idle]);
        add(rdx, rax);  // clock()
        mov(rsi, qword[rbx + off_.run_limit]);
        sub(rsi, rax);
        mov(rcx, qword[rbx + off_.deadline]);
        cmp(rcx, -1);
        je(no_deadline);
        sub(rcx, rdx);
        cmp(rcx, rsi);
        cmovb(rsi, rcx);
        L(no_deadline);
        mov(qword[rbx + off_.rep_room], rsi);
    }
    add(qword[rbx + off_.chained_blocks], 1);
    if (!variables) return;
    // A block with handlers: the running block (Cpu::chained_) for a fault or an
    // abandoned instruction in one of them, and the run loop's per-block PMU variables
    // for the handlers that read them (RDMSR, WRMSR, RDPMC: pmu_catch_up). A quiet block
    // (every instruction native) notes itself only on its ways out and before the
    // handler's path of a native instruction (exit_, defer_handler), and has no PMU
    // variables to set (the PMU's own counting chains nothing: kChainNever; after a
    // chain the run loop takes the block's instructions from Cpu::chained_).
    mov(rax, reinterpret_cast<uint64_t>(&b));
    mov(qword[rbx + off_.chained], rax);
    mov(rax, reinterpret_cast<uint64_t>(b.insns.data()));
    mov(qword[rbx + off_.block_insns], rax);
    movzx(eax, byte[rbx + off_.cpl]);
    mov(byte[rbx + off_.block_cpl], al);
    mov(qword[rbx + off_.pmu_synced], 0);
}

void BlockEmitter::emit_self_loop(const Block& b) {
    Xbyak::Label other;
    const uint64_t n = b.insns.size();
    cmp(byte[rbx + off_.no_chain], kChainFree);
    jne(other, T_NEAR);
    // emit_chain_entry's checks and counting, and the kick (its register forms hold no
    // LOCK); the mode, CPL and the run loop's block variables are this block's already.
    emit_entry_checks(n, true, false, exit_);
    add(qword[rbx + off_.chained_blocks], 1);
    jmp(loop_top_, T_NEAR);
    L(other);
}

void BlockEmitter::emit_tight_loop(const Block& b, Xbyak::Label& fail) {
    const uint64_t n = b.insns.size();
    // No kick, chaining free (kick_ and no_chain_ in one compare, as a chain exit tests
    // them), no bus-lock watching if the block holds a locked instruction; then the
    // entry's bound (emit_entry_checks) for the block run once more: icount + this run +
    // the next <= the bound.
    cmp(word[rbx + off_.kick], 0);
    jne(fail, T_NEAR);
    if (b.has_lock) {
        cmp(byte[rbx + off_.bus_lock_watch], 0);
        jne(fail, T_NEAR);
    }
    mov(rax, qword[rbx + off_.icount]);
    lea(rcx, ptr[rax + 2 * n]);
    cmp(rcx, qword[rbx + off_.chain_bound]);
    ja(fail, T_NEAR);
    // This run retired, the next one begins (RIP and the done count in memory are the
    // block's start and 0 already).
    lea(rax, ptr[rax + n]);
    mov(qword[rbx + off_.icount], rax);
    add(qword[rbx + off_.chained_blocks], 1);
    jmp(loop_top_, T_NEAR);
}

void BlockEmitter::emit_chain_exit(const Block& b, bool quiet, JccWay way, int exit, bool slot) {
    // A kick (set by another thread) or the run loop's per-block bookkeeping: kick_ and
    // no_chain_ are adjacent bytes, one 16-bit compare tests both. A quiet block built for
    // LBR recording (Block::kRecordingKey) goes on only with kChainTrace
    // and no kick, recording its end (emit_recording_ways); any other goes on only with
    // neither. Otherwise back to the run loop (which returns on the kick, or does the
    // bookkeeping and records the block's end where the block did not).
    static_assert(kChainFree == 0);
    if (quiet && recording_) {
        emit_recording_ways(exit_, [&] {
            if (emit_lbr_record(b, way, false)) emit_successor_lookup(b, true, exit, true);
        });
        return;
    }
    cmp(word[rbx + off_.kick], 0);
    jne(exit_, T_NEAR);
    if (!quiet) {
        // A handler ran: what it may have changed, the run loop would see before the next
        // block. (Native forms change none of these; their handler paths, taken on a TLB
        // miss, only access memory: MMIO there stops the block.) Among them what the
        // recording bit of the link key follows (Cpu::update_recording_key).
        movzx(eax, byte[rbx + off_.halted]);
        for (int32_t flag :
             {off_.nmi_pending, off_.debug_active, off_.resume_insn, off_.pmu_active})
            or_(al, byte[rbx + flag]);
        test(al, al);
        jnz(exit_, T_NEAR);
        mov(rax, qword[rbx + off_.pending_db]);
        or_(rax, qword[rbx + off_.trace_left]);
        jnz(exit_, T_NEAR);
        test(dword[rbx + off_.rflags], static_cast<uint32_t>(FLAG_TF | FLAG_RF));
        jnz(exit_, T_NEAR);
        test(byte[rbx + off_.debugctl], static_cast<uint8_t>(msr::DEBUGCTL_LBR));
        jnz(exit_, T_NEAR);
    }
    emit_successor_lookup(b, false, exit, slot);
}

void BlockEmitter::emit_direct_exit(const Block& b, JccWay way, int exit, size_t count,
                                    Xbyak::Label* check) {
    Xbyak::Label& other = block_label();
    const int32_t ex = exit * off_.exit_size;
    if (recording_) {
        // Built for LBR recording: with kChainTrace and no kick, RIP and the count stored,
        // the record (the RIP still in R10) and the traced lookup, inline; otherwise (out
        // of line) the target's canonical check and back to the run loop. With kChainTrace
        // the block runs at the RIP it was built at (emit_lbr.cc), so the target is a
        // constant of the translation and so is its canonical check: a non-canonical one
        // (#GP) takes the way out of line. The slot's compare takes the RIP from R10 (a
        // miss: the search from the stored RIP).
        const DecodedInsn& last = b.insns.back();
        const uint64_t next = start_rip_ + (last.block_off - b.insns[0].block_off) + last.len;
        const uint64_t target =
            way == JccWay::NotTaken
                ? next
                : next + static_cast<uint64_t>(static_cast<int64_t>(
                             static_cast<int32_t>(static_cast<uint32_t>(last.op[0].value))));
        if (check && !canonical48(target)) {
            jmp(other, T_NEAR);
        } else {
            emit_recording_ways(other, [&] {
                mov(qword[rbx + off_.rip], r10);
                mov(qword[r12], static_cast<uint32_t>(count));
                if (!emit_lbr_record(b, way, true)) return;
                Xbyak::Label miss;
                mov(r9, reinterpret_cast<uint64_t>(&b));
                mov(r11, qword[rbx + off_.direct_gen]);
                cmp(r10, qword[r9 + ex + off_.exit_trace_rip]);
                jne(miss);
                cmp(r11, qword[r9 + ex + off_.exit_gen]);
                jne(miss);
                jmp(qword[r9 + ex + off_.exit_to]);
                L(miss);
                emit_successor_lookup(b, true, exit, false);
            });
        }
        cold_.push_back([this, count, check, &other] {
            L(other);
            if (check) canonical_or(r10, *check);
            mov(qword[rbx + off_.rip], r10);
            mov(qword[r12], static_cast<uint32_t>(count));
            jmp(exit_, T_NEAR);
        });
        return;
    }
    // The usual way: chaining free (no kick, no per-block bookkeeping: one compare of
    // kick_ and no_chain_), the remembered successor's RIP (which was canonical when it
    // was remembered) and the slots' generation; then RIP and the count stored and a jump
    // to it. (A quiet block: nothing for emit_chain_exit's checks after a handler.)
    cmp(word[rbx + off_.kick], 0);
    jne(other, T_NEAR);
    mov(r9, reinterpret_cast<uint64_t>(&b));
    cmp(r10, qword[r9 + ex + off_.exit_rip]);
    jne(other, T_NEAR);
    mov(r11, qword[rbx + off_.direct_gen]);
    cmp(r11, qword[r9 + ex + off_.exit_gen]);
    jne(other, T_NEAR);
    mov(qword[rbx + off_.rip], r10);
    mov(qword[r12], static_cast<uint32_t>(count));
    jmp(qword[r9 + ex + off_.exit_to]);
    // Otherwise (out of line): the target's canonical check, RIP and the count stored,
    // and the whole chain exit.
    cold_.push_back([this, &b, way, exit, count, check, &other] {
        L(other);
        if (check) canonical_or(r10, *check);
        mov(qword[rbx + off_.rip], r10);
        mov(qword[r12], static_cast<uint32_t>(count));
        // (Chaining was free and the slot missed unless a kick or the run loop's
        // bookkeeping brought it here: the lookup goes straight to the search.)
        emit_chain_exit(b, true, way, exit, false);
        jmp(exit_, T_NEAR);  // not reached: the chaining code ends in jumps
    });
}

template <class OnHit>
void BlockEmitter::link_probe(bool traced, const OnHit& on_hit) {
    mov(rdx, qword[rbx + off_.links_gen]);  // the links' and the jump cache's generation
    for (int k = 0; k < 2; ++k) {
        Xbyak::Label next;
        const int32_t at = k * off_.link_size;
        // (Traced: a link whose block was built at its RIP, Block::Link::trace_rip.)
        cmp(rax, qword[r9 + at + (traced ? off_.link_trace_rip : off_.link_rip)]);
        jne(next);
        cmp(rdx, qword[r9 + at + off_.link_gen]);
        jne(next);
        mov(rcx, qword[r9 + at + off_.link_block]);
        on_hit();
        L(next);
    }
}

void BlockEmitter::host_chain_or(Xbyak::Label& out) {
    mov(r8, qword[rcx + off_.host_chain]);  // its chaining entry, if translated
    test(r8, r8);
    jz(out, T_NEAR);
}

void BlockEmitter::emit_successor_lookup(const Block& b, bool traced, int exit, bool slot) {
    mov(r9, reinterpret_cast<uint64_t>(&b));
    if (exit >= 0 && slot) {
        // A direct exit: the successor it led to last time, while still valid (R11: the
        // slots' generation, Cpu::direct_gen_). Traced: only one built at this RIP
        // (Block::DirectExit::trace_rip; emit_lbr_record leaves the RIP in RAX).
        if (!traced) mov(rax, qword[rbx + off_.rip]);
        const int32_t ex = exit * off_.exit_size;
        Xbyak::Label miss;
        mov(r11, qword[rbx + off_.direct_gen]);
        cmp(rax, qword[r9 + ex + (traced ? off_.exit_trace_rip : off_.exit_rip)]);
        jne(miss);
        cmp(r11, qword[r9 + ex + off_.exit_gen]);
        jne(miss);
        jmp(qword[r9 + ex + off_.exit_to]);
        L(miss);
    }
    if (exit < 0) {
        // An indirect exit (RET, JMP or CALL through a register or memory): nothing to
        // remember, the search is its usual way (a RET mostly returns to one of its last
        // two places, a dispatch through a table finds its target in the jump cache).
        // Inline, each way in with its own jump, without the call and return. (Traced:
        // RAX holds the RIP; the way out marks the end recorded, refused_.)
        Xbyak::Label& out = traced ? refused_ : exit_;
        // Into the successor found (RCX), or back to the run loop.
        auto enter = [&] {
            host_chain_or(out);
            jmp(r8);
        };
        if (!traced) mov(rax, qword[rbx + off_.rip]);
        link_probe(traced, enter);
        // (Traced: the branch was native, so the block runs in 64-bit mode: emit_lbr.cc.)
        jump_cache_probe(traced, out, traced && mode_ == Mode::Long64);
        enter();
        return;
    }
    // The search, shared by every block (emit_lookup_stub): it returns the successor's
    // entry in R8 or leaves for the run loop itself. The jump stays here, one per exit.
    // (RAX holds the RIP and R11 the slots' generation after the slot's check.)
    call(slot ? loaded_[exit][traced][quiet_] : stubs_[exit][traced][quiet_]);
    jmp(r8);
}

size_t BlockEmitter::emit_lookup_stubs(uint8_t* at, size_t size) {
    start(at, size, true);
    for (int exit = 0; exit < 2; ++exit) {
        for (int traced = 0; traced < 2; ++traced) {
            for (int quiet = 0; quiet < 2; ++quiet) {
                align(16);
                stubs_[exit][traced][quiet] = getCurr();
                emit_lookup_stub(exit, traced != 0, quiet != 0);
            }
        }
    }
    return getSize();
}

void BlockEmitter::jump_cache_probe(bool traced, Xbyak::Label& miss, bool cs_zero) {
    // Entry (lin ^ lin >> 10) % 4096 of 32 bytes, tag mode | CPL << 4. The linear address
    // is the RIP where CS's base is known to be 0 (64-bit mode).
    const Xbyak::Reg64& lin = cs_zero ? rax : rsi;
    if (!cs_zero) {
        mov(rsi, rax);
        add(rsi, qword[rbx + off_.seg_base + 8 * CS]);
    }
    mov(rdi, lin);
    shr(rdi, 10);
    xor_(rdi, lin);
    and_(edi, 4095);
    shl(edi, 5);
    mov(rcx, off_.jump_cache);
    add(rcx, rdi);
    cmp(lin, qword[rcx]);
    jne(miss, T_NEAR);
    cmp(rdx, qword[rcx + 8]);
    jne(miss, T_NEAR);
    if (traced) {
        // Built at this RIP and of the chain's mode and CPL (JumpEntry::trace_tag: the
        // tag, or one no chain has): one compare.
        movzx(edi, word[rbx + off_.trace_jump_tag]);
        cmp(di, word[rcx + 28]);
    } else {
        // The tag: mode | CPL << 4.
        movzx(edi, byte[rbx + off_.cpl]);
        shl(edi, 4);
        movzx(esi, byte[rbx + off_.mode]);
        or_(edi, esi);
        cmp(edi, dword[rcx + 24]);
    }
    jne(miss, T_NEAR);
    mov(rcx, qword[rcx + 16]);
}

void BlockEmitter::emit_lookup_stub(int exit, bool traced, bool quiet) {
    // Called with R9 = the block whose exit this is; RAX gets the guest's RIP (the key),
    // R11 the slots' generation (at loaded_, they are there already). Nothing
    // here throws or calls: the return address below the block's frame is never seen by an
    // unwinder.
    Xbyak::Label miss;
    // The end of a successful search (RCX: the successor).
    auto enter = [&] {
        host_chain_or(miss);
        // Remembered for this exit, without the search next time. From a block whose
        // every instruction is native (the mode as at its entry) into one of the same
        // mode: its entry without the mode check and the bookkeeping.
        const int32_t ex = exit * off_.exit_size;
        if (quiet) {
            movzx(esi, byte[rcx + off_.key]);
            movzx(edi, byte[r9 + off_.key]);
            xor_(esi, edi);
            test(esi, 3);
            cmovz(r8, qword[rcx + off_.host_fast]);
        }
        mov(qword[r9 + ex + off_.exit_rip], rax);
        mov(qword[r9 + ex + off_.exit_gen], r11);
        mov(qword[r9 + ex + off_.exit_to], r8);
        // Whether it was built at this RIP, for the traced lookup: a traced lookup finds
        // only such a successor; the other asks its host_rip.
        if (traced) {
            mov(qword[r9 + ex + off_.exit_trace_rip], rax);
        } else {
            mov(rdx, ~0ull);
            cmp(rax, qword[rcx + off_.host_rip]);
            cmove(rdx, rax);
            mov(qword[r9 + ex + off_.exit_trace_rip], rdx);
        }
        ret();
    };
    mov(rax, qword[rbx + off_.rip]);
    mov(r11, qword[rbx + off_.direct_gen]);
    // The second entry, for a caller that has them in RAX and R11 already.
    loaded_[exit][traced][quiet] = getCurr();
    link_probe(traced, enter);  // (a copy of `enter` per way in: no jump between)
    jump_cache_probe(traced, miss);
    // (The run loop would link the block it finds here: a direct exit remembers it.)
    enter();
    // Not found: back to the run loop from the block's frame, as its exit_ (while
    // recording, refused_) would: the return address dropped, the block (R9) noted as
    // the last one run.
    L(miss);
    add(rsp, 8);
    if (traced) mov(byte[rbx + off_.lbr_trace_done], 1);
    mov(qword[rbx + off_.chained], r9);
    emit_epilogue(traced);
}

}  // namespace softkvm::cpu
#endif
