#include "vmm/linux_boot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "vmm/bootparam.h"
#include "vmm/image_bytes.h"
#include "vmm/multiboot.h"

namespace softkvm::vmm {
namespace {

using namespace image;

namespace bp = bootparam;
namespace lay = linux_layout;

// ELF numbers (System V gABI; <elf.h>).
constexpr uint8_t kElfClass64 = 2, kElfData2Lsb = 1;
constexpr uint64_t kPage = 4096;
constexpr uint64_t k1G = 1ull << 30, k2M = 2ull << 20;
// Page-table entry bits (Intel SDM Vol. 3A §4.5, Table 4-15..4-19).
constexpr uint64_t kPtePresent = 1u << 0, kPteWrite = 1u << 1, kPteLarge = 1u << 7;
// Flat descriptors (SDM Vol. 3A §3.4.5): 64-bit code (L=1), read/write data; accessed.
constexpr uint64_t kGdtCode64 = 0x00AF9B000000FFFFull, kGdtData = 0x00CF93000000FFFFull;

bool has_multiboot_header(const std::vector<uint8_t>& img) {
    const size_t limit = std::min<size_t>(img.size(), multiboot::kSearchLimit);
    for (size_t off = 0; off + 12 <= limit; off += 4)
        if (le32(&img[off]) == multiboot::kHeaderMagic &&
            le32(&img[off]) + le32(&img[off + 4]) + le32(&img[off + 8]) == 0)
            return true;
    return false;
}

uint64_t mib_up(uint64_t bytes) {
    return (bytes + (1ull << 20) - 1) >> 20;
}

// What the bzImage and vmlinux paths share once the kernel's range is known.
struct Plan {
    uint64_t reserved_end = 0;  // the kernel's whole range ends here
    uint64_t initrd_max = 0;    // highest byte address the initrd may use
    uint32_t cmdline_size = 0;
};

Status check_cmdline(const std::string& name, const LinuxBootParams& boot, uint32_t limit) {
    constexpr uint64_t kRoom = lay::kPageDirs - lay::kCmdline - 1;
    if (boot.cmdline.size() > limit || boot.cmdline.size() > kRoom)
        return make_error(fmt::format("{}: the command line is {} bytes; this kernel accepts at "
                                      "most {} (its cmdline_size)",
                                      name, boot.cmdline.size(), std::min<uint64_t>(limit, kRoom)),
                          EINVAL);
    if (boot.cmdline.find('\0') != std::string::npos)
        return make_error(fmt::format("{}: the command line contains a NUL byte", name), EINVAL);
    return {};
}

// The highest 4 KiB-aligned place for the initrd below the top of RAM and initrd_addr_max,
// above the kernel's range (boot.rst: as high as possible, below initrd_addr_max).
Result<uint64_t> place_initrd(const std::string& name, const GuestMemory& mem, const Plan& plan,
                              uint64_t size) {
    const uint64_t limit = std::min(mem.size(), plan.initrd_max + 1);
    const uint64_t addr = size <= limit ? (limit - size) & ~(kPage - 1) : 0;
    if (size > limit || addr < plan.reserved_end)
        return make_error(
            fmt::format("--initrd: the initrd ({} MiB) does not fit between the end of {}'s "
                        "range at {:#x} and {:#x}; give at least --memory {}M",
                        mib_up(size), name, plan.reserved_end, limit,
                        mib_up(plan.reserved_end + size + kPage)),
            EFBIG);
    return addr;
}

void write_e820(GuestMemory& mem) {
    struct Entry {
        uint64_t addr, size;
        uint32_t type;
    };
    const Entry map[] = {
        {0, lay::kLowRamEnd, bp::kE820Ram},
        {lay::kLowRamEnd, 0xA0000 - lay::kLowRamEnd, bp::kE820Reserved},  // EBDA
        {lay::kBiosArea, bp::kLoadAddress - lay::kBiosArea, bp::kE820Reserved},
        {bp::kLoadAddress, mem.size() - bp::kLoadAddress, bp::kE820Ram},
    };
    uint64_t at = lay::kZeroPage + bp::kE820Table;
    for (const Entry& e : map) {
        mem.write64(at, e.addr);
        mem.write64(at + 8, e.size);
        mem.write32(at + 16, e.type);
        at += bp::kE820EntrySize;
    }
    const uint8_t n = std::size(map);
    mem.write(lay::kZeroPage + bp::kE820Entries, &n, 1);
    // The BIOS data area as a PC BIOS leaves it: 639 KiB of base memory, EBDA at 0x9FC00.
    const uint16_t base_kb = lay::kLowRamEnd >> 10, ebda_seg = lay::kLowRamEnd >> 4;
    mem.write(lay::kBdaBaseMemKb, &base_kb, 2);
    mem.write(lay::kBdaEbdaSegment, &ebda_seg, 2);
}

// Identity map of max(RAM, 4 GiB) with 2 MiB pages, and the flat GDT.
void write_tables(GuestMemory& mem) {
    const uint64_t mapped = std::max(lay::kMinMapped, (mem.size() + k1G - 1) & ~(k1G - 1));
    const uint64_t dirs = mapped / k1G;
    mem.fill(lay::kPml4, 0, kPage);
    mem.fill(lay::kPdpt, 0, kPage);
    mem.write64(lay::kPml4, lay::kPdpt | kPtePresent | kPteWrite);
    for (uint64_t d = 0; d < dirs; ++d) {
        const uint64_t pd = lay::kPageDirs + d * kPage;
        mem.write64(lay::kPdpt + d * 8, pd | kPtePresent | kPteWrite);
        for (uint64_t e = 0; e < 512; ++e)
            mem.write64(pd + e * 8, (d * k1G + e * k2M) | kPtePresent | kPteWrite | kPteLarge);
    }
    const uint64_t gdt[] = {0, 0, kGdtCode64, kGdtData};
    mem.write(lay::kGdt, gdt, sizeof gdt);
    mem.fill(lay::kIdt, 0, 8);
}

// The parts of the zero page, memory and tables common to both kinds of image.
Status finish(const std::string& name, GuestMemory& mem, const LinuxBootParams& boot,
              const Plan& plan, LinuxImage& out) {
    const uint64_t zp = lay::kZeroPage;
    if (boot.initrd) {
        auto at = place_initrd(name, mem, plan, boot.initrd->size());
        if (!at) return at.error();
        out.initrd_addr = at.value();
        out.initrd_size = boot.initrd->size();
        mem.write(out.initrd_addr, boot.initrd->data(), out.initrd_size);
    }
    mem.write(lay::kCmdline, boot.cmdline.c_str(), boot.cmdline.size() + 1);
    const uint8_t loader = bp::kLoaderUndefined;
    mem.write(zp + bp::kTypeOfLoader, &loader, 1);
    mem.write32(zp + bp::kRamdiskImage, static_cast<uint32_t>(out.initrd_addr));
    mem.write32(zp + bp::kRamdiskSize, static_cast<uint32_t>(out.initrd_size));
    mem.write32(zp + bp::kExtRamdiskImage, static_cast<uint32_t>(out.initrd_addr >> 32));
    mem.write32(zp + bp::kExtRamdiskSize, static_cast<uint32_t>(out.initrd_size >> 32));
    mem.write32(zp + bp::kCmdLinePtr, static_cast<uint32_t>(lay::kCmdline));
    mem.write32(zp + bp::kExtCmdLinePtr, 0);
    mem.write64(zp + bp::kAcpiRsdpAddr, boot.rsdp);
    write_e820(mem);
    write_tables(mem);
    out.reserved_end = plan.reserved_end;
    out.cmdline_size = plan.cmdline_size;
    return {};
}

Result<LinuxImage> load_bzimage(const std::vector<uint8_t>& img, const std::string& name,
                                GuestMemory& mem, const LinuxBootParams& boot) {
    if (img.size() < bp::kHeaderMinEnd)
        return bad(name, fmt::format("truncated bzImage: {} bytes, shorter than its setup "
                                     "header ({:#x} bytes)",
                                     img.size(), bp::kHeaderMinEnd));
    LinuxImage out;
    out.version = le16(&img[bp::kVersion]);
    if (out.version < bp::kMinVersion)
        return bad(name, fmt::format("boot protocol {}.{:02} is older than 2.12; softkvm enters "
                                     "Linux only at its 64-bit entry point",
                                     out.version >> 8, out.version & 0xFF));
    if (!(img[bp::kLoadFlags] & bp::kLoadedHigh))
        return bad(name, "a zImage (loadflags LOADED_HIGH clear): only a bzImage can be loaded");
    if (!(le16(&img[bp::kXLoadFlags]) & bp::kXlfKernel64))
        return bad(name, "no 64-bit entry point (xloadflags XLF_KERNEL_64 clear)");
    const uint32_t sects = img[bp::kSetupSects] ? img[bp::kSetupSects] : bp::kDefaultSetupSects;
    const uint64_t setup_bytes = (sects + 1ull) * bp::kSectorSize;
    const uint64_t syssize = le32(&img[bp::kSysSize]) * 16ull;
    if (setup_bytes >= img.size() || syssize > img.size() - setup_bytes)
        return bad(name, fmt::format("truncated bzImage: {} bytes, but its header promises {} "
                                     "bytes of setup and {} of kernel",
                                     img.size(), setup_bytes, syssize));
    const uint64_t pm_size = img.size() - setup_bytes;
    const uint64_t load = bp::kLoadAddress;
    // Where the kernel decompresses itself (boot.rst, kernel_alignment/pref_address).
    const uint64_t align = le32(&img[bp::kKernelAlignment]);
    const uint64_t pref = le64(&img[bp::kPrefAddress]);
    const uint64_t init_size = le32(&img[bp::kInitSize]);
    uint64_t runtime = pref;
    if (img[bp::kRelocatableKernel]) {
        runtime = load;
        if (align && !(align & (align - 1))) runtime = (load + align - 1) & ~(align - 1);
        runtime = std::max(runtime, pref);
    }
    Plan plan;
    plan.reserved_end = std::max(load + pm_size, runtime + init_size);
    if (runtime > UINT64_MAX / 2 || plan.reserved_end > mem.size())
        return make_error(fmt::format("{}: needs at least {} MiB of guest memory (it "
                                      "decompresses into [{:#x}, {:#x})); --memory is {} MiB",
                                      name, mib_up(plan.reserved_end), runtime, plan.reserved_end,
                                      mem.size() >> 20),
                          EFBIG);
    plan.initrd_max = le32(&img[bp::kInitrdAddrMax]);
    plan.cmdline_size = le32(&img[bp::kCmdlineSize]);
    if (auto st = check_cmdline(name, boot, plan.cmdline_size); !st) return st.error();

    // The zero page: the setup header copied as it is in the file, from 0x1F1 (so never
    // the sentinel at 0x1EF) to its end at 0x202 + the jump's offset byte.
    const uint64_t hdr_end = std::min<uint64_t>(
        {bp::kHeaderMagicOff + uint64_t{img[bp::kJumpEnd]}, setup_bytes, bp::kZeroPageSize});
    mem.fill(lay::kZeroPage, 0, bp::kZeroPageSize);
    mem.write(lay::kZeroPage + bp::kSetupHeader, &img[bp::kSetupHeader],
              hdr_end - bp::kSetupHeader);
    mem.write32(lay::kZeroPage + bp::kCode32Start, static_cast<uint32_t>(load));
    mem.write(load, &img[setup_bytes], pm_size);
    out.kernel_low = load;
    out.kernel_high = load + pm_size;
    out.entry = load + bp::kEntry64Offset;
    if (auto st = finish(name, mem, boot, plan, out); !st) return st.error();
    return out;
}

Result<LinuxImage> load_vmlinux(const std::vector<uint8_t>& img, const std::string& name,
                                GuestMemory& mem, const LinuxBootParams& boot) {
    if (img.size() < 64) return bad(name, "truncated ELF header");
    if (img[4] != kElfClass64 || img[5] != kElfData2Lsb || le16(&img[18]) != kEmX86_64)
        return bad(name, "an ELF file, but not a little-endian x86-64 one (a vmlinux is ELF64)");
    if (le16(&img[16]) != kEtExec) return bad(name, "not an ELF executable (ET_EXEC)");
    const uint64_t e_entry = le64(&img[24]);
    const uint64_t phoff = le64(&img[32]);
    const uint16_t phentsize = le16(&img[54]), phnum = le16(&img[56]);
    if (phentsize < 56 || phoff > img.size() ||
        static_cast<uint64_t>(phnum) * phentsize > img.size() - phoff)
        return bad(name, "program headers run past the end of the file");
    LinuxImage out;
    out.vmlinux = true;
    out.version = bp::kElfVersion;
    out.kernel_low = UINT64_MAX;
    struct Seg {
        uint64_t off, vaddr, paddr, filesz, memsz;
    };
    std::vector<Seg> segs;
    for (uint16_t k = 0; k < phnum; ++k) {
        const uint8_t* ph = &img[phoff + static_cast<uint64_t>(k) * phentsize];
        if (le32(ph) != kPtLoad) continue;
        const Seg s{le64(ph + 8), le64(ph + 16), le64(ph + 24), le64(ph + 32), le64(ph + 40)};
        if (s.filesz > s.memsz) return bad(name, "segment file size exceeds memory size");
        if (s.off > img.size() || s.filesz > img.size() - s.off)
            return bad(name, "segment runs past the end of the file (truncated?)");
        if (s.memsz == 0) continue;
        if (!mem.contains(s.paddr, s.memsz))
            return make_error(fmt::format("{}: segment at {:#x} of {} MiB is outside guest "
                                          "memory ({} MiB)",
                                          name, s.paddr, mib_up(s.memsz), mem.size() >> 20),
                              EFBIG);
        segs.push_back(s);
        out.kernel_low = std::min(out.kernel_low, s.paddr);
        out.kernel_high = std::max(out.kernel_high, s.paddr + s.memsz);
    }
    if (segs.empty()) return bad(name, "no loadable segments");
    // startup_64 by its physical address: e_entry is physical in a vmlinux
    // (ENTRY(phys_startup_64)), but a virtual one is translated through its segment.
    out.entry = UINT64_MAX;
    for (const Seg& s : segs) {
        if (e_entry >= s.paddr && e_entry - s.paddr < s.memsz)
            out.entry = e_entry;
        else if (e_entry >= s.vaddr && e_entry - s.vaddr < s.memsz)
            out.entry = s.paddr + (e_entry - s.vaddr);
        if (out.entry != UINT64_MAX) break;
    }
    if (out.entry == UINT64_MAX)
        return bad(name, fmt::format("entry point {:#x} lies in no loadable segment", e_entry));
    if (out.kernel_low < bp::kLoadAddress)
        return bad(name, fmt::format("a segment at {:#x} is below 1 MiB", out.kernel_low));
    Plan plan;
    plan.reserved_end = out.kernel_high;
    plan.initrd_max = 0x7FFFFFFF;  // the protocol's default for kernels before 2.03
    plan.cmdline_size = bp::kElfCmdlineSize;
    if (auto st = check_cmdline(name, boot, plan.cmdline_size); !st) return st.error();

    // A vmlinux has no setup header: the zero page gets the fields a bzImage would bring.
    const uint64_t zp = lay::kZeroPage;
    mem.fill(zp, 0, bp::kZeroPageSize);
    const uint16_t flag = bp::kBootFlagValue, version = bp::kElfVersion;
    const uint8_t loadflags = bp::kLoadedHigh;
    mem.write(zp + bp::kBootFlag, &flag, 2);
    mem.write32(zp + bp::kHeaderMagicOff, bp::kHeaderMagic);
    mem.write(zp + bp::kVersion, &version, 2);
    mem.write(zp + bp::kLoadFlags, &loadflags, 1);
    mem.write32(zp + bp::kInitrdAddrMax, static_cast<uint32_t>(plan.initrd_max));
    mem.write32(zp + bp::kCmdlineSize, plan.cmdline_size);
    for (const Seg& s : segs) {
        mem.write(s.paddr, &img[s.off], s.filesz);
        mem.fill(s.paddr + s.filesz, 0, s.memsz - s.filesz);
    }
    if (auto st = finish(name, mem, boot, plan, out); !st) return st.error();
    return out;
}

}  // namespace

KernelKind detect_kernel(const std::vector<uint8_t>& img) {
    if (img.size() >= bp::kVersion && le16(&img[bp::kBootFlag]) == bp::kBootFlagValue &&
        le32(&img[bp::kHeaderMagicOff]) == bp::kHeaderMagic)
        return KernelKind::BzImage;
    if (has_multiboot_header(img)) return KernelKind::Multiboot;
    if (img.size() >= 4 && std::memcmp(img.data(),
                                       "\x7f"
                                       "ELF",
                                       4) == 0)
        return KernelKind::Vmlinux;
    return KernelKind::Unknown;
}

Result<LinuxImage> load_linux(const std::vector<uint8_t>& img, const std::string& name,
                              GuestMemory& mem, const LinuxBootParams& boot) {
    if (mem.size() < 2 * bp::kLoadAddress)
        return make_error(fmt::format("{}: needs more than 2 MiB of guest memory", name), EFBIG);
    if (boot.initrd && boot.initrd->size() > mem.size())
        return make_error(fmt::format("--initrd: the initrd is {} bytes, larger than guest "
                                      "memory ({} MiB)",
                                      boot.initrd->size(), mem.size() >> 20),
                          EFBIG);
    switch (detect_kernel(img)) {
        case KernelKind::BzImage:
            return load_bzimage(img, name, mem, boot);
        case KernelKind::Vmlinux:
            return load_vmlinux(img, name, mem, boot);
        case KernelKind::Multiboot:
            return bad(name, "a multiboot image, not a Linux kernel");
        case KernelKind::Unknown:
            break;
    }
    return bad(name, "neither a bzImage (no \"HdrS\" setup header at 0x202) nor an ELF file");
}

Status set_linux_entry_state(accel::Vcpu& vcpu, const LinuxImage& image) {
    auto sregs = vcpu.get_sregs();
    if (!sregs) return sregs.error();
    accel::SpecialRegs s = sregs.value();
    auto flat = [](uint16_t sel, uint8_t type, bool code) {
        accel::Segment seg;
        seg.base = 0, seg.limit = 0xFFFFFFFF, seg.selector = sel, seg.type = type;
        seg.present = 1, seg.dpl = 0, seg.s = 1, seg.g = 1;
        seg.l = code ? 1 : 0;
        seg.db = code ? 0 : 1;  // a 64-bit code segment has D = 0
        return seg;
    };
    s.cs = flat(bp::kBootCs, 0xB, true);
    s.ds = s.es = s.fs = s.gs = s.ss = flat(bp::kBootDs, 0x3, false);
    s.gdt = {lay::kGdt, 4 * 8 - 1};
    s.idt = {lay::kIdt, 0};
    // CR0: PE | ET | PG; CR4: PAE; EFER: LME | LMA (SDM Vol. 3A §2.5, §9.8.5).
    s.cr0 = 0x80000011;
    s.cr3 = lay::kPml4;
    s.cr4 = 0x20;
    s.efer = 0x500;
    if (auto st = vcpu.set_sregs(s); !st) return st;
    accel::Regs r;
    r.rip = image.entry;
    r.rsi = lay::kZeroPage;
    r.rsp = lay::kStack;
    r.rflags = 0x2;
    return vcpu.set_regs(r);
}

}  // namespace softkvm::vmm
