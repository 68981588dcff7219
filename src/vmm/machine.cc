#include "vmm/machine.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "vmm/acpi/acpi.h"
#include "vmm/linux_boot.h"
#include "vmm/multiboot.h"

namespace softkvm::vmm {

const char* end_name(End e) {
    switch (e) {
        case End::GuestExit:
            return "guest-exit";
        case End::Halted:
            return "halted";
        case End::InsnLimit:
            return "instruction-limit";
        case End::Shutdown:
            return "shutdown";
        case End::Stalled:
            return "stalled";
        case End::InternalError:
            return "internal-error";
        case End::Interrupted:
            return "interrupted";
        case End::Failure:
            return "failure";
        case End::Reset:
            return "reset";
        case End::PowerOff:
            return "power-off";
    }
    return "?";
}

const char* exit_reason_name(uint32_t r) {
    switch (r) {
        case abi::KVM_EXIT_IO:
            return "io";
        case abi::KVM_EXIT_HLT:
            return "hlt";
        case abi::KVM_EXIT_MMIO:
            return "mmio";
        case abi::KVM_EXIT_SHUTDOWN:
            return "shutdown";
        case abi::KVM_EXIT_INTR:
            return "intr";
        case abi::KVM_EXIT_INTERNAL_ERROR:
            return "internal-error";
        case abi::KVM_EXIT_FAIL_ENTRY:
            return "fail-entry";
        case abi::KVM_EXIT_X86_BUS_LOCK:
            return "bus-lock";
        case abi::KVM_EXIT_NOTIFY:
            return "notify";
        case abi::KVM_EXIT_DEBUG:
            return "debug";
        case abi::KVM_EXIT_EXCEPTION:
            return "exception";
        default:
            return "other";
    }
}

Platform::Platform(Uart16550::Sink console)
    : debug_exit(std::make_shared<DebugExit>()),
      uart(std::make_shared<Uart16550>(std::move(console))),
      fw_cfg(std::make_shared<FwCfg>()) {
    // Fixed, non-overlapping ranges: these adds cannot fail.
    (void)pio.add(Uart16550::kCom1, Uart16550::kPorts, uart);
    (void)pio.add(DebugExit::kPort, DebugExit::kPorts, debug_exit);
    (void)pio.add(FwCfg::kPort, FwCfg::kPorts, fw_cfg);
}

bool Platform::set_irq(uint32_t gsi, bool level) {
    if (!vm) return true;
    if (vm->set_irq(gsi, level)) return true;
    ++stats.refused_irqs;
    return false;
}

Dispatch dispatch_exit(abi::RunState& rs, Platform& p) {
    ++p.stats.exits[exit_reason_name(rs.exit_reason)];
    switch (rs.exit_reason) {
        case abi::KVM_EXIT_IO: {
            if (rs.io.size != 1 && rs.io.size != 2 && rs.io.size != 4)
                return {true, End::Failure, fmt::format("I/O exit with size {}", rs.io.size)};
            if (rs.io.direction == abi::KVM_EXIT_IO_OUT) {
                if (!p.pio.write(rs.io.port, rs.io.data, rs.io.size))
                    ++p.stats.unclaimed_ports[rs.io.port];  // ignored, as on a PC
            } else if (!p.pio.read(rs.io.port, rs.io.data, rs.io.size)) {
                ++p.stats.unclaimed_ports[rs.io.port];
                std::memset(rs.io.data, 0xFF, rs.io.size);  // floating bus
            }
            if (auto code = p.debug_exit->code()) return {true, End::GuestExit, ""};
            if (p.i8042 && p.i8042->reset_requested())
                return {true, End::Reset, "the guest reset the machine through the i8042"};
            if (p.acpi_pm && p.acpi_pm->power_off_requested())
                return {true, End::PowerOff, "the guest powered off (ACPI S5)"};
            return {};
        }
        case abi::KVM_EXIT_MMIO: {
            const uint8_t len = static_cast<uint8_t>(rs.mmio.len);
            if (len == 0 || len > 8)
                return {true, End::Failure, fmt::format("MMIO exit with length {}", len)};
            if (rs.mmio.is_write) {
                if (!p.mmio.write(rs.mmio.phys_addr, rs.mmio.data, len))
                    ++p.stats.unclaimed_mmio[rs.mmio.phys_addr & ~0xFFFull];
            } else if (!p.mmio.read(rs.mmio.phys_addr, rs.mmio.data, len)) {
                ++p.stats.unclaimed_mmio[rs.mmio.phys_addr & ~0xFFFull];
                std::memset(rs.mmio.data, 0xFF, len);
            }
            return {};
        }
        case abi::KVM_EXIT_X86_BUS_LOCK:
            return {};  // the policy acted on the run's flags (Machine::after_run)
        case abi::KVM_EXIT_HLT:
            return {true, End::Halted, "the guest halted with nothing to wake it"};
        case abi::KVM_EXIT_INTR:
            return {true, End::InsnLimit, ""};
        case abi::KVM_EXIT_SHUTDOWN:
            return {true, End::Shutdown, rs.detail};
        case abi::KVM_EXIT_NOTIFY:
            // A guest that no instruction of can retire (docs/architecture.md, "Event
            // loops that retire nothing"): it would never end, --max-insns or not.
            return {true, End::Stalled,
                    rs.detail.empty() ? "the vCPU made no progress (KVM notify exit)" : rs.detail};
        case abi::KVM_EXIT_INTERNAL_ERROR:
            return {true, End::InternalError,
                    fmt::format("suberror {}: {}", rs.internal.suberror, rs.detail)};
        default:
            return {true, End::Failure,
                    fmt::format("unhandled exit reason {} ({})", rs.exit_reason,
                                exit_reason_name(rs.exit_reason))};
    }
}

namespace {

// --kernel with a bzImage or vmlinux: the initrd file and the Linux boot protocol.
Result<LinuxImage> load_linux_kernel(const MachineConfig& cfg, const std::string& path,
                                     const std::vector<uint8_t>& file, uint64_t rsdp,
                                     GuestMemory& mem) {
    std::vector<uint8_t> initrd;
    LinuxBootParams lb;
    lb.cmdline = cfg.append;
    lb.rsdp = rsdp;
    if (!cfg.initrd_file.empty()) {
        auto data = read_file(cfg.initrd_file, "initrd");
        if (!data) return make_error("--initrd: " + data.error().message, data.error().code);
        initrd = std::move(data).value();
        lb.initrd = &initrd;
    }
    return load_linux(file, path, mem, lb);
}

}  // namespace

Machine::Machine(GuestMemory mem, Uart16550::Sink console)
    : mem_(std::move(mem)), platform_(std::move(console)) {}

Result<std::unique_ptr<Machine>> Machine::create(const MachineConfig& cfg,
                                                 const std::string& image_path,
                                                 Uart16550::Sink console) {
    auto file = read_file(image_path);
    if (!file) return file.error();
    auto mem = GuestMemory::create(cfg.memory);
    if (!mem) return mem.error();
    std::unique_ptr<Machine> m(new Machine(std::move(mem).value(), std::move(console)));
    const bool linux = cfg.kernel && detect_kernel(file.value()) != KernelKind::Multiboot;
    // As QEMU: the command line is the image's name, a space, and --append's text.
    BootParams boot;
    boot.cmdline = image_path + " " + cfg.append;
    for (const ModuleSpec& spec : cfg.modules) {
        if (linux) break;
        auto data = read_file(spec.path, "multiboot module");
        if (!data) return make_error("--initrd: " + data.error().message, data.error().code);
        boot.modules.push_back({std::move(data).value(), spec.cmdline});
    }
    // The ACPI tables go in first: an image over the BIOS area wins, as over the boot data.
    const acpi::Tables tables = acpi::build({cfg.cpus, true});
    m->mem_.write(tables.base, tables.bytes.data(), tables.bytes.size());
    // The devices' clock (PM timer, PIT, RTC): the BSP's virtual clock on emu, the host's
    // monotonic clock since now on kvm.
    Machine* self = m.get();
    const auto start = std::chrono::steady_clock::now();
    m->host_clock_base_ = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(start.time_since_epoch()).count());
    m->device_clock_ = [self, start]() -> uint64_t {
        if (self->virtual_time_) return self->vcpu_->virtual_clock_ns().value();
        return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::steady_clock::now() - start)
                                         .count());
    };
    m->platform_.acpi_pm = std::make_shared<AcpiPm>(m->device_clock_);
    (void)m->platform_.pio.add(AcpiPm::kPort, AcpiPm::kPorts, m->platform_.acpi_pm);
    if (auto st = m->platform_.add_pc_devices(m->device_clock_); !st) return st.error();
    std::optional<LinuxImage> linux_image;
    if (linux) {
        auto li = load_linux_kernel(cfg, image_path, file.value(), tables.base, m->mem_);
        if (!li) return li.error();
        linux_image = li.value();
    }
    auto img = linux ? Result<LoadedImage>(LoadedImage{})
                     : load_multiboot(file.value(), image_path, m->mem_, boot);
    if (!img) return img.error();
    populate_fw_cfg(*m->platform_.fw_cfg,
                    {cfg.memory, static_cast<uint16_t>(cfg.cpus), static_cast<uint16_t>(cfg.cpus)});
    if (cfg.pc_testdev) {
        if (m->mem_.size() > PcTestdev::kWindow)
            return make_error(
                fmt::format("--device pc-testdev: its window at {:#x} would lie in "
                            "guest RAM ({} MiB); use --memory {}M or less",
                            PcTestdev::kWindow, m->mem_.size() >> 20, PcTestdev::kWindow >> 20),
                EINVAL);
        Platform* p = &m->platform_;
        m->platform_.testdev =
            std::make_unique<PcTestdev>([p](uint32_t gsi, bool level) { p->set_irq(gsi, level); });
        if (auto st = m->platform_.testdev->attach(m->platform_.pio, m->platform_.mmio); !st)
            return st.error();
    }
    m->image_ = img.value();
    if (linux_image) {
        m->image_.entry = static_cast<uint32_t>(linux_image->entry);
        m->image_.low = linux_image->kernel_low;
        m->image_.high = linux_image->kernel_high;
    }
    m->symbols_ = SymbolTable::from_elf(file.value());

    // Accelerator failures are reported as ENODEV: "this host cannot run it".
    auto accel = accel::create_accelerator(cfg.accel);
    if (!accel) return make_error(accel.error().message, ENODEV);
    m->accel_ = std::move(accel).value();
    auto vm = m->accel_->create_vm();
    if (!vm) return make_error(vm.error().message, ENODEV);
    m->vm_ = std::move(vm).value();
    m->platform_.vm = m->vm_.get();
    if (auto st = m->vm_->set_memory_region(0, 0, m->mem_.size(), m->mem_.host()); !st)
        return st.error();
    for (const features::CpuidBit& b : cfg.hidden_cpuid)
        if (auto st = m->vm_->hide_cpuid_bit(b); !st) return make_error(st.error().message, ENODEV);
    if (cfg.bus_lock_ratelimit) {
        // As QEMU and crosvm do: the limit needs the exit, and a host without it refuses.
        const uint64_t modes = m->vm_->check_extension(abi::KVM_CAP_X86_BUS_LOCK_EXIT);
        if (!(modes & abi::KVM_BUS_LOCK_DETECTION_EXIT))
            return make_error(fmt::format("--bus-lock-ratelimit needs KVM_CAP_X86_BUS_LOCK_EXIT "
                                          "(KVM_BUS_LOCK_DETECTION_EXIT), which the {} "
                                          "accelerator on this host does not offer",
                                          cfg.accel),
                              ENODEV);
        if (auto st = m->vm_->enable_cap(abi::KVM_CAP_X86_BUS_LOCK_EXIT,
                                         abi::KVM_BUS_LOCK_DETECTION_EXIT);
            !st)
            return make_error(st.error().message, ENODEV);
        m->bus_lock_ = std::make_unique<BusLockPolicy>(*cfg.bus_lock_ratelimit);
    }
    auto vcpu = m->vm_->create_vcpu(0);
    if (!vcpu) return make_error(vcpu.error().message, ENODEV);
    m->vcpu_ = std::move(vcpu).value();
    m->virtual_time_ = static_cast<bool>(m->vcpu_->virtual_clock_ns());
    m->max_insns_ = cfg.max_insns;
    for (uint32_t id = 1; id < cfg.cpus; ++id) {
        auto ap = m->vm_->create_vcpu(id);
        if (!ap) return make_error(ap.error().message, ENODEV);
        m->aps_.push_back(std::move(ap).value());
    }
    if (!cfg.cpu_model.empty() || cfg.lbr_fmt >= 0) {
        if (auto st = m->vcpu_->set_cpu_model(cfg.cpu_model, cfg.lbr_fmt); !st) return st.error();
        for (auto& ap : m->aps_)
            if (auto st = ap->set_cpu_model(cfg.cpu_model, cfg.lbr_fmt); !st) return st.error();
    }
    if (!cfg.engine.empty()) {
        if (auto st = m->vcpu_->set_engine(cfg.engine); !st) return st.error();
        for (auto& ap : m->aps_)
            if (auto st = ap->set_engine(cfg.engine); !st) return st.error();
    }
    if (cfg.max_insns && cfg.cpus == 1)
        if (auto st = m->vcpu_->set_instruction_limit(cfg.max_insns); !st) return st.error();
    if (cfg.trace && cfg.trace_sink) {
        auto sink = cfg.trace_sink;
        auto st = m->vcpu_->set_trace(
            [sink](uint64_t rip, const std::string& text) {
                sink(fmt::format("{:016x}  {}", rip, text));
            },
            cfg.trace);
        if (!st) return st.error();
    }

    if (linux_image) {
        if (auto st = set_linux_entry_state(*m->vcpu_, *linux_image); !st) return st.error();
        return m;
    }
    // Entry state (multiboot §3.2): flat 32-bit protected mode, paging off, IF clear.
    auto sregs = m->vcpu_->get_sregs();
    if (!sregs) return sregs.error();
    accel::SpecialRegs s = sregs.value();
    auto flat = [](uint16_t sel, uint8_t type) {
        accel::Segment seg;
        seg.base = 0, seg.limit = 0xFFFFFFFF, seg.selector = sel, seg.type = type;
        seg.present = 1, seg.dpl = 0, seg.db = 1, seg.s = 1, seg.l = 0, seg.g = 1;
        return seg;
    };
    s.cs = flat(0x08, 0xB);
    s.ds = s.es = s.fs = s.gs = s.ss = flat(0x10, 0x3);
    s.cr0 = 0x11;  // PE | ET
    s.cr3 = s.cr4 = s.efer = 0;
    if (auto st = m->vcpu_->set_sregs(s); !st) return st.error();
    accel::Regs r;
    r.rax = multiboot::kBootMagic;
    r.rbx = m->image_.info_addr;
    r.rip = m->image_.entry;
    r.rflags = 0x2;
    if (auto st = m->vcpu_->set_regs(r); !st) return st.error();
    return m;
}

