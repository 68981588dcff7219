/* Conformance: debug exceptions — DR0-DR3 instruction and data breakpoints with DR6 hit
 * bits, RF to resume past an instruction breakpoint, TF single-step (DR6.BS), INT3, and
 * DR6's fixed bits. ICEBP is checked in tests/cpu: QEMU 7.2 TCG builds without it
 * (WANT_ICEBP) and raises #UD. */
#include "sdk.h"

static volatile int db_count;
static volatile uint64_t last_dr6, last_rip;
static volatile int steps_left;

static void on_db(struct sdk_frame *f) {
    ++db_count;
    last_dr6 = read_dr6();
    last_rip = f->rip;
    write_dr6(0);
    if (last_dr6 & 0xF) f->rflags |= 1ull << 16; /* RF: do not hit the breakpoint again */
    if ((last_dr6 & (1u << 14)) && --steps_left <= 0) f->rflags &= ~0x100ull;
}

static volatile int bp_count;
static volatile uint64_t bp_rip;
static void on_bp(struct sdk_frame *f) {
    ++bp_count;
    bp_rip = f->rip;
}

__attribute__((noinline)) static int target_function(int x) {
    __asm__ volatile("");
    return x * 3;
}

static volatile uint32_t watched[4];

int main(void) {
    sdk_on_vector(1, on_db, 0);
    sdk_on_vector(3, on_bp, 3);

    write_dr6(0);
    /* Bit 11 (BLD) is writable where bus-lock detection is exposed (test_buslock). */
    report((read_dr6() & 0xFFFFF7FF) == 0xFFFF07F0, "DR6 reads its fixed bits as 1");

    /* Instruction breakpoint on target_function. */
    write_dr0((uint64_t)target_function);
    write_dr7(0x1); /* L0, execute, length 1 */
    const int r = target_function(5);
    write_dr7(0);
    report(db_count == 1 && r == 15, "instruction breakpoint: one #DB, then RF lets it run");
    report(last_dr6 & 1, "DR6.B0 set");
    report(last_rip == (uint64_t)target_function, "#DB is a fault at the breakpoint address");

    /* Data write breakpoint on watched[1] (4 bytes). */
    db_count = 0;
    write_dr1((uint64_t)&watched[1]);
    write_dr7((1u << 2) | (1u << 20) | (3u << 22)); /* L1, write, 4 bytes */
    uint32_t x = watched[1];                         /* a read does not trigger */
    watched[0] = 7;                                  /* nor a write next to it */
    report(db_count == 0, "reads and neighbouring writes do not trigger");
    watched[1] = x + 1;
    write_dr7(0);
    report(db_count == 1 && (last_dr6 & 2), "data write breakpoint traps with DR6.B1");
    report(watched[1] == x + 1, "the write completed before the trap");

    /* Single-step four instructions. */
    db_count = 0;
    steps_left = 4;
    __asm__ volatile(
        "pushfq\n\t"
        "orq $0x100, (%%rsp)\n\t"
        "popfq\n\t"
        "nop\n\t"
        "nop\n\t"
        "nop\n\t"
        "nop\n\t"
        "nop\n\t"
        "nop" ::: "memory");
    report(db_count == 4, "TF: one #DB per instruction until cleared");
    report(last_dr6 & (1u << 14), "DR6.BS set on single-step");

    /* INT3 and ICEBP. */
    __asm__ volatile("int3");
    report(bp_count == 1, "int3 raises #BP");
    report_summary();
}
