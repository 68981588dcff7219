// The CPU fuzz target's machine (see cpu_machine.h).
#include "fuzz/cpu_machine.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cpu/exec/sse_util.h"
#include "cpu/exec/x87.h"
#include "cpu/msr_index.h"

namespace softkvm::fuzz {

using namespace softkvm::cpu;

namespace {

constexpr uint64_t kPml4 = 0x1000, kPdpt = 0x2000, kPd = 0x3000, kPt = 0x4000;
constexpr uint64_t kGdt = 0x5000, kIdt64 = 0x6000, kIdt32 = 0x7000, kTss = 0x7800;
constexpr uint64_t kStubs = 0x8000;  // one HLT per vector
constexpr uint64_t kCode = 0x10000;
constexpr size_t kMaxCode = 0x10000;
constexpr uint64_t kStack = 0x3F000;
constexpr uint64_t kPage = 4096;
constexpr uint8_t kHlt = 0xF4;
// Six data pages (stack, data, the first MMIO pages) whose PTE flags the header disturbs.
constexpr uint64_t kFlipPages[6] = {0x3E, 0x3F, 0x20, 0x30, 0x40, 0x41};

// An order-sensitive 64-bit digest.
struct Digest {
    uint64_t h = 0x6A09E667F3BCC908ull;
    void add(uint64_t v) {
        h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
        h *= 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
    }
};

void put64(uint8_t* ram, uint64_t at, uint64_t v) {
    std::memcpy(ram + at, &v, 8);
}

void add_segment(Digest& d, const Segment& s) {
    d.add(s.base);
    d.add(s.limit | uint64_t{s.selector} << 32 | uint64_t{s.type} << 48 | uint64_t{s.dpl} << 56);
    d.add(s.s | s.present << 1 | s.db << 2 | s.l << 3 | s.g << 4 | s.avl << 5 | s.unusable << 6);
}

uint64_t state_digest(const CpuState& s) {
    Digest d;
    for (const Segment& g : s.seg) add_segment(d, g);
    add_segment(d, s.tr);
    add_segment(d, s.ldtr);
    for (const DescriptorTable& t : {s.gdtr, s.idtr}) d.add(t.base ^ uint64_t{t.limit} << 48);
    d.add(s.cr8);
    d.add(s.xcr0);
    for (uint64_t v : s.dr) d.add(v);
    for (const auto& x : s.xmm) d.add(x.lo), d.add(x.hi);
    d.add(s.mxcsr);
    for (const auto& f : s.st) d.add(f.mant), d.add(f.se);
    d.add(s.fcw | uint64_t{s.fsw} << 16 | uint64_t{s.ftw} << 32 | uint64_t{s.fop} << 40);
    d.add(s.fip), d.add(s.fdp), d.add(s.fcs | uint64_t{s.fds} << 16);
    for (uint64_t v : {s.star, s.lstar, s.cstar, s.fmask, s.kernel_gs_base, s.tsc_aux,
                       s.sysenter_cs, s.sysenter_esp, s.sysenter_eip, s.pat, s.apic_base,
                       s.misc_enable, s.mtrr_def_type, s.debugctl, s.tsc_offset})
        d.add(v);
    d.add(static_cast<uint64_t>(s.mode));
    return d.h;
}

}  // namespace

// The owner: a VMM stand-in. Its answers depend only on the input (determinism); every
// event goes into a digest, so two engines must make the same requests in the same order.
class CpuFuzzOwner : public CpuOwner {
  public:
    bool read_exits = false, port_exits = false, write_exits = false;
    bool halted = false;
    uint64_t pending_gpa = ~0ull;
    uint16_t pending_port = 0xFFFF;
    uint64_t seed = 0;
    Digest events;

    void start(const CpuFuzzHeader& h) {
        read_exits = h.mmio & 1;
        port_exits = h.mmio & 2;
        write_exits = h.mmio & 4;
        halted = false;
        pending_gpa = ~0ull;
        pending_port = 0xFFFF;
        seed = h.gpr[0] ^ h.gpr[7];
        events = Digest{};
    }

