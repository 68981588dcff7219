// A bare 64-bit machine for CPU unit tests and benchmarks: 4 MiB of RAM, identity-mapped with 2 MiB
// pages, a flat GDT, an IDT whose every vector runs a stub that reports the vector on
// port 0x20 (with RBX pointing at the exception frame) and halts.
#pragma once
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "cpu/cpu.h"
#include "cpu/msr_index.h"

namespace softkvm::cpu::test {

struct PortWrite {
    uint16_t port;
    uint8_t size;
    uint32_t value;
};

// Records every event; port reads answer `in_value`, exiting first when `in_exits`.
class RecordingOwner : public CpuOwner {
  public:
    std::vector<PortWrite> outs;
    std::vector<uint16_t> ins;
    uint32_t in_value = 0;
    bool in_exits = false;
    bool in_ready = false;
    int hlts = 0;
    bool hlt_waits = false;  // HLT waits for an interrupt instead of exiting
    int irq_vector = -1;     // the next interrupt to deliver (once)
    int deadlines = 0;
    Cpu* cpu = nullptr;
    // Called by every port write but the vector port's (after it is recorded in `outs`),
    // from inside the instruction: a device that requests an interrupt or stalls the CPU.
    std::function<void()> on_out;

    Action port_in(uint16_t port, uint8_t, uint32_t& value) override {
        ins.push_back(port);
        if (in_exits && !in_ready) {
            in_ready = true;
            return Action::Exit;
        }
        in_ready = false;
        value = in_value;
        return Action::Done;
    }
    Action port_out(uint16_t port, uint8_t size, uint32_t value) override {
        outs.push_back({port, size, value});
        if (port != 0x20 && on_out) on_out();
        return port == 0x20 ? Action::Exit : Action::Done;
    }
    Action mmio_read(uint64_t, uint8_t, uint64_t& value) override {
        value = ~0ull;
        return Action::Done;
    }
    Action mmio_write(uint64_t, uint8_t, uint64_t) override { return Action::Done; }
    MsrResult rdmsr(uint32_t, uint64_t&) override { return MsrResult::NotMine; }
    MsrResult wrmsr(uint32_t, uint64_t) override { return MsrResult::NotMine; }
    void cpuid(uint32_t, uint32_t, CpuidRegs&) override {}
    Action hlt() override {
        ++hlts;
        return hlt_waits ? Action::Done : Action::Exit;
    }
    bool deadline() override {
        ++deadlines;
        if (cpu) cpu->request_interrupt_check();
        return false;
    }
    int acknowledge_interrupt() override {
        const int v = irq_vector;
        irq_vector = -1;
        return v;
    }
};

class BareMachine {
  public:
    static constexpr uint64_t kRamSize = 4 << 20;
    static constexpr uint64_t kCode = 0x10000;
    static constexpr uint64_t kStack = 0x80000;
    static constexpr uint64_t kIdt = 0x4000;
    static constexpr uint64_t kStubs = 0x20000;
    static constexpr uint8_t kVectorPort = 0x20;
    static constexpr uint64_t kDevice = kRamSize;  // share_with_device_page's MMIO page

