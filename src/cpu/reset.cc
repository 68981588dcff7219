// Cpu::reset(): a CPU made new again on the same object, keeping its costly allocations.
#include <algorithm>
#include <new>

#include "cpu/block.h"
#include "cpu/cpu.h"
#include "cpu/decoder.h"

namespace softkvm::cpu {

struct Cpu::Kept {
    std::unique_ptr<Decoder> decoder;  // stateless: the Zydis decoders of each mode
    std::vector<JumpEntry> jumps;      // refilled with empty entries
    std::unique_ptr<Translator> xlate;
    std::vector<DecodedInsn> decode_buf;  // build_block's buffer (its capacity)
};

// The public constructor's work, on the kept allocations instead of new ones; every other
// member starts from its default initializer, so nothing of the previous run survives.
Cpu::Cpu(CpuOwner& owner, Kept&& kept)
    : owner_(owner),
      jump_cache_(std::move(kept.jumps)),
      decoder_(std::move(kept.decoder)),
      decode_buf_(std::move(kept.decode_buf)),
      xlate_(std::move(kept.xlate)) {
    std::fill(jump_cache_.begin(), jump_cache_.end(), JumpEntry{});
    if (xlate_) xlate_->reset();
    set_model(default_cpu_model());
    update_mode();
}

void Cpu::reset() noexcept {
    CpuOwner& owner = owner_;
    Kept kept{std::move(decoder_), std::move(jump_cache_), std::move(xlate_),
              std::move(decode_buf_)};
    // Destroy and construct in place (C++20 [basic.life]: the new object replaces the old
    // one transparently, reference member included). An allocation failure in the
    // constructor ends the process (noexcept) instead of leaving a half-made CPU.
    this->~Cpu();
    ::new (static_cast<void*>(this)) Cpu(owner, std::move(kept));
}

}  // namespace softkvm::cpu
