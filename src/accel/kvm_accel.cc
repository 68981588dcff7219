// The kvm accelerator: the accel interface on the host's /dev/kvm. The only code in
// softkvm that includes <linux/kvm.h> and issues KVM ioctls (docs/architecture.md "Layers").
// softkvm's ABI constants share their names with <linux/kvm.h>'s macros: take copies
// under other names before the kernel header defines the macros, then compare.
#include "accel/backends.h"

namespace softkvm::accel::mirror {
constexpr uint32_t exit_io = abi::KVM_EXIT_IO, exit_hlt = abi::KVM_EXIT_HLT,
                   exit_mmio = abi::KVM_EXIT_MMIO, exit_shutdown = abi::KVM_EXIT_SHUTDOWN,
                   exit_intr = abi::KVM_EXIT_INTR, exit_internal = abi::KVM_EXIT_INTERNAL_ERROR,
                   exit_fail_entry = abi::KVM_EXIT_FAIL_ENTRY,
                   exit_bus_lock = abi::KVM_EXIT_X86_BUS_LOCK,
                   emulation = abi::KVM_INTERNAL_ERROR_EMULATION,
                   cap_bus_lock = abi::KVM_CAP_X86_BUS_LOCK_EXIT;
constexpr uint8_t io_in = abi::KVM_EXIT_IO_IN, io_out = abi::KVM_EXIT_IO_OUT;
constexpr uint16_t run_bus_lock = abi::KVM_RUN_X86_BUS_LOCK;
constexpr uint64_t detection_exit = abi::KVM_BUS_LOCK_DETECTION_EXIT;
constexpr uint32_t ioapic_pins = abi::KVM_IOAPIC_NUM_PINS;
}  // namespace softkvm::accel::mirror

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <optional>
#include <vector>

#include "accel/kvm_cpuid.h"
#include "accel/kvm_probe.h"
#include "cpu/msr_index.h"

namespace softkvm::accel {

// The software path's constants are the kernel's (common/kvm_abi.h promises this).
static_assert(mirror::exit_io == KVM_EXIT_IO && mirror::exit_hlt == KVM_EXIT_HLT &&
              mirror::exit_mmio == KVM_EXIT_MMIO && mirror::exit_shutdown == KVM_EXIT_SHUTDOWN &&
              mirror::exit_intr == KVM_EXIT_INTR &&
              mirror::exit_internal == KVM_EXIT_INTERNAL_ERROR &&
              mirror::exit_fail_entry == KVM_EXIT_FAIL_ENTRY && mirror::io_in == KVM_EXIT_IO_IN &&
              mirror::io_out == KVM_EXIT_IO_OUT &&
              mirror::emulation == KVM_INTERNAL_ERROR_EMULATION);
#ifdef KVM_EXIT_X86_BUS_LOCK
static_assert(mirror::exit_bus_lock == KVM_EXIT_X86_BUS_LOCK);
static_assert(mirror::run_bus_lock == KVM_RUN_X86_BUS_LOCK);
static_assert(mirror::cap_bus_lock == KVM_CAP_X86_BUS_LOCK_EXIT);
static_assert(mirror::detection_exit == KVM_BUS_LOCK_DETECTION_EXIT);
static_assert(mirror::ioapic_pins == KVM_IOAPIC_NUM_PINS);
#endif

namespace {

constexpr int kApiVersion = 12;            // KVM_GET_API_VERSION of every stable kernel
constexpr uint64_t kTssAddr = 0xFFFBD000;  // VMX real-mode TSS: three pages below 4 GiB

Error sys_error(const std::string& what) {
    const int e = errno;
    return make_error(fmt::format("kvm: {}: {}", what, std::strerror(e)), e ? e : EIO);
}

class Fd {
  public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Fd& operator=(Fd&&) = delete;
    ~Fd() {
        if (fd_ >= 0) close(fd_);
    }
    int get() const { return fd_; }

