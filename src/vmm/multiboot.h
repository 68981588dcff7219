// Multiboot version 1 numbers (Multiboot Specification 0.6.96, §3.1 header, §3.2 machine
// state, §3.3 boot information).
#pragma once
#include <cstdint>

namespace softkvm::vmm::multiboot {

// §3.1.1: the header lies in the first 8192 bytes of the image, 32-bit aligned.
inline constexpr uint32_t kHeaderMagic = 0x1BADB002;
inline constexpr uint32_t kSearchLimit = 8192;
// §3.1.2 header flags.
inline constexpr uint32_t kFlagPageAlign = 1u << 0;
inline constexpr uint32_t kFlagMemoryInfo = 1u << 1;
inline constexpr uint32_t kFlagVideoMode = 1u << 2;
inline constexpr uint32_t kFlagAoutKludge = 1u << 16;  // address fields at offsets 12..28
// Offsets of the address fields in the header (§3.1.3).
inline constexpr uint32_t kHdrHeaderAddr = 12, kHdrLoadAddr = 16, kHdrLoadEndAddr = 20,
                          kHdrBssEndAddr = 24, kHdrEntryAddr = 28;

// §3.2: EAX holds this magic at entry; EBX the physical address of the information.
inline constexpr uint32_t kBootMagic = 0x2BADB002;

// §3.3 boot information: offsets and flags.
inline constexpr uint32_t kInfoFlags = 0, kInfoMemLower = 4, kInfoMemUpper = 8,
                          kInfoBootDevice = 12, kInfoCmdline = 16, kInfoModsCount = 20,
                          kInfoModsAddr = 24, kInfoMmapLength = 44, kInfoMmapAddr = 48,
                          kInfoBootLoaderName = 64, kInfoSize = 88;
inline constexpr uint32_t kInfoHasMemory = 1u << 0;
inline constexpr uint32_t kInfoHasBootDevice = 1u << 1;
inline constexpr uint32_t kInfoHasCmdline = 1u << 2;
inline constexpr uint32_t kInfoHasMods = 1u << 3;
inline constexpr uint32_t kInfoHasMmap = 1u << 6;
inline constexpr uint32_t kInfoHasBootLoaderName = 1u << 9;
// §3.3 boot_device: BIOS drive 0x80 (the first disk), no partition (QEMU's value).
inline constexpr uint32_t kBootDevice = 0x8000FFFF;
// A module entry (§3.3): mod_start, mod_end (exclusive), string, reserved.
inline constexpr uint32_t kModStart = 0, kModEnd = 4, kModString = 8, kModEntrySize = 16;
// Command lines, module entries and modules follow the image, each block page-aligned,
// in the order QEMU's loader lays them out (hw/i386/multiboot.c).
inline constexpr uint64_t kPageSize = 4096;
// A memory-map entry: size (of the rest, 20), base (8), length (8), type (4).
inline constexpr uint32_t kMmapEntrySize = 24;
inline constexpr uint32_t kMmapAvailable = 1, kMmapReserved = 2;

// Where softkvm puts the memory map and the information: where QEMU puts its own
// (hw/i386/multiboot.c: the e820 map at 0x9000, the information 0x500 above it), so a
// guest sees the same EBX under both. As under QEMU (whose option ROM writes these
// before it copies the image), they are written first and an image segment over them
// wins: such an image is loaded, and finds its own bytes there.
inline constexpr uint32_t kMmapAddr = 0x9000;
inline constexpr uint32_t kInfoAddr = 0x9500;
inline constexpr uint32_t kBootDataStart = kMmapAddr;
inline constexpr uint32_t kBootDataEnd = kInfoAddr + kInfoSize;
static_assert(kMmapAddr + 4 * kMmapEntrySize <= kInfoAddr, "the memory map fits below the info");

}  // namespace softkvm::vmm::multiboot
