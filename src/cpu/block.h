// A decoded block: consecutive instructions from one guest-physical start address in one
// mode, ending at a branch, a block-ending system instruction or a size limit.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/decoded_insn.h"

namespace softkvm::cpu {

struct Block {
    static constexpr size_t kMaxInsns = 64;
    // (physical start << 3) | recording << 2 | mode: recording (Cpu::kLinkRecording) when
    // it was built while the translating engine records LBRs in chained blocks; its
    // translation's exits then carry only that way on (translate/chain.cc).
    static constexpr uint64_t kRecordingKey = 4;
    uint64_t key = 0;
    std::vector<DecodedInsn> insns;
    bool has_lock = false;  // some instruction is a locked read-modify-write of memory
    // Successor links: the last two blocks this one continued to, valid while `gen`
    // equals the CPU's link generation (Cpu::link_gen_: the block generation, bumped on
    // any TLB flush or invalidation, and whether CPL is 3; a MOV to CR3 sets the `gen` of
    // links into code on non-global pages to 0 instead).
    // `trace_rip` is `rip` where the block linked to was built at that RIP (host_rip),
    // else ~0: translated code that records LBRs follows only those links (emit_lbr.cc).
    struct Link {
        uint64_t rip = ~0ull;
        Block* block = nullptr;
        uint64_t gen = 0;
        uint64_t trace_rip = ~0ull;
    } links[2];
    // Its translation (cpu/translate/), valid while `host_epoch` equals the code cache's
    // epoch: a block dropped by the cache's invalidation takes its translation with it.
    void* host_code = nullptr;
    uint64_t host_epoch = 0;
    // Where another translated block continues into this one (null: not translated, or
    // its translation is gone); entered with the code cache's frame already set up.
    void* host_chain = nullptr;
    // Its entry from a direct exit of a block whose every instruction is native and of its
    // mode, while nothing is recorded per block (translate/chain.cc).
    void* host_fast = nullptr;
    // Its direct exits' successors (a last Jcc's taken way: 0; the block's end, unless it
    // ends with an indirect or far branch: 1), as its translation last found them
    // (through the links or the jump cache): that successor's chaining entry, valid for
    // this RIP while `gen` is the CPU's direct-exit generation (Cpu::direct_gen_,
    // translate/chain.cc). Filled by the generated code. `trace_rip` is `rip` where the
    // successor was built at that RIP (its host_rip), else ~0: translated code that
    // records LBRs takes only such a slot, as it follows only such links.
    struct DirectExit {
        uint64_t rip = ~0ull;
        uint64_t gen = 0;  // never a generation (they start at 1)
        const void* to = nullptr;
        uint64_t trace_rip = ~0ull;
    } direct[2];
    // The RIP it was built at: its translation's LBR recording has its addresses as
    // constants from it, so while recording it is only entered there (translate/emit_lbr.cc).
    uint64_t host_rip = 0;
    uint32_t host_runs = 0;  // runs counted towards translation (Translator::code_for)
    // Bit i: an exit to the owner stopped this block before its instruction i (kMaxInsns
    // bits); see Cpu::continue_after_exit.
    uint64_t exits = 0;

    // Its translation is gone (the code cache emptied, or another engine).
    void drop_translation() {
        host_code = host_chain = host_fast = nullptr;
        for (DirectExit& e : direct) e = DirectExit{};
    }
};

}  // namespace softkvm::cpu
