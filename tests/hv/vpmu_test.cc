// The guest LBR life cycle of the hv layer (spec §2.2, §2.3), one transition per test,
// driven by hand-assembled 32-bit guests: intercepted until first use, the event created
// by an LBR MSR access or DEBUGCTL.LBR, pass-through while active, lazy release after an
// unused slice, host takeover (reads 0, writes dropped) and give-back, and KVM's rule for
// host-initiated PERF_CAPABILITIES writes.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cpu/msr_index.h"
#include "hv/vm.h"
#include "hv_fixture.h"

namespace softkvm::hv {
namespace {

using namespace hvtest;

// Little assembler for the few instructions these guests need.
struct Code {
    std::vector<uint8_t> b;
    Code& mov_ecx(uint32_t v) { return op(0xB9).imm(v); }
    Code& mov_eax(uint32_t v) { return op(0xB8).imm(v); }
    Code& mov_edx(uint32_t v) { return op(0xBA).imm(v); }
    Code& rdmsr() { return op(0x0F).op(0x32); }
    Code& wrmsr() { return op(0x0F).op(0x30); }
    // out %al, $0xf4: ends a guest with an I/O exit (a HLT would leave the vCPU halted).
    Code& end() { return op(0xE6).op(0xF4); }
    // mov ecx, n; 1: dec ecx; jnz 1b  (2n + 1 instructions)
    Code& spin(uint32_t n) { return mov_ecx(n).op(0x49).op(0x75).op(0xFD); }
    Code& wr(uint32_t msr, uint32_t lo, uint32_t hi = 0) {
        return mov_ecx(msr).mov_eax(lo).mov_edx(hi).wrmsr();
    }
    Code& rd(uint32_t msr) { return mov_ecx(msr).rdmsr(); }
    Code& op(uint8_t x) {
        b.push_back(x);
        return *this;
    }
    Code& imm(uint32_t v) {
        for (int k = 0; k < 4; ++k) b.push_back(static_cast<uint8_t>(v >> (8 * k)));
        return *this;
    }
};

class VpmuTest : public HvFixture {
  protected:
    VpmuTest() : vcpu_(vcpu32()) {}

    // Runs `c` from its start until its end(); returns the exit reason. Each guest goes to
    // a page of its own (decoded blocks of earlier ones stay valid).
    uint32_t run(const Code& c) {
        const uint64_t at = kCode + 0x1000 * runs_++;
        std::memcpy(ram_ + at, c.b.data(), c.b.size());
        abi::Regs r;
        r.rip = at;
        r.rsp = kStack;
        vcpu_->set_regs(r);
        vcpu_->run();
        return vcpu_->run_state().exit_reason;
    }

