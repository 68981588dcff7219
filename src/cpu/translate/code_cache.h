// Executable memory for translated blocks: one shared-memory file (memfd) mapped twice,
// a read-write view the emitter writes through and a read-execute view the code runs from,
// so no page is ever writable and executable through the same mapping (W^X) and writing a
// block changes no protection (no mprotect, no TLB shootdown). Filled front to back and
// emptied all at once when full (as QEMU flushes its translation buffer).
// The whole mapping carries one unwind record so that a guest fault (a C++ exception
// thrown by an instruction handler) unwinds through translated code to the run loop.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace softkvm::cpu {

class CodeCache {
  public:
    // Frame of every translated block at its call sites: after `push rbx; push r12;
    // push r13; push r14; push r15; push rbp; sub rsp, 24` the canonical frame address is
    // RSP + 80 (return address at CFA-8, RBX at CFA-16, R12 at CFA-24, R13 at CFA-32, R14
    // at CFA-40, R15 at CFA-48, RBP at CFA-56; at RSP the run loop's RSP-before pointer,
    // at RSP + 8 the software-TLB probe's tag bits, at RSP + 16 flags a block has not
    // merged into RFLAGS yet (BlockEmitter::kFlagsRawAt); RSP 16-byte aligned for calls).
    static constexpr size_t kFrameBytes = 80;

    explicit CodeCache(size_t bytes);
    ~CodeCache();
    CodeCache(const CodeCache&) = delete;
    CodeCache& operator=(const CodeCache&) = delete;

    bool ok() const { return exec_ != nullptr; }
    // Room for `bytes` of code at the cursor, flushing first when the rest of the cache is
    // too small. Returns where to write it (in the read-write view; null if larger than
    // the cache); exec_address() gives where it runs.
    uint8_t* begin_write(size_t bytes);
    // The code written at begin_write's address is `used` bytes: the cursor moves past it.
    void end_write(size_t used);
    // The executable address of code written at `written` (read-write view).
    const uint8_t* exec_address(const uint8_t* written) const { return exec_ + (written - write_); }
    // Bumped on every flush: translations made under an older epoch are gone.
    uint64_t epoch() const { return epoch_; }
    uint64_t flushes() const { return epoch_ - first_epoch_; }
    // The code written so far (shared code every block calls) stays through flushes and
    // clear(): later code is written after it.
    void keep_front() { front_ = cursor_; }
    // Empty again, as if new (flushes() back to 0), keeping the mapping and its pages
    // (and the front kept by keep_front).
    void clear() {
        cursor_ = front_;
        unmapped_to_ = 0;
        first_epoch_ = ++epoch_;
    }
    size_t used() const { return cursor_; }
    size_t capacity() const { return size_; }

  private:
    int fd_ = -1;               // the memfd both views map
    uint8_t* write_ = nullptr;  // read-write view
    uint8_t* exec_ = nullptr;   // read-execute view
    size_t size_ = 0;
    size_t cursor_ = 0;
    size_t front_ = 0;  // keep_front()
    // The read-write view's pages below this offset are not mapped there any more (the
    // code stays in the file and in the read-execute view): the host counts each view's
    // resident pages in the process's RSS, so written code would count twice.
    size_t unmapped_to_ = 0;
    uint64_t epoch_ = 1;
    uint64_t first_epoch_ = 1;       // epoch_ when the cache was made or last cleared
    std::vector<uint8_t> eh_frame_;  // CIE + FDE covering the mapping, zero-terminated
};

}  // namespace softkvm::cpu
