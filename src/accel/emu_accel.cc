// The emu accelerator: the accel interface over softkvm's hv layer and software CPU.
#include <cerrno>

#include <fmt/format.h>

#include "accel/backends.h"
#include "cpu/msr_index.h"
#include "hv/vm.h"

namespace softkvm::accel {
namespace {

class EmuVcpu final : public Vcpu {
  public:
    explicit EmuVcpu(std::unique_ptr<hv::Vcpu> v) : v_(std::move(v)) {}
    Status run() override {
        v_->run();
        return {};
    }
    RunState& run_state() override { return v_->run_state(); }
    Result<Regs> get_regs() override { return v_->get_regs(); }
    Status set_regs(const Regs& r) override {
        v_->set_regs(r);
        return {};
    }
    Result<SpecialRegs> get_sregs() override { return v_->get_sregs(); }
    Status set_sregs(const SpecialRegs& s) override { return v_->set_sregs(s); }
    uint64_t instructions_retired() const override { return v_->instructions_retired(); }
    Status set_instruction_limit(uint64_t limit) override {
        v_->set_instruction_limit(limit);
        return {};
    }
    void kick() override { v_->kick(); }
    Result<uint64_t> virtual_clock_ns() override { return v_->clock(); }
    Status advance_clock(uint64_t ns) override {
        v_->skip_time(ns);
        return {};
    }
    Status set_clock_deadline(uint64_t ns) override {
        v_->set_clock_deadline(ns);
        return {};
    }
    Status set_trace(TraceFn fn, uint64_t count) override {
        v_->set_trace(std::move(fn), count);
        return {};
    }
    std::string dump_state() override { return v_->dump_state(); }
    Counters counters() const override {
        const cpu::Cpu::CacheStats c = v_->cache_stats();
        const hv::Vcpu::LbrStats& l = v_->lbr_stats();
        const cpu::Translator::Stats t = v_->translator_stats();
        return {{"blocks_built", c.blocks_built},
                {"block_cache_flushes", c.flushes},
                {"blocks_cached", c.blocks},
                {"insns_cached", c.insns},
                {"mmio_read_resumes", c.mmio_replays},
                {"insns_decoded", c.insns_decoded},
                {"lbr_intercepted_accesses", l.intercepted},
                {"lbr_event_creations", l.created},
                {"lbr_event_releases", l.released},
                {"lbr_host_takeovers", l.takeovers},
                {"lbr_dropped_accesses", l.dropped},
                {"pmis", l.pmis},
                {"translated_blocks", t.blocks_translated},
                {"code_cache_flushes", t.cache_flushes},
                {"chained_blocks", t.chained_blocks},
                {"translated_code_bytes", t.code_bytes},
                {"native_slow_paths", t.slow_paths}};
    }
    Status set_cpu_model(const std::string& name, int lbr_fmt) override {
        const cpu::CpuModel* m =
            name.empty() ? &cpu::default_cpu_model() : cpu::find_cpu_model(name);
        if (!m) return make_error(fmt::format("unknown CPU model '{}'", name), EINVAL);
        v_->set_cpu_model(*m);
        if (lbr_fmt < 0) return {};
        const uint64_t caps = cpu::model_perf_capabilities(*m) & ~cpu::msr::PERF_CAP_LBR_FMT;
        return v_->set_perf_capabilities(caps | static_cast<uint64_t>(lbr_fmt));
    }
    Status set_engine(const std::string& name) override {
        cpu::Engine e;
        if (!cpu::parse_engine(name, e))
            return make_error(fmt::format("unknown engine '{}' (interp, translate)", name), EINVAL);
        if (!v_->set_engine(e))
            return make_error(fmt::format("engine '{}' is not available on this host", name),
                              ENODEV);
        return {};
    }
    Status host_lbr_acquire(uint64_t lbr_select) override {
        v_->host_lbr_acquire(lbr_select);
        return {};
    }
    std::vector<BranchRecord> host_lbr_read() override {
        std::vector<BranchRecord> out;
        for (const cpu::Lbr::Entry& e : v_->host_lbr_read()) out.push_back({e.from, e.to});
        return out;
    }
    void host_lbr_release() override { v_->host_lbr_release(); }

