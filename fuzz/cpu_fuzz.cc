// Fuzz target: the software CPU on arbitrary instruction bytes in a small machine whose
// registers, mode, paging and MMIO behaviour come from the input too.
//
// Input: a 72-byte header (see Header) then the code, copied to kCode.
// Machine: 256 KiB of RAM; 4 KiB page tables identity-map the first 2 MiB, so everything
// above the RAM is MMIO; a GDT with ring-0 and ring-3 segments, 64-bit and 32-bit IDTs
// whose every vector halts, a TSS. The header flips page-table bits, picks long mode
// (CPL 0 or 3, CR0.WP, CR4.SMEP/SMAP, EFER.NXE) or flat 32-bit protected mode, and
// decides whether MMIO and port reads exit first (as a VMM behind KVM_EXIT_MMIO) or are
// answered at once.
//
// Oracle: no crash and no sanitizer report; no hang (run() calls are bounded and a run of
// calls that retire nothing and change nothing is reported as a livelock); the
// instruction budget is respected exactly (never more instructions retired than the
// limit given to run()); and the same input gives the same final state twice
// (determinism: registers, RIP, RFLAGS, instruction count and all of RAM; checked for
// one input in eight). softkvm has no translator yet, so there is no interpreter/
// translator comparison.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "cpu/cpu.h"
#include "cpu/msr_index.h"

namespace {

using namespace softkvm::cpu;

constexpr uint64_t kRam = 256 << 10;
constexpr uint64_t kPml4 = 0x1000, kPdpt = 0x2000, kPd = 0x3000, kPt = 0x4000;
constexpr uint64_t kGdt = 0x5000, kIdt64 = 0x6000, kIdt32 = 0x7000, kTss = 0x7800;
constexpr uint64_t kStubs = 0x8000;  // one HLT per vector
constexpr uint64_t kCode = 0x10000;
constexpr size_t kMaxCode = 0x10000;
constexpr uint64_t kStack = 0x3F000;
constexpr uint64_t kBudget = 500;  // instructions per run() call
constexpr uint64_t kTotal = 2000;  // instructions per input
constexpr int kMaxRuns = 400;      // run() calls per input (MMIO exits need many)
constexpr int kLivelock = 200;     // consecutive run() calls with no progress at all

struct Header {
    uint64_t gpr[8];      // RAX..RDI (RSP is set from it, kept inside the stack page)
    uint8_t mode;         // bit 0: 32-bit protected mode; bit 1: CPL 3; bits 2-5: CR0.WP,
                          // CR4.SMEP, CR4.SMAP, EFER.NXE; bit 6: RFLAGS.DF; bit 7: RFLAGS.AC
    uint8_t mmio;         // bit 0: MMIO reads exit first; bit 1: port reads exit first;
                          // bit 2: MMIO writes exit; RFLAGS.TF when bits 3-7 are 00001
    uint8_t pte_flip[6];  // XOR masks for the low byte of PTEs of six data pages
};
static_assert(sizeof(Header) == 72);

// The owner: a VMM stand-in. Answers depend only on the input (determinism).
class FuzzOwner : public CpuOwner {
  public:
    bool read_exits = false, port_exits = false, write_exits = false;
    bool halted = false;
    uint64_t pending_gpa = ~0ull;
    uint16_t pending_port = 0xFFFF;
    uint64_t seed = 0;

    Action port_in(uint16_t port, uint8_t, uint32_t& value) override {
        if (port_exits && pending_port != port) {
            pending_port = port;
            return Action::Exit;
        }
        pending_port = 0xFFFF;
        value = static_cast<uint32_t>(mix(port));
        return Action::Done;
    }
    Action port_out(uint16_t, uint8_t, uint32_t) override { return Action::Done; }
    Action mmio_read(uint64_t gpa, uint8_t, uint64_t& value) override {
        if (read_exits && pending_gpa != gpa) {
            pending_gpa = gpa;
            return Action::Exit;
        }
        pending_gpa = ~0ull;
        value = mix(gpa);
        return Action::Done;
    }
    Action mmio_write(uint64_t, uint8_t, uint64_t) override {
        return write_exits ? Action::Exit : Action::Done;
    }
    MsrResult rdmsr(uint32_t, uint64_t&) override { return MsrResult::NotMine; }
    MsrResult wrmsr(uint32_t, uint64_t) override { return MsrResult::NotMine; }
    void cpuid(uint32_t, uint32_t, CpuidRegs&) override {}
    Action hlt() override {
        halted = true;
        return Action::Exit;
    }