// Several vCPUs take turns on this thread, each for a quantum of instructions, in a
// fixed order: runs stay deterministic and locked instructions atomic.
RunReport Machine::run_smp() {
    constexpr uint64_t kQuantum = 20000;
    RunReport rep;
    std::vector<accel::Vcpu*> all = {vcpu_.get()};
    for (auto& ap : aps_) all.push_back(ap.get());
    auto total = [&] {
        uint64_t n = 0;
        for (accel::Vcpu* v : all) n += v->instructions_retired();
        return n;
    };
    const auto t0 = std::chrono::steady_clock::now();
    bool done = false;
    while (!done) {
        bool progress = false;
        for (accel::Vcpu* v : all) {
            const uint64_t before = v->instructions_retired();
            (void)v->set_instruction_limit(before + kQuantum);
            if (v == vcpu_.get()) arm_pit();
            if (auto st = v->run(); !st) {
                rep.end = End::Failure;
                rep.detail = st.error().message;
                done = true;
                break;
            }
            if (stop_signal_) {
                rep.end = End::Interrupted;
                rep.stop_signal = stop_signal_;
                done = true;
                break;
            }
            abi::RunState& rs = v->run_state();
            rs.immediate_exit = 0;
            if (auto st = after_run(*v); !st) {
                rep.end = End::Failure;
                rep.detail = st.error().message;
                done = true;
                break;
            }
            if (v->instructions_retired() != before) progress = true;
            if (v == vcpu_.get() && pit_deadline_passed()) {
                progress = true;  // virtual time moved on to the PIT's event
                continue;
            }
            // A spent quantum, or a vCPU that waits (HLT, or for its start-up IPI).
            if (rs.exit_reason == abi::KVM_EXIT_INTR || rs.exit_reason == abi::KVM_EXIT_HLT)
                continue;
            progress = true;
            Dispatch d = dispatch_exit(rs, platform_);
            if (d.stop) {
                rep.end = d.end;
                rep.detail = d.detail;
                if (d.end == End::Shutdown || d.end == End::Stalled || d.end == End::InternalError)
                    rep.state = v->dump_state();
                done = true;
                break;
            }
        }
        if (done) break;
        if (!progress) {
            rep.end = End::Halted;
            rep.detail = "every vCPU halted with nothing to wake it";
            break;
        }
        if (max_insns_ && total() >= max_insns_) {
            rep.end = End::InsnLimit;
            break;
        }
    }
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rep.instructions = total();
    if (auto code = platform_.debug_exit->code()) rep.guest_code = *code;
    rep.stats = platform_.stats;
    collect_counters(rep);
    finish_report(rep);
    return rep;
}

