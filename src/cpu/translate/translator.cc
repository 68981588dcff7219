// Block translation with xbyak (docs/translator.md has the choice of emitter).
#include "cpu/translate/translator.h"

#include "cpu/block.h"
#include "cpu/cpu.h"
#include "cpu/translate/code_cache.h"
#include "cpu/translate/forms.h"

#ifdef SOFTKVM_HAVE_TRANSLATOR
#include <Zydis/Zydis.h>
#include <cpuid.h>

#include <xbyak/xbyak.h>
#include <vector>

#include "cpu/exec/flags.h"
#endif

namespace softkvm::cpu {

const char* engine_name(Engine e) {
    return e == Engine::Translate ? "translate" : "interp";
}

bool parse_engine(std::string_view text, Engine& out) {
    if (text == "interp") {
        out = Engine::Interp;
        return true;
    }
    if (text == "translate") {
        out = Engine::Translate;
        return true;
    }
    return false;
}

bool translator_available() {
#ifdef SOFTKVM_HAVE_TRANSLATOR
    return true;
#else
    return false;
#endif
}

namespace {
template <typename T>
int32_t offset_in(const Cpu& cpu, const T& field) {
    return static_cast<int32_t>(reinterpret_cast<const char*>(&field) -
                                reinterpret_cast<const char*>(&cpu));
}
}  // namespace

Translator::Translator(Cpu& cpu, size_t cache_bytes)
    : cache_(std::make_unique<CodeCache>(cache_bytes)) {
    off_rip_ = offset_in(cpu, cpu.s_.rip);
    off_next_rip_ = offset_in(cpu, cpu.next_rip_);
    off_rsp_ = offset_in(cpu, cpu.s_.gpr[RSP]);
    off_stop_ = offset_in(cpu, cpu.stop_flags_);
    off_gpr_ = offset_in(cpu, cpu.s_.gpr[0]);
    off_rflags_ = offset_in(cpu, cpu.s_.rflags);
    off_seg_base_ = offset_in(cpu, cpu.seg_base_[0]);
    off_last_seg_ = offset_in(cpu, cpu.last_seg_);
    off_align_ = offset_in(cpu, cpu.align_check_);
    off_cpl_ = offset_in(cpu, cpu.s_.cpl);
    off_tlb_read_ = offset_in(cpu, cpu.tlb_read_[0]);
    off_tlb_write_ = offset_in(cpu, cpu.tlb_write_[0]);
    // The generated TLB probe knows the entry layout and the tag bits.
    static_assert(sizeof(Cpu::TlbEntry) == 24 && Cpu::kTlbSize == 1024);
    static_assert(Cpu::kTlbValid == 1 && Cpu::kTlbUser == 2);
    static_assert(offsetof(Cpu::TlbEntry, tag) == 0 && offsetof(Cpu::TlbEntry, host) == 8);
}

Translator::~Translator() = default;

bool Translator::ok() const {
    return translator_available() && cache_->ok();
}

void Translator::reset() {
    cache_->clear();
    translated_ = 0;
    native_ = true;
}

Translator::Stats Translator::stats() const {
    return {translated_, cache_->flushes(), cache_->used()};
}

Translator::BlockFn Translator::code_for(Block& b) {
    if (b.host_code && b.host_epoch == cache_->epoch())
        return reinterpret_cast<BlockFn>(b.host_code);
    if (b.host_epoch == kUntranslatable) return nullptr;  // the interpreter runs it
    return translate(b);
}

#ifdef SOFTKVM_HAVE_TRANSLATOR

namespace {

// Upper bounds of the generated code's size, in bytes: the longest form is a memory
// access with its TLB probe, flags and the handler call of its slow path.
constexpr size_t kFrameCode = 96;
constexpr size_t kPerInsnCode = 384;

// LAHF/SAHF in 64-bit mode (CPUID.80000001H:ECX[0]): native flag capture needs LAHF.
bool host_has_lahf() {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid(0x80000001u, &a, &b, &c, &d) && (c & 1);
}

// The frame code_cache.h describes: three callee-saved registers hold the CPU and the
// two run-loop variables across handler calls.
class BlockEmitter : public Xbyak::CodeGenerator {
  public:
    struct Offsets {
        int32_t rip, next_rip, rsp, stop, gpr, rflags;
        int32_t seg_base, last_seg, align_check, cpl, tlb_read, tlb_write;
    };
    BlockEmitter(size_t size, uint8_t* at, const Offsets& off, bool native)
        : Xbyak::CodeGenerator(size, at), off_(off), native_(native) {}

