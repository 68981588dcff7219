// The block frame, handler calls, branches and memory operands (emitter.h).
#ifdef SOFTKVM_HAVE_TRANSLATOR
#include "cpu/translate/emitter.h"

#include "cpu/exec/flags.h"
#include "cpu/translate/translator.h"

namespace softkvm::cpu {

using namespace Xbyak::util;

void BlockEmitter::start(uint8_t* at, size_t size, bool native) {
    cold_.clear();  // an abandoned block's
    labels_.clear();
    reset();  // no code, no labels (and exit_ forgotten, even after an abandoned block)
    exit_.clear();
    refused_.clear();
    entry_refused_.clear();
    ret_.clear();
    top_ = at;  // xbyak's CodeArray: the buffer and its size
    maxSize_ = size;
    native_ = native;
    chain_entry_ = chain_fast_ = nullptr;
    pending_rip_ = 0;
    done_ = 0;
    rdx_gpr_ = rdx_known_ = kNoGpr;  // nothing carries over from the block before
    eax_flags_ = merged_ = 0;
    pending_flags_ = 0;
    pending_ok_ = pending_end_ = false;
    tight_kind_ = 0;
    tight_alu_ = cond_in_host_ = false;
    fuse_ = {};
    cond_in_cl_ = false;
    for (int8_t& slot : slot_of_) slot = -1;
    for (uint8_t& g : cached_) g = kNoGpr;
    dirty_ = 0;
    direct_end_ = false;
    flags_cached_ = false;
}

namespace {
constexpr uint8_t kRexW = 0x48;  // REX.W: 64-bit operand size
constexpr uint8_t kRax = 0, kRcx = 1;
}  // namespace

void BlockEmitter::Raw::u32(uint32_t v) {
    std::memcpy(b + n, &v, 4);
    n += 4;
}

void BlockEmitter::Raw::u64(uint64_t v) {
    std::memcpy(b + n, &v, 8);
    n += 8;
}

void BlockEmitter::Raw::rbx_mem(uint8_t rex, uint8_t op, uint8_t reg, int32_t disp) {
    if (rex) u8(rex);
    u8(op);
    const bool short_disp = disp >= -128 && disp <= 127;
    // ModRM: mod 01 (disp8) or 10 (disp32), rm 011 (RBX, no SIB byte).
    u8(static_cast<uint8_t>((short_disp ? 0x40 : 0x80) | (reg << 3) | 3));
    if (short_disp)
        u8(static_cast<uint8_t>(disp));
    else
        u32(static_cast<uint32_t>(disp));
}

void BlockEmitter::Raw::jne_to(size_t target, size_t base) {
    u8(0x0F), u8(0x85);
    u32(static_cast<uint32_t>(target - (base + n + 4)));  // rel32 from the next instruction
}

void BlockEmitter::put(const Raw& r) {
    if (size_ + r.n > maxSize_) throw Xbyak::Error(Xbyak::ERR_CODE_IS_TOO_BIG);
    std::memcpy(top_ + size_, r.b, r.n);
    size_ += r.n;
}

void BlockEmitter::emit(const Block& b) {
    const size_t n = b.insns.size();
    std::vector<Native> forms(n);
    std::vector<Alu> alus(n, Alu::Add);
    mode_ = static_cast<Mode>(b.key & 3);
    recording_ = (b.key & Block::kRecordingKey) != 0;
    block_ = &b;
    for (size_t k = 0; k < n; ++k) {
        if (!native_) break;
        forms[k] = native_form(b.insns[k], alus[k]);
        if (forms[k] == Native::None) forms[k] = native_branch(b.insns[k], mode_);
    }
    bool quiet = native_;
    for (Native f : forms) quiet &= f != Native::None;
    quiet_ = quiet;
    Xbyak::Label body;
    push(rbx);
    push(r12);
    push(r13);
    push(r14);
    push(r15);
    push(rbp);
    sub(rsp, 24);  // RSP 16-byte aligned at handler calls (code_cache.h: kFrameBytes)
    mov(rbx, rdi);
    mov(r12, rsi);
    mov(qword[rsp], rdx);  // where the run loop keeps RSP before the instruction
    // A recording translation keeps the LBR trace's open word (Lbr::Shared::bits) in RBP
    // while it and the blocks it continues into run (emit_lbr.cc).
    if (recording_) trace_regs_in();
    emit_probe_bits();  // for this block and the ones it continues into
    jmp(body, T_NEAR);
    // The ways out, placed before the code that leaves through them: every jump there is
    // a backward jump to a known address (xbyak keeps a table entry per forward jump).
    L(entry_refused_);
    mov(qword[rbx + off_.chained], r9);  // the previous block is the last one run
    mov(byte[rbx + off_.lbr_trace_done], 1);
    jmp(ret_);
    L(refused_);
    mov(byte[rbx + off_.lbr_trace_done], 1);
    L(exit_);
    exit_at_ = getSize();
    mov(rax, reinterpret_cast<uint64_t>(&b));  // this block is the last one run
    mov(qword[rbx + off_.chained], rax);
    L(ret_);
    emit_epilogue(recording_);
    align(16);
    chain_entry_ = getCurr();
    emit_chain_entry(b, quiet);
    L(body);
    choose_cache(b, forms);
    // Not the registers the block writes whole before it reads them.
    reload_cache(written_first(b, forms));
    // A loop onto itself (emit_self_loop): the last instruction a direct branch back to
    // the block's start, every instruction a native register form.
    self_loop_ = loops_to_start_ = tight_loop_ = false;
    if (quiet && n && (forms[n - 1] == Native::Jcc || forms[n - 1] == Native::Jmp)) {
        int64_t bytes = 0;
        bool regs_only = true;
        for (size_t k = 0; k < n; ++k) {
            bytes += b.insns[k].len;
            regs_only &= !is_memory_form(forms[k]);
        }
        loops_to_start_ = b.insns[n - 1].op[0].value == -bytes;
        loop_bytes_ = static_cast<uint64_t>(bytes);
        self_loop_ = regs_only && loops_to_start_;
    }
    tight_kind_ = quiet && flags_cached_ ? tight_flags_kind(b, forms, alus) : 0;
    if (tight_kind_) pending_from_rflags(tight_kind_);
    loop_top_.clear();
    L(loop_top_);
    if (tight_kind_) {
        pending_flags_ = tight_kind_;  // (both ways into loop_top_)
        pending_end_ = false;
    }
    if (loops_to_start_) {
        // The tight loop (emit_branch) goes round without writing its cached registers
        // back: from its top on, each of them may hold a value written in the run before,
        // so every way out and every handler's path writes all of them back.
        for (uint8_t g : cached_)
            if (g != kNoGpr) dirty_ |= 1u << g;
        if (flags_cached_) dirty_ |= kFlagsBit;
    }
    for (size_t k = 0; k < n; ++k) {
        const DecodedInsn& in = b.insns[k];
        // What the previous instruction left in RDX and EAX (emitter.h), for this one.
        rdx_known_ = rdx_gpr_;
        rdx_gpr_ = kNoGpr;
        const uint64_t flags_in_eax = eax_flags_;
        eax_flags_ = 0;
        merged_ = 0;
        if (forms[k] != Native::Jcc) cond_in_cl_ = false;  // only the fused Jcc reads CL
        fuse_ = {};
        tight_alu_ = tight_kind_ && k + 2 == n;
        if (tight_alu_ && (done_ != 0 || pending_rip_ + in.len + b.insns[k + 1].len != loop_bytes_))
            throw Xbyak::Error(Xbyak::ERR_INTERNAL);  // (emit_branch would not loop tightly)
        if (!tight_alu_ && k + 1 < n && fusable(forms[k], forms[k + 1], b.insns[k + 1]))
            fuse_ = {&b.insns[k + 1], forms[k + 1], flags_use_after(forms, b, k + 1)};
        // Pending flags end after the instruction that overwrites them (emit_flags.cc);
        // an ALU form leaving its own pending flags clears pending_end_ (alu_tail).
        if (pending_end_) pending_flags_ = 0;
        pending_end_ = !is_flagless_register_form(forms[k]) && !is_plain_memory_form(forms[k]);
        // A fused SETcc or CMOVcc was emitted with its producer: skipped here.
        // (After a memory form its handler's path joins too: RDX known on neither.)
        const auto skip_fused = [&](bool rdx) {
            if (fuse_.in && fuse_.f != Native::Jcc) {
                pending_rip_ += fuse_.in->len;
                rdx_gpr_ = rdx ? fused_rdx_ : kNoGpr;
                ++k;
            }
            fuse_ = {};
        };
        if (forms[k] == Native::None) {
            call_handler(in, k);
            continue;
        }
        if (forms[k] == Native::Jcc || forms[k] == Native::Jmp) {
            const bool tight =
                k + 1 == n && loops_to_start_ && pending_rip_ + in.len == loop_bytes_ && done_ == 0;
            if (!tight) flush_cache();  // it may leave the block
            // A block ending with Jcc gets one chain exit per way (emit_branch).
            emit_branch(in, forms[k], k, k + 1 == n ? &b : nullptr, quiet, flags_in_eax);
            continue;
        }
        const FlagUse use = flags_use_after(forms, b, k);
        const bool live = use != FlagUse::Dead;
        pending_ok_ = use == FlagUse::FaultOnly;
        if (is_stack_branch_form(forms[k])) {
            emit_stack_branch(in, forms[k], k);
            continue;
        }
        switch (forms[k]) {
            case Native::MovRR:
            case Native::MovRI:
                emit_mov(in, forms[k]);
                break;
            case Native::Lea:
                emit_lea(in);
                break;
            case Native::Nop:
                break;
            case Native::ExtRR:
                emit_extend(in, gpr_at(in.op[1].reg, in.op[1].size));
                break;
            case Native::Setcc:
                emit_setcc(in);
                break;
            case Native::Cmovcc:
                emit_cmovcc(in);
                break;
            case Native::AluMI:
                if (in.prefixes & PFX_LOCK)
                    emit_rmw(in, forms[k], alus[k], k, live);
                else
                    emit_mem(in, forms[k], alus[k], k, live);
                eax_flags_ = merged_;  // the handler's path reloads them (defer_handler)
                continue;
            case Native::MovRM:
            case Native::MovMR:
            case Native::MovMI:
            case Native::AluRM:
            case Native::ExtRM:
                emit_mem(in, forms[k], alus[k], k, live);
                eax_flags_ = merged_;
                skip_fused(false);
                continue;  // synced RIP and the done count itself
            case Native::AluMR:
            case Native::IncM:
            case Native::DecM:
            case Native::XchgM:
            case Native::XaddM:
            case Native::CmpxchgM:
                emit_rmw(in, forms[k], alus[k], k, live);
                eax_flags_ = merged_;
                continue;
            case Native::AluRR:
            case Native::AluRI:
                emit_alu(in, forms[k], alus[k], live);
                eax_flags_ = merged_;  // a Jcc next tests them there
                skip_fused(true);
                break;
            case Native::Inc:
            case Native::Dec:
            case Native::Not:
            case Native::Neg:
                emit_unary(in, forms[k], live);
                eax_flags_ = merged_;
                break;
            case Native::ImulRR:
            case Native::ImulRRI:
                emit_imul(in, forms[k], live);
                break;
            default:
                emit_shift(in, forms[k], live);
                break;
        }
        pending_rip_ += in.len;
    }
    flush_cache();
    sync(n);
    if (direct_end_) {
        // The last branch's ways end in their own exits (emit_direct_exit): only its
        // handler's path comes here, back to the run loop.
        jmp(exit_, T_NEAR);
        emit_cold();
        labels_.clear();
        return;
    }
    if (self_loop_ && !tight_loop_ && forms[n - 1] == Native::Jmp) emit_self_loop(b);
    // After a last Jcc, this exit is its way not taken (emit_branch has the other). The
    // block's end is a direct exit unless it ends with an indirect or far branch.
    const BranchKind last = b.insns.back().branch;
    const bool direct = last == BranchKind::None || last == BranchKind::Jcc ||
                        last == BranchKind::NearRelJmp || last == BranchKind::NearRelCall;
    emit_chain_exit(b, quiet, last == BranchKind::Jcc ? JccWay::NotTaken : JccWay::Unknown,
                    direct ? 1 : -1);
    jmp(exit_, T_NEAR);  // not reached: the chaining code ends in jumps
    emit_cold();
    labels_.clear();
}

void BlockEmitter::emit_cold() {
    // A path may add paths of its own (an LBR trace word's store from a way out of
    // line): each runs from its own copy.
    for (size_t i = 0; i < cold_.size(); ++i) {
        const std::function<void()> path = std::move(cold_[i]);
        path();
    }
    cold_.clear();
}

void BlockEmitter::trace_regs_out() {
    mov(qword[rbx + off_.lbr_bits], rbp);
    mov(dword[rbx + off_.lbr_tidx], r15d);
}

void BlockEmitter::trace_regs_in() {
    mov(rbp, qword[rbx + off_.lbr_bits]);
    mov(r15d, dword[rbx + off_.lbr_tidx]);
}

void BlockEmitter::emit_epilogue(bool trace_in_rbp) {
    if (trace_in_rbp) trace_regs_out();
    add(rsp, 24);
    pop(rbp);
    pop(r15);
    pop(r14);
    pop(r13);
    pop(r12);
    pop(rbx);
    ret();
}

void BlockEmitter::defer_handler(const DecodedInsn& in, size_t k, Xbyak::Label& slow,
                                 Xbyak::Label& done, bool load, bool flags_to_eax, bool lazy,
                                 std::function<void()> tail) {
    const uint64_t pending = pending_rip_;
    const size_t done_before = done_;
    const uint32_t dirty = dirty_;
    const uint8_t flags = pending_flags_;  // pending flags a fault or the handler may see
    cold_.push_back([this, &in, k, &slow, &done, load, flags_to_eax, lazy, pending, done_before,
                     dirty, flags, tail = std::move(tail)] {
        L(slow);
        add(qword[rbx + off_.slow_paths], 1);  // (Translator::Stats)
        if (flags) merge_pending(flags);
        if (quiet_) {
            // The running block, should the handler fault or abandon the instruction
            // (a quiet block's chaining entry does not note it).
            mov(r11, reinterpret_cast<uint64_t>(block_));
            mov(qword[rbx + off_.chained], r11);
        }
        pending_rip_ = pending;
        done_ = done_before;
        dirty_ = dirty | (flags ? kFlagsBit : 0);  // what was written before it
        flush_cache();
        if (load) {
            sync(k);  // a fault in the load sees the instruction's RIP and count
            emit_load_slow(in, k, done, lazy, pending, done_before);
        }
        call_handler(in, k);  // syncs RIP and the done count first; reloads the cache
        if (flags_to_eax) mov(eax, dword[rbx + off_.rflags]);
        if (lazy) rejoin_lazy(in, pending, done_before);
        if (tail) tail();
        jmp(done, T_NEAR);
    });
}

void BlockEmitter::rejoin_lazy(const DecodedInsn& in, uint64_t pending, size_t done_before) {
    // The instruction retired through its handler (RIP past it, the count one more); the
    // fast path leaves RIP and the count where they were, its advance still pending.
    const uint32_t back = static_cast<uint32_t>(pending + in.len);
    if (back) sub(qword[rbx + off_.rip], back);
    mov(qword[r12], static_cast<uint32_t>(done_before));
}

void BlockEmitter::join_synced(size_t idx, Xbyak::Label& done) {
    mov(qword[r12], static_cast<uint32_t>(idx + 1));
    L(done);
    pending_rip_ = 0;
    done_ = idx + 1;
    rdx_gpr_ = kNoGpr;  // the handler's path joins here
}

void BlockEmitter::join_handler_path(const DecodedInsn& in, Xbyak::Label& done) {
    L(done);
    pending_rip_ += in.len;  // RIP and the count stored at the next sync
    rdx_gpr_ = kNoGpr;       // the handler's path joins here
}

void BlockEmitter::sync(size_t k) {
    Raw r;
    if (pending_rip_) {  // add qword [rbx + rip], pending
        r.rbx_mem(kRexW, 0x81, 0, off_.rip);
        r.u32(static_cast<uint32_t>(pending_rip_));
    }
    pending_rip_ = 0;
    if (done_ != k) {  // mov qword [r12], k
        r.bytes({0x49, 0xC7, 0x04, 0x24});
        r.u32(static_cast<uint32_t>(k));
    }
    done_ = k;
    put(r);
}

void BlockEmitter::call_handler(const DecodedInsn& in, size_t k) {
    flush_cache();  // the handler works on the CPU state
    sync(k);
    if (recording_) trace_regs_out();
    Raw r;
    r.rbx_mem(kRexW, 0x8B, kRax, off_.rip);                             // mov rax, [rbx + rip]
    r.rbx_mem(kRexW, 0x8B, kRcx, off_.rsp);                             // mov rcx, [rbx + rsp]
    r.bytes({0x48, 0x83, 0xC0, in.len});                                // add rax, len
    r.bytes({0x4C, 0x8B, 0x04, 0x24});                                  // mov r8, [rsp]
    r.bytes({0x49, 0x89, 0x08});                                        // mov [r8], rcx
    r.rbx_mem(kRexW, 0x89, kRax, off_.next_rip);                        // mov [rbx + next_rip], rax
    r.bytes({0x48, 0x89, 0xDF});                                        // mov rdi, rbx
    r.u8(kRexW), r.u8(0xBE), r.u64(reinterpret_cast<uint64_t>(&in));    // mov rsi, &in
    r.u8(kRexW), r.u8(0xB8), r.u64(reinterpret_cast<uint64_t>(in.fn));  // mov rax, fn
    r.u8(0xFF), r.u8(0xD0);                                             // call rax
    put(r);
    // The handler may look at or add LBR records (an exception's): the count goes to
    // memory before the call (below: before the RIP sync) and comes back after it.
    if (recording_) trace_regs_in();
    r = Raw{};
    r.rbx_mem(kRexW, 0x8B, kRax, off_.next_rip);  // mov rax, [rbx + next_rip]
    r.rbx_mem(kRexW, 0x89, kRax, off_.rip);       // mov [rbx + rip], rax
    r.bytes({0x49, 0xC7, 0x04, 0x24});
    r.u32(static_cast<uint32_t>(k + 1));  // mov qword [r12], k + 1
    done_ = k + 1;
    r.rbx_mem(0, 0x83, 7, off_.stop);  // cmp dword [rbx + stop], 0
    r.u8(0);
    r.jne_to(exit_at_, getSize());  // jne exit_
    put(r);
    emit_probe_bits();  // the handler may have changed CPL, CR0.AM or RFLAGS.AC
    reload_cache();     // whatever the handler wrote
}

void BlockEmitter::emit_probe_bits() {
    // kTlbValid | kTlbUser at CPL 3 (Cpu::tlb_tag, user_access) | kProbeNoEntry while
    // alignment checking is on (Cpu::align_check_).
    xor_(eax, eax);
    cmp(byte[rbx + off_.cpl], 3);
    sete(al);
    movzx(ecx, byte[rbx + off_.align_check]);
    lea(eax, ptr[rax + rcx * 2]);  // align_check << 1 | user
    lea(eax, ptr[rax * 2 + 1]);    // align_check << 2 | user << 1 | valid
    static_assert(kProbeNoEntry == 4);
    mov(qword[rsp + kProbeBitsAt], rax);
}

void BlockEmitter::canonical_or(const Xbyak::Reg64& r, Xbyak::Label& slow) {
    mov(r8, r);
    shl(r8, 16);
    sar(r8, 16);
    cmp(r8, r);
    jne(slow, T_NEAR);
}

void BlockEmitter::emit_branch(const DecodedInsn& in, Native f, size_t k, const Block* last,
                               bool quiet, uint64_t flags_in_eax) {
    // RIP and the done count are stored once, after the branch; the handler's path
    // (a non-canonical target: #GP) stores them as they are before it.
    Xbyak::Label not_taken;
    Xbyak::Label& slow = block_label();
    Xbyak::Label& done = block_label();
    defer_handler(in, k, slow, done);
    const uint64_t pending = pending_rip_;
    // The last branch of a block looping onto itself with RIP in memory still at the
    // block's start and no instruction counted yet (nothing synced them on the way):
    // the loop's way taken is emit_tight_loop's, inline; the rest as below.
    tight_loop_ = last && loops_to_start_ && pending + in.len == loop_bytes_ && done_ == 0;
    if (tight_loop_) {
        if (f == Native::Jcc) {
            Xbyak::Label& exit_taken = block_label();
            Xbyak::Label& way_not_taken = block_label();
            jump_unless(in.cond, way_not_taken, flags_in_eax);
            emit_tight_loop(*last, exit_taken);
            // The way taken when the loop cannot go on (out of line): the usual exit.
            const uint32_t dirty = dirty_;
            const uint8_t flags = pending_flags_;  // the tight loop's (tight_kind_)
            cold_.push_back([this, &in, k, last, quiet, pending, &slow, &exit_taken, dirty, flags] {
                L(exit_taken);
                dirty_ = dirty;
                if (flags) merge_pending(flags);
                flush_cache();
                mov(r10, qword[rbx + off_.rip]);
                add(r10, static_cast<uint32_t>(pending + in.len + in.op[0].value));
                canonical_or(r10, slow);
                mov(qword[rbx + off_.rip], r10);
                mov(qword[r12], static_cast<uint32_t>(k + 1));
                emit_chain_exit(*last, quiet, JccWay::Taken, 0);
                jmp(exit_, T_NEAR);  // not reached: the chaining code ends in jumps
            });
            // Not taken: the block's direct exit (as below).
            L(way_not_taken);
            if (pending_flags_) merge_pending(pending_flags_);
            flush_cache();
            mov(r10, qword[rbx + off_.rip]);
            add(r10, static_cast<uint32_t>(pending + in.len));
            direct_end_ = true;
            emit_direct_exit(*last, JccWay::NotTaken, 1, k + 1, nullptr);
        } else {
            Xbyak::Label& again_failed = block_label();
            emit_tight_loop(*last, again_failed);
            L(again_failed);
            flush_cache();
            mov(r10, qword[rbx + off_.rip]);
            add(r10, static_cast<uint32_t>(pending + in.len));
            add(r10, static_cast<uint32_t>(in.op[0].value));
            canonical_or(r10, slow);
            // The block's end (emit_chain_exit) with RIP and the done count stored.
            mov(qword[rbx + off_.rip], r10);
            mov(qword[r12], static_cast<uint32_t>(k + 1));
        }
        L(done);
        pending_rip_ = 0;
        done_ = k + 1;
        return;
    }
    mov(r10, qword[rbx + off_.rip]);
    add(r10, static_cast<uint32_t>(pending + in.len));  // next RIP
    if (f == Native::Jcc) jump_unless(in.cond, not_taken, flags_in_eax);
    add(r10, static_cast<uint32_t>(in.op[0].value));  // rel8/rel32, sign-extended
    // The last branch of a quiet block (not looping onto itself) jumps to the successor
    // remembered for each way first (emit_direct_exit): the taken way's canonical check
    // only when it is not that one (which was canonical when it was remembered).
    const bool direct = last && quiet && !self_loop_;
    direct_end_ = direct;
    if (direct) {
        // (Taken also when the target is the next instruction: Cpu::after_block asks its
        // condition, here the exit knows.)
        if (f == Native::Jcc)
            emit_direct_exit(*last, JccWay::Taken, 0, k + 1, &slow);
        else
            emit_direct_exit(*last, JccWay::Unknown, 1, k + 1, &slow);
    } else {
        canonical_or(r10, slow);
    }
    if (f == Native::Jcc && last && !direct) {
        // Taken: its own chain exit, so that the host's predictors see each way's
        // successor lookup and jump apart (the not-taken way falls through to the block's).
        mov(qword[rbx + off_.rip], r10);
        mov(qword[r12], static_cast<uint32_t>(k + 1));
        if (self_loop_) emit_self_loop(*last);
        emit_chain_exit(*last, quiet, JccWay::Taken, 0);
    }
    L(not_taken);
    if (direct && f == Native::Jcc) emit_direct_exit(*last, JccWay::NotTaken, 1, k + 1, nullptr);
    if (!direct) {
        mov(qword[rbx + off_.rip], r10);
        mov(qword[r12], static_cast<uint32_t>(k + 1));
    }
    L(done);
    pending_rip_ = 0;
    done_ = k + 1;
}

void BlockEmitter::emit_ea(const DecodedInsn& in, const Operand& o) {
    // The displacement as the interpreter adds it: sign-extended from 32 bits (RIP-relative:
    // plus the next instruction's offset from the RIP in memory).
    int64_t disp = static_cast<int32_t>(o.value);
    if (o.reg == kRegRip) disp += static_cast<int64_t>(pending_rip_ + in.len);
    if (disp != static_cast<int32_t>(disp)) {
        // (Only a RIP-relative displacement near 2^31 gets here.)
        mov(rax, qword[rbx + off_.rip]);
        add(rax, static_cast<uint32_t>(pending_rip_ + in.len));
        if (o.index != kNoReg) {
            mov(rcx, gpr(o.index));
            if (o.scale_shift) shl(rcx, o.scale_shift);
            add(rax, rcx);
        }
        add(rax, static_cast<uint32_t>(o.value));  // sign-extended imm32
    } else {
        // One LEA of the base and the index where they are (a cached register, else
        // loaded into RAX and RCX) with the displacement.
        const bool base = o.reg != kNoReg;
        Xbyak::RegExp ea;
        if (o.reg == kRegRip) {
            mov(rax, qword[rbx + off_.rip]);
            ea = Xbyak::RegExp(rax);
        } else if (base) {
            if (!is_cached(o.reg)) mov(rax, mem_gpr(o.reg, 8));
            ea = Xbyak::RegExp(is_cached(o.reg) ? host_of(o.reg) : rax);
        }
        if (o.index != kNoReg) {
            if (!is_cached(o.index)) mov(rcx, mem_gpr(o.index, 8));
            const Xbyak::Reg64 idx = is_cached(o.index) ? host_of(o.index) : rcx;
            const Xbyak::RegExp scaled = idx * (1 << o.scale_shift);
            ea = base ? ea + scaled : scaled;
        } else if (!base) {
            mov(rax, static_cast<uint64_t>(disp));  // an absolute address
            if (o.addrsize == 4) mov(eax, eax);
            return;
        }
        // (A base loaded into RAX alone is the address already.)
        if (o.index != kNoReg || disp != 0 || (base && is_cached(o.reg)))
            lea(rax, ptr[ea + static_cast<int32_t>(disp)]);
    }
    if (o.addrsize == 4) mov(eax, eax);
}

void BlockEmitter::emit_lea(const DecodedInsn& in) {
    const Operand& o = in.op[1];
    const uint8_t d = in.op[0].reg;
    // Into a cached destination with one host LEA where the guest's result is the host's:
    // a 64-bit LEA of a 64-bit address, or a 32-bit LEA (the sum's low 32 bits, whatever
    // the address size). Base and index where they are (a cached register, else loaded
    // into RAX and RCX).
    const bool one = is_cached(d) && (in.opsize == 8 ? o.addrsize == 8 : in.opsize == 4) &&
                     o.reg != kRegRip && (o.reg != kNoReg || o.index != kNoReg);
    if (!one) {
        emit_ea(in, o);
        if (in.opsize == 4) mov(eax, eax);
        mov(wgpr(d), rax);
        return;
    }
    const auto where = [&](uint8_t g, const Xbyak::Reg64& scratch) {
        if (is_cached(g)) return host_of(g);
        mov(scratch, mem_gpr(g, 8));
        return scratch;
    };
    Xbyak::RegExp ea;
    if (o.index != kNoReg) {
        ea = Xbyak::RegExp(where(o.index, rcx) * (1 << o.scale_shift));
        if (o.reg != kNoReg) ea = ea + where(o.reg, rax);
    } else {
        ea = Xbyak::RegExp(where(o.reg, rax));
    }
    ea = ea + static_cast<int32_t>(o.value);
    const Xbyak::Reg64 to = host_of(d);
    if (in.opsize == 4)
        lea(to.cvt32(), ptr[ea]);
    else
        lea(to, ptr[ea]);
    written(d);
}

void BlockEmitter::emit_lin(const DecodedInsn& in, const Operand& m) {
    emit_ea(in, m);
    const bool flat = mode_ == Mode::Long64 && m.seg != FS && m.seg != GS;
    if (!flat) add(rax, qword[rbx + off_.seg_base + 8 * m.seg]);
}

void BlockEmitter::emit_probe(uint8_t size, int32_t table, Xbyak::Label& slow, bool add_lin) {
    emit_probe_at(size, table, slow, Xbyak::RegExp(rax));
    if (add_lin) add(rdx, rax);
}

void BlockEmitter::emit_probe_at(uint8_t size, int32_t table, Xbyak::Label& slow,
                                 const Xbyak::RegExp& lin) {
    // Tag: linear page | valid | user (CPL 3), of the access's last byte: an access that
    // crosses the page end has a tag no entry at its first page's index can hold (the
    // next page has the next index), so it misses as read_mem's page check sends it on.
    // The low bits come from the frame (emit_probe_bits): with alignment checking on,
    // bit 2 makes every access miss, and its handler checks it (read_mem does not look
    // into the TLB then).
    const bool plain = lin.getDisp() == 0 && !lin.getIndex().getBit();  // a register
    const Xbyak::Reg64 reg(lin.getBase().getIdx());
    if (plain && size == 1)
        mov(r9, reg);
    else
        lea(r9, ptr[lin + (size - 1)]);
    and_(r9, static_cast<uint32_t>(~0xFFFu));  // sign-extended: keeps bits 12-63
    or_(r9, qword[rsp + kProbeBitsAt]);
    // Entry (lin >> 12) & 1023 of 32-byte entries: its offset is (lin >> 7) & (1023 << 5),
    // or (lin rotated right by 7) & (1023 << 5) (BMI2's RORX: no copy of the register, no
    // flags written).
    if (plain && bmi2_) {
        rorx(r8, reg, 7);
    } else {
        if (plain)
            mov(r8, reg);
        else
            lea(r8, ptr[lin]);
        shr(r8, 7);
    }
    and_(r8d, 1023 << 5);
    cmp(r9, qword[rbx + r8 + table]);
    jne(slow, T_NEAR);
    mov(rdx, qword[rbx + r8 + table + 8]);  // host page - linear page
}

void BlockEmitter::emit_mem(const DecodedInsn& in, Native f, Alu k, size_t idx, bool flags_live) {
    const uint8_t size = in.opsize;
    const bool store = f == Native::MovMR || f == Native::MovMI;
    const bool dest_mem = store || f == Native::AluMI;
    const Operand& m = dest_mem ? in.op[0] : in.op[1];
    const bool rmw = f == Native::AluMI && k != Alu::Cmp && k != Alu::Test;
    Xbyak::Label& slow = block_label();
    Xbyak::Label& done = block_label();
    // An ALU memory form's handler's path: what its fast path leaves beyond RFLAGS (a fused
    // consumer's result, pending flags).
    std::function<void()> tail;
    const uint8_t leaves = f == Native::AluRM ? alu_pending_kind(k) : 0;
    if ((fuse_.in || leaves) && f == Native::AluRM) {
        tail = [this, c = fuse_, leaves] {
            if (c.in) emit_consumer_from_rflags(c);
            if (leaves) pending_from_rflags(leaves);
        };
    }
    defer_handler(in, idx, slow, done, f == Native::MovRM,
                  flags_live && (f == Native::AluRM || f == Native::AluMI), true, std::move(tail));
    // A read-modify-write reads through the read entry and writes through the write
    // entry, as the handler's read_op and write_op do: both must hit.
    // Every form here accesses [RDX + RAX] before it writes RAX, except an ALU r, m whose
    // destination the block does not cache (emit_alu_value computes in RAX).
    const bool indexed = f != Native::AluRM || is_cached(in.op[0].reg);
    // In 64-bit mode, an address that is a cached base register plus a displacement is
    // probed and accessed as [base + disp] itself (no LEA into RAX); the slow path gets
    // the linear address in RAX, as the handler's path and Translator::load_for_code
    // expect it.
    const int64_t disp = static_cast<int32_t>(m.value);
    const bool direct = indexed && !rmw && mode_ == Mode::Long64 && m.seg != FS && m.seg != GS &&
                        m.addrsize == 8 && m.index == kNoReg && m.reg < 16 && is_cached(m.reg) &&
                        disp + 8 == static_cast<int32_t>(disp + 8);
    std::optional<Xbyak::RegExp> at;
    if (direct) {
        at = Xbyak::RegExp(host_of(m.reg)) + static_cast<int32_t>(disp);
        Xbyak::Label& fix = block_label();
        cold_.push_back([this, &fix, &slow, lin = *at] {
            L(fix);
            lea(rax, ptr[lin]);
            jmp(slow, T_NEAR);
        });
        emit_probe_at(m.size, store ? off_.tlb_write : off_.tlb_read, fix, *at);
    } else {
        emit_lin(in, m);
        emit_probe(m.size, store ? off_.tlb_write : off_.tlb_read, slow, !indexed);
        if (indexed) at = Xbyak::RegExp(rax);
    }
    if (rmw) {
        cmp(r9, qword[rbx + r8 + off_.tlb_write]);
        jne(slow, T_NEAR);
        mov(r11, qword[rbx + r8 + off_.tlb_write + 8]);
        add(r11, rax);
    }
    const Xbyak::Address host = at ? frame(m.size)[*at + rdx] : frame(m.size)[rdx];
    switch (f) {
        case Native::MovRM:
            if (size == 1 && !is_cached(in.op[0].reg)) {
                mov(al, host);
                mov(wgpr_at(in.op[0].reg, 1), al);
            } else if (is_cached(in.op[0].reg)) {
                // Straight into the host register (8 and 16 bits: the rest kept; 32 bits:
                // zero-extended, as the guest's load does; native forms have no AH-DH).
                mov(sized(host_of(in.op[0].reg), size), host);
                written(in.op[0].reg);
            } else {
                mov(sized(rax, size), host);  // a 32-bit load zero-extends
                mov(wgpr(in.op[0].reg), rax);
            }
            break;
        case Native::MovMR:
            if (is_cached(in.op[1].reg)) {
                mov(host, sized(host_of(in.op[1].reg), size));  // from the host register
                break;
            }
            mov(sized(rcx, size), gpr_at(in.op[1].reg, size));  // (RAX: the address)
            mov(host, sized(rcx, size));
            break;
        case Native::MovMI:  // (a 64-bit store's imm32 is sign-extended, as the guest's)
            mov(host, static_cast<uint64_t>(in.op[1].value));
            break;
        case Native::ExtRM:
            emit_extend(in, host);
            break;
        case Native::AluMI: {
            // The value in R10, the flags captured before the write-back.
            if (size == 1)
                movzx(r10d, host);
            else
                mov(sized(r10, size), host);
            alu_imm(k, sized(r10, size), static_cast<uint32_t>(in.op[1].value));
            const bool logic = k == Alu::And || k == Alu::Or || k == Alu::Xor || k == Alu::Test;
            if (flags_live) capture_flags(!logic);
            if (rmw) mov(frame(size)[r11], sized(r10, size));
            if (flags_live) merge_alu_flags(logic);
            break;
        }
        default:
            emit_alu_value(in, k, host, flags_live);
            break;
    }
    join_handler_path(in, done);
}

void BlockEmitter::emit_load_slow(const DecodedInsn& in, size_t idx, Xbyak::Label& done, bool lazy,
                                  uint64_t pending, size_t done_before) {
    Xbyak::Label handler;
    mov(rcx, qword[rbx + off_.rsp]);
    mov(r8, qword[rsp]);
    mov(qword[r8], rcx);                           // RSP before the instruction, for a fault
    mov(byte[rbx + off_.last_seg], in.op[1].seg);  // for a fault, as Cpu::linear notes it
    mov(rdi, rbx);
    mov(rsi, rax);  // the linear address (emit_lin, kept by emit_probe)
    mov(edx, in.op[1].size);
    mov(rax, off_.load_fn);
    if (recording_) trace_regs_out();  // as call_handler
    call(rax);
    if (recording_) trace_regs_in();
    cmp(rdx, static_cast<uint32_t>(Translator::kLoadHandler));
    je(handler, T_NEAR);
    // Abandoned for an MMIO read exit: back to the run loop, RIP and the done count at
    // this instruction.
    cmp(rdx, static_cast<uint32_t>(Translator::kLoadAbandoned));
    je(exit_, T_NEAR);
    if (in.opsize == 1)
        mov(mem_gpr(in.op[0].reg, 1), al);
    else
        mov(mem_gpr(in.op[0].reg, 8), rax);  // read_mem zero-extends a 32-bit value
    add(qword[rbx + off_.rip], in.len);
    mov(qword[r12], static_cast<uint32_t>(idx + 1));
    reload_cache();  // the call took the caller-saved ones; the destination is new
    // MMIO that needed no exit (or a replayed read) ends the block, as after a handler.
    cmp(dword[rbx + off_.stop], 0);
    jne(exit_, T_NEAR);
    if (lazy) rejoin_lazy(in, pending, done_before);
    jmp(done, T_NEAR);
    L(handler);
}

Xbyak::Reg BlockEmitter::sized(const Xbyak::Reg64& r, uint8_t size) {
    switch (size) {
        case 1:
            return r.cvt8();
        case 2:
            return r.cvt16();
        case 4:
            return r.cvt32();
        default:
            return r;
    }
}

const Xbyak::AddressFrame& BlockEmitter::frame(uint8_t size) {
    switch (size) {
        case 1:
            return Xbyak::util::byte;
        case 2:
            return Xbyak::util::word;
        case 4:
            return Xbyak::util::dword;
        default:
            return Xbyak::util::qword;
    }
}

void BlockEmitter::store_gpr(uint8_t g, uint8_t size, const Xbyak::Reg64& v) {
    if (size <= 2)
        mov(wgpr_at(g, size), sized(v, size));  // the rest of the register stays
    else
        mov(wgpr(g), v);  // a 32-bit result is already zero-extended in `v`
}

void BlockEmitter::load(const Xbyak::Reg64& r, uint8_t g, bool q) {
    if (r.getIdx() == rdx.getIdx()) return load_rdx(g, q ? 8 : 4);
    if (q)
        mov(r, gpr(g));
    else
        mov(r.cvt32(), gpr_at(g, 4));  // zero-extends
}

void BlockEmitter::load_rdx(uint8_t g, uint8_t size) {
    const bool known = rdx_known_ == g;
    rdx_known_ = kNoGpr;
    if (!known) {
        if (size == 1)
            movzx(edx, gpr_at(g, 1));
        else if (size == 8)
            mov(rdx, gpr(g));
        else
            mov(sized(rdx, size), gpr_at(g, size));  // 32 bits: zero-extends
        return;
    }
    // RDX has the whole register: the same value without the memory round trip.
    if (size == 1)
        movzx(edx, dl);
    else if (size == 4)
        mov(edx, edx);
}

}  // namespace softkvm::cpu
#endif
