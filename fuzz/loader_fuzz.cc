// Fuzz target: the image loaders on arbitrary bytes: multiboot (ELF32, ELF64, a.out kludge)
// and the Linux boot protocol (bzImage, vmlinux ELF), as `run IMAGE` and `run --kernel
// IMAGE` read them. The Linux load gets a command line and, when the input's last byte is
// odd, an initrd cut from the input's end.
// Oracle: no crash, no sanitizer report, no hang; a multiboot load lies inside guest memory
// with its information structure there too; a Linux load puts the kernel, the range it
// decompresses into, its entry point and the initrd inside guest memory, and a refused one
// says why with ENOEXEC, EINVAL or EFBIG (linux_boot.h).
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "vmm/linux_boot.h"
#include "vmm/loader.h"
#include "vmm/memory.h"

using softkvm::vmm::GuestMemory;

namespace {

// One small guest per loader for every input: contents do not matter to the loaders'
// checks. The Linux loader needs more than 2 MiB.
GuestMemory& memory(uint64_t size) {
    auto m = GuestMemory::create(size);
    if (!m) std::abort();
    return *new GuestMemory(std::move(*m));  // lives for the whole run
}

void check_multiboot(const std::vector<uint8_t>& image) {
    static GuestMemory& mem = memory(GuestMemory::kMin * 2);
    auto loaded = softkvm::vmm::load_multiboot(image, "fuzz", mem);
    if (!loaded) return;
    if (loaded->low > loaded->high || !mem.contains(loaded->low, loaded->high - loaded->low))
        std::abort();  // the loader claimed an extent outside guest memory
    if (!mem.contains(loaded->info_addr, 4)) std::abort();
}

void check_linux(const std::vector<uint8_t>& image) {
    static GuestMemory& mem = memory(16ull << 20);
    std::vector<uint8_t> initrd;
    softkvm::vmm::LinuxBootParams boot;
    boot.cmdline = "console=ttyS0 quiet";
    if (!image.empty() && (image.back() & 1)) {
        initrd.assign(image.end() - static_cast<long>(image.size() / 8), image.end());
        boot.initrd = &initrd;
    }
    auto k = softkvm::vmm::load_linux(image, "fuzz", mem, boot);
    if (!k) {
        const int e = k.error().code;
        if (e != ENOEXEC && e != EINVAL && e != EFBIG) std::abort();
        return;
    }
    if (k->kernel_low > k->kernel_high ||
        !mem.contains(k->kernel_low, k->kernel_high - k->kernel_low))
        std::abort();  // the kernel was put outside guest memory
    if (k->reserved_end < k->kernel_high || k->reserved_end > mem.size())
        std::abort();  // the kernel would decompress past the end of guest memory
    if (!mem.contains(k->entry, 1)) std::abort();
    if (boot.initrd &&
        (k->initrd_size != initrd.size() || !mem.contains(k->initrd_addr, k->initrd_size)))
        std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::vector<uint8_t> image(data, data + size);
    check_multiboot(image);
    check_linux(image);
    return 0;
}