    void emit(const Block& b) {
        using namespace Xbyak::util;
        push(rbx);
        push(r12);
        push(r13);
        mov(rbx, rdi);
        mov(r12, rsi);
        mov(r13, rdx);
        const size_t n = b.insns.size();
        std::vector<Native> forms(n);
        std::vector<Alu> alus(n, Alu::Add);
        mode_ = static_cast<Mode>(b.key & 3);
        for (size_t k = 0; k < n; ++k) {
            if (!native_) break;
            forms[k] = native_form(b.insns[k], alus[k]);
            if (forms[k] == Native::None) forms[k] = native_branch(b.insns[k], mode_);
        }
        for (size_t k = 0; k < n; ++k) {
            const DecodedInsn& in = b.insns[k];
            if (forms[k] == Native::None) {
                call_handler(in, k);
                continue;
            }
            if (forms[k] == Native::Jcc || forms[k] == Native::Jmp) {
                emit_branch(in, forms[k], k);
                continue;
            }
            const bool live = flags_live_after(forms, b, k);
            switch (forms[k]) {
                case Native::MovRR:
                case Native::MovRI:
                    emit_mov(in, forms[k]);
                    break;
                case Native::Lea:
                    emit_ea(in, in.op[1]);
                    if (in.opsize == 4) mov(eax, eax);
                    mov(gpr(in.op[0].reg), rax);
                    break;
                case Native::MovRM:
                case Native::MovMR:
                case Native::AluRM:
                    emit_mem(in, forms[k], alus[k], k, live);
                    continue;  // synced RIP and the done count itself
                case Native::AluRR:
                case Native::AluRI:
                    emit_alu(in, forms[k], alus[k], live);
                    break;
                case Native::Inc:
                case Native::Dec:
                    emit_incdec(in, forms[k] == Native::Inc, live);
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
        sync(n);
        L(exit_);
        pop(r13);
        pop(r12);
        pop(rbx);
        ret();
    }

  private:
    Xbyak::Address gpr(uint8_t r) { return Xbyak::util::qword[rbx + off_.gpr + 8 * r]; }

    // RIP and the done count as the interpreter has them before instruction `k`.
    void sync(size_t k) {
        using namespace Xbyak::util;
        if (pending_rip_) add(qword[rbx + off_.rip], static_cast<uint32_t>(pending_rip_));
        pending_rip_ = 0;
        if (done_ != k) mov(qword[r12], static_cast<uint32_t>(k));
        done_ = k;
    }

    // The interpreter's step: next RIP, RSP for a fault's restore, the handler, RIP :=
    // next RIP, one more instruction done, leave on a stop flag.
    void call_handler(const DecodedInsn& in, size_t k) {
        using namespace Xbyak::util;
        sync(k);
        mov(rax, qword[rbx + off_.rip]);
        mov(rcx, qword[rbx + off_.rsp]);
        add(rax, in.len);
        mov(qword[r13], rcx);
        mov(qword[rbx + off_.next_rip], rax);
        mov(rdi, rbx);
        mov(rsi, reinterpret_cast<uint64_t>(&in));
        mov(rax, reinterpret_cast<uint64_t>(in.fn));
        call(rax);
        mov(rax, qword[rbx + off_.next_rip]);
        mov(qword[rbx + off_.rip], rax);
        mov(qword[r12], static_cast<uint32_t>(k + 1));
        done_ = k + 1;
        cmp(dword[rbx + off_.stop], 0);
        jne(exit_, T_NEAR);
    }

    // JMP rel32/rel8 and Jcc (op_jmp, op_jcc): RIP := next RIP, plus the displacement
    // when taken (the condition read from RFLAGS as Cpu::cond reads it); a
    // non-canonical target goes to the handler, which raises #GP.
    void emit_branch(const DecodedInsn& in, Native f, size_t k) {
        using namespace Xbyak::util;
        sync(k);
        Xbyak::Label not_taken, slow, done;
        mov(rax, qword[rbx + off_.rip]);
        add(rax, in.len);  // next RIP
        if (f == Native::Jcc) {
            const int32_t fl = off_.rflags;
            const uint8_t cc = in.cond & 0xF;
            const uint32_t bits[6] = {
                static_cast<uint32_t>(FLAG_OF), static_cast<uint32_t>(FLAG_CF),
                static_cast<uint32_t>(FLAG_ZF), static_cast<uint32_t>(FLAG_CF | FLAG_ZF),
                static_cast<uint32_t>(FLAG_SF), static_cast<uint32_t>(FLAG_PF)};
            if (cc >> 1 < 6) {
                test(dword[rbx + fl], bits[cc >> 1]);
            } else {
                // L: SF != OF; LE: ZF or SF != OF. OF (bit 11) shifted onto SF (bit 7).
                mov(ecx, dword[rbx + fl]);
                mov(edx, ecx);
                shr(edx, 4);
                xor_(edx, ecx);
                and_(edx, static_cast<uint32_t>(FLAG_SF));
                if (cc >> 1 == 7) {
                    and_(ecx, static_cast<uint32_t>(FLAG_ZF));
                    or_(edx, ecx);
                } else {
                    test(edx, edx);
                }
            }
            // Odd condition codes are the negations (SDM vol. 2 appendix B.1.4.7).
            if (cc & 1)
                jnz(not_taken, T_NEAR);
            else
                jz(not_taken, T_NEAR);
        }
        mov(rcx, static_cast<uint64_t>(in.op[0].value));
        add(rax, rcx);
        mov(rdx, rax);
        shl(rdx, 16);
        sar(rdx, 16);
        cmp(rdx, rax);
        jne(slow, T_NEAR);
        L(not_taken);
        mov(qword[rbx + off_.rip], rax);
        mov(qword[r12], static_cast<uint32_t>(k + 1));
        jmp(done, T_NEAR);
        L(slow);
        done_ = k;
        call_handler(in, k);
        L(done);
        done_ = k + 1;
    }

    // The effective address of `o` into RAX (Cpu::effective_address): displacement,
    // base (RIP: the next instruction's), index << scale, wrapped to the address size.
    void emit_ea(const DecodedInsn& in, const Operand& o) {
        using namespace Xbyak::util;
        if (o.reg == kRegRip) {
            mov(rax, qword[rbx + off_.rip]);
            add(rax, static_cast<uint32_t>(pending_rip_ + in.len));
        } else if (o.reg != kNoReg) {
            mov(rax, gpr(o.reg));
        } else {
            xor_(eax, eax);
        }
        if (o.index != kNoReg) {
            mov(rcx, gpr(o.index));
            if (o.scale_shift) shl(rcx, o.scale_shift);
            add(rax, rcx);
        }
        if (o.value) add(rax, static_cast<uint32_t>(o.value));  // sign-extended imm32
        if (o.addrsize == 4) mov(eax, eax);
    }

    // MOV r, m; MOV m, r; ALU r, m (fast.cc's mov_rm, mov_mr, alu_rm): the address, then
    // the software TLB as Cpu::read_mem/write_mem probe it — an entry for the page at this
    // privilege, no page crossing, no alignment checking. On a hit the access goes to the
    // host page; otherwise the instruction's handler runs it (faults, MMIO, code pages).
    void emit_mem(const DecodedInsn& in, Native f, Alu k, size_t idx, bool flags_live) {
        using namespace Xbyak::util;
        sync(idx);
        const bool q = in.opsize == 8;
        const Operand& m = f == Native::MovMR ? in.op[0] : in.op[1];
        Xbyak::Label slow, done;
        emit_ea(in, m);
        const bool flat = mode_ == Mode::Long64 && m.seg != FS && m.seg != GS;
        if (!flat) add(rax, qword[rbx + off_.seg_base + 8 * m.seg]);
        mov(byte[rbx + off_.last_seg], m.seg);
        cmp(byte[rbx + off_.align_check], 0);
        jne(slow, T_NEAR);
        mov(ecx, eax);
        and_(ecx, 0xFFF);
        cmp(ecx, 0x1000 - in.opsize);
        ja(slow, T_NEAR);
        // Tag: linear page | valid | user (CPL 3).
        mov(rdx, rax);
        and_(rdx, static_cast<uint32_t>(~0xFFFu));  // sign-extended: keeps bits 12-63
        cmp(byte[rbx + off_.cpl], 3);
        sete(r8b);
        movzx(r8d, r8b);
        lea(rdx, ptr[rdx + r8 * 2 + 1]);
        // Entry (lin >> 12) & 1023 of 24-byte entries.
        mov(r8, rax);
        shr(r8, 12);
        and_(r8d, 1023);
        lea(r8, ptr[r8 + r8 * 2]);
        const int32_t table = f == Native::MovMR ? off_.tlb_write : off_.tlb_read;
        cmp(rdx, qword[rbx + r8 * 8 + table]);
        jne(slow, T_NEAR);
        mov(rdx, qword[rbx + r8 * 8 + table + 8]);  // host page
        add(rdx, rcx);
        const Xbyak::Address host = q ? qword[rdx] : dword[rdx];
        if (f == Native::MovRM) {
            if (q)
                mov(rax, host);
            else
                mov(eax, host);
            mov(gpr(in.op[0].reg), rax);
        } else if (f == Native::MovMR) {
            if (q) {
                mov(rax, gpr(in.op[1].reg));
                mov(host, rax);
            } else {
                mov(eax, dword[rbx + off_.gpr + 8 * in.op[1].reg]);
                mov(host, eax);
            }
        } else {
            emit_alu_value(in, k, host, flags_live);
        }
        add(qword[rbx + off_.rip], in.len);
        mov(qword[r12], static_cast<uint32_t>(idx + 1));
        jmp(done, T_NEAR);
        L(slow);
        call_handler(in, idx);
        L(done);
        pending_rip_ = 0;
        done_ = idx + 1;
    }

    // MOV r, r/imm: a 32-bit destination is zero-extended.
    void emit_mov(const DecodedInsn& in, Native f) {
        using namespace Xbyak::util;
        const Operand& a = in.op[0];
        const Operand& b = in.op[1];
        if (f == Native::MovRR) {
            if (in.opsize == 4)
                mov(edx, dword[rbx + off_.gpr + 8 * b.reg]);
            else
                mov(rdx, gpr(b.reg));
        } else if (in.opsize == 4) {
            mov(edx, static_cast<uint32_t>(b.value));
        } else {
            mov(rdx, static_cast<uint64_t>(b.value));
        }
        mov(gpr(a.reg), rdx);
    }

    // The status flags a native instruction computes are needed unless a later native
    // instruction of the block overwrites all six first (MOVs in between read none;
    // anything else, or the block's end, may read them).
    static bool flags_live_after(const std::vector<Native>& f, const Block& b, size_t k) {
        for (size_t j = k + 1; j < f.size(); ++j) {
            if (f[j] == Native::MovRR || f[j] == Native::MovRI || f[j] == Native::Lea) continue;
            // A memory form may take its handler's path and fault there: the flags must
            // be in RFLAGS by then (AluRM writes them only after its access).
            return !writes_all_flags(f[j], b.insns[j]) || f[j] == Native::AluRM;
        }
        return true;
    }

    // Merges host-computed status flags in EAX into the guest's RFLAGS, replacing `mask`.
    void merge_flags(uint64_t mask) {
        using namespace Xbyak::util;
        mov(rdx, qword[rbx + off_.rflags]);
        and_(rdx, static_cast<uint32_t>(~mask));  // sign-extended: keeps bits 12 and up
        or_(rdx, rax);
        mov(qword[rbx + off_.rflags], rdx);
    }
    void load(const Xbyak::Reg64& r, uint8_t g, bool q) {
        using namespace Xbyak::util;
        if (q)
            mov(r, gpr(g));
        else
            mov(r.cvt32(), dword[rbx + off_.gpr + 8 * g]);  // zero-extends
    }

    // INC/DEC (op_incdec): the host's OF SF ZF AF PF equal the interpreter's; CF is kept.
    void emit_incdec(const DecodedInsn& in, bool up, bool flags_live) {
        using namespace Xbyak::util;
        const bool q = in.opsize == 8;
        load(rdx, in.op[0].reg, q);
        const Xbyak::Reg& d = q ? static_cast<const Xbyak::Reg&>(rdx) : edx;
        if (up)
            inc(d);
        else
            dec(d);
        if (flags_live) {
            lahf();
            seto(cl);
        }
        mov(gpr(in.op[0].reg), rdx);
        if (!flags_live) return;
        movzx(eax, ah);
        and_(eax, static_cast<uint32_t>(FLAG_SF | FLAG_ZF | FLAG_AF | FLAG_PF));
        movzx(ecx, cl);
        shl(ecx, 11);
        or_(eax, ecx);
        merge_flags(FLAGS_ARITH & ~FLAG_CF);
    }

    // Shifts and rotates by an immediate (op_shift, op_rotate) with the count masked as
    // the interpreter masks it. Result, CF, SF, ZF, PF come from the host; AF is 0 and OF
    // follows shift.cc's formulas for every count (the SDM defines it for 1 only).
    void emit_shift(const DecodedInsn& in, Native f, bool flags_live) {
        using namespace Xbyak::util;
        const bool q = in.opsize == 8;
        const uint8_t bits = q ? 64 : 32;
        const int64_t raw = in.nops == 1 ? 1 : in.op[1].value;
        const uint8_t n = static_cast<uint8_t>(raw & (q ? 0x3F : 0x1F));
        load(rdx, in.op[0].reg, q);
        if (n == 0) {  // no flags; a 32-bit register is still written (zero_count)
            if (!q) mov(gpr(in.op[0].reg), rdx);
            return;
        }
        const Xbyak::Reg& d = q ? static_cast<const Xbyak::Reg&>(rdx) : edx;
        if (f == Native::Shr && flags_live) mov(r8, rdx);  // OF = the source's MSB
        switch (f) {
            case Native::Shl:
                shl(d, n);
                break;
            case Native::Shr:
                shr(d, n);
                break;
            case Native::Sar:
                sar(d, n);
                break;
            case Native::Rol:
                rol(d, n);
                break;
            default:
                ror(d, n);
                break;
        }
        if (flags_live && f != Native::Rol && f != Native::Ror) lahf();
        mov(gpr(in.op[0].reg), rdx);
        if (!flags_live) return;
        if (f == Native::Rol || f == Native::Ror) {
            // CF and OF from the result: ROL CF = bit 0, OF = MSB ^ CF; ROR CF = MSB,
            // OF = MSB ^ the bit below it.
            mov(rcx, rdx);
            shr(rcx, bits - 1);  // MSB
            if (f == Native::Rol) {
                mov(eax, edx);
                and_(eax, 1);  // CF
                xor_(ecx, eax);
            } else {
                mov(rax, rdx);
                shr(rax, bits - 2);
                and_(eax, 1);
                xor_(eax, ecx);  // OF in bit 0
                xchg(eax, ecx);  // EAX = MSB = CF, ECX = OF
            }
            shl(ecx, 11);
            or_(eax, ecx);
            merge_flags(FLAG_CF | FLAG_OF);
            return;
        }
        movzx(eax, ah);
        and_(eax, static_cast<uint32_t>(FLAG_SF | FLAG_ZF | FLAG_PF | FLAG_CF));
        if (f == Native::Shl) {  // OF = MSB(result) ^ CF = SF ^ CF
            mov(ecx, eax);
            shr(ecx, 7);
            xor_(ecx, eax);
            and_(ecx, 1);
            shl(ecx, 11);
            or_(eax, ecx);
        } else if (f == Native::Shr) {
            shr(r8, bits - 1);
            shl(r8d, 11);
            or_(eax, r8d);
        }
        merge_flags(FLAGS_ARITH);
    }

    // IMUL r, r/m and IMUL r, r/m, imm (op_imul, set_mul_flags): CF = OF = the host's
    // overflow; SF, ZF, PF from the truncated result; AF 0.
    void emit_imul(const DecodedInsn& in, Native f, bool flags_live) {
        using namespace Xbyak::util;
        const bool q = in.opsize == 8;
        const Xbyak::Reg& d = q ? static_cast<const Xbyak::Reg&>(rdx) : edx;
        const uint8_t src = in.op[1].reg;
        const Xbyak::Address s =
            q ? qword[rbx + off_.gpr + 8 * src] : dword[rbx + off_.gpr + 8 * src];
        if (f == Native::ImulRR) {
            load(rdx, in.op[0].reg, q);
            imul(d, s);
        } else {
            imul(d, s, static_cast<int>(in.op[2].value));
        }
        if (flags_live) seto(cl);
        mov(gpr(in.op[0].reg), rdx);
        if (!flags_live) return;
        test(d, d);
        lahf();
        movzx(eax, ah);
        and_(eax, static_cast<uint32_t>(FLAG_SF | FLAG_ZF | FLAG_PF));
        movzx(ecx, cl);
        imul(ecx, ecx, static_cast<int>(FLAG_CF | FLAG_OF));
        or_(eax, ecx);
        merge_flags(FLAGS_ARITH);
    }

    // The host instruction of the same kind and size computes the same result and the
    // same defined flags (SDM vol. 1 appendix A); AF, undefined after AND/OR/XOR/TEST,
    // is 0 there in the interpreter (flags.h), so it is not taken from the host.
    // ALU r, [host] after a TLB hit: as emit_alu with the loaded operand.
    void emit_alu_value(const DecodedInsn& in, Alu k, const Xbyak::Address& src, bool flags_live) {
        using namespace Xbyak::util;
        const bool q = in.opsize == 8;
        load(rax, in.op[0].reg, q);
        const Xbyak::Reg& d = q ? static_cast<const Xbyak::Reg&>(rax) : eax;
        alu_op(k, d, src);
        mov(rdx, rax);
        alu_flags(in, k, flags_live);
    }

    void emit_alu(const DecodedInsn& in, Native f, Alu k, bool flags_live) {
        using namespace Xbyak::util;
        const bool q = in.opsize == 8;
        const Xbyak::Reg& d = q ? static_cast<const Xbyak::Reg&>(rdx) : edx;
        const Operand& a = in.op[0];
        const Operand& b = in.op[1];
        if (q)
            mov(rdx, gpr(a.reg));
        else
            mov(edx, dword[rbx + off_.gpr + 8 * a.reg]);
        if (f == Native::AluRR) {
            const Xbyak::Address src =
                q ? qword[rbx + off_.gpr + 8 * b.reg] : dword[rbx + off_.gpr + 8 * b.reg];
            alu_op(k, d, src);
        } else {
            alu_imm(k, d, static_cast<uint32_t>(b.value));
        }
        alu_flags(in, k, flags_live);
    }

    // After the host ALU instruction, its result in RDX: the destination and the flags.
    void alu_flags(const DecodedInsn& in, Alu k, bool flags_live) {
        using namespace Xbyak::util;
        const bool logic = k == Alu::And || k == Alu::Or || k == Alu::Xor || k == Alu::Test;
        if (flags_live) {
            lahf();  // AH = SF ZF - AF - PF - CF
            if (!logic) seto(cl);
        }
        if (k != Alu::Cmp && k != Alu::Test) mov(gpr(in.op[0].reg), rdx);
        if (!flags_live) return;
        movzx(eax, ah);
        and_(eax, static_cast<uint32_t>(logic ? (FLAG_SF | FLAG_ZF | FLAG_PF | FLAG_CF)
                                              : (FLAG_SF | FLAG_ZF | FLAG_AF | FLAG_PF | FLAG_CF)));
        if (!logic) {
            movzx(ecx, cl);
            shl(ecx, 11);  // OF is RFLAGS bit 11
            or_(eax, ecx);
        }
        merge_flags(FLAGS_ARITH);
    }

    void alu_op(Alu k, const Xbyak::Reg& d, const Xbyak::Address& s) {
        switch (k) {
            case Alu::Add:
                return add(d, s);
            case Alu::Sub:
                return sub(d, s);
            case Alu::Cmp:
                return cmp(d, s);
            case Alu::And:
                return and_(d, s);
            case Alu::Or:
                return or_(d, s);
            case Alu::Xor:
                return xor_(d, s);
            default:
                return test(s, d);
        }
    }
    void alu_imm(Alu k, const Xbyak::Reg& d, uint32_t v) {
        switch (k) {
            case Alu::Add:
                return add(d, v);
            case Alu::Sub:
                return sub(d, v);
            case Alu::Cmp:
                return cmp(d, v);
            case Alu::And:
                return and_(d, v);
            case Alu::Or:
                return or_(d, v);
            case Alu::Xor:
                return xor_(d, v);
            default:
                return test(d, v);
        }
    }

    Offsets off_;
    bool native_;
    Mode mode_ = Mode::Long64;
    Xbyak::Label exit_;
    uint64_t pending_rip_ = 0;  // RIP advance of native instructions not yet stored
    size_t done_ = 0;           // the value the run loop's `done` has now
};

}  // namespace

Translator::BlockFn Translator::translate(Block& b) {
    const size_t need = kFrameCode + kPerInsnCode * b.insns.size();
    uint8_t* at = cache_->begin_write(need);
    if (!at) return nullptr;
    size_t used = 0;
    try {
        static const bool lahf = host_has_lahf();
        const BlockEmitter::Offsets off = {
            off_rip_,      off_next_rip_, off_rsp_,   off_stop_, off_gpr_,      off_rflags_,
            off_seg_base_, off_last_seg_, off_align_, off_cpl_,  off_tlb_read_, off_tlb_write_};
        BlockEmitter e(need, at, off, lahf && native_);
        e.emit(b);
        used = e.getSize();
    } catch (const Xbyak::Error&) {
        used = 0;  // bounded above; nothing of it runs
    }
    if (!cache_->end_write(used) || used == 0) {
        b.host_code = nullptr;
        b.host_epoch = kUntranslatable;  // not tried again: the interpreter runs it
        return nullptr;
    }
    b.host_code = at;
    b.host_epoch = cache_->epoch();
    ++translated_;
    return reinterpret_cast<BlockFn>(at);
}

#else

Translator::BlockFn Translator::translate(Block&) {
    return nullptr;
}

#endif

}  // namespace softkvm::cpu
