// The bus-lock VM exit's ABI in the hv layer (spec §4): capability mode bits, the EINVAL
// rules of KVM_ENABLE_CAP, KVM_EXIT_X86_BUS_LOCK after each bus-locking instruction, the
// KVM_RUN_X86_BUS_LOCK flag on a coinciding MMIO exit, flags reset per run, OFF silent.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "hv/vm.h"
#include "hv_fixture.h"

namespace softkvm::hv {
namespace {

using namespace hvtest;

// Flat 32-bit protected mode without paging: memory is write-back (the MTRR default the
// hv layer starts with), so only line splits are bus locks until the guest changes it.
class BusLockExitTest : public HvFixture {
  protected:
    template <size_t N>
    std::unique_ptr<Vcpu> start(const uint8_t (&code)[N]) {
        load(code);
        return vcpu32();
    }
};

// Split and aligned locked forms; the RIPs (relative to kCode) are from the encoding.
//   0: mov $0x2003e,%ebx          (offset 62 of a line: a 4-byte access splits it)
//   5: lock addl $1,(%ebx)         split            -> exit, next RIP 0x9
//   9: lock addl $1,0x20080        aligned          -> nothing
//  11: xchg %eax,(%ebx)            implicit lock    -> exit, next RIP 0x13
//  13: mov $0x20039,%esi
//  18: lock cmpxchg8b (%esi)       split (8 bytes)  -> exit, next RIP 0x1c
//  1c: hlt
const uint8_t kSplitLocks[] = {0xbb, 0x3e, 0x00, 0x02, 0x00, 0xf0, 0x83, 0x03, 0x01, 0xf0,
                               0x83, 0x05, 0x80, 0x00, 0x02, 0x00, 0x01, 0x87, 0x03, 0xbe,
                               0x39, 0x00, 0x02, 0x00, 0xf0, 0x0f, 0xc7, 0x0e, 0xf4};

TEST_F(BusLockExitTest, CheckExtensionReportsOffAndExitModes) {
    EXPECT_EQ(vm_.check_extension(abi::KVM_CAP_X86_BUS_LOCK_EXIT),
              abi::KVM_BUS_LOCK_DETECTION_OFF | abi::KVM_BUS_LOCK_DETECTION_EXIT);
    EXPECT_EQ(vm_.check_extension(12345), 0u);
}

TEST_F(BusLockExitTest, EnableCapRejectsBothModesUnknownBitsAndOtherCaps) {
    using namespace abi;
    EXPECT_EQ(vm_.enable_cap(KVM_CAP_X86_BUS_LOCK_EXIT,
                             KVM_BUS_LOCK_DETECTION_OFF | KVM_BUS_LOCK_DETECTION_EXIT)
                  .error()
                  .code,
              EINVAL);
    EXPECT_EQ(vm_.enable_cap(KVM_CAP_X86_BUS_LOCK_EXIT, 1ull << 2).error().code, EINVAL);
    EXPECT_EQ(
        vm_.enable_cap(KVM_CAP_X86_BUS_LOCK_EXIT, KVM_BUS_LOCK_DETECTION_EXIT | 8).error().code,
        EINVAL);
    EXPECT_EQ(vm_.enable_cap(12345, KVM_BUS_LOCK_DETECTION_EXIT).error().code, EINVAL);
    EXPECT_FALSE(vm_.bus_lock_exits());
    // Linux accepts 0 and OFF (nothing changes); EXIT turns the exits on.
    EXPECT_TRUE(vm_.enable_cap(KVM_CAP_X86_BUS_LOCK_EXIT, 0).ok());
    EXPECT_TRUE(vm_.enable_cap(KVM_CAP_X86_BUS_LOCK_EXIT, KVM_BUS_LOCK_DETECTION_OFF).ok());
    EXPECT_FALSE(vm_.bus_lock_exits());
    EXPECT_TRUE(vm_.enable_cap(KVM_CAP_X86_BUS_LOCK_EXIT, KVM_BUS_LOCK_DETECTION_EXIT).ok());
    EXPECT_TRUE(vm_.bus_lock_exits());
}

TEST_F(BusLockExitTest, OffModeIsSilent) {
    auto v = start(kSplitLocks);
    v->run();
    EXPECT_EQ(v->run_state().exit_reason, abi::KVM_EXIT_HLT);
    EXPECT_EQ(v->run_state().flags, 0);
    EXPECT_EQ(v->instructions_retired(), 7u);
}

TEST_F(BusLockExitTest, ExitModeExitsAfterEachBusLockInOrder) {
    ASSERT_TRUE(
        vm_.enable_cap(abi::KVM_CAP_X86_BUS_LOCK_EXIT, abi::KVM_BUS_LOCK_DETECTION_EXIT).ok());
    auto v = start(kSplitLocks);
    struct Expect {
        uint64_t insn, next;
        uint64_t retired;
    };
    const Expect want[] = {{0x5, 0x9, 2}, {0x11, 0x13, 4}, {0x18, 0x1c, 6}};
    for (const Expect& e : want) {
        v->run();
        const abi::RunState& r = v->run_state();
        ASSERT_EQ(r.exit_reason, abi::KVM_EXIT_X86_BUS_LOCK);
        EXPECT_EQ(r.flags, abi::KVM_RUN_X86_BUS_LOCK);
        EXPECT_EQ(v->get_regs().rip, kCode + e.next) << "trap-like: RIP after the instruction";
        EXPECT_EQ(r.bus_lock.known, 1);
        EXPECT_EQ(r.bus_lock.split, 1);
        EXPECT_EQ(r.bus_lock.rip, kCode + e.insn);
        EXPECT_EQ(v->instructions_retired(), e.retired);
    }
    v->run();  // the aligned lock made no exit; flags are cleared by the run
    EXPECT_EQ(v->run_state().exit_reason, abi::KVM_EXIT_HLT);
    EXPECT_EQ(v->run_state().flags, 0);
    uint32_t counter;
    std::memcpy(&counter, ram_ + 0x20080, 4);
    EXPECT_EQ(counter, 1u);
}

TEST_F(BusLockExitTest, CoincidingMmioExitCarriesTheFlag) {
    ASSERT_TRUE(
        vm_.enable_cap(abi::KVM_CAP_X86_BUS_LOCK_EXIT, abi::KVM_BUS_LOCK_DETECTION_EXIT).ok());
    // mov $0x1000003e,%ebx; lock addl $1,(%ebx); hlt   (0x1000003e is not RAM: MMIO)
    const uint8_t code[] = {0xbb, 0x3e, 0x00, 0x00, 0x10, 0xf0, 0x83, 0x03, 0x01, 0xf4};
    auto v = start(code);
    v->run();
    abi::RunState& r = v->run_state();
    ASSERT_EQ(r.exit_reason, abi::KVM_EXIT_MMIO);  // the read: the instruction has not retired
    EXPECT_FALSE(r.mmio.is_write);
    EXPECT_EQ(r.flags, 0);
    const uint32_t value = 41;
    std::memcpy(r.mmio.data, &value, 4);
    v->run();
    ASSERT_EQ(r.exit_reason, abi::KVM_EXIT_MMIO);  // the write, and the bus lock with it
    EXPECT_TRUE(r.mmio.is_write);
    EXPECT_EQ(r.mmio.phys_addr, 0x1000003eu);
    EXPECT_EQ(r.mmio.data[0], 42);
    EXPECT_EQ(r.flags, abi::KVM_RUN_X86_BUS_LOCK);
    EXPECT_EQ(r.bus_lock.rip, kCode + 5);
    EXPECT_EQ(v->get_regs().rip, kCode + 9);
    v->run();
    EXPECT_EQ(r.exit_reason, abi::KVM_EXIT_HLT);
    EXPECT_EQ(r.flags, 0);
}

TEST_F(BusLockExitTest, LocksOnUncachedMemoryExitAsNotWriteBack) {
    ASSERT_TRUE(
        vm_.enable_cap(abi::KVM_CAP_X86_BUS_LOCK_EXIT, abi::KVM_BUS_LOCK_DETECTION_EXIT).ok());
    //  0: mov $0x2ff,%ecx; xor %edx,%edx; mov $0x800,%eax; wrmsr   (MTRRs on, default UC)
    //  e: lock incl 0x20040           aligned, UC -> exit, next RIP 0x15
    // 15: xchg %eax,0x20080           aligned, UC -> exit, next RIP 0x1b
    // 1b: addl $1,0x2003e             split but not locked -> nothing
    // 22: hlt
    const uint8_t code[] = {0xb9, 0xff, 0x02, 0x00, 0x00, 0x31, 0xd2, 0xb8, 0x00, 0x08, 0x00, 0x00,
                            0x0f, 0x30, 0xf0, 0xff, 0x05, 0x40, 0x00, 0x02, 0x00, 0x87, 0x05, 0x80,
                            0x00, 0x02, 0x00, 0x83, 0x05, 0x3e, 0x00, 0x02, 0x00, 0x01, 0xf4};
    auto v = start(code);
    for (uint64_t next : {0x15u, 0x1bu}) {
        v->run();
        const abi::RunState& r = v->run_state();
        ASSERT_EQ(r.exit_reason, abi::KVM_EXIT_X86_BUS_LOCK);
        EXPECT_EQ(r.bus_lock.split, 0);
        EXPECT_EQ(v->get_regs().rip, kCode + next);
    }
    v->run();
    EXPECT_EQ(v->run_state().exit_reason, abi::KVM_EXIT_HLT);
}

TEST_F(BusLockExitTest, DescriptorAccessedBitUpdateThatSplitsALineIsABusLock) {
    ASSERT_TRUE(
        vm_.enable_cap(abi::KVM_CAP_X86_BUS_LOCK_EXIT, abi::KVM_BUS_LOCK_DETECTION_EXIT).ok());
    // A GDT at 0x30034: descriptor 1 (selector 0x08) lies at 0x3003c-0x30043, across a
    // line; a flat data segment whose accessed bit is clear.
    constexpr uint64_t kGdt = 0x30034;
    const uint64_t data = 0x00CF92000000FFFFull;  // type 2: read/write, not accessed
    std::memcpy(ram_ + kGdt + 8, &data, 8);
    //  0: mov $0x8,%ax; 4: mov %eax,%ds; 6: mov %eax,%es; 8: hlt
    const uint8_t code[] = {0x66, 0xb8, 0x08, 0x00, 0x8e, 0xd8, 0x8e, 0xc0, 0xf4};
    auto v = start(code);
    abi::SpecialRegs s = v->get_sregs();
    s.gdt = {kGdt, 0x0F};
    ASSERT_TRUE(v->set_sregs(s).ok());
    v->run();
    const abi::RunState& r = v->run_state();
    ASSERT_EQ(r.exit_reason, abi::KVM_EXIT_X86_BUS_LOCK);
    EXPECT_EQ(r.bus_lock.split, 1);
    EXPECT_EQ(r.bus_lock.rip, kCode + 4);
    EXPECT_EQ(v->get_regs().rip, kCode + 6);
    uint64_t after;
    std::memcpy(&after, ram_ + kGdt + 8, 8);
    EXPECT_EQ(after, data | (1ull << 40));  // the accessed bit
    v->run();                               // the bit is set now: loading ES makes no locked update
    EXPECT_EQ(r.exit_reason, abi::KVM_EXIT_HLT);
}

}  // namespace
}  // namespace softkvm::hv
