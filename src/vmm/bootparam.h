// Numbers of the x86 Linux boot protocol: the bzImage setup header and the zero page
// ("boot_params"). Linux Documentation/arch/x86/boot.rst ("The real-mode kernel header",
// "Details of header fields", "64-bit boot protocol") and Documentation/arch/x86/
// zero-page.rst; struct layouts in arch/x86/include/uapi/asm/bootparam.h. The setup header
// has the same offsets in the file and in the zero page.
#pragma once
#include <cstdint>

namespace softkvm::vmm::bootparam {

inline constexpr uint32_t kZeroPageSize = 4096;

// Zero page fields outside the setup header (zero-page.rst).
inline constexpr uint32_t kAcpiRsdpAddr = 0x070;     // u64
inline constexpr uint32_t kExtRamdiskImage = 0x0C0;  // u32, bits 63:32 of ramdisk_image
inline constexpr uint32_t kExtRamdiskSize = 0x0C4;   // u32
inline constexpr uint32_t kExtCmdLinePtr = 0x0C8;    // u32
inline constexpr uint32_t kE820Entries = 0x1E8;      // u8
inline constexpr uint32_t kSentinel = 0x1EF;         // u8: a loader never copies it (boot.rst)
inline constexpr uint32_t kE820Table = 0x2D0;  // up to 128 packed {u64 addr, u64 size, u32 type}
inline constexpr uint32_t kE820EntrySize = 20;
inline constexpr uint32_t kE820Max = 128;
// E820 types (zero-page.rst; the ACPI "Address Range Types").
inline constexpr uint32_t kE820Ram = 1, kE820Reserved = 2, kE820Acpi = 3, kE820Nvs = 4;

// The setup header (boot.rst "The real-mode kernel header").
inline constexpr uint32_t kSetupHeader = 0x1F1;        // first header byte copied to the zero page
inline constexpr uint32_t kSetupSects = 0x1F1;         // u8; 0 means 4
inline constexpr uint32_t kSysSize = 0x1F4;            // u32, protected-mode size in 16-byte units
inline constexpr uint32_t kBootFlag = 0x1FE;           // u16, 0xAA55
inline constexpr uint32_t kJumpEnd = 0x201;            // u8: the header ends at 0x202 + this byte
inline constexpr uint32_t kHeaderMagicOff = 0x202;     // u32, "HdrS"
inline constexpr uint32_t kVersion = 0x206;            // u16, protocol version
inline constexpr uint32_t kTypeOfLoader = 0x210;       // u8
inline constexpr uint32_t kLoadFlags = 0x211;          // u8
inline constexpr uint32_t kCode32Start = 0x214;        // u32
inline constexpr uint32_t kRamdiskImage = 0x218;       // u32
inline constexpr uint32_t kRamdiskSize = 0x21C;        // u32
inline constexpr uint32_t kCmdLinePtr = 0x228;         // u32
inline constexpr uint32_t kInitrdAddrMax = 0x22C;      // u32, highest address of the initrd
inline constexpr uint32_t kKernelAlignment = 0x230;    // u32
inline constexpr uint32_t kRelocatableKernel = 0x234;  // u8
inline constexpr uint32_t kXLoadFlags = 0x236;         // u16
inline constexpr uint32_t kCmdlineSize = 0x238;        // u32, without the NUL
inline constexpr uint32_t kPrefAddress = 0x258;        // u64
inline constexpr uint32_t kInitSize = 0x260;           // u32
inline constexpr uint32_t kHeaderMinEnd = 0x264;       // a 2.12 header reaches past init_size

inline constexpr uint16_t kBootFlagValue = 0xAA55;
inline constexpr uint32_t kHeaderMagic = 0x53726448;  // "HdrS"
// 2.12 added xloadflags' XLF_* bits for the 64-bit entry and acpi_rsdp_addr-era fields we
// rely on; older kernels have no way to say they have a 64-bit entry point.
inline constexpr uint16_t kMinVersion = 0x020C;
inline constexpr uint16_t kElfVersion = 0x020F;    // what a vmlinux's synthetic header claims
inline constexpr uint8_t kLoaderUndefined = 0xFF;  // type_of_loader: no assigned ID
inline constexpr uint8_t kLoadedHigh = 1u << 0;    // loadflags: protected mode at 1 MiB
inline constexpr uint16_t kXlfKernel64 = 1u << 0;  // xloadflags: 64-bit entry at +0x200
inline constexpr uint32_t kEntry64Offset = 0x200;
inline constexpr uint64_t kLoadAddress = 0x100000;  // protected-mode code (boot.rst)
inline constexpr uint32_t kDefaultSetupSects = 4;
inline constexpr uint32_t kSectorSize = 512;
// A vmlinux ELF has no header of its own; the kernel's own limit (COMMAND_LINE_SIZE - 1).
inline constexpr uint32_t kElfCmdlineSize = 2047;

// The flat GDT of the 64-bit boot protocol: __BOOT_CS and __BOOT_DS.
inline constexpr uint16_t kBootCs = 0x10, kBootDs = 0x18;

}  // namespace softkvm::vmm::bootparam
