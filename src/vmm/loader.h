// The multiboot v1 loader: ELF32/ELF64 images with a multiboot header (or its a.out
// kludge), the boot information with a memory map, and the entry state of §3.2.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "vmm/memory.h"

namespace softkvm::vmm {

struct LoadedImage {
    uint32_t entry = 0;
    uint64_t low = 0, high = 0;  // guest-physical extent of the loaded image
    uint32_t info_addr = 0;      // multiboot information (EBX at entry)
};

// Reads a whole regular file. ENOENT/EACCES/ELOOP... (open's errno), EISDIR for a
// directory, ESPIPE for a pipe, FIFO, socket or device, with the file name in the message.
Result<std::vector<uint8_t>> read_file(const std::string& path);

// Loads `image` (named `name` in messages) into `mem`. Errors: ENOEXEC for a file that is
// not a loadable multiboot image, ERANGE for segments outside guest memory.
Result<LoadedImage> load_multiboot(const std::vector<uint8_t>& image, const std::string& name,
                                   GuestMemory& mem);

}  // namespace softkvm::vmm
