#include "cpu/decoder.h"

#include "cpu/cpu.h"
#include "cpu/exec/handlers.h"

namespace softkvm::cpu {
namespace {

// Maps a Zydis general-purpose register to (index 0..15, hi8).
bool gpr_index(ZydisRegister r, uint8_t& idx, bool& hi8) {
    hi8 = false;
    switch (r) {
        case ZYDIS_REGISTER_AH:
            idx = RAX, hi8 = true;
            return true;
        case ZYDIS_REGISTER_CH:
            idx = RCX, hi8 = true;
            return true;
        case ZYDIS_REGISTER_DH:
            idx = RDX, hi8 = true;
            return true;
        case ZYDIS_REGISTER_BH:
            idx = RBX, hi8 = true;
            return true;
        default:
            break;
    }
    ZydisRegisterClass cls = ZydisRegisterGetClass(r);
    if (cls != ZYDIS_REGCLASS_GPR8 && cls != ZYDIS_REGCLASS_GPR16 && cls != ZYDIS_REGCLASS_GPR32 &&
        cls != ZYDIS_REGCLASS_GPR64)
        return false;
    ZydisRegister big = ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, r);
    idx = static_cast<uint8_t>(big - ZYDIS_REGISTER_RAX);
    return idx < 16;
}

uint8_t seg_index(ZydisRegister r) {
    switch (r) {
        case ZYDIS_REGISTER_ES:
            return ES;
        case ZYDIS_REGISTER_CS:
            return CS;
        case ZYDIS_REGISTER_SS:
            return SS;
        case ZYDIS_REGISTER_DS:
            return DS;
        case ZYDIS_REGISTER_FS:
            return FS;
        case ZYDIS_REGISTER_GS:
            return GS;
        default:
            return SEG_NONE;
    }
}

bool convert_operand(const ZydisDecodedInstruction& zi, const ZydisDecodedOperand& z, Operand& o) {
    o.size = static_cast<uint8_t>(z.size / 8);
    switch (z.type) {
        case ZYDIS_OPERAND_TYPE_REGISTER: {
            ZydisRegister r = z.reg.value;
            ZydisRegisterClass cls = ZydisRegisterGetClass(r);
            if (gpr_index(r, o.reg, o.hi8)) {
                o.kind = OpKind::Gpr;
            } else if (cls == ZYDIS_REGCLASS_SEGMENT) {
                o.kind = OpKind::Seg;
                o.reg = seg_index(r);
            } else if (cls == ZYDIS_REGCLASS_CONTROL) {
                o.kind = OpKind::Cr;
                o.reg = static_cast<uint8_t>(r - ZYDIS_REGISTER_CR0);
            } else if (cls == ZYDIS_REGCLASS_DEBUG) {
                o.kind = OpKind::Dr;
                o.reg = static_cast<uint8_t>(r - ZYDIS_REGISTER_DR0);
            } else if (cls == ZYDIS_REGCLASS_XMM &&
                       zi.encoding == ZYDIS_INSTRUCTION_ENCODING_LEGACY) {
                o.kind = OpKind::Xmm;  // legacy-encoded SSE only: VEX/EVEX stay #UD
                o.reg = static_cast<uint8_t>(r - ZYDIS_REGISTER_XMM0);
            } else if (cls == ZYDIS_REGCLASS_MMX &&
                       zi.encoding == ZYDIS_INSTRUCTION_ENCODING_LEGACY) {
                o.kind = OpKind::Mm;  // MMi is physical x87 register Ri (not 3DNow! forms)
                o.reg = static_cast<uint8_t>(r - ZYDIS_REGISTER_MM0);
            } else if (cls == ZYDIS_REGCLASS_X87) {
                o.kind = OpKind::St;
                o.reg = static_cast<uint8_t>(r - ZYDIS_REGISTER_ST0);
            } else {
                return false;  // AVX/mask/bound/... registers: not implemented
            }
            return true;
        }
        case ZYDIS_OPERAND_TYPE_MEMORY: {
            o.kind = OpKind::Mem;
            o.agen = z.mem.type == ZYDIS_MEMOP_TYPE_AGEN;
            if (z.mem.type == ZYDIS_MEMOP_TYPE_MIB || z.mem.type == ZYDIS_MEMOP_TYPE_VSIB)
                return false;
            bool hi8 = false;
            if (z.mem.base == ZYDIS_REGISTER_NONE) {
                o.reg = kNoReg;
            } else if (z.mem.base == ZYDIS_REGISTER_RIP || z.mem.base == ZYDIS_REGISTER_EIP) {
                o.reg = kRegRip;
            } else if (!gpr_index(z.mem.base, o.reg, hi8)) {
                return false;
            }
            if (z.mem.index == ZYDIS_REGISTER_NONE) {
                o.index = kNoReg;
            } else if (!gpr_index(z.mem.index, o.index, hi8)) {
                return false;
            }
            o.scale_shift = z.mem.scale == 8 ? 3 : z.mem.scale == 4 ? 2 : z.mem.scale == 2 ? 1 : 0;
            o.value = z.mem.disp.has_displacement ? z.mem.disp.value : 0;
            o.addrsize = static_cast<uint8_t>(zi.address_width / 8);
            o.seg = seg_index(z.mem.segment);
            if (o.seg == SEG_NONE) o.seg = DS;
            return true;
        }
        case ZYDIS_OPERAND_TYPE_IMMEDIATE:
            o.kind = OpKind::Imm;
            // Signed immediates are sign-extended to the operation's size; relative ones
            // stay signed displacements from the next instruction.
            o.value = z.imm.is_signed ? z.imm.value.s : static_cast<int64_t>(z.imm.value.u);
            if (!z.imm.is_relative) {
                uint8_t width =
                    z.imm.is_signed ? static_cast<uint8_t>(zi.operand_width / 8) : o.size;
                if (width == 0) width = o.size;
                if (width && width < 8)
                    o.value =
                        static_cast<int64_t>(static_cast<uint64_t>(o.value) & size_mask(width));
            }
            return true;
        case ZYDIS_OPERAND_TYPE_POINTER:
            o.kind = OpKind::Far;
            o.far_selector = z.ptr.segment;
            o.value = z.ptr.offset;
            return true;
        default:
            return false;
    }
}

BranchKind branch_kind(const ZydisDecodedInstruction& in, const Operand& op0) {
    switch (in.meta.category) {
        case ZYDIS_CATEGORY_COND_BR:
            return BranchKind::Jcc;
        case ZYDIS_CATEGORY_UNCOND_BR:
            if (in.mnemonic == ZYDIS_MNEMONIC_JMP) {
                if (op0.kind == OpKind::Imm) return BranchKind::NearRelJmp;
                if (op0.kind == OpKind::Far || in.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR)
                    return BranchKind::Far;
                return BranchKind::NearIndJmp;
            }
            return BranchKind::Far;
        case ZYDIS_CATEGORY_CALL:
            if (op0.kind == OpKind::Far || in.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR)
                return BranchKind::Far;
            return op0.kind == OpKind::Imm ? BranchKind::NearRelCall : BranchKind::NearIndCall;
        case ZYDIS_CATEGORY_RET:
            return in.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR || in.mnemonic != ZYDIS_MNEMONIC_RET
                       ? BranchKind::Far
                       : BranchKind::NearRet;
        case ZYDIS_CATEGORY_INTERRUPT:
        case ZYDIS_CATEGORY_SYSCALL:
        case ZYDIS_CATEGORY_SYSRET:
            return BranchKind::Far;
        default:
            return BranchKind::None;
    }
}

}  // namespace

