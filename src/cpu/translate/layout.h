// Where translated code finds the state it works on: byte offsets from the Cpu object of
// the fields it reads and writes, and of the Block fields chaining follows. The
// Translator (a friend of Cpu) fills it in; the emitter only sees these numbers.
#pragma once
#include <cstdint>

namespace softkvm::cpu {

struct CpuLayout {
    // Instructions: registers, RIP, the interpreter step's variables, the software TLB.
    int32_t rip, next_rip, rsp, stop, gpr, rflags, seg_base, last_seg, align_check, cpl, mode;
    int32_t tlb_read, tlb_write;
    // Chaining (docs/translator.md): what the run loop checks between blocks.
    int32_t block_gen, icount, idle, deadline, run_limit, kick, irq_requested, halted;
    int32_t nmi_pending, debug_active, resume_insn, pmu_active, no_chain, bus_lock_watch;
    int32_t pending_db, trace_left, debugctl, rep_room, chained, block_insns, block_cpl;
    int32_t pmu_synced, chained_blocks;
    uint64_t jump_cache;  // address of the CPU's jump cache (fixed size: it never moves)
    // Block: its successor links (Block::Link) and its chaining entry.
    int32_t link_rip, link_gen, link_block, link_size, host_chain;
};

}  // namespace softkvm::cpu