  private:
    int fd_;
};

Segment from_kvm(const kvm_segment& s) {
    return abi::convert_segment<Segment>(s);
}
kvm_segment to_kvm(const Segment& s) {
    return abi::convert_segment<kvm_segment>(s);
}

// The signal that interrupts KVM_RUN on a vCPU's thread: sent by kick() (another vCPU's
// thread, or the SIGINT/SIGTERM handler) and by the vCPU's halt watchdog. The handler
// does nothing; KVM_RUN returns EINTR whether or not SA_RESTART is set, and other
// system calls of the thread restart.
int kick_signal() {
    static const int signo = [] {
        const int n = SIGRTMIN + 1;
        struct sigaction sa = {};
        sa.sa_handler = [](int) {};
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(n, &sa, nullptr);
        return n;
    }();
    return signo;
}

// A CLOCK_MONOTONIC timer that sends the kick signal to the thread that made it, for
// the life of a KvmVcpu::run: the watchdog (every 250 ms while a vCPU with the
// in-kernel LAPIC runs) and the VMM's device deadline (once, at an absolute time).
class KickTimer {
  public:
    KickTimer() = default;
    ~KickTimer() {
        if (armed_) timer_delete(timer_);
    }
    KickTimer(const KickTimer&) = delete;
    KickTimer& operator=(const KickTimer&) = delete;
    void every(long ns) {
        itimerspec t = {};
        t.it_interval.tv_nsec = t.it_value.tv_nsec = ns;
        arm(t, 0);
    }
    void at(uint64_t monotonic_ns) {
        itimerspec t = {};
        t.it_value.tv_sec = static_cast<time_t>(monotonic_ns / 1'000'000'000u);
        t.it_value.tv_nsec = static_cast<long>(monotonic_ns % 1'000'000'000u);
        arm(t, TIMER_ABSTIME);
    }

  private:
    void arm(const itimerspec& t, int flags) {
        sigevent ev = {};
        ev.sigev_notify = SIGEV_THREAD_ID;
        ev.sigev_signo = kick_signal();
        ev._sigev_un._tid = gettid();  // sigev_notify_thread_id (glibc 2.36 lacks the name)
        if (timer_create(CLOCK_MONOTONIC, &ev, &timer_) != 0) return;
        armed_ = true;
        timer_settime(timer_, flags, &t, nullptr);
    }
    timer_t timer_ = {};
    bool armed_ = false;
};

uint64_t monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// IA32_PERF_CAPABILITIES as the host's KVM offers it (KVM_GET_MSR_FEATURE_INDEX_LIST, then
// KVM_GET_MSRS on /dev/kvm), or nothing where KVM does not list it (AMD hosts, spec §2.3).
std::optional<uint64_t> host_perf_capabilities(int kvm_fd) {
    constexpr uint32_t kPerfCapabilities = cpu::msr::IA32_PERF_CAPABILITIES;
    std::vector<uint8_t> buf(sizeof(kvm_msr_list) + 1024 * sizeof(uint32_t), 0);
    auto* list = reinterpret_cast<kvm_msr_list*>(buf.data());
    list->nmsrs = 1024;
    if (ioctl(kvm_fd, KVM_GET_MSR_FEATURE_INDEX_LIST, list) < 0) return std::nullopt;
    bool listed = false;
    for (uint32_t k = 0; k < list->nmsrs; ++k) listed |= list->indices[k] == kPerfCapabilities;
    if (!listed) return std::nullopt;
    std::vector<uint8_t> mbuf(sizeof(kvm_msrs) + sizeof(kvm_msr_entry), 0);
    auto* msrs = reinterpret_cast<kvm_msrs*>(mbuf.data());
    msrs->nmsrs = 1;
    msrs->entries[0].index = kPerfCapabilities;
    if (ioctl(kvm_fd, KVM_GET_MSRS, msrs) != 1) return std::nullopt;
    return msrs->entries[0].data;
}

// The host's LBR format (0: none) as its KVM offers it to guests.
uint64_t host_lbr_format(int kvm_fd) {
    const auto caps = host_perf_capabilities(kvm_fd);
    return caps ? *caps & cpu::msr::PERF_CAP_LBR_FMT : 0;
}

// What --lbr-fmt would find on this host, in one line.
std::string host_lbr_detail(int kvm_fd) {
    const auto caps = host_perf_capabilities(kvm_fd);
    if (!caps) return "this host's KVM offers no IA32_PERF_CAPABILITIES (no Intel LBR)";
    if (!(*caps & cpu::msr::PERF_CAP_LBR_FMT))
        return "the host's PERF_CAPABILITIES has LBR format 0 (no LBR)";
    return fmt::format(
        "host LBR format {} (--lbr-fmt {} or 0 sets the guest's "
        "PERF_CAPABILITIES)",
        *caps & cpu::msr::PERF_CAP_LBR_FMT, *caps & cpu::msr::PERF_CAP_LBR_FMT);
}

class KvmVcpu final : public Vcpu {
  public:
    KvmVcpu(Fd fd, kvm_run* run, size_t run_size, bool irqchip)
        : fd_(std::move(fd)), run_(run), size_(run_size), irqchip_(irqchip) {
        (void)kick_signal();  // its handler is in place before kick() can run in one
    }
    ~KvmVcpu() override { munmap(run_, size_); }

    Status run() override {
        // Complete a port or MMIO read: the VMM stored the value in our record.
        if (pending_in_ && run_->exit_reason == KVM_EXIT_IO)
            std::memcpy(reinterpret_cast<uint8_t*>(run_) + run_->io.data_offset, state_.io.data,
                        run_->io.size);
        if (pending_in_ && run_->exit_reason == KVM_EXIT_MMIO)
            std::memcpy(run_->mmio.data, state_.mmio.data, run_->mmio.len);
        pending_in_ = false;
        thread_.store(pthread_self());
        in_run_.store(true);
        struct Leave {
            std::atomic<bool>& flag;
            ~Leave() { flag.store(false); }
        } leave{in_run_};
        // A kick between the last run() and this one (the VMM has not seen it yet).
        run_->immediate_exit = state_.immediate_exit;
        if (kicked_.exchange(false)) {
            state_.exit_reason = mirror::exit_intr;
            return {};
        }
        // With the in-kernel LAPIC a HLT blocks inside KVM_RUN; the watchdog lets us
        // notice a vCPU that halted with IF clear, or waits for a start-up IPI, which
        // only another vCPU could end (emu reports it as KVM_EXIT_HLT, so the VMM sees
        // the same ending on both accelerators).
        KickTimer watchdog, device;
        if (irqchip_) watchdog.every(250'000'000);
        if (deadline_ns_ != kNoDeadline) {
            if (monotonic_ns() >= deadline_ns_) {
                state_.exit_reason = mirror::exit_intr;
                return {};
            }
            device.at(deadline_ns_);
        }
        for (;;) {
            if (ioctl(fd_.get(), KVM_RUN, 0) == 0) break;
            // EAGAIN: an AP that waited for INIT/SIPI was woken; KVM_RUN again runs it.
            if (errno == EAGAIN) continue;
            if (errno != EINTR) return sys_error("KVM_RUN");
            if (kicked_.exchange(false) || state_.immediate_exit ||
                (deadline_ns_ != kNoDeadline && monotonic_ns() >= deadline_ns_)) {
                state_.exit_reason = mirror::exit_intr;
                return {};
            }
            if (irqchip_ && halted_for_good()) {
                state_.exit_reason = mirror::exit_hlt;
                state_.detail.clear();
                return {};
            }
        }
        state_.exit_reason = run_->exit_reason;
        state_.flags = run_->flags;
        state_.detail.clear();
        switch (run_->exit_reason) {
            case KVM_EXIT_IO:
                if (run_->io.count != 1)
                    return make_error("kvm: string I/O with a repeat count is not supported",
                                      ENOTSUP);
                state_.io = {};
                state_.io.direction = run_->io.direction;
                state_.io.size = run_->io.size;
                state_.io.port = run_->io.port;
                state_.io.count = run_->io.count;
                std::memcpy(state_.io.data, reinterpret_cast<uint8_t*>(run_) + run_->io.data_offset,
                            run_->io.size);
                pending_in_ = run_->io.direction == KVM_EXIT_IO_IN;
                break;
            case KVM_EXIT_MMIO:
                state_.mmio = {};
                state_.mmio.phys_addr = run_->mmio.phys_addr;
                state_.mmio.len = run_->mmio.len;
                state_.mmio.is_write = run_->mmio.is_write;
                std::memcpy(state_.mmio.data, run_->mmio.data, sizeof run_->mmio.data);
                pending_in_ = !run_->mmio.is_write;
                break;
            case KVM_EXIT_INTERNAL_ERROR:
                state_.internal.suberror = run_->internal.suberror;
                state_.detail =
                    fmt::format("KVM internal error, suberror {}", run_->internal.suberror);
                break;
            case KVM_EXIT_FAIL_ENTRY:
                state_.detail = fmt::format("VM entry failed, hardware reason {:#x}",
                                            run_->fail_entry.hardware_entry_failure_reason);
                break;
            case KVM_EXIT_SHUTDOWN:
                state_.detail = "triple fault (KVM does not report the fault chain)";
                break;
            default:
                break;
        }
        return {};
    }
    RunState& run_state() override { return state_; }

    Result<Regs> get_regs() override {
        kvm_regs r{};
        if (ioctl(fd_.get(), KVM_GET_REGS, &r) < 0) return sys_error("KVM_GET_REGS");
        Regs o;
        o.rax = r.rax, o.rbx = r.rbx, o.rcx = r.rcx, o.rdx = r.rdx, o.rsi = r.rsi, o.rdi = r.rdi;
        o.rsp = r.rsp, o.rbp = r.rbp, o.r8 = r.r8, o.r9 = r.r9, o.r10 = r.r10, o.r11 = r.r11;
        o.r12 = r.r12, o.r13 = r.r13, o.r14 = r.r14, o.r15 = r.r15, o.rip = r.rip;
        o.rflags = r.rflags;
        return o;
    }
    Status set_regs(const Regs& o) override {
        kvm_regs r{};
        r.rax = o.rax, r.rbx = o.rbx, r.rcx = o.rcx, r.rdx = o.rdx, r.rsi = o.rsi, r.rdi = o.rdi;
        r.rsp = o.rsp, r.rbp = o.rbp, r.r8 = o.r8, r.r9 = o.r9, r.r10 = o.r10, r.r11 = o.r11;
        r.r12 = o.r12, r.r13 = o.r13, r.r14 = o.r14, r.r15 = o.r15, r.rip = o.rip;
        r.rflags = o.rflags;
        if (ioctl(fd_.get(), KVM_SET_REGS, &r) < 0) return sys_error("KVM_SET_REGS");
        return {};
    }
    Result<SpecialRegs> get_sregs() override {
        kvm_sregs s{};
        if (ioctl(fd_.get(), KVM_GET_SREGS, &s) < 0) return sys_error("KVM_GET_SREGS");
        SpecialRegs o;
        o.cs = from_kvm(s.cs), o.ds = from_kvm(s.ds), o.es = from_kvm(s.es);
        o.fs = from_kvm(s.fs), o.gs = from_kvm(s.gs), o.ss = from_kvm(s.ss);
        o.tr = from_kvm(s.tr), o.ldt = from_kvm(s.ldt);
        o.gdt = {s.gdt.base, s.gdt.limit}, o.idt = {s.idt.base, s.idt.limit};
        o.cr0 = s.cr0, o.cr2 = s.cr2, o.cr3 = s.cr3, o.cr4 = s.cr4, o.cr8 = s.cr8;
        o.efer = s.efer, o.apic_base = s.apic_base;
        return o;
    }
    Status set_sregs(const SpecialRegs& o) override {
        kvm_sregs s{};
        if (ioctl(fd_.get(), KVM_GET_SREGS, &s) < 0) return sys_error("KVM_GET_SREGS");
        s.cs = to_kvm(o.cs), s.ds = to_kvm(o.ds), s.es = to_kvm(o.es);
        s.fs = to_kvm(o.fs), s.gs = to_kvm(o.gs), s.ss = to_kvm(o.ss);
        s.tr = to_kvm(o.tr), s.ldt = to_kvm(o.ldt);
        // KVM needs a usable TR and LDT descriptor cache for protected mode.
        if (!o.tr.present) s.tr.type = 11, s.tr.present = 1, s.tr.limit = 0x67, s.tr.unusable = 0;
        if (!o.ldt.present) s.ldt.type = 2, s.ldt.present = 1, s.ldt.limit = 0xFFFF;
        s.gdt.base = o.gdt.base, s.gdt.limit = o.gdt.limit;
        s.idt.base = o.idt.base, s.idt.limit = o.idt.limit;
        s.cr0 = o.cr0, s.cr2 = o.cr2, s.cr3 = o.cr3, s.cr4 = o.cr4, s.cr8 = o.cr8;
        s.efer = o.efer;
        if (o.apic_base) s.apic_base = o.apic_base;
        if (ioctl(fd_.get(), KVM_SET_SREGS, &s) < 0) return sys_error("KVM_SET_SREGS");
        return {};
    }
    // From the SIGINT/SIGTERM handler the signal itself interrupts KVM_RUN when it lands
    // on this vCPU's thread; otherwise the kick signal does. immediate_exit and kicked_
    // cover a kick that lands just before KVM_RUN, or between two run()s.
    void kick() override {
        kicked_.store(true);
        run_->immediate_exit = 1;
        if (in_run_.load()) pthread_kill(thread_.load(), kick_signal());
    }
    Status set_trace(TraceFn, uint64_t) override {
        return make_error("kvm: instruction traces need --accel emu", ENOTSUP);
    }
    uint64_t instructions_retired() const override { return 0; }
    Result<uint64_t> virtual_clock_ns() override {
        return make_error("kvm: guest time is the host's (no virtual clock)", ENOSYS);
    }
    Status advance_clock(uint64_t) override {
        return make_error("kvm: guest time is the host's (no virtual clock)", ENOSYS);
    }
    Status set_clock_deadline(uint64_t ns) override {
        deadline_ns_ = ns;
        return {};
    }
    // The kvm back end keeps the host's CPU. --lbr-fmt becomes the guest's
    // IA32_PERF_CAPABILITIES, a host-initiated KVM_SET_MSRS (spec §2.2, §2.3): the host's
    // value (its KVM's feature MSR) with LBR_FMT replaced; KVM itself refuses a format
    // other than the host's. Where the host has no LBR there is nothing to set: a format
    // is an error, 0 (no guest LBR) is what the guest has anyway.
    Status set_cpu_model(const std::string& model, int lbr_fmt) override {
        if (!model.empty())
            return make_error("kvm: --cpu-model needs --accel emu (kvm uses the host CPU)", EINVAL);
        if (lbr_fmt < 0) return {};
        Fd kvm(open("/dev/kvm", O_RDWR | O_CLOEXEC));
        if (kvm.get() < 0) return sys_error("open /dev/kvm");
        const auto host = host_perf_capabilities(kvm.get());
        const uint64_t host_fmt = host_lbr_format(kvm.get());
        if (!host_fmt) {
            if (lbr_fmt == 0) return {};
            return make_error("kvm: --lbr-fmt: " + host_lbr_detail(kvm.get()), ENODEV);
        }
        if (lbr_fmt != 0 && static_cast<uint64_t>(lbr_fmt) != host_fmt)
            return make_error(fmt::format("kvm: --lbr-fmt {} does not match the host's LBR "
                                          "format {} (0 hides guest LBR)",
                                          lbr_fmt, host_fmt),
                              EINVAL);
        std::vector<uint8_t> buf(sizeof(kvm_msrs) + sizeof(kvm_msr_entry), 0);
        auto* msrs = reinterpret_cast<kvm_msrs*>(buf.data());
        msrs->nmsrs = 1;
        msrs->entries[0].index = cpu::msr::IA32_PERF_CAPABILITIES;
        msrs->entries[0].data =
            (*host & ~cpu::msr::PERF_CAP_LBR_FMT) | static_cast<uint64_t>(lbr_fmt);
        if (ioctl(fd_.get(), KVM_SET_MSRS, msrs) != 1)
            return make_error(fmt::format("kvm: KVM_SET_MSRS refused IA32_PERF_CAPABILITIES "
                                          "{:#x} (does the guest CPUID have PDCM?)",
                                          msrs->entries[0].data),
                              ENODEV);
        return {};
    }
    Status set_instruction_limit(uint64_t) override {
        return make_error("kvm: instruction limits need --accel emu", ENOTSUP);
    }
    std::string dump_state() override {
        auto r = get_regs();
        auto s = get_sregs();
        if (!r || !s) return "(registers unavailable)\n";
        return fmt::format(
            "rip={:016x} rsp={:016x} rflags={:08x} cr0={:x} cr3={:x} cr4={:x} "
            "efer={:x}\n",
            r->rip, r->rsp, r->rflags, s->cr0, s->cr3, s->cr4, s->efer);
    }

  private:
    // Halted (KVM_MP_STATE_HALTED) with RFLAGS.IF clear, or an AP still waiting for
    // INIT/SIPI: only another vCPU (an NMI, INIT or start-up IPI) could wake it. The VMM
    // ends the run when every vCPU is in that state.
    bool halted_for_good() {
        kvm_mp_state mp{};
        if (ioctl(fd_.get(), KVM_GET_MP_STATE, &mp) < 0) return false;
        if (mp.mp_state == KVM_MP_STATE_UNINITIALIZED || mp.mp_state == KVM_MP_STATE_INIT_RECEIVED)
            return true;
        kvm_regs r{};
        if (ioctl(fd_.get(), KVM_GET_REGS, &r) < 0) return false;
        return mp.mp_state == KVM_MP_STATE_HALTED && !(r.rflags & (1u << 9));
    }

    Fd fd_;
    kvm_run* run_;
    size_t size_;
    bool irqchip_ = false;
    static constexpr uint64_t kNoDeadline = ~0ull;
    uint64_t deadline_ns_ = kNoDeadline;  // set_clock_deadline (CLOCK_MONOTONIC)
    std::atomic<bool> kicked_{false};
    std::atomic<bool> in_run_{false};  // a thread is inside run(): thread_ names it
    std::atomic<pthread_t> thread_{};
    RunState state_;
    bool pending_in_ = false;
};

class KvmVm final : public Vm {
  public:
    KvmVm(int kvm, Fd vm, bool irqchip) : kvm_(kvm), vm_(std::move(vm)), irqchip_(irqchip) {}

    Status set_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* host) override {
        kvm_userspace_memory_region r{};
        r.slot = slot;
        r.guest_phys_addr = gpa;
        r.memory_size = size;
        r.userspace_addr = reinterpret_cast<uint64_t>(host);
        if (ioctl(vm_.get(), KVM_SET_USER_MEMORY_REGION, &r) < 0)
            return sys_error("KVM_SET_USER_MEMORY_REGION");
        return {};
    }

    Result<std::unique_ptr<Vcpu>> create_vcpu(uint32_t id) override {
        Fd fd(ioctl(vm_.get(), KVM_CREATE_VCPU, id));
        if (fd.get() < 0) return sys_error("KVM_CREATE_VCPU");
        const int size = ioctl(kvm_, KVM_GET_VCPU_MMAP_SIZE, 0);
        if (size <= 0) return sys_error("KVM_GET_VCPU_MMAP_SIZE");
        void* run = mmap(nullptr, static_cast<size_t>(size), PROT_READ | PROT_WRITE, MAP_SHARED,
                         fd.get(), 0);
        if (run == MAP_FAILED) return sys_error("mmap kvm_run");
        // The guest sees the CPUID KVM supports on this host, with its own APIC ID and
        // without the bits --cpu-feature hides. Without KVM_SET_CPUID2 a vCPU has an empty
        // CPUID and cannot enable long mode.
        auto supported = kvm_supported_cpuid(kvm_);
        Status st = supported ? Status() : Status(supported.error());
        if (st) {
            for (kvm_cpuid_entry2& e : supported.value())
                for (const features::CpuidBit& b : hidden_)
                    features::clear_cpuid_bit(b, e.function, e.index, e);
            st = kvm_set_vcpu_cpuid(fd.get(), supported.value(), id);
        }
        if (!st) {
            munmap(run, static_cast<size_t>(size));
            return st.error();
        }
        return std::unique_ptr<Vcpu>(std::make_unique<KvmVcpu>(
            std::move(fd), static_cast<kvm_run*>(run), static_cast<size_t>(size), irqchip_));
    }

    uint64_t check_extension(uint32_t cap) override {
        const int r = ioctl(vm_.get(), KVM_CHECK_EXTENSION, cap);
        return r > 0 ? static_cast<uint64_t>(r) : 0;
    }
    Status enable_cap(uint32_t cap, uint64_t arg0) override {
        kvm_enable_cap c{};
        c.cap = cap;
        c.args[0] = arg0;
        if (ioctl(vm_.get(), KVM_ENABLE_CAP, &c) < 0) return sys_error("KVM_ENABLE_CAP");
        return {};
    }
    Status hide_cpuid_bit(const features::CpuidBit& b) override {
        hidden_.push_back(b);
        return {};
    }
    Status set_irq(uint32_t gsi, bool level) override {
        if (!irqchip_)
            return make_error("the VM has no in-kernel IOAPIC (KVM_CREATE_IRQCHIP failed)", ENODEV);
        if (gsi >= mirror::ioapic_pins)
            return make_error(fmt::format("interrupt line {} does not exist (GSI 0-{})", gsi,
                                          mirror::ioapic_pins - 1),
                              EINVAL);
        kvm_irq_level irq{};
        irq.irq = gsi;
        irq.level = level ? 1 : 0;
        if (ioctl(vm_.get(), KVM_IRQ_LINE, &irq) < 0) return sys_error("KVM_IRQ_LINE");
        return {};
    }

  private:
    int kvm_;
    Fd vm_;
    bool irqchip_;
    std::vector<features::CpuidBit> hidden_;
};

class KvmAccelerator final : public Accelerator {
  public:
    explicit KvmAccelerator(Fd kvm) : kvm_(std::move(kvm)) {}
    std::string name() const override { return "kvm"; }
    bool vcpu_threads() const override { return true; }

