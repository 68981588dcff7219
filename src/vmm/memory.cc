#include "vmm/memory.h"

#include <fmt/format.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>

namespace softkvm::vmm {

Result<uint64_t> parse_size(const std::string& text) {
    auto bad = [&](const char* why) {
        return make_error(fmt::format("bad size '{}': {} (use e.g. 128M, 1G, 65536K)", text, why),
                          EINVAL);
    };
    if (text.empty()) return bad("empty");
    size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    if (digits == 0) return bad("no number");
    uint64_t shift = 0;
    const std::string suffix = text.substr(digits);
    if (suffix.empty() || suffix == "B")
        shift = 0;
    else if (suffix == "K" || suffix == "k" || suffix == "KiB")
        shift = 10;
    else if (suffix == "M" || suffix == "m" || suffix == "MiB")
        shift = 20;
    else if (suffix == "G" || suffix == "g" || suffix == "GiB")
        shift = 30;
    else
        return bad("unknown unit");
    uint64_t n = 0;
    for (size_t k = 0; k < digits; ++k) {
        if (n > (UINT64_MAX - 9) / 10) return bad("too large");
        n = n * 10 + static_cast<uint64_t>(text[k] - '0');
    }
    if (shift && n > (UINT64_MAX >> shift)) return bad("too large");
    return n << shift;
}

Result<GuestMemory> GuestMemory::create(uint64_t size) {
    if (size < kMin || size > kMax)
        return make_error(fmt::format("memory size {} MiB is outside {} MiB .. {} GiB", size >> 20,
                                      kMin >> 20, kMax >> 30),
                          ERANGE);
    if (size & 0xFFF) return make_error("memory size must be a multiple of 4 KiB", EINVAL);
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return make_error(
            fmt::format("cannot map {} MiB of guest memory: {}", size >> 20, std::strerror(errno)),
            ENOMEM);
    return GuestMemory(static_cast<uint8_t*>(p), size);
}

GuestMemory::GuestMemory(GuestMemory&& o) noexcept : base_(o.base_), size_(o.size_) {
    o.base_ = nullptr;
    o.size_ = 0;
}

GuestMemory::~GuestMemory() {
    if (base_) munmap(base_, size_);
}

bool GuestMemory::write(uint64_t gpa, const void* src, uint64_t len) {
    if (!contains(gpa, len)) return false;
    std::memcpy(base_ + gpa, src, len);
    return true;
}

bool GuestMemory::fill(uint64_t gpa, uint8_t value, uint64_t len) {
    if (!contains(gpa, len)) return false;
    std::memset(base_ + gpa, value, len);
    return true;
}

}  // namespace softkvm::vmm