  private:
    std::unique_ptr<hv::Vcpu> v_;
};

class EmuVm final : public Vm {
  public:
    Status set_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* host) override {
        return vm_.set_memory_region(slot, gpa, size, host);
    }
    Result<std::unique_ptr<Vcpu>> create_vcpu(uint32_t id) override {
        auto v = vm_.create_vcpu(id);
        if (!v) return v.error();
        return std::unique_ptr<Vcpu>(std::make_unique<EmuVcpu>(std::move(v).value()));
    }
    uint64_t check_extension(uint32_t cap) override { return vm_.check_extension(cap); }
    Status enable_cap(uint32_t cap, uint64_t arg0) override { return vm_.enable_cap(cap, arg0); }
    Status hide_cpuid_bit(const features::CpuidBit& b) override {
        vm_.hide_cpuid_bit(b);
        return {};
    }
    Status set_irq(uint32_t gsi, bool level) override { return vm_.set_irq(gsi, level); }

  private:
    hv::Vm vm_;
};

// "skylake (default): PMU v4 (LBR_Frz freeze), LBR format 5, 32 entries; broadwell: ..."
std::string guest_lbr_detail() {
    std::string out;
    for (const cpu::CpuModel& m : cpu::cpu_models()) {
        if (!out.empty()) out += "; ";
        const bool streamlined = m.pmu_version >= cpu::msr::kPmuStreamlinedFreezeVersion;
        out += fmt::format("{}{}: PMU v{} ({} freeze), LBR format {}, {} entries", m.name,
                           &m == &cpu::default_cpu_model() ? " (default)" : "", m.pmu_version,
                           streamlined ? "LBR_Frz" : "legacy", m.lbr_format, m.lbr_depth);
    }
    return "--cpu-model " + out;
}

// "--engine translate (...; the default), interp (...)", or interp alone.
std::string engine_detail() {
    if (cpu::translator_available())
        return "--engine translate (blocks as x86-64 host code, chained in a code cache; the "
               "default), interp (the interpreter, the reference)";
    return "--engine interp (default); translate not available (needs an x86-64 build with "
           "xbyak)";
}

class EmuAccelerator final : public Accelerator {
  public:
    std::string name() const override { return "emu"; }
    Result<std::unique_ptr<Vm>> create_vm() override {
        return std::unique_ptr<Vm>(std::make_unique<EmuVm>());
    }
    std::vector<Capability> capabilities() override {
        return {
            {"instruction-count", true, "exact retired-instruction counts, --max-insns"},
            {"deterministic", true, "virtual TSC: one tick per retired instruction"},
            {"smp", true, "up to 8 vCPUs (--cpus), taking turns on one thread"},
            {"local-apic", true, "in the hv layer: xAPIC/x2APIC, timer, IPIs"},
            {"ioapic", true, "in the hv layer: 82093AA at 0xFEC00000, 24 pins (GSI 0-23)"},
            {"encryption-ids", true, "SEV/SEV-ES ASID controller (softkvm eid)"},
            {"guest-lbr", true, guest_lbr_detail()},
            {"bus-lock-db", true,
             "CPUID.(7,0):ECX[24], DEBUGCTL bit 2, DR6.BLD (split and non-WB locks)"},
            {"bus-lock-exit", true, "KVM_CAP_X86_BUS_LOCK_EXIT = 0x3 (--bus-lock-ratelimit)"},
            {"engine", true, engine_detail()},
        };
    }
};

}  // namespace

std::vector<CpuModelInfo> emu_cpu_models() {
    std::vector<CpuModelInfo> out;
    for (const cpu::CpuModel& m : cpu::cpu_models())
        out.push_back({m.name, m.description, m.lbr_format, m.lbr_depth});
    return out;
}

std::vector<EngineInfo> emu_engines() {
    return {{cpu::engine_name(cpu::Engine::Interp), true},
            {cpu::engine_name(cpu::Engine::Translate), cpu::translator_available()}};
}

std::string emu_default_engine() {
    return cpu::engine_name(cpu::translator_available() ? cpu::Engine::Translate
                                                        : cpu::Engine::Interp);
}

Result<std::unique_ptr<Accelerator>> create_emu_accelerator() {
    return std::unique_ptr<Accelerator>(std::make_unique<EmuAccelerator>());
}

}  // namespace softkvm::accel