    Result<std::unique_ptr<Vm>> create_vm() override {
        Fd vm(ioctl(kvm_.get(), KVM_CREATE_VM, 0));
        if (vm.get() < 0) return sys_error("KVM_CREATE_VM");
        if (ioctl(vm.get(), KVM_SET_TSS_ADDR, kTssAddr) < 0) return sys_error("KVM_SET_TSS_ADDR");
        // The in-kernel interrupt controllers give guests their local APIC (timer, IPIs).
        const bool irqchip = ioctl(kvm_.get(), KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP) > 0 &&
                             ioctl(vm.get(), KVM_CREATE_IRQCHIP, 0) == 0;
        return std::unique_ptr<Vm>(std::make_unique<KvmVm>(kvm_.get(), std::move(vm), irqchip));
    }

    std::vector<Capability> capabilities() override {
        auto check = [&](long cap) { return ioctl(kvm_.get(), KVM_CHECK_EXTENSION, cap); };
        std::vector<Capability> out;
        out.push_back(long_mode());
        out.push_back({"local-apic", check(KVM_CAP_IRQCHIP) > 0, "in-kernel (KVM_CAP_IRQCHIP)"});
        // SMP needs the in-kernel LAPIC (INIT/SIPI) and more than one vCPU per VM.
        const int max_vcpus = check(KVM_CAP_MAX_VCPUS);
        out.push_back({"smp", check(KVM_CAP_IRQCHIP) > 0 && max_vcpus > 1,
                       fmt::format("up to {} vCPUs (--cpus), a thread each; KVM_CAP_MAX_VCPUS = {}",
                                   std::clamp(max_vcpus, 1, 8), max_vcpus)});
        out.push_back({"instruction-count", false, "not available on hardware virtualization"});
        const int bus_lock = check(mirror::cap_bus_lock);
        out.push_back(
            {"bus-lock-exit", bus_lock > 0 && (bus_lock & mirror::detection_exit),
             fmt::format("KVM_CAP_X86_BUS_LOCK_EXIT = {:#x}", bus_lock < 0 ? 0 : bus_lock)});
        out.push_back({"guest-lbr", host_lbr_format(kvm_.get()) != 0, host_lbr_detail(kvm_.get())});
        out.push_back(bus_lock_db());
        return out;
    }

