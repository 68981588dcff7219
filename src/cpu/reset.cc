// Cpu::reset(): a CPU made new again on the same object, keeping its costly allocations.
#include <algorithm>
#include <new>

#include "cpu/block.h"
#include "cpu/cpu.h"
#include "cpu/decoder.h"

namespace softkvm::cpu {

struct Cpu::Kept {
    std::unique_ptr<Decoder> decoder;  // stateless: the Zydis decoders of each mode
    std::vector<JumpEntry> jumps;      // entries of older generations: all stale
    std::unique_ptr<Translator> xlate;
    std::vector<DecodedInsn> decode_buf;  // build_block's buffer (its capacity)
    std::vector<BlockSlot> slots;         // emptied: every slot holds no key
    uint64_t block_gen;                   // the generation the old CPU reached
};

// The public constructor's work, on the kept allocations instead of new ones; every other
// member starts from its default initializer, so nothing of the previous run survives.
// The jump cache is not refilled (128 KiB): the block generation goes on from the old
// CPU's, so each of its entries, made in an older generation, is as stale as an empty one
// (a jump-cache entry counts only in the generation it was made in; nothing else sees
// the generation's value, only whether two are equal).
Cpu::Cpu(CpuOwner& owner, Kept&& kept)
    : owner_(owner),
      xlate_(std::move(kept.xlate)),
      block_gen_(kept.block_gen + 1),
      jump_cache_(std::move(kept.jumps)),
      block_slots_(std::move(kept.slots)),
      decoder_(std::move(kept.decoder)),
      decode_buf_(std::move(kept.decode_buf)) {
    if (xlate_) xlate_->reset();
    connect_lbr();
    set_model(default_cpu_model());
    update_mode();
}

void Cpu::reset() noexcept {
    CpuOwner& owner = owner_;
    // The block slots (256 KiB) are emptied one by one: only the live blocks' keys can be
    // in them (a slot is cleared when its block goes, and a flush clears them all).
    if (blocks_.size() < kBlockSlots / 16) {
        for (const auto& [key, block] : blocks_)
            if (BlockSlot& slot = block_slots_[block_slot(key)]; slot.key == key)
                slot = BlockSlot{};
    } else {
        std::fill(block_slots_.begin(), block_slots_.end(), BlockSlot{});
    }
    Kept kept{std::move(decoder_),    std::move(jump_cache_),  std::move(xlate_),
              std::move(decode_buf_), std::move(block_slots_), block_gen_};
    // Destroy and construct in place (C++20 [basic.life]: the new object replaces the old
    // one transparently, reference member included). An allocation failure in the
    // constructor ends the process (noexcept) instead of leaving a half-made CPU.
    this->~Cpu();
    ::new (static_cast<void*>(this)) Cpu(owner, std::move(kept));
}

}  // namespace softkvm::cpu