    Action port_in(uint16_t port, uint8_t size, uint32_t& value) override {
        event(1, port, size);
        if (port_exits && pending_port != port) {
            pending_port = port;
            return Action::Exit;
        }
        pending_port = 0xFFFF;
        value = static_cast<uint32_t>(mix(port));
        return Action::Done;
    }
    Action port_out(uint16_t port, uint8_t size, uint32_t value) override {
        event(2, port, size, value);
        return Action::Done;
    }
    Action mmio_read(uint64_t gpa, uint8_t size, uint64_t& value) override {
        event(3, gpa, size);
        if (read_exits && pending_gpa != gpa) {
            pending_gpa = gpa;
            return Action::Exit;
        }
        pending_gpa = ~0ull;
        value = mix(gpa);
        return Action::Done;
    }
    Action mmio_write(uint64_t gpa, uint8_t size, uint64_t value) override {
        event(4, gpa, size, value);
        return write_exits ? Action::Exit : Action::Done;
    }
    MsrResult rdmsr(uint32_t index, uint64_t&) override {
        event(5, index);
        return MsrResult::NotMine;
    }
    MsrResult wrmsr(uint32_t index, uint64_t value) override {
        event(6, index, 0, value);
        return MsrResult::NotMine;
    }
    void cpuid(uint32_t leaf, uint32_t subleaf, CpuidRegs&) override { event(7, leaf, subleaf); }
    Action hlt() override {
        event(8);
        halted = true;
        return Action::Exit;
    }
    void event(uint64_t kind, uint64_t a = 0, uint64_t b = 0, uint64_t c = 0) {
        events.add(kind);
        events.add(a);
        events.add(b);
        events.add(c);
    }