void Machine::collect_counters(RunReport& rep) const {
    rep.counters = vcpu_->counters();
    for (const auto& ap : aps_) {
        const accel::Vcpu::Counters more = ap->counters();
        for (size_t k = 0; k < more.size() && k < rep.counters.size(); ++k)
            rep.counters[k].second += more[k].second;
    }
}

RunReport Machine::run() {
    if (!aps_.empty()) return accel_->vcpu_threads() ? run_threads() : run_smp();
    RunReport rep;
    // A sampler stops the vCPU at its next sample point (or at --max-insns, if sooner).
    uint64_t next_sample = vcpu_->instructions_retired() + sample_period_;
    auto arm_sampler = [&] {
        (void)vcpu_->set_instruction_limit(max_insns_ ? std::min(max_insns_, next_sample)
                                                      : next_sample);
    };
    if (sample_period_) arm_sampler();
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
        arm_pit();
        if (auto st = vcpu_->run(); !st) {
            rep.end = End::Failure;
            rep.detail = st.error().message;
            break;
        }
        if (stop_signal_) {
            rep.end = End::Interrupted;
            rep.stop_signal = stop_signal_;
            break;
        }
        vcpu_->run_state().immediate_exit = 0;
        if (auto st = after_run(*vcpu_); !st) {
            rep.end = End::Failure;
            rep.detail = st.error().message;
            break;
        }
        if (sample_period_ && vcpu_->run_state().exit_reason == abi::KVM_EXIT_INTR &&
            vcpu_->instructions_retired() >= next_sample) {
            sampler_(*vcpu_);
            next_sample += sample_period_;
            if (!max_insns_ || vcpu_->instructions_retired() < max_insns_) {
                arm_sampler();
                continue;
            }
        }
        if (input_ && serial_input_step()) continue;
        if (pit_deadline_passed()) continue;
        Dispatch d = dispatch_exit(vcpu_->run_state(), platform_);
        if (d.stop) {
            rep.end = d.end;
            rep.detail = d.detail;
            break;
        }
    }
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rep.instructions = vcpu_->instructions_retired();
    if (auto code = platform_.debug_exit->code()) rep.guest_code = *code;
    if (rep.end == End::Shutdown || rep.end == End::Stalled || rep.end == End::InternalError ||
        rep.end == End::Failure)
        rep.state = vcpu_->dump_state();
    rep.stats = platform_.stats;
    collect_counters(rep);
    finish_report(rep);
    return rep;
}