    std::unique_ptr<Vcpu> vcpu_;
    uint64_t runs_ = 0;
    uint64_t last_code() const { return kCode + 0x1000 * (runs_ - 1); }
    const Vcpu::LbrStats& stats() { return vcpu_->lbr_stats(); }
};

using cpu::msr::IA32_DEBUGCTL;
using cpu::msr::MSR_LBR_SELECT;
using cpu::msr::MSR_LBR_TOS;

TEST_F(VpmuTest, LbrMsrsStartInterceptedWithNoEvent) {
    EXPECT_FALSE(vcpu_->lbr_passthrough());
    EXPECT_EQ(vcpu_->lbr_event(), Vcpu::LbrEvent::None);
    EXPECT_TRUE(vcpu_->guest_lbr_enabled());
}

TEST_F(VpmuTest, FirstLbrAccessCreatesTheEventThenPassesThrough) {
    ASSERT_EQ(run(Code().wr(MSR_LBR_SELECT, 0x5).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(stats().intercepted, 1u);
    EXPECT_EQ(stats().created, 1u);
    EXPECT_EQ(vcpu_->lbr_event(), Vcpu::LbrEvent::Active);
    EXPECT_TRUE(vcpu_->lbr_passthrough());
    // Further accesses reach the unit without the hv layer.
    ASSERT_EQ(run(Code().rd(MSR_LBR_SELECT).rd(MSR_LBR_TOS).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(stats().intercepted, 1u);
    EXPECT_EQ(stats().created, 1u);
}

TEST_F(VpmuTest, DebugctlLbrCreatesTheEvent) {
    ASSERT_EQ(run(Code().wr(IA32_DEBUGCTL, 1).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(stats().created, 1u);
    EXPECT_EQ(stats().intercepted, 0u);  // DEBUGCTL is not an LBR MSR
    EXPECT_TRUE(vcpu_->lbr_passthrough());
}

TEST_F(VpmuTest, UnusedEventIsReleasedAfterASliceWithLbrOff) {
    ASSERT_EQ(run(Code().rd(MSR_LBR_SELECT).spin(Vcpu::kSliceInsns * 3 / 2).end()),
              abi::KVM_EXIT_IO);
    EXPECT_EQ(stats().released, 1u);
    EXPECT_EQ(vcpu_->lbr_event(), Vcpu::LbrEvent::None);
    EXPECT_FALSE(vcpu_->lbr_passthrough());
    // The next access creates it again.
    ASSERT_EQ(run(Code().rd(MSR_LBR_TOS).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(stats().created, 2u);
    EXPECT_EQ(stats().intercepted, 2u);
}

TEST_F(VpmuTest, EventInUseOrWithLbrOnIsKept) {
    // Recording on: kept however long the guest runs.
    ASSERT_EQ(run(Code().wr(IA32_DEBUGCTL, 1).spin(Vcpu::kSliceInsns * 3 / 2).end()),
              abi::KVM_EXIT_IO);
    EXPECT_EQ(stats().released, 0u);
    // Recording off but the MSRs used (passed through) in every slice: kept.
    Code c;
    c.wr(IA32_DEBUGCTL, 0);
    for (int k = 0; k < 4; ++k) c.spin(Vcpu::kSliceInsns / 4).rd(MSR_LBR_TOS);
    ASSERT_EQ(run(c.end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(stats().released, 0u);
    EXPECT_EQ(vcpu_->lbr_event(), Vcpu::LbrEvent::Active);
}

TEST_F(VpmuTest, HostTakeoverMakesGuestAccessesMeaningless) {
    ASSERT_EQ(run(Code().wr(MSR_LBR_SELECT, 0x5).end()), abi::KVM_EXIT_IO);
    vcpu_->host_lbr_acquire(0);
    EXPECT_EQ(stats().takeovers, 1u);
    EXPECT_EQ(vcpu_->lbr_event(), Vcpu::LbrEvent::HostOwned);
    EXPECT_FALSE(vcpu_->lbr_passthrough());
    // The guest writes LBR_SELECT and reads it back: 0, no fault.
    ASSERT_EQ(run(Code().wr(MSR_LBR_SELECT, 0x7).rd(MSR_LBR_SELECT).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(vcpu_->get_regs().rax, 0u);
    EXPECT_EQ(stats().dropped, 2u);
    EXPECT_EQ(stats().takeovers, 1u);  // the same takeover
    // The host records the guest's branches meanwhile.
    ASSERT_EQ(run(Code().spin(10).end()), abi::KVM_EXIT_IO);
    const auto recs = vcpu_->host_lbr_read();
    ASSERT_FALSE(recs.empty());
    EXPECT_EQ(recs[0].to, last_code() + 5);  // the loop's jnz back to dec
    // Given back: the next guest access creates the event again and sees the unit.
    vcpu_->host_lbr_release();
    ASSERT_EQ(run(Code().wr(MSR_LBR_SELECT, 0x7).rd(MSR_LBR_SELECT).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(vcpu_->get_regs().rax, 0x7u);
    EXPECT_EQ(stats().created, 2u);
}

TEST_F(VpmuTest, GuestDebugctlIsKeptForItWhileTheHostOwnsTheUnit) {
    vcpu_->host_lbr_acquire(0);
    ASSERT_EQ(run(Code().wr(IA32_DEBUGCTL, 0x801).rd(IA32_DEBUGCTL).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(vcpu_->get_regs().rax, 0x801u);
    vcpu_->host_lbr_release();
    ASSERT_EQ(run(Code().rd(IA32_DEBUGCTL).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(vcpu_->get_regs().rax, 0x801u);
}

// DEBUGCTL = LBR | FREEZE_LBRS_ON_PMI, PMC0 counting ring-0 instructions with its PMI
// enabled and overflowing 7 instructions after the PERFEVTSEL write, inside a loop of
// 100 taken branches. LVT PMC is masked (its reset state): the PMI is raised, not
// delivered, so no IDT is needed.
Code freeze_on_overflow() {
    using namespace cpu::msr;
    return Code()
        .wr(IA32_DEBUGCTL, DEBUGCTL_LBR | DEBUGCTL_FREEZE_LBRS_ON_PMI)
        .wr(IA32_A_PMC0, static_cast<uint32_t>(-7), 0xFFFF)
        .wr(IA32_PERFEVTSEL0, EVENT_INSTRUCTIONS | EVTSEL_OS | EVTSEL_INT | EVTSEL_EN)
        .spin(100);
}

constexpr uint32_t kDebugctlFreeze = cpu::msr::DEBUGCTL_FREEZE_LBRS_ON_PMI;
constexpr uint32_t kLbrFrzHigh = cpu::msr::GLOBAL_STATUS_LBR_FRZ >> 32;

TEST_F(VpmuTest, PmuVersion4FreezesThroughLbrFrzWithDebugctlLbrKept) {
    using namespace cpu::msr;
    // The skylake model (PMU version 4). The overflow comes at the loop's third jnz.
    ASSERT_EQ(run(freeze_on_overflow().rd(IA32_DEBUGCTL).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(vcpu_->get_regs().rax, kDebugctlFreeze | DEBUGCTL_LBR);  // LBR stays 1
    ASSERT_EQ(run(Code().rd(IA32_PERF_GLOBAL_STATUS).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(vcpu_->get_regs().rax, 1u);  // PMC0 overflowed
    EXPECT_EQ(vcpu_->get_regs().rdx, kLbrFrzHigh);
    // Frozen: the stack ends with that jnz (to the loop's dec at +0x38), whatever runs since.
    ASSERT_EQ(run(Code().spin(50).rd(MSR_LBR_TOS).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(vcpu_->get_regs().rax, 3u);
    EXPECT_EQ(vcpu_->host_lbr_read().at(0).to, kCode + 0x38);
    // GLOBAL_STATUS_RESET with the status read (as Linux acknowledges a PMI) unfreezes:
    // the 4 taken jnz of spin(5) are recorded.
    ASSERT_EQ(
        run(Code().wr(IA32_PERF_GLOBAL_STATUS_RESET, 1, kLbrFrzHigh).spin(5).rd(MSR_LBR_TOS).end()),
        abi::KVM_EXIT_IO);
    EXPECT_EQ(vcpu_->get_regs().rax, 7u);
    ASSERT_EQ(run(Code().rd(IA32_PERF_GLOBAL_STATUS).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(vcpu_->get_regs().rax | vcpu_->get_regs().rdx, 0u);
}

TEST_F(VpmuTest, PmuVersion3FreezesTheLegacyWayByClearingDebugctlLbr) {
    using namespace cpu::msr;
    vcpu_->set_cpu_model(*cpu::find_cpu_model("broadwell"));
    ASSERT_EQ(run(freeze_on_overflow().rd(IA32_DEBUGCTL).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(vcpu_->get_regs().rax, kDebugctlFreeze);
    ASSERT_EQ(run(Code().rd(IA32_PERF_GLOBAL_STATUS).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(vcpu_->get_regs().rax, 1u);
    EXPECT_EQ(vcpu_->get_regs().rdx, 0u);  // no LBR_Frz before version 4
    ASSERT_EQ(run(Code().spin(50).rd(MSR_LBR_TOS).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(vcpu_->get_regs().rax, 3u);
    // GLOBAL_OVF_CTRL has no LBR_Frz bit: #GP (a triple fault without an IDT).
    EXPECT_EQ(run(Code().wr(IA32_PERF_GLOBAL_OVF_CTRL, 1, kLbrFrzHigh).end()),
              abi::KVM_EXIT_SHUTDOWN);
}

TEST_F(VpmuTest, DebugctlWrittenWhileFrozenKeepsTheFreeze) {
    using namespace cpu::msr;
    ASSERT_EQ(run(freeze_on_overflow().end()), abi::KVM_EXIT_IO);
    // Writing DEBUGCTL.LBR=1 again (the legacy way to resume) does not unfreeze on v4.
    ASSERT_EQ(run(Code().wr(IA32_DEBUGCTL, DEBUGCTL_LBR).spin(5).rd(IA32_DEBUGCTL).end()),
              abi::KVM_EXIT_IO);
    EXPECT_EQ(vcpu_->get_regs().rax, DEBUGCTL_LBR);
    ASSERT_EQ(run(Code().rd(MSR_LBR_TOS).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(vcpu_->get_regs().rax, 3u);
    // Cleared while frozen: clearing LBR_Frz afterwards does not turn recording on.
    ASSERT_EQ(run(Code()
                      .wr(IA32_DEBUGCTL, 0)
                      .wr(IA32_PERF_GLOBAL_STATUS_RESET, 0, kLbrFrzHigh)
                      .spin(5)
                      .rd(IA32_DEBUGCTL)
                      .end()),
              abi::KVM_EXIT_IO);
    EXPECT_EQ(vcpu_->get_regs().rax, 0u);
    ASSERT_EQ(run(Code().rd(MSR_LBR_TOS).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(vcpu_->get_regs().rax, 3u);
}

TEST_F(VpmuTest, HostOwnedUnitIsNotFrozenByTheGuestsPmi) {
    using namespace cpu::msr;
    vcpu_->host_lbr_acquire(0);
    ASSERT_EQ(run(freeze_on_overflow().rd(IA32_DEBUGCTL).end()), abi::KVM_EXIT_IO);
    // The guest's DEBUGCTL is kept for it, LBR at 1 as on version-4 hardware ...
    EXPECT_EQ(vcpu_->get_regs().rax, kDebugctlFreeze | DEBUGCTL_LBR);
    // ... and the host's records go on past the overflow to the loop's last jnz: the
    // whole stack holds the loop's branches.
    const auto recs = vcpu_->host_lbr_read();
    ASSERT_EQ(recs.size(), 32u);
    EXPECT_EQ(recs[0].to, last_code() + 0x38);
    EXPECT_EQ(recs[31].to, last_code() + 0x38);
}

TEST_F(VpmuTest, GuestDebugctlBitsBesidesLbrKeepTheHostRecording) {
    using namespace cpu::msr;
    vcpu_->host_lbr_acquire(0);
    // Bus-lock detection (bit 2, in the skylake model's CPUID) as Linux sets it at boot.
    const uint32_t v = DEBUGCTL_LBR | DEBUGCTL_FREEZE_LBRS_ON_PMI | DEBUGCTL_BUS_LOCK_DETECT;
    ASSERT_EQ(run(Code().wr(IA32_DEBUGCTL, v).spin(40).rd(IA32_DEBUGCTL).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(vcpu_->get_regs().rax, v);
    const auto recs = vcpu_->host_lbr_read();
    ASSERT_EQ(recs.size(), 32u);  // the host recorded the loop after the write
    EXPECT_EQ(recs[0].to, last_code() + 0x16);
    // A bit the model lacks still faults (a triple fault without an IDT).
    EXPECT_EQ(run(Code().wr(IA32_DEBUGCTL, 1u << 3).end()), abi::KVM_EXIT_SHUTDOWN);
}

TEST_F(VpmuTest, WithoutGuestLbrTheMsrsAndDebugctlLbrFault) {
    ASSERT_TRUE(vcpu_->set_perf_capabilities(1ull << 13).ok());  // LBR_FMT 0
    EXPECT_FALSE(vcpu_->guest_lbr_enabled());
    // No IDT: a #GP becomes a triple fault.
    EXPECT_EQ(run(Code().rd(MSR_LBR_SELECT).end()), abi::KVM_EXIT_SHUTDOWN);
    EXPECT_EQ(run(Code().wr(IA32_DEBUGCTL, 1).end()), abi::KVM_EXIT_SHUTDOWN);
    EXPECT_EQ(run(Code().wr(IA32_DEBUGCTL, 0x800).end()), abi::KVM_EXIT_SHUTDOWN);
    EXPECT_EQ(run(Code().wr(IA32_DEBUGCTL, 2).end()), abi::KVM_EXIT_IO);  // BTF is fine
    EXPECT_EQ(stats().created, 0u);
}

TEST_F(VpmuTest, PerfCapabilitiesFollowsKvmsRule) {
    constexpr uint64_t kFw = 1ull << 13;
    EXPECT_EQ(vcpu_->set_perf_capabilities(4 | kFw).error().code, EINVAL);  // not the host's
    EXPECT_EQ(vcpu_->set_perf_capabilities(5 | (1ull << 6)).error().code, EINVAL);  // PEBS
    EXPECT_TRUE(vcpu_->set_perf_capabilities(5 | kFw).ok());
    EXPECT_TRUE(vcpu_->set_perf_capabilities(0).ok());
    vcpu_->set_cpu_model(*cpu::find_cpu_model("broadwell"));
    EXPECT_EQ(vcpu_->set_perf_capabilities(5).error().code, EINVAL);
    EXPECT_TRUE(vcpu_->set_perf_capabilities(4).ok());
}

TEST_F(VpmuTest, PerfCapabilitiesNeedsPdcm) {
    ASSERT_EQ(run(Code().rd(cpu::msr::IA32_PERF_CAPABILITIES).end()), abi::KVM_EXIT_IO);
    EXPECT_EQ(vcpu_->get_regs().rax, 5u | (1u << 13));
    vcpu_->set_pdcm(false);
    EXPECT_EQ(vcpu_->set_perf_capabilities(5).error().code, EINVAL);
    EXPECT_FALSE(vcpu_->guest_lbr_enabled());
    EXPECT_EQ(run(Code().rd(cpu::msr::IA32_PERF_CAPABILITIES).end()), abi::KVM_EXIT_SHUTDOWN);
}

}  // namespace
}  // namespace softkvm::hv
