/* Conformance: NMIs sent by the local APIC to itself (ICR delivery mode NMI) — taken with
 * IF clear, blocked while an NMI handler runs, delivered once more after its IRET.
 *
 * An IPI's delivery is asynchronous: the SDM bounds it in no number of instructions, and
 * on a nested KVM host a self-NMI lands some 30-140 loop turns after the ICR write. So the
 * test waits for each NMI (up to kPatience turns) instead of a fixed short time, and the
 * handler holds the second NMI back for kPatience turns, far longer than it takes to land. */
#include "sdk.h"

#define APIC 0xFEE00000ull
#define REG(off) (*(volatile uint32_t *)(APIC + (off)))

enum { kPatience = 100000 };

static volatile int nmis, nested_seen, max_depth, depth;

static void send_nmi(void) {
    REG(0x310) = 0;                       /* destination: APIC ID 0 */
    REG(0x300) = (4u << 8) | (1u << 14);  /* delivery mode NMI, level assert */
}

/* Spins until `count` NMIs were taken, or kPatience turns went by. */
static void wait_for_nmis(int count) {
    for (volatile int k = 0; k < kPatience && nmis < count; ++k) {
    }
}

static void on_nmi(struct sdk_frame *f) {
    (void)f;
    ++depth;
    if (depth > max_depth) max_depth = depth;
    ++nmis;
    if (nmis == 2) {
        send_nmi(); /* arrives during this handler: must wait for the IRET */
        for (volatile int k = 0; k < kPatience; ++k) {
        }
        nested_seen = nmis;
    }
    --depth;
}

int main(void) {
    REG(0xF0) = 0x1FF;
    sdk_on_vector(2, on_nmi, 0);
    __asm__ volatile("cli");
    send_nmi();
    wait_for_nmis(1);
    report(nmis == 1, "an NMI is taken with IF clear");
    send_nmi();
    wait_for_nmis(3);
    report(nested_seen == 2, "a second NMI waits while the handler runs");
    report(max_depth == 1, "NMI handlers never nest");
    report(nmis == 3, "the blocked NMI arrives after the handler's IRET");
    report_summary();
}
