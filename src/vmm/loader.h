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
    uint32_t cmdline_addr = 0;   // the kernel command line (a C string)
    uint32_t mods_addr = 0;      // the module entries (mods_count of them)
    uint64_t boot_end = 0;       // end of the command lines and modules after the image
};

// A multiboot module (softkvm run --initrd): its bytes and its command line.
struct BootModule {
    std::vector<uint8_t> data;
    std::string cmdline;
};

// What the loader passes to the guest besides the image (qemu -append/-initrd).
struct BootParams {
    std::string cmdline;  // the whole multiboot command line
    std::vector<BootModule> modules;
    std::string bootloader = "softkvm";
};

// Reads a whole regular file. ENOENT/EACCES/ELOOP... (open's errno), EISDIR for a
// directory, ESPIPE for a pipe, FIFO, socket or device, with the file name in the message.
// `what` names the file's role in messages.
Result<std::vector<uint8_t>> read_file(const std::string& path, const char* what = "guest image");

// Loads `image` (named `name` in messages) into `mem` with the boot information, the
// command lines and the modules of `boot`. Errors: ENOEXEC for a file that is not a
// loadable multiboot image, ERANGE for segments outside guest memory, EFBIG when the
// command lines and modules do not fit in guest memory (below 4 GiB) after the image.
Result<LoadedImage> load_multiboot(const std::vector<uint8_t>& image, const std::string& name,
                                   GuestMemory& mem, const BootParams& boot = {});

// Splits a --initrd value as QEMU splits -initrd: modules separated by ',' (",," is a
// literal comma); in each, the file name ends at the first space and the whole text is
// the module's command line. EINVAL for an empty list or an empty module.
struct ModuleSpec {
    std::string path, cmdline;
};
Result<std::vector<ModuleSpec>> parse_module_list(const std::string& text);

}  // namespace softkvm::vmm
