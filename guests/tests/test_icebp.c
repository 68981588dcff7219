/* Conformance: ICEBP (INT1, opcode 0xF1), checked against the SDM on emu. ICEBP raises a
 * trap-like #DB that ignores the gate's DPL (SDM vol. 3 §6.12.1.1) and sets no DR6 bit of
 * its own. Right after MOV SS, whose single-step and data-breakpoint traps wait for the
 * next instruction (§6.8.3), ICEBP's #DB and the held ones are one delivery: one #DB
 * after the ICEBP, DR6 reporting the held conditions. QEMU 7.2 TCG raises #UD for ICEBP
 * (its translator leaves it out), so there is no QEMU peer. */
#include "sdk.h"

static volatile int db_count;
static volatile uint64_t db_rip[4], db_dr6[4], db_cs[4];


static void on_db(struct sdk_frame *f) {
    const int n = db_count++;
    if (n < 4) {
        db_rip[n] = f->rip;
        db_dr6[n] = read_dr6();
        db_cs[n] = f->cs;
    }
    write_dr6(0);
    f->rflags &= ~0x100ull;
}

#define DR6_B0 0x1ull
#define DR6_BS 0x4000ull
#define DR6_CONDITIONS (0xFull | DR6_BS) /* B0-B3, BS */

extern char after_icebp[], after_icebp_user[], after_icebp_step[], after_icebp_bp[];
static volatile uint16_t ss_value;

static void user_icebp(void) {
    __asm__ volatile(".byte 0xf1\n.global after_icebp_user\nafter_icebp_user: nop" ::: "memory");
    sdk_user_exit(0);
}

int main(void) {
    sdk_on_vector(1, on_db, 0);
    write_dr6(0);

    /* Alone: one trap after it, no DR6 condition. */
    __asm__ volatile(".byte 0xf1\n.global after_icebp\nafter_icebp: nop" ::: "memory");
    report(db_count == 1, "ICEBP: one #DB");
    report(db_rip[0] == (uint64_t)after_icebp, "ICEBP: a trap (RIP after it)");
    report((db_dr6[0] & DR6_CONDITIONS) == 0, "ICEBP: no B0-B3 or BS in DR6");

    /* At CPL 3 through a DPL-0 gate: still #DB, not #GP. */
    db_count = 0;
    sdk_enable_user();
    report(sdk_run_user(user_icebp, sdk_user_stack()) == 0, "ICEBP at CPL 3 returns");
    report(db_count == 1 && db_rip[0] == (uint64_t)after_icebp_user && (db_cs[0] & 3) == 3,
           "ICEBP at CPL 3 ignores the gate's DPL");

    /* Single-step over MOV SS: the held BS trap joins ICEBP's #DB. */
    db_count = 0;
    __asm__ volatile("mov %%ss, %%ax\n"
                     "pushfq\n"
                     "orq $0x100, (%%rsp)\n"
                     "popfq\n"
                     "mov %%ax, %%ss\n"
                     ".byte 0xf1\n"
                     ".global after_icebp_step\n"
                     "after_icebp_step: nop\n" ::
                         : "rax", "memory");
    report(db_count == 1, "TF, MOV SS, ICEBP: one #DB");
    report(db_rip[0] == (uint64_t)after_icebp_step, "TF, MOV SS, ICEBP: after the ICEBP");
    report((db_dr6[0] & DR6_CONDITIONS) == DR6_BS, "TF, MOV SS, ICEBP: DR6.BS");

    /* A data breakpoint on MOV SS's source: its held trap joins ICEBP's #DB. */
    db_count = 0;
    __asm__ volatile("mov %%ss, %0" : "=m"(ss_value));
    write_dr0((uint64_t)&ss_value);
    write_dr7(0x1 | (3u << 16) | (1u << 18)); /* L0, read/write, 2 bytes */
    __asm__ volatile("mov %0, %%ss\n"
                     ".byte 0xf1\n"
                     ".global after_icebp_bp\n"
                     "after_icebp_bp: nop\n" ::"m"(ss_value)
                     : "memory");
    write_dr7(0);
    report(db_count == 1, "data breakpoint on MOV SS, ICEBP: one #DB");
    report(db_rip[0] == (uint64_t)after_icebp_bp, "data breakpoint on MOV SS, ICEBP: after the ICEBP");
    report((db_dr6[0] & DR6_CONDITIONS) == DR6_B0, "data breakpoint on MOV SS, ICEBP: DR6.B0");

    report_summary();
}