  private:
    uint64_t mix(uint64_t x) const {
        x ^= seed;
        x *= 0x9E3779B97F4A7C15ull;
        return x ^ (x >> 29);
    }
};

void set_host_fpu(HostFpu status) {
    // FNSTENV (which then masks every x87 exception; FLDENV puts the control word back)
    // and STMXCSR: the host's environment, whose status parts change (SDM vol. 1 §8.1.10,
    // §10.2.3): the x87 status word keeps only TOP; the condition codes and the flags the
    // control word masks are set for `Set` (an unmasked one would trap at the next
    // waiting instruction), and every MXCSR flag (SSE raises only what an operation
    // detects).
    x87::HostEnv env;
    uint32_t csr;
    __asm__ volatile("fnstenv %[e]\n\tstmxcsr %[c]" : [e] "=m"(env), [c] "=m"(csr));
    const bool set = status == HostFpu::Set;
    env.fsw = static_cast<uint16_t>((env.fsw & x87::kTopMask) |
                                    (set ? x87::kCc | (env.fcw & x87::kFlags) : 0));
    csr = set ? csr | sse::kMxcsrFlags : csr & ~sse::kMxcsrFlags;
    __asm__ volatile("fldenv %[e]\n\tldmxcsr %[c]" : : [e] "m"(env), [c] "m"(csr));
}

bool CpuFuzzMachine::available(Engine engine) {
    return engine == Engine::Interp || translator_available();
}

CpuFuzzMachine::CpuFuzzMachine(Engine engine, HostFpu host)
    : host_(host), owner_(std::make_unique<CpuFuzzOwner>()), cpu_(std::make_unique<Cpu>(*owner_)) {
    if (!cpu_->set_engine(engine)) {
        std::fprintf(stderr, "fuzz: the %s engine is not available\n", engine_name(engine));
        std::exit(1);
    }
    ram_ = static_cast<uint8_t*>(std::aligned_alloc(kPage, kRam));
    image_ = static_cast<uint8_t*>(std::aligned_alloc(kPage, kRam));
    if (!ram_ || !image_) {
        std::fprintf(stderr, "fuzz: out of memory\n");
        std::exit(1);
    }
    uint8_t* m = image_;
    std::memset(m, 0, kRam);
    // RAM that holds no table is HLT, except the stack's two pages: code that runs off the
    // input's bytes, or jumps or returns outside them, stops there. Zeros decode as `add
    // [rax], al`: inputs that ran into them (most of the conformance guests' pieces) spent
    // their instruction budget on blocks of 64 of those, each decoded and translated once,
    // and that was nine tenths of the target's time.
    std::memset(m, kHlt, kPml4);
    std::memset(m + kStubs + 256, kHlt, kStack - kPage - (kStubs + 256));
    // Paging: PML4 -> PDPT -> PD -> one page table of 512 4 KiB pages (identity); run()
    // adds the user bit and the header's flips. The system structures (tables, GDT,
    // IDTs, TSS, the halting stubs) stay supervisor pages at CPL 3 too: with user stubs,
    // SMEP would turn every exception into an endless chain of instruction-fetch #PFs
    // that retires nothing and only burns the input's time.
    put64(m, kPml4, kPdpt | PTE_P | PTE_RW);
    put64(m, kPdpt, kPd | PTE_P | PTE_RW);
    put64(m, kPd, kPt | PTE_P | PTE_RW);
    for (uint64_t p = 0; p < 512; ++p) put64(m, kPt + 8 * p, (p << 12) | PTE_P | PTE_RW);
    // GDT: null, 0x08 code64, 0x10 data, 0x18 code32, 0x20 user data (0x23), 0x28 user
    // code64 (0x2b), 0x30 TSS (16 bytes).
    put64(m, kGdt + 0x08, 0x00AF9A000000FFFFull);
    put64(m, kGdt + 0x10, 0x00CF92000000FFFFull);
    put64(m, kGdt + 0x18, 0x00CF9A000000FFFFull);
    put64(m, kGdt + 0x20, 0x00CFF2000000FFFFull);
    put64(m, kGdt + 0x28, 0x00AFFA000000FFFFull);
    put64(m, kGdt + 0x30, 0x0000890000000067ull | ((kTss & 0xFFFFFF) << 16));
    put64(m, kTss + 4, kStack - 0x800);  // RSP0
    for (uint64_t v = 0; v < 256; ++v) {
        const uint64_t stub = kStubs + v;
        m[stub] = 0xF4;  // hlt
        put64(m, kIdt64 + 16 * v,
              (stub & 0xFFFF) | (0x08ull << 16) | (0x8Eull << 40) | ((stub >> 16) << 48));
        put64(m, kIdt32 + 8 * v,
              (stub & 0xFFFF) | (0x18ull << 16) | (0x8Eull << 40) | ((stub >> 16) << 48));
    }
    std::memcpy(ram_, image_, kRam);
}

CpuFuzzMachine::~CpuFuzzMachine() {
    cpu_.reset();
    std::free(ram_);
    std::free(image_);
}

// Copies back the pages the last input changed: most inputs write a few pages only, and
// only those the CPU or run() may have written are compared.
void CpuFuzzMachine::restore_ram() {
    static_assert(kRam / kPage == 64, "one bit of written_pages() per page");
    for (uint64_t dirty = dirty_; dirty; dirty &= dirty - 1) {
        const uint64_t at = static_cast<uint64_t>(__builtin_ctzll(dirty)) * kPage;
        if (std::memcmp(ram_ + at, image_ + at, kPage) != 0)
            std::memcpy(ram_ + at, image_ + at, kPage);
    }
    dirty_ = 0;
}

bool CpuFuzzMachine::same_ram(const CpuFuzzMachine& a, const CpuFuzzMachine& b) {
    for (uint64_t dirty = a.dirty_ | b.dirty_; dirty; dirty &= dirty - 1) {
        const uint64_t at = static_cast<uint64_t>(__builtin_ctzll(dirty)) * kPage;
        if (std::memcmp(a.ram_ + at, b.ram_ + at, kPage) != 0) return false;
    }
    return true;
}

CpuFuzzResult CpuFuzzMachine::run(const uint8_t* data, size_t size) {
    CpuFuzzHeader h;
    std::memcpy(&h, data, sizeof h);
    const uint8_t* code = data + sizeof h;
    const size_t code_len = std::min(size - sizeof h, kMaxCode);

    restore_ram();
    uint8_t* ram = ram_;
    const bool prot32 = h.mode & 1;
    const bool user = (h.mode & 2) && !prot32;
    if (user) {
        for (uint64_t at : {kPml4, kPdpt, kPd}) ram[at] |= PTE_US;
        for (uint64_t p = kCode >> 12; p < 512; ++p) ram[kPt + 8 * p] |= PTE_US;
    }
    for (int k = 0; k < 6; ++k) ram[kPt + 8 * kFlipPages[k]] ^= h.pte_flip[k];
    std::memcpy(ram + kCode, code, code_len);
    // The pages changed here: the paging structures and the code's.
    for (uint64_t at : {kPml4, kPdpt, kPd, kPt}) dirty_ |= 1ull << (at / kPage);
    for (uint64_t at = kCode; at < kCode + code_len; at += kPage) dirty_ |= 1ull << (at / kPage);

    set_host_fpu(host_);
    CpuFuzzOwner& owner = *owner_;
    owner.start(h);
    Cpu& cpu = *cpu_;
    cpu.add_ram(0, kRam, ram);  // the CPU is new or was reset after the last input
    cpu.set_stall_limit(kStall);
    CpuState& s = cpu.state();
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
    cpu.state_changed();

    int idle = 0;
    uint64_t runs = 0;
    StopReason why = StopReason::InsnLimit;
    for (int k = 0; k < kMaxRuns && !owner.halted; ++k) {
        const uint64_t before = cpu.instructions_retired();
        const uint64_t rip = cpu.state().rip;
        if (before >= kTotal) break;
        const uint64_t limit = std::min(before + kBudget, kTotal);
        why = cpu.run(limit);
        ++runs;
        const uint64_t after = cpu.instructions_retired();
        owner.event(9, static_cast<uint64_t>(why), after);
        if (after > limit) {
            std::fprintf(stderr, "fuzz: budget exceeded: %llu instructions retired, limit %llu\n",
                         static_cast<unsigned long long>(after),
                         static_cast<unsigned long long>(limit));
            std::abort();
        }
        if (why == StopReason::Shutdown || why == StopReason::Emulation ||
            why == StopReason::Halted || why == StopReason::Stalled)
            break;
        idle = (after == before && cpu.state().rip == rip) ? idle + 1 : 0;
        if (idle >= kLivelock) {
            std::fprintf(stderr, "fuzz: livelock: %d run() calls without progress at rip %#llx\n",
                         idle, static_cast<unsigned long long>(rip));
            std::abort();
        }
    }
    if (why == StopReason::Emulation || why == StopReason::Stalled) {
        Digest d;
        for (char c : cpu.stop_detail()) d.add(static_cast<uint8_t>(c));
        owner.event(10, d.h);
    }

    const CpuState& f = cpu.state();
    CpuFuzzResult r{};
    for (int k = 0; k < 16; ++k) r.gpr[k] = f.gpr[k];
    r.rip = f.rip, r.rflags = f.rflags, r.icount = cpu.instructions_retired();
    r.cr0 = f.cr0, r.cr2 = f.cr2, r.cr3 = f.cr3, r.cr4 = f.cr4, r.efer = f.efer, r.cpl = f.cpl;
    r.state = state_digest(f);
    r.events = owner.events.h;
    r.runs = runs;
    r.stop = static_cast<uint64_t>(why);
    dirty_ |= cpu.written_pages();
    // Reset now rather than before the next input: what the input allocated (blocks,
    // translations) is freed before the call returns, so libFuzzer sees as many frees as
    // mallocs and does not run the input again to look for a leak.
    cpu.reset();
    return r;
}

uint64_t cpu_fuzz_digest(const CpuFuzzResult& r, const uint8_t* ram) {
    Digest d;
    uint64_t words[sizeof r / 8];
    std::memcpy(words, &r, sizeof r);
    for (uint64_t w : words) d.add(w);
    for (uint64_t at = 0; at < CpuFuzzMachine::kRam; at += 8) {
        uint64_t w;
        std::memcpy(&w, ram + at, 8);
        d.add(w);
    }
    return d.h;
}

}  // namespace softkvm::fuzz
