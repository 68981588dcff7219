// The machine: guest memory, the PIO and MMIO buses with their devices, one vCPU on an
// accelerator, and the run loop. The exit dispatcher is a pure function of the exit
// record and the buses (style.md), unit-tested with synthetic exits.
#pragma once
#include <csignal>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "accel/accel.h"
#include "common/cpu_features.h"
#include "vmm/bus.h"
#include "vmm/bus_lock.h"
#include "vmm/devices/acpi_pm.h"
#include "vmm/devices/debug_exit.h"
#include "vmm/devices/fw_cfg.h"
#include "vmm/devices/i8042.h"
#include "vmm/devices/pc_testdev.h"
#include "vmm/devices/pci_host.h"
#include "vmm/devices/pit.h"
#include "vmm/devices/port80.h"
#include "vmm/devices/rtc.h"
#include "vmm/devices/uart16550.h"
#include "vmm/loader.h"
#include "vmm/memory.h"
#include "vmm/serial_input.h"
#include "vmm/symbols.h"

namespace softkvm::vmm {

struct MachineConfig {
    std::string accel = "emu";
    uint64_t memory = 128ull << 20;
    uint64_t max_insns = 0;  // 0: no limit (emu only)
    uint32_t cpus = 1;       // vCPUs; APs wait for INIT/SIPI (more than one: emu only)
    uint64_t trace = 0;      // trace the first N instructions to `trace_sink` (emu only)
    std::string cpu_model;   // "" = the accelerator's default
    int lbr_fmt = -1;        // -1 = the model's; 0 hides guest LBR
    std::string engine;      // emu's engine (--engine); "" = the default (interp)
    std::function<void(const std::string&)> trace_sink;
    // Bus-lock exits with a VM-wide limit of N per second (0: count without a limit);
    // unset: the capability is left off.
    std::optional<uint64_t> bus_lock_ratelimit;
    // CPUID bits the guest must not see (--cpu-feature -NAME).
    std::vector<features::CpuidBit> hidden_cpuid;
    // The multiboot command line after the image's name (--append; QEMU's -append).
    std::string append;
    // Multiboot modules (--initrd; QEMU's -initrd), in order.
    std::vector<ModuleSpec> modules;
    // QEMU's pc-testdev (--device pc-testdev).
    bool pc_testdev = false;
    // The image came from --kernel: a bzImage or vmlinux boots Linux (with `initrd_file`
    // and `append` as its command line), a multiboot image boots as before.
    bool kernel = false;
    std::string initrd_file;  // --initrd as given (a Linux kernel takes one file)
};

// How a run ended.
enum class End {
    GuestExit,      // the guest wrote its exit code to the debug-exit port
    Halted,         // HLT with nothing that can wake the vCPU
    InsnLimit,      // --max-insns reached
    Shutdown,       // triple fault
    Stalled,        // events delivered again and again with no instruction retiring
    InternalError,  // the accelerator could not emulate something
    Interrupted,    // request_stop(): the VMM was told to stop (SIGINT, SIGTERM)
    Reset,          // the guest pulsed the reset line (i8042 command 0xFE: a reboot)
    PowerOff,       // the guest entered ACPI S5 (soft-off) through PM1a control
    Failure,        // the accelerator itself failed, or an exit softkvm does not handle
};
const char* end_name(End e);

struct Stats {
    std::map<std::string, uint64_t> exits;         // by exit reason name
    std::map<uint16_t, uint64_t> unclaimed_ports;  // accesses no device claimed
    std::map<uint64_t, uint64_t> unclaimed_mmio;   // by page
    uint64_t refused_irqs = 0;                     // set_irq() calls the VM refused
};

// The bus-lock policy's account of a run (--bus-lock-ratelimit).
struct BusLockReport {
    uint64_t limit = 0;  // per second; 0: none
    BusLockStats stats;
    struct Site {
        uint64_t rip, count;
        std::string symbol;  // "" when the image has no symbol there
    };
    std::vector<Site> top;  // the most frequent RIPs, most frequent first
};

struct RunReport {
    End end = End::Failure;
    uint32_t guest_code = 0;
    int stop_signal = 0;  // End::Interrupted: the signal number given to request_stop()
    uint64_t instructions = 0;
    double seconds = 0;
    std::string detail;  // fault chain, emulation failure, or failing call
    std::string state;   // register dump for SHUTDOWN / internal errors
    Stats stats;
    accel::Vcpu::Counters counters;  // the back end's, summed over the vCPUs
    std::optional<BusLockReport> bus_locks;
};

// The devices and buses of a machine, separate from the vCPU so that exits can be
// dispatched without one.
struct Platform {
    Bus pio, mmio;
    std::shared_ptr<DebugExit> debug_exit;
    std::shared_ptr<Uart16550> uart;
    std::shared_ptr<FwCfg> fw_cfg;
    std::shared_ptr<AcpiPm> acpi_pm;
    std::unique_ptr<PcTestdev> testdev;  // --device pc-testdev
    // The legacy PC devices (add_pc_devices()).
    std::shared_ptr<Pit> pit;
    std::shared_ptr<Rtc> rtc;
    std::shared_ptr<I8042> i8042;
    std::shared_ptr<Port80> port80;
    std::shared_ptr<PciHost> pci_host;
    Stats stats;
    // The VM whose interrupt lines set_irq() drives (null: lines go nowhere, as in unit
    // tests of the dispatcher).
    accel::Vm* vm = nullptr;

