// Where translated code finds the state it works on: byte offsets from the Cpu object of
// the fields it reads and writes, and of the Block fields chaining follows. The
// Translator (a friend of Cpu) fills it in; the emitter only sees these numbers.
#pragma once
#include <cstdint>

namespace softkvm::cpu {

// How translated blocks may continue into their successors (Cpu::no_chain_, set by the run
// loop for each block it enters): freely; not at all (the PMU counts per block: the chain
// bound is 0 then, so every chaining entry refuses); or, while LBR recording is on, blocks
// whose instructions are all native record their end in the LBR unit's trace
// (emit_lbr.cc) and go on, the others return to the run loop (kChainTrace). A block's
// exit tells the modes apart with one compare.
enum ChainMode : uint8_t { kChainFree = 0, kChainNever = 1, kChainTrace = 2 };

struct CpuLayout {
    // Instructions: registers, RIP, the interpreter step's variables, the software TLB.
    int32_t rip, next_rip, rsp, stop, gpr, rflags, seg_base, last_seg, align_check, cpl, mode;
    int32_t tlb_read, tlb_write;
    // Chaining (docs/translator.md): what the run loop checks between blocks.
    // (links_gen: Cpu::link_gen_, the links' and the jump cache's generation.)
    int32_t links_gen, direct_gen, icount, idle, deadline, run_limit, chain_bound, kick, halted;
    int32_t nmi_pending, debug_active, resume_insn, pmu_active, no_chain, trace_jump_tag;
    int32_t bus_lock_watch;
    int32_t pending_db, trace_left, debugctl, rep_room, chained, block_insns, block_cpl;
    int32_t pmu_synced, chained_blocks;
    int32_t slow_paths;  // Cpu::slow_paths_
    // LBR recording by translated code (emit_lbr.cc): Lbr's chain state (trace_done_),
    // its open trace word (RBP's home), next slot and next target, and its ring (a
    // pointer; the ring's arrays at the offsets below).
    int32_t lbr_trace_done, lbr_bits, lbr_widx, lbr_tidx, lbr_ring;
    int32_t ring_bits, ring_rip, ring_stamp, ring_tidx, ring_cpl, ring_kind, ring_bstart, ring_bend;
    int32_t ring_targets;
    uint64_t jump_cache;  // address of the CPU's jump cache (fixed size: it never moves)
    uint64_t load_fn;     // Translator::load_for_code
    // Block: its successor links (Block::Link), its chaining entry and the RIP it was
    // translated at; its direct exits' successors (Block::DirectExit).
    int32_t link_rip, link_trace_rip, link_gen, link_block, link_size, host_chain, host_rip;
    int32_t exit_rip, exit_trace_rip, exit_gen, exit_to, exit_size, host_fast, key;
};

}  // namespace softkvm::cpu