Status Machine::set_sampler(uint64_t period, Sampler fn) {
    if (!period || !fn) return make_error("a sampler needs a period and a function", EINVAL);
    if (!aps_.empty())
        return make_error("host-side sampling supports one vCPU (no --cpus above 1)", EINVAL);
    if (auto st = vcpu_->set_instruction_limit(max_insns_); !st)
        return make_error("host-side sampling counts instructions: it needs --accel emu", EINVAL);
    sample_period_ = period;
    sampler_ = std::move(fn);
    return {};
}

void Machine::attach_serial_input(std::shared_ptr<SerialInput> input) {
    input_ = std::move(input);
    accel::Vcpu* v = vcpu_.get();
    input_->set_kick([v] { v->kick(); });
}

// Terminal input: the UART takes what fits in its FIFO; a kick for input is no
// instruction limit; a guest halted with interrupts on and nothing else to wake it waits
// for the next key while the terminal is open (with interrupts off, no key can wake it).
bool Machine::serial_input_step() {
    constexpr uint64_t kFlagIf = 1u << 9;
    input_->feed(*platform_.uart);
    const abi::RunState& rs = vcpu_->run_state();
    if (rs.exit_reason == abi::KVM_EXIT_INTR && input_->take_kick()) return true;
    auto regs = rs.exit_reason == abi::KVM_EXIT_HLT ? vcpu_->get_regs()
                                                    : Result<accel::Regs>(accel::Regs{});
    if (rs.exit_reason == abi::KVM_EXIT_HLT && input_->open() && regs && (regs->rflags & kFlagIf)) {
        input_->wait(&stop_signal_);
        input_->feed(*platform_.uart);
        return true;
    }
    return false;
}

