// The legacy PC devices Linux probes: the 8254 PIT with port 0x61, the CMOS RTC, the
// i8042 and port 0x80, and the 16550's interrupt logic. Each runs on a fake clock.
#include <gtest/gtest.h>

#include <vector>

#include "vmm/bus.h"
#include "vmm/devices/i8042.h"
#include "vmm/devices/pit.h"
#include "vmm/devices/port80.h"
#include "vmm/devices/rtc.h"
#include "vmm/devices/uart16550.h"

namespace softkvm::vmm {
namespace {

uint8_t in(Bus& b, uint16_t port) {
    uint8_t v = 0;
    EXPECT_TRUE(b.read(port, &v, 1)) << port;
    return v;
}
void out(Bus& b, uint16_t port, uint8_t v) {
    EXPECT_TRUE(b.write(port, &v, 1)) << port;
}

// ns of `ticks` PIT input clocks, rounded up so that the tick has happened.
uint64_t pit_ns(uint64_t ticks) {
    return (ticks * 1000000000ull + Pit::kHz - 1) / Pit::kHz;
}

struct PitFixture : ::testing::Test {
    uint64_t now = 0;
    std::vector<bool> irq;
    std::shared_ptr<Pit> pit =
        std::make_shared<Pit>([this] { return now; }, [this](bool l) { irq.push_back(l); });
    Bus bus;
    void SetUp() override {
        ASSERT_TRUE(bus.add(Pit::kPort, Pit::kPorts, pit).ok());
        ASSERT_TRUE(pit->attach(bus).ok());
    }
    uint16_t read_lohi(uint16_t port) {
        const uint8_t lo = in(bus, port);
        return static_cast<uint16_t>(lo | in(bus, port) << 8);
    }
};

TEST_F(PitFixture, Mode0CountsDownAndRaisesOutAtTerminalCount) {
    out(bus, 0x43, 0x30);  // channel 0, LSB then MSB, mode 0
    EXPECT_FALSE(pit->out(0));
    out(bus, 0x40, 0xE8);
    out(bus, 0x40, 0x03);  // 1000
    now = pit_ns(400);
    out(bus, 0x43, 0x00);  // latch channel 0
    EXPECT_EQ(read_lohi(0x40), 600);
    EXPECT_FALSE(pit->out(0));
    now = pit_ns(1000);
    EXPECT_TRUE(pit->out(0));
    pit->update();
    ASSERT_FALSE(irq.empty());
    EXPECT_TRUE(irq.back());
    now = pit_ns(1001);
    EXPECT_EQ(pit->count(0), 0xFFFF);  // wraps and keeps counting; OUT stays high
    EXPECT_TRUE(pit->out(0));
}

TEST_F(PitFixture, LatchHoldsTheCountUntilRead) {
    out(bus, 0x43, 0x34);  // channel 0, LSB/MSB, mode 2
    out(bus, 0x40, 0x00);
    out(bus, 0x40, 0x10);  // 4096
    now = pit_ns(100);
    out(bus, 0x43, 0x00);
    now = pit_ns(2000);  // the latch keeps the old value
    EXPECT_EQ(read_lohi(0x40), 4096 - 100);
    EXPECT_EQ(read_lohi(0x40), 4096 - 2000);  // live again after the latch is read
}

TEST_F(PitFixture, Mode2RateGeneratorPulsesLowOncePerPeriod) {
    out(bus, 0x43, 0x34);
    out(bus, 0x40, 100);
    out(bus, 0x40, 0);
    now = pit_ns(98);
    EXPECT_TRUE(pit->out(0));
    EXPECT_EQ(pit->count(0), 2);
    now = pit_ns(99);
    EXPECT_FALSE(pit->out(0));
    EXPECT_EQ(pit->count(0), 1);
    now = pit_ns(100);
    EXPECT_TRUE(pit->out(0));
    EXPECT_EQ(pit->count(0), 100);
    now = pit_ns(250);
    EXPECT_EQ(pit->count(0), 50);
    // The next change of OUT: low at tick 299.
    EXPECT_EQ(pit->next_irq0_change(), pit_ns(299));
}

// An update that comes after OUT's one-tick low phase (host time, kvm) still gives IRQ 0
// its edge; an update within the same period gives none.
TEST_F(PitFixture, Mode2LowPhaseBetweenUpdatesStillMakesAnEdge) {
    out(bus, 0x43, 0x34);  // channel 0, LSB then MSB, mode 2
    out(bus, 0x40, 100);
    out(bus, 0x40, 0);
    pit->update();
    irq.clear();
    now = pit_ns(50);
    pit->update();
    EXPECT_TRUE(irq.empty());
    now = pit_ns(150);  // past the low tick at 99
    pit->update();
    EXPECT_EQ(irq, (std::vector<bool>{false, true}));
    irq.clear();
    now = pit_ns(198);  // the next low tick (199) has not come
    pit->update();
    EXPECT_TRUE(irq.empty());
    now = pit_ns(199);  // in it: the line falls
    pit->update();
    EXPECT_EQ(irq, (std::vector<bool>{false}));
}

TEST_F(PitFixture, Mode3SquareWaveHalves) {
    out(bus, 0x43, 0x36);  // channel 0, LSB/MSB, mode 3
    out(bus, 0x40, 10);
    out(bus, 0x40, 0);
    now = pit_ns(4);
    EXPECT_TRUE(pit->out(0));
    EXPECT_EQ(pit->count(0), 2);  // decrements by two
    now = pit_ns(5);
    EXPECT_FALSE(pit->out(0));
    EXPECT_EQ(pit->next_irq0_change(), pit_ns(10));
    now = pit_ns(10);
    EXPECT_TRUE(pit->out(0));
}

TEST_F(PitFixture, ReadBackStatusAndCount) {
    out(bus, 0x43, 0xB0);            // channel 2, LSB/MSB, mode 0
    out(bus, 0x43, 0xE8);            // read-back: count and status of channel 2
    EXPECT_EQ(in(bus, 0x42), 0x70);  // OUT low, null count, access 3, mode 0, binary
    out(bus, 0x42, 0x34);
    out(bus, 0x42, 0x12);
    out(bus, 0x43, 0xE8);
    EXPECT_EQ(in(bus, 0x42), 0x30);      // count loaded: null count clear
    EXPECT_EQ(read_lohi(0x42), 0x1234);  // gate low: not counting yet
}

TEST_F(PitFixture, Channel2GateAndOut2InPort61AsLinuxCalibrates) {
    // Linux's pit_calibrate_tsc(): gate on, speaker off; mode 0, count 0xFFFF...
    out(bus, 0x61, (in(bus, 0x61) & ~0x02) | 0x01);
    out(bus, 0x43, 0xB0);
    const uint16_t latch = 11932;  // 10 ms
    out(bus, 0x42, latch & 0xFF);
    out(bus, 0x42, latch >> 8);
    EXPECT_EQ(in(bus, 0x61) & Pit::kPortBOut2, 0);
    now = pit_ns(latch - 1);
    EXPECT_EQ(in(bus, 0x61) & Pit::kPortBOut2, 0);
    now = pit_ns(latch);
    EXPECT_EQ(in(bus, 0x61) & Pit::kPortBOut2, Pit::kPortBOut2);  // ...then polls OUT2
    EXPECT_EQ(in(bus, 0x61) & Pit::kPortBGate2, Pit::kPortBGate2);
    // Gate low in mode 0 pauses the count; high again resumes it.
    out(bus, 0x43, 0xB0);
    out(bus, 0x42, 0x00);
    out(bus, 0x42, 0x01);  // 256
    const uint64_t t0 = now;
    now = t0 + pit_ns(10);
    out(bus, 0x61, 0x00);
    now = t0 + pit_ns(1000);
    EXPECT_EQ(pit->count(2), 246);
    out(bus, 0x61, 0x01);
    now = t0 + pit_ns(1010);
    EXPECT_NEAR(pit->count(2), 236, 1);
}

TEST_F(PitFixture, RefreshBitToggles) {
    const uint8_t a = in(bus, 0x61) & Pit::kPortBRefresh;
    now += Pit::kRefreshNs;
    EXPECT_NE(in(bus, 0x61) & Pit::kPortBRefresh, a);
}

TEST(Rtc, ReadsTheEpochPlusTheClockInBcdAndBinary) {
    uint64_t now = 0;
    Rtc rtc([&] { return now; }, 1767225600 + 13 * 3600 + 45 * 60 + 7);  // 2026-01-01 13:45:07
    Bus bus;
    auto dev = std::shared_ptr<Rtc>(&rtc, [](Rtc*) {});
    ASSERT_TRUE(bus.add(Rtc::kPort, Rtc::kPorts, dev).ok());
    auto reg = [&](uint8_t r) {
        out(bus, 0x70, r);
        return in(bus, 0x71);
    };
    EXPECT_EQ(reg(Rtc::kSeconds), 0x07);
    EXPECT_EQ(reg(Rtc::kMinutes), 0x45);
    EXPECT_EQ(reg(Rtc::kHours), 0x13);
    EXPECT_EQ(reg(Rtc::kDayOfMonth), 0x01);
    EXPECT_EQ(reg(Rtc::kMonth), 0x01);
    EXPECT_EQ(reg(Rtc::kYear), 0x26);
    EXPECT_EQ(reg(Rtc::kCentury), 0x20);
    EXPECT_EQ(reg(Rtc::kDayOfWeek), 5);  // Thursday (1 = Sunday)
    EXPECT_EQ(reg(Rtc::kRegA), Rtc::kRegADefault);
    EXPECT_EQ(reg(Rtc::kRegD), Rtc::kRegDValid);
    now = 60ull * 86400 * 1000000000ull;  // 60 days later: 2026-03-02
    EXPECT_EQ(reg(Rtc::kMonth), 0x03);
    EXPECT_EQ(reg(Rtc::kDayOfMonth), 0x02);
    // Binary, 12-hour.
    out(bus, 0x70, Rtc::kRegB);
    out(bus, 0x71, Rtc::kRegBBinary);
    EXPECT_EQ(reg(Rtc::kMinutes), 45);
    EXPECT_EQ(reg(Rtc::kHours), 1 | Rtc::kHourPm);
    EXPECT_EQ(reg(Rtc::kYear), 26);
    // NMI mask bit in the index port.
    out(bus, 0x70, 0x80 | Rtc::kSeconds);
    EXPECT_TRUE(rtc.nmi_masked());
    EXPECT_EQ(rtc.index(), Rtc::kSeconds);
}

TEST(Rtc, UpdateInProgressInTheLast244MicrosecondsOfEachSecond) {
    uint64_t now = 0;
    Rtc rtc([&] { return now; });
    auto reg_a = [&] {
        uint8_t v = Rtc::kRegA;
        rtc.write(0, &v, 1);
        rtc.read(1, &v, 1);
        return v;
    };
    now = 999755000;
    EXPECT_EQ(reg_a() & Rtc::kRegAUip, 0);
    now = 999756000;
    EXPECT_EQ(reg_a() & Rtc::kRegAUip, Rtc::kRegAUip);
    now = 1000000000;
    EXPECT_EQ(reg_a() & Rtc::kRegAUip, 0);
}

TEST(Rtc, GuestWritesMoveTheClock) {
    uint64_t now = 0;
    Rtc rtc([&] { return now; });
    auto set = [&](uint8_t r, uint8_t v) {
        rtc.write(0, &r, 1);
        rtc.write(1, &v, 1);
    };
    set(Rtc::kYear, 0x30);
    set(Rtc::kMonth, 0x07);
    set(Rtc::kDayOfMonth, 0x04);
    // 2030-07-04 00:00:00 plus the clock.
    EXPECT_EQ(rtc.now(), days_from_civil(2030, 7, 4) * 86400);
    now = 5000000000ull;
    EXPECT_EQ(rtc.now(), days_from_civil(2030, 7, 4) * 86400 + 5);
}

TEST(Rtc, CivilDates) {
    EXPECT_EQ(days_from_civil(1970, 1, 1), 0);
    EXPECT_EQ(days_from_civil(2000, 3, 1), 11017);
    EXPECT_EQ(days_from_civil(2026, 1, 1), 20454);
    const CivilDate d = civil_from_days(11016);  // 2000-02-29
    EXPECT_EQ(d.year, 2000);
    EXPECT_EQ(d.month, 2u);
    EXPECT_EQ(d.day, 29u);
    const CivilDate e = civil_from_days(-1);
    EXPECT_EQ(e.year, 1969);
    EXPECT_EQ(e.month, 12u);
    EXPECT_EQ(e.day, 31u);
}

struct I8042Fixture : ::testing::Test {
    std::vector<bool> irq;
    int resets = 0;
    I8042 kbc{[this](bool l) { irq.push_back(l); }, [this] { ++resets; }};
    Bus bus;
    void SetUp() override { ASSERT_TRUE(kbc.attach(bus).ok()); }
};

TEST_F(I8042Fixture, LinuxProbeSequence) {
    // i8042_flush: nothing to read.
    EXPECT_EQ(in(bus, 0x64) & I8042::kStatusObf, 0);
    // Read the command byte, write it back with interrupts off.
    out(bus, 0x64, I8042::kCmdReadCtr);
    EXPECT_EQ(in(bus, 0x64) & I8042::kStatusObf, I8042::kStatusObf);
    const uint8_t ctr = in(bus, 0x60);
    // Interrupts were on: the byte raised IRQ 1 until it was read.
    EXPECT_EQ(irq, (std::vector<bool>{true, false}));
    irq.clear();
    EXPECT_EQ(ctr, I8042::kCtrKbdInt | I8042::kCtrSys | I8042::kCtrXlate);
    out(bus, 0x64, I8042::kCmdWriteCtr);
    out(bus, 0x60, ctr & ~I8042::kCtrKbdInt);
    EXPECT_EQ(kbc.command_byte(), ctr & ~I8042::kCtrKbdInt);
    out(bus, 0x64, I8042::kCmdSelfTest);
    EXPECT_EQ(in(bus, 0x60), I8042::kSelfTestOk);
    out(bus, 0x64, I8042::kCmdKbdTest);
    EXPECT_EQ(in(bus, 0x60), 0x00);
    out(bus, 0x64, I8042::kCmdAuxTest);  // no mouse port
    EXPECT_EQ(in(bus, 0x60), I8042::kAuxClockStuck);
    EXPECT_TRUE(irq.empty());  // interrupts off now
    // Interrupts on: the keyboard's reply raises IRQ 1 until read.
    out(bus, 0x64, I8042::kCmdWriteCtr);
    out(bus, 0x60, ctr);
    out(bus, 0x60, 0xF2);  // GET ID
    ASSERT_EQ(irq.size(), 1u);
    EXPECT_TRUE(irq[0]);
    EXPECT_EQ(in(bus, 0x60), I8042::kKbdAck);
    EXPECT_EQ(in(bus, 0x60), 0xAB);
    EXPECT_EQ(in(bus, 0x60), 0x83);
    ASSERT_EQ(irq.size(), 2u);
    EXPECT_FALSE(irq[1]);
    EXPECT_EQ(resets, 0);
}

TEST_F(I8042Fixture, ResetCommandsPulseTheResetLine) {
    out(bus, 0x64, 0xFF);  // pulse nothing
    EXPECT_EQ(resets, 0);
    out(bus, 0x64, I8042::kCmdPulseReset);
    EXPECT_EQ(resets, 1);
    EXPECT_TRUE(kbc.reset_requested());
    out(bus, 0x64, I8042::kCmdWriteOutPort);
    out(bus, 0x60, 0x02);  // reset line low
    EXPECT_EQ(resets, 2);
}

TEST(Port80, CountsWritesAndFloatsOnRead) {
    auto p = std::make_shared<Port80>();
    Bus bus;
    ASSERT_TRUE(bus.add(Port80::kPort, Port80::kPorts, p).ok());
    out(bus, 0x80, 0x12);
    out(bus, 0x80, 0x34);
    EXPECT_EQ(p->writes(), 2u);
    EXPECT_EQ(p->last(), 0x34);
    EXPECT_EQ(in(bus, 0x80), 0xFF);
}

struct UartFixture : ::testing::Test {
    std::string sent;
    std::vector<bool> irq;
    std::shared_ptr<Uart16550> uart =
        std::make_shared<Uart16550>([this](char c) { sent.push_back(c); });
    Bus bus;
    void SetUp() override {
        ASSERT_TRUE(bus.add(0x3F8, 8, uart).ok());
        uart->set_irq([this](bool l) { irq.push_back(l); });
    }
};

TEST_F(UartFixture, ThreInterruptAsLinux8250ProbesIt) {
    out(bus, 0x3FC, Uart16550::kMcrOut2);
    EXPECT_EQ(in(bus, 0x3FA), 0x01);  // nothing pending
    // serial8250_do_startup: IER.THRI 0 -> 1 raises THRE; IIR reports it and clears it.
    out(bus, 0x3F9, Uart16550::kIerThre);
    EXPECT_TRUE(uart->irq_level());
    EXPECT_EQ(in(bus, 0x3FA), Uart16550::kIirThre);
    EXPECT_FALSE(uart->irq_level());
    EXPECT_EQ(in(bus, 0x3FA), 0x01);
    out(bus, 0x3F9, 0);
    out(bus, 0x3F9, Uart16550::kIerThre);
    EXPECT_EQ(in(bus, 0x3FA), Uart16550::kIirThre);
    // A THR write raises it again (the byte left at once).
    out(bus, 0x3F8, 'x');
    EXPECT_EQ(sent, "x");
    EXPECT_TRUE(uart->irq_level());
    EXPECT_EQ(in(bus, 0x3FA), Uart16550::kIirThre);
    EXPECT_EQ(irq, (std::vector<bool>{true, false, true, false, true, false}));
}

TEST_F(UartFixture, ReceivedDataOutranksThreAndOut2GatesTheLine) {
    out(bus, 0x3F9, Uart16550::kIerRx | Uart16550::kIerThre);
    EXPECT_FALSE(uart->irq_level());  // OUT2 clear: the line stays low
    out(bus, 0x3FC, Uart16550::kMcrOut2);
    EXPECT_TRUE(uart->irq_level());
    EXPECT_EQ(uart->receive("hi", 2), 2u);
    EXPECT_EQ(in(bus, 0x3FD) & Uart16550::kLsrDr, Uart16550::kLsrDr);
    EXPECT_EQ(in(bus, 0x3FA), Uart16550::kIirRx);
    EXPECT_EQ(in(bus, 0x3F8), 'h');
    EXPECT_EQ(in(bus, 0x3F8), 'i');
    EXPECT_EQ(in(bus, 0x3FD) & Uart16550::kLsrDr, 0);
    EXPECT_EQ(in(bus, 0x3FA), Uart16550::kIirThre);  // THRE was pending underneath
    EXPECT_EQ(in(bus, 0x3FA), 0x01);
    EXPECT_FALSE(uart->irq_level());
    // A full FIFO refuses the rest.
    const std::string many(20, 'z');
    EXPECT_EQ(uart->receive(many.data(), many.size()), Uart16550::kFifoSize);
}

TEST_F(UartFixture, FifoControlAndLoopback) {
    out(bus, 0x3FA, Uart16550::kFcrEnable);
    EXPECT_EQ(in(bus, 0x3FA), 0xC1);  // 16550A: FIFOs enabled, nothing pending
    out(bus, 0x3FC, Uart16550::kMcrLoop);
    out(bus, 0x3F8, 'L');
    EXPECT_EQ(sent, "");
    EXPECT_EQ(in(bus, 0x3F8), 'L');
}

}  // namespace
}  // namespace softkvm::vmm
