// Guest RAM: one anonymous mapping from guest-physical 0, with bounds-checked access for
// the loader.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/result.h"

namespace softkvm::vmm {

// Parses a memory size: a decimal number with an optional K, M or G suffix (powers of
// 1024), e.g. "128M", "1G", "65536K", "4194304".
Result<uint64_t> parse_size(const std::string& text);

class GuestMemory {
  public:
    static constexpr uint64_t kMin = 2ull << 20;   // the loader needs 1 MiB + the image
    static constexpr uint64_t kMax = 64ull << 30;  // a sanity bound for a test machine

    static Result<GuestMemory> create(uint64_t size);
    GuestMemory(GuestMemory&& o) noexcept;
    GuestMemory& operator=(GuestMemory&&) = delete;
    ~GuestMemory();

    uint64_t size() const { return size_; }
    uint8_t* host() { return base_; }
    bool contains(uint64_t gpa, uint64_t len) const { return gpa <= size_ && len <= size_ - gpa; }
    // Copies into guest memory; false if [gpa, gpa+len) is outside RAM.
    bool write(uint64_t gpa, const void* src, uint64_t len);
    bool fill(uint64_t gpa, uint8_t value, uint64_t len);
    void write32(uint64_t gpa, uint32_t v) { write(gpa, &v, 4); }
    void write64(uint64_t gpa, uint64_t v) { write(gpa, &v, 8); }

  private:
    GuestMemory(uint8_t* base, uint64_t size) : base_(base), size_(size) {}
    uint8_t* base_;
    uint64_t size_;
};

}  // namespace softkvm::vmm