void Machine::arm_pit() {
    if (!platform_.pit) return;
    platform_.pit->update();
    const uint64_t next = platform_.pit->next_irq0_change();
    if (next == pit_deadline_) return;
    // kvm's deadlines are CLOCK_MONOTONIC (steady_clock) times.
    const bool host_time = next != Pit::kNever && !virtual_time_;
    (void)vcpu_->set_clock_deadline(host_time ? host_clock_base_ + next : next);
    pit_deadline_ = next;
}

bool Machine::pit_deadline_passed() {
    // (Once it passed, arm_pit gives the next one: OUT's next change is later.)
    return pit_deadline_ != Pit::kNever && vcpu_->run_state().exit_reason == abi::KVM_EXIT_INTR &&
           device_clock_() >= pit_deadline_;
}

Status Machine::after_run(accel::Vcpu& v) {
    const abi::RunState& rs = v.run_state();
    if (!bus_lock_ || !(rs.flags & abi::KVM_RUN_X86_BUS_LOCK)) return {};
    auto vclock = v.virtual_clock_ns();
    if (vclock) {
        // emu: the delay is virtual time the vCPU spends stalled; runs stay repeatable.
        const uint64_t delay = bus_lock_->on_bus_lock(rs, vclock.value());
        return delay ? v.advance_clock(delay) : Status{};
    }
    // kvm: the vCPU thread sleeps, as QEMU's does.
    const auto now = std::chrono::steady_clock::now().time_since_epoch();
    const uint64_t delay = bus_lock_->on_bus_lock(
        rs,
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count()));
    if (delay) std::this_thread::sleep_for(std::chrono::nanoseconds(delay));
    return {};
}

void Machine::finish_report(RunReport& rep) {
    if (!bus_lock_) return;
    BusLockReport b;
    b.limit = bus_lock_->limit();
    b.stats = bus_lock_->stats();
    std::vector<std::pair<uint64_t, uint64_t>> sites(b.stats.by_rip.begin(), b.stats.by_rip.end());
    std::stable_sort(sites.begin(), sites.end(),
                     [](const auto& a, const auto& c) { return a.second > c.second; });
    constexpr size_t kTopSites = 10;
    for (size_t k = 0; k < sites.size() && k < kTopSites; ++k)
        b.top.push_back({sites[k].first, sites[k].second, symbols_.describe(sites[k].first)});
    rep.bus_locks = std::move(b);
}

}  // namespace softkvm::vmm