Decoder::Decoder() {
    ZydisDecoderInit(&dec64_, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    ZydisDecoderInit(&dec32_, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
    ZydisDecoderInit(&dec16_, ZYDIS_MACHINE_MODE_LEGACY_16, ZYDIS_STACK_WIDTH_16);
}

const ZydisDecoder& Decoder::for_mode(Mode mode) const {
    switch (mode) {
        case Mode::Long64:
            return dec64_;
        case Mode::Prot32:
            return dec32_;
        default:
            return dec16_;
    }
}

bool Decoder::decode(Mode mode, const uint8_t* bytes, size_t avail, DecodedInsn& out) const {
    ZydisDecodedInstruction zi;
    ZydisDecodedOperand zops[ZYDIS_MAX_OPERAND_COUNT];
    out = DecodedInsn{};
    ZyanStatus st = ZydisDecoderDecodeFull(&for_mode(mode), bytes, avail, &zi, zops);
    if (!ZYAN_SUCCESS(st)) {
        out.len = st == ZYDIS_STATUS_NO_MORE_DATA ? 15 : 0;
        return false;
    }
    out.len = zi.length;
    out.opsize = static_cast<uint8_t>(zi.operand_width / 8);
    out.addrsize = static_cast<uint8_t>(zi.address_width / 8);
    out.mnemonic = static_cast<uint16_t>(zi.mnemonic);
    if (zi.attributes & ZYDIS_ATTRIB_HAS_LOCK) out.prefixes |= PFX_LOCK;
    if (zi.attributes & (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE)) out.prefixes |= PFX_REP;
    if (zi.attributes & ZYDIS_ATTRIB_HAS_REPNE) out.prefixes |= PFX_REPNE;
    out.cond = zi.opcode & 0xF;
    out.far = zi.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR;
    // x87 escape opcodes D8-DF: FOP is the low 3 opcode bits and the ModR/M byte.
    if (zi.opcode_map == ZYDIS_OPCODE_MAP_DEFAULT && (zi.opcode & 0xF8) == 0xD8)
        out.fop = static_cast<uint16_t>(((zi.opcode & 7) << 8) | (zi.raw.modrm.mod << 6) |
                                        (zi.raw.modrm.reg << 3) | zi.raw.modrm.rm);

    const HandlerInfo& h = handler_table()[zi.mnemonic];
    out.fn = h.fn ? h.fn : op_ud;
    out.ends_block = h.ends_block;

    uint8_t n = 0;
    bool ok = true;
    bool has_mem = false;
    for (uint8_t k = 0; k < zi.operand_count; ++k) {
        if (zops[k].visibility == ZYDIS_OPERAND_VISIBILITY_HIDDEN) continue;
        if (n == 3) break;
        if (!convert_operand(zi, zops[k], out.op[n])) ok = false;
        if (out.op[n].kind == OpKind::Mem && !out.op[n].agen) has_mem = true;
        ++n;
    }
    out.nops = n;
    bool has_xmm = false, has_mm = false;
    for (uint8_t k = 0; k < n; ++k) {
        has_xmm |= out.op[k].kind == OpKind::Xmm;
        has_mm |= out.op[k].kind == OpKind::Mm;
    }
    if (has_xmm || has_mm) {  // MOVQ2DQ, CVTPI2PS xmm, mm ...: the MMX table
        const HandlerInfo& x = (has_mm ? mmx_handler_table() : sse_handler_table())[zi.mnemonic];
        out.fn = x.fn ? x.fn : op_ud;
        out.ends_block = false;
    }
    if (!ok) {
        out.fn = op_ud;  // an operand kind softkvm does not implement (x87, SSE, ...)
        out.ends_block = false;
    }
    if (ok && zi.mnemonic == ZYDIS_MNEMONIC_MOV) {
        auto is = [&](OpKind k) { return out.op[0].kind == k || out.op[1].kind == k; };
        if (is(OpKind::Cr)) out.fn = op_mov_cr, out.ends_block = true;
        if (is(OpKind::Dr)) out.fn = op_mov_dr, out.ends_block = true;
    }
    if (ok && !has_xmm && !has_mm && out.fn == h.fn)
        if (Handler fast = fast_handler(out.mnemonic, out)) out.fn = fast;
    out.branch = branch_kind(zi, out.op[0]);
    if (out.branch != BranchKind::None) out.ends_block = true;
    out.record =
        out.branch == BranchKind::Jcc && out.op[0].value == 0 ? BranchKind::None : out.branch;
    // Bus-lock candidates (spec §3): LOCK-prefixed RMW, and XCHG with a memory operand.
    out.lockable_mem = has_mem && ((out.prefixes & PFX_LOCK) || zi.mnemonic == ZYDIS_MNEMONIC_XCHG);
    return true;
}

std::string Decoder::disassemble(Mode mode, const uint8_t* bytes, size_t avail,
                                 uint64_t rip) const {
    ZydisDecodedInstruction zi;
    ZydisDecodedOperand zops[ZYDIS_MAX_OPERAND_COUNT];
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&for_mode(mode), bytes, avail, &zi, zops)))
        return "(invalid)";
    ZydisFormatter fmt;
    ZydisFormatterInit(&fmt, ZYDIS_FORMATTER_STYLE_INTEL);
    char buf[256];
    if (!ZYAN_SUCCESS(ZydisFormatterFormatInstruction(&fmt, &zi, zops, zi.operand_count_visible,
                                                      buf, sizeof buf, rip, nullptr)))
        return "(unformattable)";
    return buf;
}

}  // namespace softkvm::cpu
