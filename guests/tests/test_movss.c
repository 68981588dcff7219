/* Conformance: MOV SS and debug exceptions (SDM vol. 3 §6.8.3, §17.3.1) — a single-step
 * trap after MOV SS waits for the next instruction (one #DB, after it), and a data
 * breakpoint on MOV SS's source gives one #DB with DR6.B0. QEMU 7.2 TCG reports that
 * breakpoint at once instead of after the next instruction, and has no DR7.GD: both are
 * checked on emu in tests/cpu (DebugTest). */
#include "sdk.h"

static volatile int db_count;
static volatile uint64_t db_rip[4], db_dr6[4];


static void on_db(struct sdk_frame *f) {
    int n = db_count++;
    if (n < 4) {
        db_rip[n] = f->rip;
        db_dr6[n] = read_dr6();
    }
    write_dr6(0);
    f->rflags &= ~0x100ull; /* one step at a time */
}

extern char after_movss_step[];
static volatile uint16_t ss_value;

int main(void) {
    sdk_on_vector(1, on_db, 0);
    write_dr6(0);

    /* TF set by POPF: the trap after MOV SS is held until the instruction after it. */
    __asm__ volatile("mov %%ss, %%ax\n"
                     "pushfq\n"
                     "orq $0x100, (%%rsp)\n"
                     "popfq\n"
                     "mov %%ax, %%ss\n"
                     "nop\n"
                     ".global after_movss_step\n"
                     "after_movss_step: nop\n" ::
                         : "rax", "memory");
    report(db_count == 1, "single-step over MOV SS: one #DB");
    report(db_rip[0] == (uint64_t)after_movss_step, "the #DB comes after the next instruction");
    report((db_dr6[0] & 0x4000) != 0, "DR6.BS set");

    /* A read breakpoint on the word MOV SS loads. */
    db_count = 0;
    ss_value = 0;
    __asm__ volatile("mov %%ss, %0" : "=m"(ss_value));
    write_dr0((uint64_t)&ss_value);
    write_dr7(0x1 | (3u << 16) | (1u << 18)); /* L0, read/write, 2 bytes */
    __asm__ volatile("mov %0, %%ss\n"
                     "nop\n"
                     "nop\n" ::"m"(ss_value)
                     : "memory");
    write_dr7(0);
    report(db_count == 1, "data breakpoint on MOV SS's source: one #DB");
    report((db_dr6[0] & 1) != 0, "DR6.B0 set");

    report_summary();
}
