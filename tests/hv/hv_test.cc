// Tests of the hv layer's KVM_RUN semantics: exit records, IN completion, limits,
// shutdown, and the 32-bit multiboot entry state switching itself to long mode.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "hv/vm.h"
#include "hv_fixture.h"

namespace softkvm::hv {
namespace {

using namespace hvtest;

using HvTest = HvFixture;

TEST_F(HvTest, MemoryRegionsAreValidated) {
    Vm vm;
    alignas(4096) static uint8_t page[8192];
    EXPECT_EQ(vm.set_memory_region(0, 0x1001, 0x1000, page).error().code, EINVAL);
    EXPECT_TRUE(vm.set_memory_region(0, 0x0, 0x2000, page).ok());
    EXPECT_EQ(vm.set_memory_region(1, 0x1000, 0x1000, page).error().code, EEXIST);
    EXPECT_TRUE(vm.set_memory_region(0, 0x0, 0x1000, page).ok());  // replace slot 0
    EXPECT_TRUE(vm.create_vcpu(0).ok());
    EXPECT_EQ(vm.set_memory_region(2, 0x4000, 0x1000, page).error().code, EBUSY);
    EXPECT_EQ(vm.create_vcpu(5).error().code, EINVAL);
}

TEST_F(HvTest, OutExitsWithPortSizeAndData) {
    // mov $0x3f8,%dx; mov $0x41,%al; out %al,%dx; hlt
    const uint8_t code[] = {0x66, 0xba, 0xf8, 0x03, 0xb0, 0x41, 0xee, 0xf4};
    load(code);
    auto v = vcpu32();
    v->run();
    const abi::RunState& r = v->run_state();
    ASSERT_EQ(r.exit_reason, abi::KVM_EXIT_IO);
    EXPECT_EQ(r.io.direction, abi::KVM_EXIT_IO_OUT);
    EXPECT_EQ(r.io.port, 0x3f8);
    EXPECT_EQ(r.io.size, 1);
    EXPECT_EQ(r.io.count, 1u);
    EXPECT_EQ(r.io.data[0], 0x41);
    v->run();
    EXPECT_EQ(v->run_state().exit_reason, abi::KVM_EXIT_HLT);
    EXPECT_EQ(v->instructions_retired(), 4u);
}

TEST_F(HvTest, InCompletesWithTheDataTheVmmStored) {
    // in $0x71,%al; mov %al,%bl; hlt
    const uint8_t code[] = {0xe4, 0x71, 0x88, 0xc3, 0xf4};
    load(code);
    auto v = vcpu32();
    v->run();
    abi::RunState& r = v->run_state();
    ASSERT_EQ(r.exit_reason, abi::KVM_EXIT_IO);
    EXPECT_EQ(r.io.direction, abi::KVM_EXIT_IO_IN);
    EXPECT_EQ(r.io.port, 0x71);
    EXPECT_EQ(v->instructions_retired(), 0u);
    r.io.data[0] = 0x9C;
    v->run();
    EXPECT_EQ(r.exit_reason, abi::KVM_EXIT_HLT);
    EXPECT_EQ(v->get_regs().rbx & 0xFF, 0x9Cu);
}

TEST_F(HvTest, ImmediateExitAndInstructionLimitGiveIntr) {
    const uint8_t code[] = {0xeb, 0xfe};  // jmp .
    load(code);
    auto v = vcpu32();
    v->run_state().immediate_exit = 1;
    v->run();
    EXPECT_EQ(v->run_state().exit_reason, abi::KVM_EXIT_INTR);
    EXPECT_EQ(v->instructions_retired(), 0u);
    v->run_state().immediate_exit = 0;
    v->set_instruction_limit(12345);
    v->run();
    EXPECT_EQ(v->run_state().exit_reason, abi::KVM_EXIT_INTR);
    EXPECT_EQ(v->instructions_retired(), 12345u);
}

TEST_F(HvTest, TripleFaultIsShutdownWithTheChain) {
    // lidt of a zero-limit IDT is the default state; ud2 then cannot be delivered.
    const uint8_t code[] = {0x0f, 0x0b};
    load(code);
    auto v = vcpu32();
    abi::SpecialRegs s = v->get_sregs();
    s.efer = 0;
    ASSERT_TRUE(v->set_sregs(s).ok());
    v->run();
    EXPECT_EQ(v->run_state().exit_reason, abi::KVM_EXIT_SHUTDOWN);
    const std::string& d = v->run_state().detail;
    EXPECT_NE(d.find("triple fault"), std::string::npos) << d;
    EXPECT_NE(d.find("#6"), std::string::npos) << d;   // the #UD
    EXPECT_NE(d.find("#13"), std::string::npos) << d;  // its delivery: #GP (IDT limit)
    EXPECT_NE(d.find("#8"), std::string::npos) << d;   // then #DF, which also faults
}

// The 32-bit entry code that every guest's SDK runs: CR3, PAE, EFER.LME, paging, a
// 64-bit GDT and a far jump into long mode, then a 64-bit OUT.
TEST_F(HvTest, ProtectedModeEntrySwitchesToLongMode) {
    // Identity map the first 2 MiB at 0x1000 and a GDT at 0x500 (null, code64, data).
    auto put64 = [&](uint64_t at, uint64_t v) { std::memcpy(ram_ + at, &v, 8); };
    put64(0x1000, 0x2003);
    put64(0x2000, 0x3003);
    put64(0x3000, 0x83);
    put64(0x508, 0x00AF9A000000FFFFull);
    put64(0x510, 0x00CF92000000FFFFull);
    const uint8_t code[] = {
        0xb8, 0x00, 0x10, 0x00, 0x00, 0x0f, 0x22, 0xd8, 0x0f, 0x20, 0xe0, 0x83, 0xc8, 0x20, 0x0f,
        0x22, 0xe0, 0xb9, 0x80, 0x00, 0x00, 0xc0, 0x0f, 0x32, 0x0d, 0x00, 0x01, 0x00, 0x00, 0x0f,
        0x30, 0x0f, 0x20, 0xc0, 0x0d, 0x00, 0x00, 0x00, 0x80, 0x0f, 0x22, 0xc0, 0x0f, 0x01, 0x15,
        0x38, 0x00, 0x01, 0x00, 0xea, 0x3e, 0x00, 0x01, 0x00, 0x08, 0x00, 0x17, 0x00, 0x00, 0x05,
        0x00, 0x00, 0x66, 0xb8, 0x10, 0x00, 0x8e, 0xd8, 0x8e, 0xd0, 0x48, 0xb8, 0x9a, 0x78, 0x56,
        0x34, 0x12, 0x00, 0x00, 0x00, 0x66, 0xba, 0xf4, 0x00, 0xef, 0xf4};
    load(code);
    auto v = vcpu32();
    v->run();
    ASSERT_EQ(v->run_state().exit_reason, abi::KVM_EXIT_IO) << v->run_state().detail;
    EXPECT_EQ(v->run_state().io.port, 0xf4);
    uint32_t data;
    std::memcpy(&data, v->run_state().io.data, 4);
    EXPECT_EQ(data, 0x3456789Au);
    EXPECT_EQ(v->get_regs().rax, 0x123456789Aull);
    abi::SpecialRegs s = v->get_sregs();
    EXPECT_TRUE(s.efer & (1u << 10));  // LMA
    EXPECT_EQ(s.cs.selector, 0x08);
    EXPECT_EQ(s.cs.l, 1);
    EXPECT_EQ(s.gdt.base, 0x500u);
}

TEST_F(HvTest, CpuidTellsTheGuestItIsVirtualized) {
    // mov $1,%eax; cpuid; hlt
    const uint8_t code[] = {0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0xa2, 0xf4};
    load(code);
    auto v = vcpu32();
    v->run();
    EXPECT_TRUE(v->get_regs().rcx & (1u << 31));
}

// The in-kernel local APIC (xAPIC MMIO page): a one-shot timer wakes `sti; hlt` through
// a 32-bit interrupt gate; the handler reads the expired count, EOIs and returns.
TEST_F(HvTest, ApicTimerInterruptWakesHalt) {
    // Installs an IDT gate for 0x30; SVR=0x1FF; divide=1; LVT timer=0x30; count=1000;
    // sti; hlt; out 2 -> port 0x10; hlt.  Handler: out current count -> 0x11; EOI;
    // out ISR[1] -> 0x12; iret.
    const uint8_t code[] = {
        0xb8, 0x5f, 0x00, 0x01, 0x00, 0x66, 0xa3, 0x80, 0x61, 0x00, 0x00, 0x66, 0xc7, 0x05,
        0x82, 0x61, 0x00, 0x00, 0x08, 0x00, 0x66, 0xc7, 0x05, 0x84, 0x61, 0x00, 0x00, 0x00,
        0x8e, 0xc1, 0xe8, 0x10, 0x66, 0xa3, 0x86, 0x61, 0x00, 0x00, 0x0f, 0x01, 0x1d, 0x78,
        0x00, 0x01, 0x00, 0xc7, 0x05, 0xf0, 0x00, 0xe0, 0xfe, 0xff, 0x01, 0x00, 0x00, 0xc7,
        0x05, 0xe0, 0x03, 0xe0, 0xfe, 0x0b, 0x00, 0x00, 0x00, 0xc7, 0x05, 0x20, 0x03, 0xe0,
        0xfe, 0x30, 0x00, 0x00, 0x00, 0xc7, 0x05, 0x80, 0x03, 0xe0, 0xfe, 0xe8, 0x03, 0x00,
        0x00, 0xfb, 0xf4, 0xb8, 0x02, 0x00, 0x00, 0x00, 0xe7, 0x10, 0xf4, 0xa1, 0x90, 0x03,
        0xe0, 0xfe, 0xe7, 0x11, 0xc7, 0x05, 0xb0, 0x00, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x00,
        0xa1, 0x10, 0x01, 0xe0, 0xfe, 0xe7, 0x12, 0xcf, 0xff, 0x07, 0x00, 0x60, 0x00, 0x00};
    load(code);
    auto v = vcpu32();
    // A flat 32-bit GDT for the interrupt gate's code selector 0x08.
    const uint64_t gdt[] = {0, 0x00CF9A000000FFFFull, 0x00CF92000000FFFFull};
    std::memcpy(ram_ + 0x500, gdt, sizeof gdt);
    abi::SpecialRegs s = v->get_sregs();
    s.gdt = {0x500, sizeof gdt - 1};
    ASSERT_TRUE(v->set_sregs(s).ok());
    auto port_data = [&] {
        uint32_t d = 0;
        std::memcpy(&d, v->run_state().io.data, 4);
        return d;
    };
    v->run();
    ASSERT_EQ(v->run_state().exit_reason, abi::KVM_EXIT_IO) << v->run_state().detail;
    EXPECT_EQ(v->run_state().io.port, 0x11);
    EXPECT_EQ(port_data(), 0u);  // current count after expiry
    v->run();
    EXPECT_EQ(v->run_state().io.port, 0x12);
    EXPECT_EQ(port_data(), 0u);  // EOI cleared the in-service bit
    v->run();
    EXPECT_EQ(v->run_state().io.port, 0x10);
    EXPECT_EQ(port_data(), 2u);  // resumed after the HLT
    v->run();
    EXPECT_EQ(v->run_state().exit_reason, abi::KVM_EXIT_HLT);  // nothing left to wake it
}

TEST_F(HvTest, CpuidAdvertisesTheInKernelApic) {
    const uint8_t code[] = {0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0xa2, 0xf4};
    load(code);
    auto v = vcpu32();
    v->run();
    const abi::Regs r = v->get_regs();
    EXPECT_TRUE(r.rdx & (1u << 9));   // APIC
    EXPECT_TRUE(r.rcx & (1u << 21));  // x2APIC
    EXPECT_TRUE(r.rcx & (1u << 24));  // TSC deadline
}

TEST_F(HvTest, Cr8IsTheApicTaskPriority) {
    // Long mode is needed for CR8; the 32-bit entry switches there first (as in
    // ProtectedModeEntrySwitchesToLongMode), then: mov $5,%eax; mov %rax,%cr8;
    // mov $0xfee00080,%edi; mov (%rdi),%ebx; movl $0x20,(%rdi); mov %cr8,%rcx; hlt
    auto put64 = [&](uint64_t at, uint64_t v) { std::memcpy(ram_ + at, &v, 8); };
    put64(0x1000, 0x2003);
    put64(0x2000, 0x3003);
    put64(0x3000, 0x83);
    put64(0x2018, 0x4003);                       // PDPT[3] -> PD at 0x4000 (3-4 GiB)
    put64(0x4000 + 8 * 503, 0xFEE00000 | 0x9B);  // 2 MiB page over the APIC, PCD|PWT
    put64(0x508, 0x00AF9A000000FFFFull);
    put64(0x510, 0x00CF92000000FFFFull);
    const uint8_t code[] = {0xb8, 0x00, 0x10, 0x00, 0x00, 0x0f, 0x22, 0xd8, 0x0f, 0x20, 0xe0, 0x83,
                            0xc8, 0x20, 0x0f, 0x22, 0xe0, 0xb9, 0x80, 0x00, 0x00, 0xc0, 0x0f, 0x32,
                            0x0d, 0x00, 0x01, 0x00, 0x00, 0x0f, 0x30, 0x0f, 0x20, 0xc0, 0x0d, 0x00,
                            0x00, 0x00, 0x80, 0x0f, 0x22, 0xc0, 0x0f, 0x01, 0x15, 0x38, 0x00, 0x01,
                            0x00, 0xea, 0x3e, 0x00, 0x01, 0x00, 0x08, 0x00, 0x17, 0x00, 0x00, 0x05,
                            0x00, 0x00,
                            // 64-bit code at 0x1003e:
                            0xb8, 0x05, 0x00, 0x00, 0x00,        // mov $5,%eax
                            0x44, 0x0f, 0x22, 0xc0,              // mov %rax,%cr8
                            0xbf, 0x80, 0x00, 0xe0, 0xfe,        // mov $0xfee00080,%edi (TPR)
                            0x8b, 0x1f,                          // mov (%rdi),%ebx
                            0xc7, 0x07, 0x20, 0x00, 0x00, 0x00,  // movl $0x20,(%rdi)
                            0x44, 0x0f, 0x20, 0xc1,              // mov %cr8,%rcx
                            0xf4};
    load(code);
    auto v = vcpu32();
    v->run();
    ASSERT_EQ(v->run_state().exit_reason, abi::KVM_EXIT_HLT) << v->run_state().detail;
    EXPECT_EQ(v->get_regs().rbx, 0x50u);  // CR8 = 5 is TPR 0x50
    EXPECT_EQ(v->get_regs().rcx, 2u);     // TPR 0x20 reads back as CR8 = 2
}

// An instruction with two MMIO reads (CMPS between two device registers): each read is a
// KVM_EXIT_MMIO whose data the VMM stores; the instruction completes after the second,
// and no read is asked for twice.
TEST_F(HvTest, InstructionWithTwoMmioReadsCompletesAfterTwoExits) {
    // mov $0x400000,%esi; mov $0x400100,%edi; cmpsl; hlt
    const uint8_t code[] = {0xbe, 0x00, 0x00, 0x40, 0x00, 0xbf, 0x00, 0x01, 0x40, 0x00, 0xa7, 0xf4};
    load(code);
    auto v = vcpu32();
    std::vector<uint64_t> reads;
    abi::RunState& r = v->run_state();
    for (int k = 0; k < 10; ++k) {
        v->run();
        if (r.exit_reason != abi::KVM_EXIT_MMIO) break;
        ASSERT_FALSE(r.mmio.is_write);
        reads.push_back(r.mmio.phys_addr);
        const uint32_t value = r.mmio.phys_addr == 0x400000 ? 5 : 7;
        std::memcpy(r.mmio.data, &value, 4);
    }
    EXPECT_EQ(r.exit_reason, abi::KVM_EXIT_HLT);
    EXPECT_EQ(reads, (std::vector<uint64_t>{0x400000, 0x400100}));
    EXPECT_TRUE(v->get_regs().rflags & cpu::FLAG_CF);  // 5 - 7 borrows
    EXPECT_EQ(v->get_regs().rsi, 0x400004u);
}

// A store that crosses from RAM into MMIO: one KVM_EXIT_MMIO per MMIO byte, in order.
TEST_F(HvTest, StoreCrossingIntoMmioExitsForEachPart) {
    // mov $0x1ffffe,%esi; movl $0xddccbbaa,(%esi); hlt (RAM ends at 2 MiB)
    const uint8_t code[] = {0xbe, 0xfe, 0xff, 0x1f, 0x00, 0xc7, 0x06, 0xaa, 0xbb, 0xcc, 0xdd, 0xf4};
    load(code);
    auto v = vcpu32();
    std::vector<std::pair<uint64_t, uint8_t>> writes;
    abi::RunState& r = v->run_state();
    for (int k = 0; k < 10; ++k) {
        v->run();
        if (r.exit_reason != abi::KVM_EXIT_MMIO) break;
        ASSERT_TRUE(r.mmio.is_write);
        ASSERT_EQ(r.mmio.len, 1u);
        writes.emplace_back(r.mmio.phys_addr, r.mmio.data[0]);
    }
    EXPECT_EQ(r.exit_reason, abi::KVM_EXIT_HLT);
    EXPECT_EQ(writes,
              (std::vector<std::pair<uint64_t, uint8_t>>{{0x200000, 0xCC}, {0x200001, 0xDD}}));
    EXPECT_EQ(ram_[0x1ffffe], 0xAA);
    EXPECT_EQ(ram_[0x1fffff], 0xBB);
    EXPECT_EQ(v->instructions_retired(), 3u);
}

// A userspace device's timer (accel::Vcpu::set_clock_deadline, the VMM's PIT): the run
// ends with KVM_EXIT_INTR when the virtual clock reaches it, and only that run.
TEST_F(HvTest, ClockDeadlineEndsTheRunThatReachesIt) {
    const uint8_t code[] = {0xeb, 0xfe};  // jmp .
    load(code);
    auto v = vcpu32();
    v->set_clock_deadline(5000);
    v->run();
    EXPECT_EQ(v->run_state().exit_reason, abi::KVM_EXIT_INTR);
    EXPECT_GE(v->clock(), 5000u);
    EXPECT_LE(v->clock(), 5001u);
    const uint64_t at = v->instructions_retired();
    v->set_instruction_limit(at + 100);  // the deadline passed: no kick left over
    v->run();
    EXPECT_EQ(v->run_state().exit_reason, abi::KVM_EXIT_INTR);
    EXPECT_EQ(v->instructions_retired(), at + 100);
}

// A halt with interrupts on waits for the device's deadline (virtual time skips to it);
// without a deadline it is final.
TEST_F(HvTest, HaltWithInterruptsOnSkipsToTheClockDeadline) {
    const uint8_t code[] = {0xfb, 0xf4, 0xf4};  // sti; hlt; hlt
    load(code);
    auto v = vcpu32();
    v->set_clock_deadline(1'000'000);
    v->run();
    EXPECT_EQ(v->run_state().exit_reason, abi::KVM_EXIT_INTR);
    EXPECT_EQ(v->clock(), 1'000'000u);
    EXPECT_EQ(v->instructions_retired(), 2u);
    v->run();
    EXPECT_EQ(v->run_state().exit_reason, abi::KVM_EXIT_HLT);
    EXPECT_EQ(v->clock(), 1'000'000u);
}

// A halt ends the run at the device's deadline though the local APIC's timer comes later:
// virtual time does not skip past the device's event to the next timer.
TEST_F(HvTest, HaltEndsAtTheClockDeadlineBeforeALaterApicTimer) {
    const uint8_t code[] = {
        0xc7, 0x05, 0xf0, 0x00, 0xe0, 0xfe, 0xff, 0x01, 0x00, 0x00,  // SVR = 0x1ff (enabled)
        0xc7, 0x05, 0x20, 0x03, 0xe0, 0xfe, 0x40, 0x00, 0x04, 0x00,  // LVT timer: TSC deadline
        0xb9, 0xe0, 0x06, 0x00, 0x00,                                // mov $0x6e0, %ecx
        0xb8, 0x80, 0x84, 0x1e, 0x00,                                // mov $2000000, %eax
        0x31, 0xd2, 0x0f, 0x30,                                      // xor %edx, %edx; wrmsr
        0xfb, 0xf4, 0xf4};                                           // sti; hlt; hlt
    load(code);
    auto v = vcpu32();
    v->set_clock_deadline(1'000'000);
    v->run();
    EXPECT_EQ(v->run_state().exit_reason, abi::KVM_EXIT_INTR);
    EXPECT_EQ(v->clock(), 1'000'000u);
    EXPECT_EQ(v->instructions_retired(), 8u);
}

// With interrupts off no timer can wake a halt: it ends the run at once, as KVM's HLT
// with IF clear (the kvm accelerator reports that as KVM_EXIT_HLT too).
TEST_F(HvTest, HaltWithInterruptsOffIgnoresTheClockDeadline) {
    const uint8_t code[] = {0xfa, 0xf4};  // cli; hlt
    load(code);
    auto v = vcpu32();
    v->set_clock_deadline(1'000'000);
    v->run();
    EXPECT_EQ(v->run_state().exit_reason, abi::KVM_EXIT_HLT);
    EXPECT_LT(v->clock(), 1'000'000u);
}

}  // namespace
}  // namespace softkvm::hv