    explicit Platform(Uart16550::Sink console);
    // Devices' interrupt lines: asserts or deasserts GSI `gsi` (IOAPIC pin; a device on
    // ISA IRQ n uses acpi::isa_irq_to_gsi(n)). Edge-triggered devices assert and then
    // deassert the line; level-triggered ones hold it until served. Returns false (and
    // counts it in stats) for a line the accelerator refused.
    bool set_irq(uint32_t gsi, bool level);
    // The PIT (with port 0x61), CMOS RTC, i8042 and port 0x80, timed by `clock_ns`.
    Status add_pc_devices(std::function<uint64_t()> clock_ns);
};

// What the run loop does after an exit.
struct Dispatch {
    bool stop = false;
    End end = End::Failure;
    std::string detail;
};

// Handles one exit: I/O and MMIO go to the buses (an IN or MMIO read stores its data in
// `rs` for the next run), everything else ends the run with a reason.
Dispatch dispatch_exit(abi::RunState& rs, Platform& p);

const char* exit_reason_name(uint32_t reason);

class Machine {
  public:
    // Creates guest memory, loads the multiboot image at `image_path`, and prepares the
    // vCPU in the multiboot entry state. Console output goes to `console`.
    static Result<std::unique_ptr<Machine>> create(const MachineConfig& cfg,
                                                   const std::string& image_path,
                                                   Uart16550::Sink console);
    RunReport run();
    const LoadedImage& image() const { return image_; }
    // The bootstrap processor (for host-side tools such as the LBR profiler).
    accel::Vcpu& boot_vcpu() { return *vcpu_; }
    // Calls `fn` each time `period` more instructions (as --max-insns counts them) have
    // retired on the bootstrap processor: exact points in virtual time, for host-side
    // samplers such as `softkvm profile --lbr`. emu with one vCPU only (EINVAL otherwise).
    using Sampler = std::function<void(accel::Vcpu&)>;
    Status set_sampler(uint64_t period, Sampler fn);
    // Terminal input for the serial port (serial_input.h); single-vCPU runs only.
    void attach_serial_input(std::shared_ptr<SerialInput> input);
    // Ends run() soon with End::Interrupted. Async-signal-safe.
    void request_stop(int signo) {
        stop_signal_ = signo;
        if (vcpu_) vcpu_->kick();
        for (auto& ap : aps_) ap->kick();
    }

  private:
    Machine(GuestMemory mem, Uart16550::Sink console);

    GuestMemory mem_;
    Platform platform_;
    std::unique_ptr<accel::Accelerator> accel_;
    std::unique_ptr<accel::Vm> vm_;
    std::unique_ptr<accel::Vcpu> vcpu_;              // the bootstrap processor
    std::vector<std::unique_ptr<accel::Vcpu>> aps_;  // application processors
    uint64_t max_insns_ = 0;
    uint64_t sample_period_ = 0;  // set_sampler()
    Sampler sampler_;
    RunReport run_smp();
    RunReport run_threads();  // vcpu_threads.cc
    void collect_counters(RunReport& rep) const;
    // After each run of `v`: the bus-lock policy (delay, statistics).
    Status after_run(accel::Vcpu& v);
    void finish_report(RunReport& rep);
    std::unique_ptr<BusLockPolicy> bus_lock_;
    std::shared_ptr<SerialInput> input_;
    bool serial_input_step();
    // PIT channel 0's OUT drives IRQ 0 when it changes: before each run of the bootstrap
    // processor, IRQ 0 follows OUT and the run is given OUT's next change as its clock
    // deadline (accel::Vcpu::set_clock_deadline: virtual time on emu, host time on kvm).
    void arm_pit();
    // Whether the run of the bootstrap processor that just ended was ended by that
    // deadline (then it is no stop: the loop runs on).
    bool pit_deadline_passed();
    uint64_t pit_deadline_ = Pit::kNever;     // the deadline given to the vCPU
    std::function<uint64_t()> device_clock_;  // nanoseconds (see Machine::create)
    uint64_t host_clock_base_ = 0;            // steady_clock at device_clock_'s 0 (kvm)
    bool virtual_time_ = false;               // the devices' clock is the BSP's virtual clock (emu)
    SymbolTable symbols_;
    LoadedImage image_;
    volatile sig_atomic_t stop_signal_ = 0;
};

}  // namespace softkvm::vmm
