// Executable memory for translated blocks: one mapping, filled front to back and emptied
// all at once when full (as QEMU flushes its translation buffer), never writable and
// executable at the same time (W^X): the pages being written are RW, then RX again.
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
    // push r13` the canonical frame address is RSP + 32 (return address at CFA-8, RBX at
    // CFA-16, R12 at CFA-24, R13 at CFA-32).
    static constexpr size_t kFrameBytes = 32;

    explicit CodeCache(size_t bytes);
    ~CodeCache();
    CodeCache(const CodeCache&) = delete;
    CodeCache& operator=(const CodeCache&) = delete;

    bool ok() const { return base_ != nullptr; }
    // Makes [cursor, cursor + bytes) writable (and not executable); flushes first when the
    // rest of the mapping is too small. Returns where to write (null if the host refused).
    uint8_t* begin_write(size_t bytes);
    // The code written at begin_write's address is `used` bytes: executable again
    // (false if the host refused; nothing written there may run).
    bool end_write(size_t used);
    // Bumped on every flush: translations made under an older epoch are gone.
    uint64_t epoch() const { return epoch_; }
    uint64_t flushes() const { return epoch_ - first_epoch_; }
    // Empty again, as if new (flushes() back to 0), keeping the mapping and its pages.
    void clear() {
        cursor_ = 0;
        first_epoch_ = ++epoch_;
    }
    size_t used() const { return cursor_; }
    size_t capacity() const { return size_; }

  private:
    bool protect(size_t from, size_t to, int prot);
    uint8_t* base_ = nullptr;
    size_t size_ = 0;
    size_t cursor_ = 0;
    size_t write_from_ = 0, write_to_ = 0;  // page range made RW by begin_write
    uint64_t epoch_ = 1;
    uint64_t first_epoch_ = 1;       // epoch_ when the cache was made or last cleared
    std::vector<uint8_t> eh_frame_;  // CIE + FDE covering the mapping, zero-terminated
};

}  // namespace softkvm::cpu