  private:
    // Whether guests can enter 64-bit mode: measured by running a probe guest on a vCPU
    // made exactly as `softkvm run` makes them.
    Capability long_mode() {
        std::string listed;
        if (auto cpuid = kvm_supported_cpuid(kvm_.get()); !cpuid) {
            listed = cpuid.error().message;
        } else {
            const kvm_cpuid_entry2* ext = kvm_find_cpuid(cpuid.value(), 0x80000001);
            const bool lm = ext && (ext->edx & (1u << 29));  // CPUID.80000001H:EDX.LM
            listed =
                fmt::format("KVM_GET_SUPPORTED_CPUID: {} entries, {}", cpuid->size(),
                            lm ? "CPUID.80000001H:EDX.LM listed" : "no CPUID.80000001H:EDX.LM");
        }
        return kvm_probe_long_mode(*this, listed);
    }

    // The guest's bus-lock #DB is the host's: KVM offers CPUID.(7,0):ECX[24] when the CPU
    // has it, and handles DEBUGCTL bit 2 and DR6.BLD itself (spec §3).
    Capability bus_lock_db() {
        auto cpuid = kvm_supported_cpuid(kvm_.get());
        if (!cpuid) return {"bus-lock-db", false, cpuid.error().message};
        const features::CpuidBit& b = features::kBusLockDetect;
        static_assert(features::kBusLockDetect.reg == features::CpuidReg::Ecx);
        const kvm_cpuid_entry2* e = kvm_find_cpuid(cpuid.value(), b.leaf, b.subleaf);
        if (e && ((e->ecx >> b.bit) & 1))
            return {"bus-lock-db", true, "KVM offers CPUID.(7,0):ECX[24] BUS_LOCK_DETECT"};
        return {"bus-lock-db", false, "KVM does not offer CPUID.(7,0):ECX[24] BUS_LOCK_DETECT"};
    }

    Fd kvm_;
};

}  // namespace

Result<std::unique_ptr<Accelerator>> create_kvm_accelerator() {
    Fd kvm(open("/dev/kvm", O_RDWR | O_CLOEXEC));
    if (kvm.get() < 0) return sys_error("cannot open /dev/kvm");
    const int version = ioctl(kvm.get(), KVM_GET_API_VERSION, 0);
    if (version != kApiVersion)
        return make_error(
            fmt::format("kvm: API version {} (softkvm needs {})", version, kApiVersion), ENODEV);
    // Probe: a host that cannot create a VM has no usable kvm accelerator.
    Fd probe(ioctl(kvm.get(), KVM_CREATE_VM, 0));
    if (probe.get() < 0) return sys_error("KVM_CREATE_VM");
    return std::unique_ptr<Accelerator>(std::make_unique<KvmAccelerator>(std::move(kvm)));
}

}  // namespace softkvm::accel