  private:
    uint64_t mix(uint64_t x) const {
        x ^= seed;
        x *= 0x9E3779B97F4A7C15ull;
        return x ^ (x >> 29);
    }
};

// Guest RAM of the two runs of an input, reused (cleared first): a fresh 256 KiB
// allocation per run would cost more page faults than the guest code costs to run.
alignas(4096) uint8_t g_ram[2][kRam];

void put64(uint8_t* ram, uint64_t at, uint64_t v) {
    std::memcpy(ram + at, &v, 8);
}

struct Outcome {
    std::array<uint64_t, 16> gpr;
    uint64_t rip, rflags, icount;
};

Outcome run_once(const Header& h, const uint8_t* code, size_t code_len, uint8_t* ram) {
    std::memset(ram, 0, kRam);
    const bool prot32 = h.mode & 1;
    const bool user = (h.mode & 2) && !prot32;
    const uint64_t us = user ? PTE_US : 0;
    // Paging: PML4 -> PDPT -> PD -> one page table of 512 4 KiB pages (identity).
    put64(ram, kPml4, kPdpt | PTE_P | PTE_RW | us);
    put64(ram, kPdpt, kPd | PTE_P | PTE_RW | us);
    put64(ram, kPd, kPt | PTE_P | PTE_RW | us);
    // The system structures (tables, GDT, IDTs, TSS, the halting stubs) stay supervisor
    // pages at CPL 3 too: with user stubs, SMEP would turn every exception into an endless
    // chain of instruction-fetch #PFs that retires nothing and only burns the input's time.
    for (uint64_t p = 0; p < 512; ++p)
        put64(ram, kPt + 8 * p, (p << 12) | PTE_P | PTE_RW | ((p << 12) >= kCode ? us : 0));
    // Six data pages (stack, data, the first MMIO pages) get their flags disturbed.
    const uint64_t flip_pages[6] = {0x3E, 0x3F, 0x20, 0x30, 0x40, 0x41};
    for (int k = 0; k < 6; ++k) ram[kPt + 8 * flip_pages[k]] ^= h.pte_flip[k];
    // GDT: null, 0x08 code64, 0x10 data, 0x18 code32, 0x20 user data (0x23), 0x28 user
    // code64 (0x2b), 0x30 TSS (16 bytes).
    put64(ram, kGdt + 0x08, 0x00AF9A000000FFFFull);
    put64(ram, kGdt + 0x10, 0x00CF92000000FFFFull);
    put64(ram, kGdt + 0x18, 0x00CF9A000000FFFFull);
    put64(ram, kGdt + 0x20, 0x00CFF2000000FFFFull);
    put64(ram, kGdt + 0x28, 0x00AFFA000000FFFFull);
    put64(ram, kGdt + 0x30, 0x0000890000000067ull | ((kTss & 0xFFFFFF) << 16));
    put64(ram, kTss + 4, kStack - 0x800);  // RSP0
    for (uint64_t v = 0; v < 256; ++v) {
        const uint64_t stub = kStubs + v;
        ram[stub] = 0xF4;  // hlt
        put64(ram, kIdt64 + 16 * v,
              (stub & 0xFFFF) | (0x08ull << 16) | (0x8Eull << 40) | ((stub >> 16) << 48));
        put64(ram, kIdt32 + 8 * v,
              (stub & 0xFFFF) | (0x18ull << 16) | (0x8Eull << 40) | ((stub >> 16) << 48));
    }
    std::memcpy(ram + kCode, code, code_len);

    FuzzOwner owner;
    owner.read_exits = h.mmio & 1;
    owner.port_exits = h.mmio & 2;
    owner.write_exits = h.mmio & 4;
    owner.seed = h.gpr[0] ^ h.gpr[7];
    auto cpu = std::make_unique<Cpu>(owner);
    cpu->add_ram(0, kRam, ram);
    CpuState& s = cpu->state();
    for (int k = 0; k < 8; ++k) s.gpr[k] = h.gpr[k];
    s.gpr[RSP] = kStack - (h.gpr[RSP] & 0x7F8);
    s.rflags = FLAG_FIXED1 | ((h.mode & 0x40) ? FLAG_DF : 0) | ((h.mode & 0x80) ? FLAG_AC : 0) |
               ((h.mmio & 0xF8) == 0x08 ? FLAG_TF : 0);
    s.rip = kCode;
    s.tr.selector = 0x30, s.tr.base = kTss, s.tr.limit = 0x67, s.tr.type = 0xB;
    s.tr.present = true;
    s.gdtr = {kGdt, 0x3F};
    auto seg = [](uint16_t sel, uint8_t type, uint8_t dpl, bool l, bool db) {
        Segment g;
        g.selector = sel, g.type = type, g.s = true, g.present = true, g.dpl = dpl;
        g.l = l, g.db = db, g.limit = 0xFFFFFFFF, g.g = true;
        return g;
    };
    if (prot32) {
        s.cr0 = CR0_PE | CR0_ET;
        s.idtr = {kIdt32, 256 * 8 - 1};
        const Segment ds = seg(0x10, 0x3, 0, false, true);
        s.seg = {ds, seg(0x18, 0xB, 0, false, true), ds, ds, ds, ds};
    } else {
        s.cr0 = CR0_PE | CR0_ET | CR0_PG | ((h.mode & 4) ? CR0_WP : 0);
        s.cr3 = kPml4;
        s.cr4 = CR4_PAE | ((h.mode & 8) ? CR4_SMEP : 0) | ((h.mode & 16) ? CR4_SMAP : 0);
        s.efer =
            msr::EFER_LME | msr::EFER_LMA | msr::EFER_SCE | ((h.mode & 32) ? msr::EFER_NXE : 0);
        s.idtr = {kIdt64, 256 * 16 - 1};
        const uint8_t dpl = user ? 3 : 0;
        const Segment ds = seg(user ? 0x23 : 0x10, 0x3, dpl, false, true);
        s.seg = {ds, seg(user ? 0x2b : 0x08, 0xB, dpl, true, false), ds, ds, ds, ds};
    }
    cpu->state_changed();

    int idle = 0;
    for (int k = 0; k < kMaxRuns && !owner.halted; ++k) {
        const uint64_t before = cpu->instructions_retired();
        const uint64_t rip = cpu->state().rip;
        if (before >= kTotal) break;
        const uint64_t limit = std::min(before + kBudget, kTotal);
        const StopReason why = cpu->run(limit);
        const uint64_t after = cpu->instructions_retired();
        if (after > limit) {
            std::fprintf(stderr, "budget exceeded: %llu > %llu\n",
                         static_cast<unsigned long long>(after),
                         static_cast<unsigned long long>(limit));
            std::abort();
        }
        if (why == StopReason::Shutdown || why == StopReason::Emulation ||
            why == StopReason::Halted)
            break;
        idle = (after == before && cpu->state().rip == rip) ? idle + 1 : 0;
        if (idle >= kLivelock) {
            std::fprintf(stderr, "livelock: %d run() calls without progress at rip %#llx\n", idle,
                         static_cast<unsigned long long>(rip));
            std::abort();
        }
    }
    Outcome o;
    for (int k = 0; k < 16; ++k) o.gpr[k] = cpu->state().gpr[k];
    o.rip = cpu->state().rip;
    o.rflags = cpu->state().rflags;
    o.icount = cpu->instructions_retired();
    return o;
}

}  // namespace

// Each input builds two CPUs of a few hundred KiB; a small quarantine lets AddressSanitizer
// reuse their memory instead of faulting in fresh pages for every input.
extern "C" const char* __asan_default_options() {
    return "quarantine_size_mb=1";
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < sizeof(Header)) return 0;
    Header h;
    std::memcpy(&h, data, sizeof h);
    const uint8_t* code = data + sizeof h;
    const size_t code_len = std::min(size - sizeof h, kMaxCode);
    const Outcome a = run_once(h, code, code_len, g_ram[0]);
    // The determinism check doubles the cost: one input in eight (by its first byte, so a
    // reproduction checks it again) runs twice.
    if ((data[0] & 7) != 0) return 0;
    const Outcome b = run_once(h, code, code_len, g_ram[1]);
    if (std::memcmp(&a, &b, sizeof a) != 0 || std::memcmp(g_ram[0], g_ram[1], kRam) != 0) {
        std::fprintf(stderr, "not deterministic: rip %#llx/%#llx icount %llu/%llu\n",
                     static_cast<unsigned long long>(a.rip), static_cast<unsigned long long>(b.rip),
                     static_cast<unsigned long long>(a.icount),
                     static_cast<unsigned long long>(b.icount));
        std::abort();
    }
    return 0;
}
