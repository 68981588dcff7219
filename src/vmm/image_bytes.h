// What the image loaders share: little-endian fields of a guest image, the ELF facts they
// read (System V gABI), and the error a malformed image gets (ENOEXEC, exit status 65).
#pragma once
#include <fmt/format.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "common/result.h"

namespace softkvm::vmm::image {

inline uint16_t le16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
inline uint32_t le32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
inline uint64_t le64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

inline constexpr uint16_t kEtExec = 2, kEm386 = 3, kEmX86_64 = 62;
inline constexpr uint32_t kPtLoad = 1;

// "NAME: WHY" with ENOEXEC.
inline Error bad(const std::string& name, const std::string& why) {
    return make_error(fmt::format("{}: {}", name, why), ENOEXEC);
}

}  // namespace softkvm::vmm::image
