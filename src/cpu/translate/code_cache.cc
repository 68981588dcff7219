// Executable memory and its unwind record (see code_cache.h).
#include "cpu/translate/code_cache.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

// libgcc's (and LLVM libunwind's) registration of unwind tables for generated code.
extern "C" void __register_frame(void* begin);
extern "C" void __deregister_frame(void* begin);

namespace softkvm::cpu {
namespace {

constexpr size_t kPage = 4096;
// The read-write view is unmapped behind the cursor in steps of this size (one madvise
// per step, not per block).
constexpr size_t kUnmapStep = 256 * 1024;

// DWARF call-frame numbers for x86-64 (System V psABI, figure 3.36) and CFA opcodes
// (DWARF 4 §6.4.2).
constexpr uint8_t kDwRsp = 7, kDwRbx = 3, kDwRbp = 6, kDwR12 = 12, kDwR13 = 13, kDwR14 = 14;
constexpr uint8_t kDwR15 = 15, kDwRa = 16;
constexpr uint8_t kCfaDefCfa = 0x0c, kCfaOffset = 0x80;  // DW_CFA_offset: high 2 bits 10

void put32(std::vector<uint8_t>& v, size_t at, uint32_t x) {
    std::memcpy(v.data() + at, &x, 4);
}
void append64(std::vector<uint8_t>& v, uint64_t x) {
    for (int k = 0; k < 8; ++k) v.push_back(static_cast<uint8_t>(x >> (8 * k)));
}
void pad8(std::vector<uint8_t>& v, size_t start) {
    while ((v.size() - start) % 8) v.push_back(0);  // DW_CFA_nop
}

// One CIE whose initial rules describe the translated-block frame, and one FDE covering
// [code, code + size) with no further rules, then the zero terminator.
std::vector<uint8_t> build_eh_frame(const uint8_t* code, size_t size) {
    std::vector<uint8_t> v;
    // CIE
    v.resize(8, 0);  // length (patched), CIE id 0
    v.push_back(1);  // version
    v.push_back('z'), v.push_back('R'), v.push_back(0);
    v.push_back(1);     // code alignment factor
    v.push_back(0x78);  // data alignment factor -8 (SLEB128)
    v.push_back(kDwRa);
    v.push_back(1);     // augmentation data length
    v.push_back(0x00);  // FDE pointers: DW_EH_PE_absptr
    v.push_back(kCfaDefCfa), v.push_back(kDwRsp), v.push_back(CodeCache::kFrameBytes);
    v.push_back(kCfaOffset | kDwRa), v.push_back(1);   // CFA - 8
    v.push_back(kCfaOffset | kDwRbx), v.push_back(2);  // CFA - 16
    v.push_back(kCfaOffset | kDwR12), v.push_back(3);  // CFA - 24
    v.push_back(kCfaOffset | kDwR13), v.push_back(4);  // CFA - 32
    v.push_back(kCfaOffset | kDwR14), v.push_back(5);  // CFA - 40
    v.push_back(kCfaOffset | kDwR15), v.push_back(6);  // CFA - 48
    v.push_back(kCfaOffset | kDwRbp), v.push_back(7);  // CFA - 56
    pad8(v, 4);
    put32(v, 0, static_cast<uint32_t>(v.size() - 4));
    // FDE
    const size_t fde = v.size();
    v.resize(fde + 8, 0);
    put32(v, fde + 4, static_cast<uint32_t>(fde + 4));  // distance back to the CIE
    append64(v, reinterpret_cast<uint64_t>(code));
    append64(v, size);
    v.push_back(0);  // augmentation data length
    pad8(v, fde + 4);
    put32(v, fde, static_cast<uint32_t>(v.size() - fde - 4));
    for (int k = 0; k < 4; ++k) v.push_back(0);  // terminator
    return v;
}

}  // namespace

CodeCache::CodeCache(size_t bytes) {
    const size_t size = (bytes + kPage - 1) & ~(kPage - 1);
    fd_ = memfd_create("softkvm-code-cache", MFD_CLOEXEC);
    if (fd_ < 0) return;
    if (ftruncate(fd_, static_cast<off_t>(size)) != 0) return;
    void* w = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd_, 0);
    if (w == MAP_FAILED) return;
    write_ = static_cast<uint8_t*>(w);
    void* x = mmap(nullptr, size, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_NORESERVE, fd_, 0);
    if (x == MAP_FAILED) return;
    exec_ = static_cast<uint8_t*>(x);
    size_ = size;
    eh_frame_ = build_eh_frame(exec_, size_);
    __register_frame(eh_frame_.data());
}

CodeCache::~CodeCache() {
    if (exec_) {
        __deregister_frame(eh_frame_.data());
        munmap(exec_, size_);
    }
    if (write_) munmap(write_, size_);
    if (fd_ >= 0) close(fd_);
}

uint8_t* CodeCache::begin_write(size_t bytes) {
    if (bytes > size_ - front_) return nullptr;
    if (size_ - cursor_ < bytes) {
        // Full: every translation goes at once. The file's pages are given back to the
        // host so a flushed cache costs no memory until it fills again.
        fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(front_),
                  static_cast<off_t>(size_ - front_));
        cursor_ = front_;
        unmapped_to_ = 0;
        ++epoch_;
    }
    return write_ + cursor_;
}

void CodeCache::end_write(size_t used) {
    cursor_ = std::min(size_, cursor_ + ((used + 15) & ~size_t{15}));
    // Code below the cursor is never written again (until a flush): its pages leave the
    // read-write view.
    const size_t below = cursor_ & ~(kUnmapStep - 1);
    if (below > unmapped_to_) {
        madvise(write_ + unmapped_to_, below - unmapped_to_, MADV_DONTNEED);
        unmapped_to_ = below;
    }
}

}  // namespace softkvm::cpu
