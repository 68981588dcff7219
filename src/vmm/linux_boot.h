// The x86 Linux boot protocol (Documentation/arch/x86/boot.rst): a bzImage entered at its
// 64-bit entry point, or an uncompressed vmlinux ELF entered at startup_64, with a zero
// page (E820 map, command line, initrd, ACPI RSDP) and identity-mapped page tables.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "accel/accel.h"
#include "common/result.h"
#include "vmm/memory.h"

namespace softkvm::vmm {

// What `softkvm run --kernel FILE` holds, judged by content.
enum class KernelKind {
    BzImage,    // "HdrS" setup header: the Linux boot protocol
    Multiboot,  // a multiboot header in the first 8 KiB (as QEMU's -kernel)
    Vmlinux,    // any other ELF: an uncompressed Linux kernel
    Unknown,
};
KernelKind detect_kernel(const std::vector<uint8_t>& image);

// Where the loader puts its own structures in low memory (below the 640 KiB line, in RAM
// the kernel reserves for itself: it keeps the first 1 MiB away from its allocator).
namespace linux_layout {
inline constexpr uint64_t kGdt = 0x500;        // null, null, __BOOT_CS, __BOOT_DS
inline constexpr uint64_t kIdt = 0x520;        // empty: the kernel loads its own
inline constexpr uint64_t kZeroPage = 0x7000;  // boot_params, RSI at entry
inline constexpr uint64_t kStack = 0x8FF0;     // RSP at entry (the kernel sets its own)
inline constexpr uint64_t kPml4 = 0x9000;
inline constexpr uint64_t kPdpt = 0xA000;
inline constexpr uint64_t kCmdline = 0x20000;       // up to 64 KiB
inline constexpr uint64_t kPageDirs = 0x30000;      // one page directory per GiB mapped
inline constexpr uint64_t kMinMapped = 4ull << 30;  // map at least the 32-bit space
inline constexpr uint64_t kLowRamEnd = 0x9FC00;     // conventional memory, then the EBDA
inline constexpr uint64_t kBiosArea = 0xF0000;      // reserved: BIOS area, ACPI tables
inline constexpr uint64_t kBdaBaseMemKb = 0x413;    // BIOS data area: base memory in KiB
inline constexpr uint64_t kBdaEbdaSegment = 0x40E;  // BIOS data area: EBDA segment
}  // namespace linux_layout

struct LinuxBootParams {
    std::string cmdline;
    const std::vector<uint8_t>* initrd = nullptr;  // nullptr: none
    uint64_t rsdp = 0;                             // 0: the kernel searches the BIOS area
};

struct LinuxImage {
    bool vmlinux = false;
    uint64_t entry = 0;       // RIP at entry (load + 0x200, or startup_64)
    uint64_t kernel_low = 0;  // guest-physical range the image was loaded to
    uint64_t kernel_high = 0;
    uint64_t reserved_end = 0;  // end of the range the kernel decompresses into
    uint64_t initrd_addr = 0, initrd_size = 0;
    uint16_t version = 0;       // boot protocol version of the setup header
    uint32_t cmdline_size = 0;  // the kernel's command-line limit
};

// Loads `image` (named `name` in messages) into `mem`. Errors: ENOEXEC for a file that is
// neither a bzImage nor an x86-64 ELF, a truncated bzImage, or a kernel without the 64-bit
// entry of protocol 2.12+; EINVAL for a command line longer than the kernel accepts;
// EFBIG when the kernel or the initrd does not fit in guest memory.
Result<LinuxImage> load_linux(const std::vector<uint8_t>& image, const std::string& name,
                              GuestMemory& mem, const LinuxBootParams& boot);

// The 64-bit boot protocol's entry state: long mode with the loader's identity map, the
// flat GDT (CS = 0x10, DS = ES = SS = 0x18), IF clear, RSI = the zero page.
Status set_linux_entry_state(accel::Vcpu& vcpu, const LinuxImage& image);

}  // namespace softkvm::vmm