    BareMachine() : ram_(static_cast<uint8_t*>(std::aligned_alloc(4096, kRamSize))), cpu_(owner_) {
        std::memset(ram_, 0, kRamSize);
        cpu_.add_ram(0, kRamSize, ram_);
        owner_.cpu = &cpu_;
        // Page tables: PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000, two 2 MiB pages.
        put64(0x1000, 0x2000 | PTE_P | PTE_RW);
        put64(0x2000, 0x3000 | PTE_P | PTE_RW);
        put64(0x3000, 0x000000 | PTE_P | PTE_RW | PTE_PS);
        put64(0x3008, 0x200000 | PTE_P | PTE_RW | PTE_PS);
        // GDT at 0x500: null, 64-bit code (0x08), data (0x10).
        put64(0x508, 0x00AF9A000000FFFFull);
        put64(0x510, 0x00CF92000000FFFFull);
        // IDT: every vector -> its stub, interrupt gate, selector 0x08.
        for (int v = 0; v < 256; ++v) {
            const uint64_t h = kStubs + v * 0x10;
            // mov %rsp,%rbx; mov $v,%eax; out %eax,$0x20; hlt
            const uint8_t stub[] = {0x48, 0x89, 0xE3,        0xB8, static_cast<uint8_t>(v), 0, 0,
                                    0,    0xE7, kVectorPort, 0xF4};
            std::memcpy(ram_ + h, stub, sizeof stub);
            const uint64_t lo =
                (h & 0xFFFF) | (0x08ull << 16) | (0x8Eull << 40) | ((h >> 16 & 0xFFFF) << 48);
            put64(kIdt + v * 16, lo);
            put64(kIdt + v * 16 + 8, h >> 32);
        }
        CpuState& s = cpu_.state();
        s.cr0 = CR0_PE | CR0_ET | CR0_PG | CR0_WP;
        s.cr3 = 0x1000;
        s.cr4 = CR4_PAE;
        s.efer = msr::EFER_LME | msr::EFER_LMA | msr::EFER_NXE;
        s.gdtr = {0x500, 0x17};
        s.idtr = {kIdt, 256 * 16 - 1};
        Segment cs;
        cs.selector = 0x08, cs.type = 0xB, cs.s = true, cs.present = true, cs.l = true;
        cs.limit = 0xFFFFFFFF, cs.g = true;
        Segment ds;
        ds.selector = 0x10, ds.type = 0x3, ds.s = true, ds.present = true, ds.db = true;
        ds.limit = 0xFFFFFFFF, ds.g = true;
        s.seg = {ds, cs, ds, ds, ds, ds};
        s.gpr[RSP] = kStack;
        s.rip = kCode;
        cpu_.state_changed();
    }
    ~BareMachine() { std::free(ram_); }
    BareMachine(const BareMachine&) = delete;
    BareMachine& operator=(const BareMachine&) = delete;

    void put64(uint64_t gpa, uint64_t v) { std::memcpy(ram_ + gpa, &v, 8); }

    // Maps [kDevice, kDevice + 2 MiB), just above RAM, with one more 2 MiB page (unbacked:
    // every access is MMIO), then gives `cpu` this machine's RAM and state, so a test runs
    // its own CPU with its own owner over the same memory.
    void share_with_device_page(Cpu& cpu) {
        put64(0x3010, kDevice | PTE_P | PTE_RW | PTE_PS);
        cpu.add_ram(0, kRamSize, ram_);
        cpu.state() = cpu_.state();
        cpu.state_changed();
    }

    // Makes all memory user-accessible and switches to CPL 3 (CS 0x23, SS 0x1b) with a
    // TSS at 0x6000 whose RSP0 is 0x70000.
    void enter_ring3() {
        for (uint64_t t : {0x1000, 0x2000, 0x3000}) put64(t, get64(t) | PTE_US);
        CpuState& s = cpu_.state();
        s.seg[CS].dpl = 3, s.seg[CS].selector = 0x23;
        s.seg[SS].dpl = 3, s.seg[SS].selector = 0x1b;
        s.tr.base = 0x6000;
        cpu_.state_changed();
        put64(0x6004, 0x70000);
    }
    uint64_t get64(uint64_t gpa) const {
        uint64_t v;
        std::memcpy(&v, ram_ + gpa, 8);
        return v;
    }
    template <size_t N>
    void load(const uint8_t (&code)[N], uint64_t at = kCode) {
        std::memcpy(ram_ + at, code, N);
    }
    // Vector reported by the exception stub, or -1.
    int vector_taken() const {
        for (const PortWrite& w : owner_.outs)
            if (w.port == kVectorPort) return static_cast<int>(w.value);
        return -1;
    }
    // The exception frame the stub saw (RBX): index 0 is the error code or RIP.
    uint64_t frame(int k) const { return get64(cpu_.state().gpr[RBX] + 8 * k); }

    uint8_t* ram_;
    RecordingOwner owner_;
    Cpu cpu_;
};

}  // namespace softkvm::cpu::test
