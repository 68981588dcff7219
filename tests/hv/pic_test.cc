// The 8259 pair: initialization as Linux and a BIOS program it, masking, priorities,
// EOIs, the cascade, level-triggered lines, polling, and Linux's probe.
#include <gtest/gtest.h>

#include "hv/pic.h"

namespace softkvm::hv {
namespace {

// ICW1-ICW4 as Linux's init_8259A(): master vectors 0x30, slave 0x38, cascade on IRQ 2.
void init_like_linux(Pic& p, bool auto_eoi = false) {
    p.write(0x21, 0xFF);
    p.write(0xA1, 0xFF);
    p.write(0x20, 0x11);                    // ICW1: edge, cascade, ICW4 needed
    p.write(0x21, 0x30);                    // ICW2: vector base
    p.write(0x21, 0x04);                    // ICW3: slave on IRQ 2
    p.write(0x21, auto_eoi ? 0x03 : 0x01);  // ICW4: 8086 mode (+ auto EOI)
    p.write(0xA0, 0x11);
    p.write(0xA1, 0x38);
    p.write(0xA1, 0x02);
    p.write(0xA1, 0x01);
    p.write(0x21, 0xFB);  // all masked but the cascade
    p.write(0xA1, 0xFF);
}

TEST(Pic, LinuxProbeReadsTheMaskBack) {
    Pic p;
    p.write(0xA1, 0xFF);
    p.write(0x21, 0xFB);
    EXPECT_EQ(p.read(0x21), 0xFB);
    EXPECT_EQ(p.read(0xA1), 0xFF);
}

TEST(Pic, MaskedEdgeIsHeldUntilUnmasked) {
    Pic p;
    init_like_linux(p);
    p.set_irq(0, true);
    EXPECT_FALSE(p.output());
    EXPECT_EQ(p.read(0x20), 0x01);  // IRR (OCW3 default): the request is latched
    p.write(0x21, 0xFA);            // unmask IRQ 0
    EXPECT_TRUE(p.output());
    EXPECT_EQ(p.acknowledge(), 0x30);
    EXPECT_FALSE(p.output());
    p.write(0x20, 0x0B);  // OCW3: read ISR
    EXPECT_EQ(p.read(0x20), 0x01);
    p.write(0x20, 0x20);  // non-specific EOI
    EXPECT_EQ(p.read(0x20), 0x00);
    // The line is still high: no new edge, no new request.
    p.set_irq(0, true);
    EXPECT_FALSE(p.output());
    p.set_irq(0, false);
    p.set_irq(0, true);
    EXPECT_TRUE(p.output());
}

TEST(Pic, PriorityAndNesting) {
    Pic p;
    init_like_linux(p);
    p.write(0x21, 0x00);
    p.set_irq(4, true);
    EXPECT_EQ(p.acknowledge(), 0x34);
    p.set_irq(6, true);  // lower priority than the IRQ 4 in service
    EXPECT_FALSE(p.output());
    p.set_irq(1, true);  // higher: nests
    EXPECT_TRUE(p.output());
    EXPECT_EQ(p.acknowledge(), 0x31);
    p.write(0x20, 0x61);  // specific EOI for IRQ 1
    p.write(0x20, 0x64);  // specific EOI for IRQ 4
    EXPECT_EQ(p.acknowledge(), 0x36);
    // Nothing left: a spurious IRQ 7.
    p.write(0x20, 0x20);
    EXPECT_FALSE(p.output());
    EXPECT_EQ(p.acknowledge(), 0x37);
}

TEST(Pic, SlaveCascadesThroughIrq2) {
    Pic p;
    init_like_linux(p);
    p.write(0xA1, 0xEF);  // unmask IRQ 12
    p.set_irq(12, true);
    EXPECT_TRUE(p.output());
    EXPECT_EQ(p.acknowledge(), 0x3C);
    p.write(0xA0, 0x0B);
    EXPECT_EQ(p.read(0xA0), 0x10);  // slave ISR bit 4
    p.write(0x20, 0x0B);
    EXPECT_EQ(p.read(0x20), 0x04);  // master ISR bit 2
}

TEST(Pic, LevelTriggeredLinesFollowTheLevel) {
    Pic p;
    init_like_linux(p);
    p.write(0x4D1, 0x02);  // IRQ 9 level-triggered
    EXPECT_EQ(p.read(0x4D1), 0x02);
    p.write(0x4D0, 0x07);  // IRQs 0-2 can never be level: masked off
    EXPECT_EQ(p.read(0x4D0), 0x00);
    p.write(0xA1, 0xFD);
    p.set_irq(9, true);
    EXPECT_EQ(p.acknowledge(), 0x39);
    p.write(0xA0, 0x20);
    p.write(0x20, 0x20);
    EXPECT_TRUE(p.output());  // still high: requested again
    p.set_irq(9, false);
    EXPECT_FALSE(p.output());
}

TEST(Pic, AutoEoiAndPoll) {
    Pic p;
    init_like_linux(p, true);
    p.write(0x21, 0x00);
    p.set_irq(3, true);
    EXPECT_EQ(p.acknowledge(), 0x33);
    p.write(0x20, 0x0B);
    EXPECT_EQ(p.read(0x20), 0x00);  // auto EOI: nothing in service
    p.set_irq(5, true);
    p.write(0x20, 0x0C);  // OCW3 poll
    EXPECT_EQ(p.read(0x20), 0x85);
    EXPECT_FALSE(p.output());
}

TEST(Pic, RotationMovesTheLowestPriority) {
    Pic p;
    init_like_linux(p);
    p.write(0x21, 0x00);
    p.write(0x20, 0xC4);  // set priority: IRQ 4 lowest, IRQ 5 highest
    p.set_irq(3, true);
    p.set_irq(6, true);
    EXPECT_EQ(p.acknowledge(), 0x36);
}

}  // namespace
}  // namespace softkvm::hv
