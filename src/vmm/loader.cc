#include "vmm/loader.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "vmm/image_bytes.h"
#include "vmm/multiboot.h"

namespace softkvm::vmm {
namespace {

using namespace image;

// ELF numbers (System V gABI; <elf.h>).
constexpr uint8_t kElfClass32 = 1, kElfClass64 = 2, kElfData2Lsb = 1;
constexpr uint64_t kMaxImage = 256ull << 20;

struct Segment {
    uint64_t offset, paddr, filesz, memsz;
};

// "[start, end)" for a guest-physical range, or its start and size when the end would
// wrap past 2^64 (a hostile header must not produce a backwards range in a message).
std::string range_text(uint64_t start, uint64_t size) {
    if (size > UINT64_MAX - start)
        return fmt::format("at {:#x} of size {:#x} (past the end of the address space)", start,
                           size);
    return fmt::format("[{:#x}, {:#x})", start, start + size);
}

// Writes the boot information and memory map (§3.3) for `mem`.
void write_boot_info(GuestMemory& mem) {
    using namespace multiboot;
    struct Region {
        uint64_t base, len;
        uint32_t type;
    };
    const uint64_t top = mem.size();
    const Region map[] = {
        {0, 0x9FC00, kMmapAvailable},       // conventional memory
        {0x9FC00, 0x400, kMmapReserved},    // extended BIOS data area
        {0xF0000, 0x10000, kMmapReserved},  // BIOS ROM
        {0x100000, top - 0x100000, kMmapAvailable},
    };
    mem.fill(kInfoAddr, 0, kInfoSize);
    uint32_t at = kMmapAddr;
    for (const Region& r : map) {
        mem.write32(at, kMmapEntrySize - 4);
        mem.write64(at + 4, r.base);
        mem.write64(at + 12, r.len);
        mem.write32(at + 20, r.type);
        at += kMmapEntrySize;
    }
    mem.write32(kInfoAddr + kInfoFlags, kInfoHasMemory | kInfoHasBootDevice | kInfoHasCmdline |
                                            kInfoHasMods | kInfoHasMmap | kInfoHasBootLoaderName);
    mem.write32(kInfoAddr + kInfoBootDevice, kBootDevice);
    mem.write32(kInfoAddr + kInfoMemLower, 0x9FC00 / 1024);
    mem.write32(kInfoAddr + kInfoMemUpper, static_cast<uint32_t>((top - 0x100000) / 1024));
    mem.write32(kInfoAddr + kInfoMmapLength, at - kMmapAddr);
    mem.write32(kInfoAddr + kInfoMmapAddr, kMmapAddr);
}

uint64_t page_align(uint64_t v) {
    return (v + multiboot::kPageSize - 1) & ~(multiboot::kPageSize - 1);
}

// After the image, as QEMU lays them out: the module entries, the module command lines,
// the kernel command line and the boot loader's name from the first page boundary past
// the image, then each module on its own page boundary.
struct BootLayout {
    uint64_t base = 0, end = 0;
    std::vector<uint64_t> strings;  // module command lines, the command line, the name
    std::vector<uint64_t> modules;
};

Result<BootLayout> plan_boot_blocks(const GuestMemory& mem, const BootParams& boot,
                                    uint64_t image_end) {
    using namespace multiboot;
    BootLayout l;
    l.base = page_align(image_end);
    uint64_t at = l.base + kModEntrySize * boot.modules.size();
    for (const BootModule& m : boot.modules) {
        l.strings.push_back(at);
        at += m.cmdline.size() + 1;
    }
    for (const std::string* str : {&boot.cmdline, &boot.bootloader}) {
        l.strings.push_back(at);
        at += str->size() + 1;
    }
    at = page_align(at);
    constexpr uint64_t k4G = 1ull << 32;
    for (const BootModule& m : boot.modules) {
        l.modules.push_back(at);
        if (m.data.size() > k4G) {
            at = UINT64_MAX;
            break;
        }
        at = page_align(at + m.data.size());
    }
    l.end = at;
    if (l.end > mem.size() || l.end > k4G)
        return make_error(
            fmt::format("the command lines and modules (from {:#x}, {}) do not "
                        "fit in guest memory ({} MiB) below 4 GiB",
                        l.base,
                        l.end == UINT64_MAX ? std::string("a module larger than 4 GiB")
                                            : fmt::format("{} KiB", (l.end - l.base) / 1024),
                        mem.size() >> 20),
            EFBIG);
    return l;
}

// The information's pointers to the blocks (written with the information, before the
// image, as QEMU's option ROM does).
void write_boot_pointers(GuestMemory& mem, const BootParams& boot, const BootLayout& l) {
    using namespace multiboot;
    const size_t n = boot.modules.size();
    mem.write32(kInfoAddr + kInfoCmdline, static_cast<uint32_t>(l.strings[n]));
    mem.write32(kInfoAddr + kInfoModsCount, static_cast<uint32_t>(n));
    mem.write32(kInfoAddr + kInfoModsAddr, static_cast<uint32_t>(l.base));
    mem.write32(kInfoAddr + kInfoBootLoaderName, static_cast<uint32_t>(l.strings[n + 1]));
}

// The blocks themselves (after the image: QEMU copies them with it).
void write_boot_blocks(GuestMemory& mem, const BootParams& boot, const BootLayout& l,
                       LoadedImage& out) {
    using namespace multiboot;
    const size_t n = boot.modules.size();
    for (size_t k = 0; k < n; ++k) {
        const BootModule& m = boot.modules[k];
        const uint64_t entry = l.base + kModEntrySize * k;
        mem.write(l.modules[k], m.data.data(), m.data.size());
        mem.write32(entry + kModStart, static_cast<uint32_t>(l.modules[k]));
        mem.write32(entry + kModEnd, static_cast<uint32_t>(l.modules[k] + m.data.size()));
        mem.write32(entry + kModString, static_cast<uint32_t>(l.strings[k]));
        mem.write32(entry + kModString + 4, 0);
        mem.write(l.strings[k], m.cmdline.c_str(), m.cmdline.size() + 1);
    }
    mem.write(l.strings[n], boot.cmdline.c_str(), boot.cmdline.size() + 1);
    mem.write(l.strings[n + 1], boot.bootloader.c_str(), boot.bootloader.size() + 1);
    out.cmdline_addr = static_cast<uint32_t>(l.strings[n]);
    out.mods_addr = static_cast<uint32_t>(l.base);
    out.boot_end = l.end;
}

}  // namespace

Result<std::vector<uint8_t>> read_file(const std::string& path, const char* what) {
    // O_NONBLOCK: opening a FIFO must not wait for a writer. Only a regular file can be an
    // image; a FIFO, socket or device is refused before anything is read from it.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        const int err = errno;
        return make_error(fmt::format("{}: {}", path, std::strerror(err)), err);
    }
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st = {};
    if (::fstat(fd, &st) != 0)
        return make_error(fmt::format("{}: {}", path, std::strerror(errno)), EIO);
    if (S_ISDIR(st.st_mode))
        return make_error(fmt::format("{}: is a directory, not a {}", path, what), EISDIR);
    if (!S_ISREG(st.st_mode))
        return make_error(fmt::format("{}: not a regular file (a pipe, FIFO, socket or device "
                                      "cannot be a {})",
                                      path, what),
                          ESPIPE);
    if (static_cast<uint64_t>(st.st_size) > kMaxImage)
        return make_error(fmt::format("{}: larger than {} MiB", path, kMaxImage >> 20), ENOEXEC);
    std::vector<uint8_t> data(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < data.size()) {
        const ssize_t n = ::read(fd, data.data() + got, data.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            return make_error(fmt::format("{}: read error: {}", path, std::strerror(errno)), EIO);
        if (n == 0) break;  // the file shrank while being read
        got += static_cast<size_t>(n);
    }
    data.resize(got);
    return data;
}

Result<LoadedImage> load_multiboot(const std::vector<uint8_t>& img, const std::string& name,
                                   GuestMemory& mem, const BootParams& boot) {
    using namespace multiboot;
    // The multiboot header: magic, flags, checksum, 32-bit aligned in the first 8 KiB.
    const size_t limit = std::min<size_t>(img.size(), kSearchLimit);
    size_t hdr = SIZE_MAX;
    for (size_t off = 0; off + 12 <= limit; off += 4) {
        if (le32(&img[off]) == kHeaderMagic) {
            hdr = off;
            break;
        }
    }
    if (hdr == SIZE_MAX) return bad(name, "no multiboot header in the first 8 KiB");
    const uint32_t flags = le32(&img[hdr + 4]);
    if (kHeaderMagic + flags + le32(&img[hdr + 8]) != 0)
        return bad(name, fmt::format("multiboot header at offset {:#x} has a bad checksum", hdr));
    if (flags & kFlagVideoMode) return bad(name, "multiboot video mode requests are not supported");
    if ((flags & 0xFFFF) & ~(kFlagPageAlign | kFlagMemoryInfo | kFlagVideoMode))
        return bad(name, fmt::format("multiboot header requires unknown features {:#x}", flags));

    LoadedImage out;
    const bool is_elf = img.size() >= 4 && std::memcmp(img.data(),
                                                       "\x7f"
                                                       "ELF",
                                                       4) == 0;
    if (!is_elf) {
        if (!(flags & kFlagAoutKludge))
            return bad(name, "not an ELF file and the multiboot header has no load addresses");
        if (hdr + 32 > img.size()) return bad(name, "truncated multiboot header");
        const uint32_t header_addr = le32(&img[hdr + kHdrHeaderAddr]);
        const uint32_t load_addr = le32(&img[hdr + kHdrLoadAddr]);
        uint32_t load_end = le32(&img[hdr + kHdrLoadEndAddr]);
        const uint32_t bss_end = le32(&img[hdr + kHdrBssEndAddr]);
        if (header_addr < load_addr || header_addr - load_addr > hdr)
            return bad(name, "multiboot load addresses are inconsistent");
        const uint64_t file_off = hdr - (header_addr - load_addr);
        if (load_end == 0) load_end = static_cast<uint32_t>(load_addr + img.size() - file_off);
        if (load_end < load_addr || file_off + (load_end - load_addr) > img.size())
            return bad(name, "multiboot load range runs past the end of the file");
        const uint64_t mem_end = bss_end ? bss_end : load_end;
        if (mem_end < load_end) return bad(name, "multiboot bss end precedes the load end");
        if (!mem.contains(load_addr, mem_end - load_addr))
            return make_error(
                fmt::format("{}: image {} is outside guest memory ({} MiB)", name,
                            range_text(load_addr, mem_end - load_addr), mem.size() >> 20),
                ERANGE);
        auto layout = plan_boot_blocks(mem, boot, mem_end);
        if (!layout) return layout.error();
        write_boot_info(mem);
        write_boot_pointers(mem, boot, layout.value());
        mem.write(load_addr, &img[file_off], load_end - load_addr);
        mem.fill(load_end, 0, mem_end - load_end);
        out.entry = le32(&img[hdr + kHdrEntryAddr]);
        out.low = load_addr;
        out.high = mem_end;
        write_boot_blocks(mem, boot, layout.value(), out);
    } else {
        if (img.size() < 52) return bad(name, "truncated ELF header");
        const uint8_t cls = img[4];
        if (cls != kElfClass32 && cls != kElfClass64) return bad(name, "unknown ELF class");
        if (img[5] != kElfData2Lsb) return bad(name, "not a little-endian ELF file");
        if (le16(&img[16]) != kEtExec) return bad(name, "not an ELF executable (ET_EXEC)");
        const uint16_t machine = le16(&img[18]);
        if (machine != kEm386 && machine != kEmX86_64)
            return bad(name, fmt::format("ELF machine {} is not x86", machine));
        const bool is64 = cls == kElfClass64;
        if (is64 && img.size() < 64) return bad(name, "truncated ELF header");
        const uint64_t entry = is64 ? le64(&img[24]) : le32(&img[24]);
        const uint64_t phoff = is64 ? le64(&img[32]) : le32(&img[28]);
        const uint16_t phentsize = le16(&img[is64 ? 54 : 42]);
        const uint16_t phnum = le16(&img[is64 ? 56 : 44]);
        if (phentsize < (is64 ? 56 : 32) || phoff > img.size() ||
            static_cast<uint64_t>(phnum) * phentsize > img.size() - phoff)
            return bad(name, "program headers run past the end of the file");
        std::vector<Segment> segs;
        for (uint16_t k = 0; k < phnum; ++k) {
            const uint8_t* ph = &img[phoff + static_cast<uint64_t>(k) * phentsize];
            if (le32(ph) != kPtLoad) continue;
            Segment s;
            if (is64)
                s = {le64(ph + 8), le64(ph + 24), le64(ph + 32), le64(ph + 40)};
            else
                s = {le32(ph + 4), le32(ph + 12), le32(ph + 16), le32(ph + 20)};
            if (s.filesz > s.memsz) return bad(name, "segment file size exceeds memory size");
            if (s.offset > img.size() || s.filesz > img.size() - s.offset)
                return bad(name, "segment runs past the end of the file");
            if (s.memsz == 0) continue;
            if (!mem.contains(s.paddr, s.memsz))
                return make_error(fmt::format("{}: segment {} is outside guest memory ({} MiB)",
                                              name, range_text(s.paddr, s.memsz), mem.size() >> 20),
                                  ERANGE);
            segs.push_back(s);
        }
        if (segs.empty()) return bad(name, "no loadable segments");
        out.low = UINT64_MAX;
        for (const Segment& s : segs) {
            out.low = std::min(out.low, s.paddr);
            out.high = std::max(out.high, s.paddr + s.memsz);
        }
        if (entry > UINT32_MAX) return bad(name, "entry point above 4 GiB");
        out.entry = static_cast<uint32_t>(entry);
        auto layout = plan_boot_blocks(mem, boot, out.high);
        if (!layout) return layout.error();
        write_boot_info(mem);
        write_boot_pointers(mem, boot, layout.value());
        for (const Segment& s : segs) {
            mem.write(s.paddr, &img[s.offset], s.filesz);
            mem.fill(s.paddr + s.filesz, 0, s.memsz - s.filesz);
        }
        write_boot_blocks(mem, boot, layout.value(), out);
    }
    if (!mem.contains(out.entry, 1))
        return make_error(
            fmt::format("{}: entry point {:#x} is outside guest memory", name, out.entry), ERANGE);
    out.info_addr = kInfoAddr;
    return out;
}

Result<std::vector<ModuleSpec>> parse_module_list(const std::string& text) {
    std::vector<ModuleSpec> out;
    std::string cur;
    auto finish = [&]() -> Status {
        if (cur.empty()) return make_error(fmt::format("'{}': an empty module name", text), EINVAL);
        const size_t sp = cur.find(' ');
        if (sp == 0)
            return make_error(fmt::format("'{}': a module name starts with a space", text), EINVAL);
        out.push_back({cur.substr(0, sp), cur});
        cur.clear();
        return {};
    };
    for (size_t k = 0; k < text.size(); ++k) {
        if (text[k] != ',') {
            cur.push_back(text[k]);
        } else if (k + 1 < text.size() && text[k + 1] == ',') {
            cur.push_back(',');
            ++k;
        } else if (auto st = finish(); !st) {
            return st.error();
        }
    }
    if (auto st = finish(); !st) return st.error();
    return out;
}

}  // namespace softkvm::vmm
