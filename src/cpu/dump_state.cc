// Cpu::dump_state(): the registers and system state as text (a triple fault's or a stalled
// guest's report).
#include <fmt/format.h>

#include "cpu/cpu.h"

namespace softkvm::cpu {

std::string Cpu::dump_state() const {
    static const char* names[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                    "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
    std::string out;
    for (int k = 0; k < 16; ++k)
        out += fmt::format("{:>3}={:016x}{}", names[k], s_.gpr[k], k % 4 == 3 ? "\n" : " ");
    out += fmt::format("rip={:016x} rflags={:08x} cpl={} mode={}\n", s_.rip, s_.rflags, s_.cpl,
                       s_.mode == Mode::Long64   ? "long64"
                       : s_.mode == Mode::Prot32 ? "prot32"
                       : s_.mode == Mode::Prot16 ? "prot16"
                                                 : "real16");
    static const char* sn[6] = {"es", "cs", "ss", "ds", "fs", "gs"};
    for (int k = 0; k < SEG_COUNT; ++k)
        out += fmt::format("{}={:04x} base={:x} limit={:x} type={:x} dpl={} l={} db={}\n", sn[k],
                           s_.seg[k].selector, s_.seg[k].base, s_.seg[k].limit, s_.seg[k].type,
                           s_.seg[k].dpl, s_.seg[k].l, s_.seg[k].db);
    out += fmt::format("cr0={:x} cr2={:x} cr3={:x} cr4={:x} efer={:x}\n", s_.cr0, s_.cr2, s_.cr3,
                       s_.cr4, s_.efer);
    out += fmt::format("gdt={:x}/{:x} idt={:x}/{:x} tr={:04x} base={:x}\n", s_.gdtr.base,
                       s_.gdtr.limit, s_.idtr.base, s_.idtr.limit, s_.tr.selector, s_.tr.base);
    out += fmt::format("instructions retired: {}\n", icount_);
    return out;
}

}  // namespace softkvm::cpu
