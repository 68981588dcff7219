/* Conformance: the LBR stack (spec §2.1; Intel SDM vol. 3 §17.4.8, §17.11, §18.4): one
 * taken branch of each LBR_SELECT class recorded with its FROM/TO, and suppressed by its
 * filter bit; CPL filters; interrupts and exceptions as far branches; call-stack mode; TOS
 * wrap-around; the mispredict flag and LBR_INFO's cycle count; FREEZE_LBRS_ON_PMI (the
 * legacy freeze of PMU v2-3, the LBR_Frz freeze of v4); #GP on
 * reserved bits and on MSRs beyond the model's depth. The depth and format come from the
 * CPU model (Skylake-class: 32 entries with LBR_INFO; Broadwell-class: 16, no INFO).
 * QEMU TCG has no LBR, so this guest is checked against the SDM, on emu only. */
#include "pmu.h"

/* Each snippet: rdi = LBR_SELECT; turns recording on, takes one branch of its class from
 * the label <name>_from to <name>_to, turns recording off, returns. */
#define LBR_ON                                                                            \
    "mov %rdi, %rax\n mov $0, %edx\n mov $0x1C8, %ecx\n wrmsr\n"                          \
    "mov $0x1D9, %ecx\n mov $1, %eax\n xor %edx, %edx\n wrmsr\n"
#define LBR_OFF "mov $0x1D9, %ecx\n xor %eax, %eax\n xor %edx, %edx\n wrmsr\n"
#define GLOBAL(name) ".globl " #name "\n" #name ":\n"
__asm__(".text\n"
        GLOBAL(snip_jcc) LBR_ON "cmp %eax, %eax\n"
        GLOBAL(jcc_from) "jz jcc_to\n ud2\n"
        GLOBAL(jcc_to) LBR_OFF "ret\n"

        GLOBAL(snip_relcall) LBR_ON
        GLOBAL(relcall_from) "call relcall_to\n ret\n"
        GLOBAL(relcall_to) LBR_OFF "ret\n"

        GLOBAL(snip_indcall) "lea indcall_to(%rip), %r11\n" LBR_ON
        GLOBAL(indcall_from) "call *%r11\n ret\n"
        GLOBAL(indcall_to) LBR_OFF "ret\n"

        GLOBAL(snip_ret) "lea ret_to(%rip), %r11\n push %r11\n" LBR_ON
        GLOBAL(ret_from) "ret\n ud2\n"
        GLOBAL(ret_to) LBR_OFF "ret\n"

        GLOBAL(snip_indjmp) "lea indjmp_to(%rip), %r11\n" LBR_ON
        GLOBAL(indjmp_from) "jmp *%r11\n ud2\n"
        GLOBAL(indjmp_to) LBR_OFF "ret\n"

        GLOBAL(snip_reljmp) LBR_ON
        GLOBAL(reljmp_from) "jmp reljmp_to\n ud2\n"
        GLOBAL(reljmp_to) LBR_OFF "ret\n"

        GLOBAL(snip_far) LBR_ON
        GLOBAL(far_from) "int $0x90\n"
        GLOBAL(far_back) "ret\n"
        GLOBAL(far_to) LBR_OFF "iretq\n"

        GLOBAL(snip_fault) LBR_ON
        GLOBAL(fault_from) "ud2\n"
        GLOBAL(fault_back) "ret\n"
        GLOBAL(fault_to) LBR_OFF "addq $2, (%rsp)\n iretq\n"

        /* Call-stack mode: two nested calls and their returns, then two calls left open. */
        GLOBAL(snip_callstack) LBR_ON "call cs_a\n"
        GLOBAL(cs_call_a2) "call cs_a2\n ret\n"
        "cs_a: call cs_b\n ret\n"
        "cs_b: ret\n"
        GLOBAL(cs_a2) GLOBAL(cs_call_b2) "call cs_b2\n ret\n"
        GLOBAL(cs_b2) LBR_OFF "ret\n"

        /* rsi relative jumps with DEBUGCTL = LBR | FREEZE_LBRS_ON_PMI (rdi = DEBUGCTL). */
        GLOBAL(snip_freeze) "mov %rdi, %rax\n xor %edx, %edx\n mov $0x1D9, %ecx\n wrmsr\n"
        "1:\n" GLOBAL(freeze_from) "jmp 2f\n"
        "2:\n dec %rsi\n jnz 1b\n" GLOBAL(freeze_end) LBR_OFF "ret\n"

        /* Ring 3: three relative jumps, then back to ring 0. */
        GLOBAL(user_jumps) "jmp 1f\n 1: jmp 2f\n 2: jmp 3f\n 3: mov $0, %edi\n call sdk_user_exit\n"
        GLOBAL(user_jumps_end)

        /* n relative jumps (rsi = n) for the wrap-around; the loop's Jcc is filtered. */
        GLOBAL(snip_many) LBR_ON
        "1:\n" GLOBAL(many_from) "jmp 2f\n"
        "2:\n" GLOBAL(many_to) "dec %rsi\n jnz 1b\n" LBR_OFF "ret\n");

typedef void (*snippet)(uint64_t select, uint64_t n);
extern char snip_jcc[], jcc_from[], jcc_to[], snip_relcall[], relcall_from[], relcall_to[],
    cs_call_a2[], cs_call_b2[], snip_freeze[], freeze_from[], freeze_end[], user_jumps[],
    user_jumps_end[], snip_indcall[], indcall_from[], indcall_to[], snip_ret[], ret_from[], ret_to[], snip_indjmp[],
    indjmp_from[], indjmp_to[], snip_reljmp[], reljmp_from[], reljmp_to[], snip_far[], far_from[],
    far_to[], snip_fault[], fault_from[], fault_to[], snip_callstack[], cs_a2[], cs_b2[],
    snip_many[], many_from[], many_to[];

static int depth, info;

static void cat(char *dst, const char *a, const char *b) {
    while (*a) *dst++ = *a++;
    while (*b) *dst++ = *b++;
    *dst = 0;
}

static uint64_t tos(void) { return rdmsr(MSR_LBR_TOS); }

struct cls {
    const char *name;
    char *snip, *from, *to;
    uint32_t bit;
    struct lbr_entry first; /* the record of its first run */
};

static void check_class(struct cls *c) {
    char what[96];
    /* Everything but this class suppressed: exactly one record. */
    const uint64_t t0 = tos();
    ((snippet)c->snip)(LBR_ALL_CLASSES & ~c->bit, 0);
    const struct lbr_entry e = lbr_read(0, depth, info);
    c->first = e;
    cat(what, c->name, ": one record, FROM the branch, TO its target");
    report(tos() == (t0 + 1) % (uint64_t)depth && lbr_from_ip(e.from) == (uint64_t)c->from &&
               e.to == (uint64_t)c->to,
           what);
    /* Its own bit set: not recorded. */
    ((snippet)c->snip)(c->bit, 0);
    cat(what, c->name, ": suppressed by its LBR_SELECT bit");
    report(tos() == (t0 + 1) % (uint64_t)depth, what);
}

static struct cls classes[] = {
    {"Jcc", snip_jcc, jcc_from, jcc_to, LBR_JCC, {0, 0, 0}},
    {"near relative call", snip_relcall, relcall_from, relcall_to, LBR_REL_CALL, {0, 0, 0}},
    {"near indirect call", snip_indcall, indcall_from, indcall_to, LBR_IND_CALL, {0, 0, 0}},
    {"near return", snip_ret, ret_from, ret_to, LBR_RETURN, {0, 0, 0}},
    {"near indirect jmp", snip_indjmp, indjmp_from, indjmp_to, LBR_IND_JMP, {0, 0, 0}},
    {"near relative jmp", snip_reljmp, reljmp_from, reljmp_to, LBR_REL_JMP, {0, 0, 0}},
    {"far: INT n", snip_far, far_from, far_to, LBR_FAR, {0, 0, 0}},
    {"far: exception (#UD)", snip_fault, fault_from, fault_to, LBR_FAR, {0, 0, 0}},
};

/* The handler address of an IDT vector. */
static uint64_t gate_target(int v) {
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) idtr;
    __asm__ volatile("sidt %0" : "=m"(idtr));
    const uint64_t *g = (const uint64_t *)(idtr.base + 16 * (uint64_t)v);
    return (g[0] & 0xFFFF) | ((g[0] >> 32) & 0xFFFF0000ull) | (g[1] << 32);
}

static volatile uint64_t pmi_debugctl, pmi_tos, pmi_status;
static volatile struct lbr_entry pmi_top, pmi_irq;
static void on_pmi(struct sdk_frame *f) {
    (void)f;
    pmi_debugctl = rdmsr(MSR_DEBUGCTL);
    pmi_status = rdmsr(MSR_GLOBAL_STATUS);
    wrmsr(MSR_DEBUGCTL, 0);
    pmi_tos = tos();
    const struct lbr_entry e = lbr_read(0, depth, info);
    pmi_top.from = e.from, pmi_top.to = e.to;
    /* The interrupt's own record, below those of the SDK stub's branches. */
    pmi_irq.from = pmi_irq.to = 0;
    for (int k = 0; k < depth; ++k) {
        const struct lbr_entry r = lbr_read(k, depth, info);
        if (r.to == gate_target(0xF0)) {
            pmi_irq.from = r.from, pmi_irq.to = r.to;
            break;
        }
    }
    wrmsr(MSR_GLOBAL_CTRL, 0);
    APIC_EOI = 0;
}

/* Counts instructions from near overflow with a PMI, over snip_freeze's loop. */
static void pmi_run(uint64_t debugctl) {
    wrmsr(MSR_GLOBAL_CTRL, 0);
    wrmsr(MSR_GLOBAL_OVF_CTRL, 0xF);
    wrmsr(MSR_A_PMC0, (1ull << 48) - 200);
    wrmsr(MSR_PERFEVTSEL0, EVENT_INSTRUCTIONS | EVTSEL_OS | EVTSEL_EN | EVTSEL_INT);
    APIC_LVT_PMC = 0xF0;
    wrmsr(MSR_LBR_SELECT, 0);
    wrmsr(MSR_GLOBAL_CTRL, 1);
    __asm__ volatile("sti");
    ((snippet)snip_freeze)(debugctl, 500);
    __asm__ volatile("cli");
    wrmsr(MSR_GLOBAL_CTRL, 0);
}

int main(void) {
    depth = lbr_depth();
    const int fmt = lbr_format();
    info = fmt == 5;
    printf("LBR format %d, %d entries%s\n", fmt, depth, info ? ", LBR_INFO" : "");
    report(depth > 0 && fmt >= 4, "the CPU model has legacy LBR (format 4 or 5)");
    if (depth == 0) report_summary();
    lbr_clear(depth, info);
    report(rdmsr(MSR_DEBUGCTL) == 0 && tos() == 0, "DEBUGCTL and TOS start at 0");

    sdk_set_gate(0x90, far_to, 0);
    sdk_set_gate(6, fault_to, 0);
    for (unsigned k = 0; k < sizeof classes / sizeof classes[0]; ++k) check_class(&classes[k]);
    sdk_on_vector(6, 0, 0);

    /* Mispredict flag and LBR_INFO: the first indirect jump above missed (the target
     * table was empty); the same jump again right after it is predicted (the predictor's
     * tables start afresh every 16,384 instructions, docs/lbr.md: this test's checks in
     * between take longer, so the jump runs twice here). */
    ((snippet)snip_indjmp)(LBR_ALL_CLASSES & ~LBR_IND_JMP, 0);
    ((snippet)snip_indjmp)(LBR_ALL_CLASSES & ~LBR_IND_JMP, 0);
    struct lbr_entry e = lbr_read(0, depth, info);
    const struct lbr_entry first = classes[4].first; /* near indirect jmp */
    if (info) {
        /* Format 5: the flags are in LBR_INFO; FROM is the sign-extended address alone. */
        report((first.info & LBR_MISPRED) != 0 && !(e.info & LBR_MISPRED),
               "the first indirect jump was mispredicted, the repeated one not: LBR_INFO bit 63");
        report(first.from == (uint64_t)indjmp_from && e.from == (uint64_t)indjmp_from,
               "format 5: FROM holds the address without flags");
        const uint64_t cycles = e.info & 0xFFFF;
        report(cycles > 0 && cycles < 64 && !(e.info & 0x7FFFFFFFFFFF0000ull),
               "LBR_INFO: cycles since recording started, TSX bits clear");
    } else {
        report(!(e.from & LBR_MISPRED), "a repeated indirect jump is predicted: FROM bit 63 clear");
        report((first.from & LBR_MISPRED) != 0,
               "the first indirect jump was mispredicted: FROM bit 63 set");
    }
    ((snippet)snip_reljmp)(LBR_ALL_CLASSES & ~LBR_REL_JMP, 0);
    e = lbr_read(0, depth, info);
    report(!((info ? e.info : e.from) & LBR_MISPRED), "a direct jump is never mispredicted");

    /* All classes suppressed: nothing recorded. */
    uint64_t t0 = tos();
    for (unsigned k = 0; k < sizeof classes / sizeof classes[0]; ++k)
        if (classes[k].snip != snip_fault) ((snippet)classes[k].snip)(LBR_ALL_CLASSES, 0);
    report(tos() == t0, "LBR_SELECT with every class bit set records nothing");
    ((snippet)snip_reljmp)(LBR_CPL_EQ_0, 0);
    report(tos() == t0, "CPL_EQ_0 suppresses branches that end in ring 0");

    /* Ring 3. */
    sdk_enable_user();
    t0 = tos();
    wrmsr(MSR_LBR_SELECT, LBR_CPL_EQ_0 | (LBR_ALL_CLASSES & ~LBR_REL_JMP));
    wrmsr(MSR_DEBUGCTL, DEBUGCTL_LBR);
    sdk_run_user((void (*)(void))user_jumps, sdk_user_stack());
    wrmsr(MSR_DEBUGCTL, 0);
    e = lbr_read(0, depth, info);
    report(tos() == (t0 + 3) % (uint64_t)depth && e.to == (uint64_t)user_jumps + 6,
           "CPL_EQ_0: exactly the three ring-3 jumps recorded");
    t0 = tos();
    wrmsr(MSR_LBR_SELECT, LBR_CPL_NEQ_0 | (LBR_ALL_CLASSES & ~LBR_REL_JMP));
    wrmsr(MSR_DEBUGCTL, DEBUGCTL_LBR);
    sdk_run_user((void (*)(void))user_jumps, sdk_user_stack());
    wrmsr(MSR_DEBUGCTL, 0);
    int user_seen = 0;
    for (uint64_t k = 0; k < (tos() + (uint64_t)depth - t0) % (uint64_t)depth; ++k) {
        const uint64_t from = lbr_from_ip(lbr_read((int)k, depth, info).from);
        user_seen |= from >= (uint64_t)user_jumps && from < (uint64_t)user_jumps_end;
    }
    report(!user_seen, "CPL_NEQ_0: no ring-3 jump recorded");

    /* Call-stack mode: returns pop their calls. */
    const uint32_t cs_filter = LBR_JCC | LBR_IND_JMP | LBR_REL_JMP | LBR_FAR;
    t0 = tos();
    ((snippet)snip_callstack)(cs_filter | LBR_CALLSTACK, 0);
    report(tos() == (t0 + 2) % (uint64_t)depth, "call-stack mode: returns pop, two calls stay");
    e = lbr_read(0, depth, info);
    struct lbr_entry e1 = lbr_read(1, depth, info);
    report(lbr_from_ip(e.from) == (uint64_t)cs_call_b2 && e.to == (uint64_t)cs_b2 &&
               lbr_from_ip(e1.from) == (uint64_t)cs_call_a2 && e1.to == (uint64_t)cs_a2,
           "call-stack mode: the open calls are the top two records");
    t0 = tos();
    ((snippet)snip_callstack)(cs_filter, 0);
    report(tos() == (t0 + 6) % (uint64_t)depth, "without call-stack mode: 4 calls and 2 returns");

    /* TOS wraps around the depth. */
    t0 = tos();
    ((snippet)snip_many)(LBR_ALL_CLASSES & ~LBR_REL_JMP, (uint64_t)depth + 3);
    int all_same = 1;
    for (int k = 0; k < depth; ++k) {
        e = lbr_read(k, depth, info);
        all_same &= lbr_from_ip(e.from) == (uint64_t)many_from && e.to == (uint64_t)many_to;
    }
    report(tos() == (t0 + 3) % (uint64_t)depth, "TOS wraps: depth+3 records advance it by 3");
    report(all_same, "every entry holds the latest jumps after the wrap");

    /* Interrupts, and FREEZE_LBRS_ON_PMI. */
    APIC_SVR = 0x1FF;
    sdk_on_vector(0xF0, on_pmi, 0);
    pmi_run(DEBUGCTL_LBR);
    report(pmi_irq.to == gate_target(0xF0) && lbr_from_ip(pmi_irq.from) >= (uint64_t)snip_freeze &&
               lbr_from_ip(pmi_irq.from) < (uint64_t)freeze_end,
           "an interrupt (the PMI) is recorded: FROM the loop, TO its handler");
    report((pmi_debugctl & DEBUGCTL_LBR) != 0, "without FREEZE_LBRS_ON_PMI, the PMI leaves LBR on");
    pmi_run(DEBUGCTL_LBR | DEBUGCTL_FREEZE_LBRS_ON_PMI);
    const int streamlined = pmu_caps().version >= 4;
    if (streamlined)
        report(pmi_debugctl == (DEBUGCTL_LBR | DEBUGCTL_FREEZE_LBRS_ON_PMI) &&
                   (pmi_status & GLOBAL_STATUS_LBR_FRZ),
               "FREEZE_LBRS_ON_PMI, PMU v4: the PMI sets GLOBAL_STATUS.LBR_Frz, DEBUGCTL.LBR stays 1");
    else
        report(pmi_debugctl == DEBUGCTL_FREEZE_LBRS_ON_PMI && !(pmi_status & GLOBAL_STATUS_LBR_FRZ),
               "FREEZE_LBRS_ON_PMI, PMU v2-3: the PMI clears DEBUGCTL.LBR (legacy freeze)");
    report(lbr_from_ip(pmi_top.from) == (uint64_t)freeze_from && pmi_top.to != gate_target(0xF0),
           "  ... and the stack ends with the loop's branches, not the interrupt");
    report(tos() == pmi_tos, "  ... nothing is recorded after the freeze");
    if (streamlined) {
        const uint64_t t = tos();
        ((snippet)snip_many)(LBR_JCC, 3);
        report(tos() == t, "  ... DEBUGCTL.LBR=1 records nothing while LBR_Frz is set");
        wrmsr(MSR_GLOBAL_STATUS_RESET, GLOBAL_STATUS_LBR_FRZ);
        report(!(rdmsr(MSR_GLOBAL_STATUS) & GLOBAL_STATUS_LBR_FRZ), "GLOBAL_STATUS_RESET clears LBR_Frz");
        ((snippet)snip_many)(LBR_JCC, 3);
        report(tos() == (t + 3) % (uint64_t)depth, "  ... and recording resumes (3 jumps, 3 records)");
    }

    /* Reserved bits and MSRs beyond the depth. */
    report(wrmsr_faults(MSR_LBR_SELECT, 1u << 10), "#GP: LBR_SELECT bit 10");
    report(wrmsr_faults(MSR_LBR_TOS, (uint64_t)depth), "#GP: TOS at the depth");
    /* (With 32 entries, TO_32 is MSR 0x6E0, IA32_TSC_DEADLINE.) */
    report(rdmsr_faults(MSR_LBR_FROM0 + depth) && (depth == 32 || rdmsr_faults(MSR_LBR_TO0 + depth)),
           "#GP: FROM/TO beyond the depth");
    report(wrmsr_faults(MSR_LBR_TO0, 0x0000800000000000ull), "#GP: a non-canonical TO");
    report(wrmsr_faults(MSR_LBR_FROM0, 1ull << 62), "#GP: FROM's TSX flags on a part without TSX records");
    report(wrmsr_faults(MSR_DEBUGCTL, 1u << 3), "#GP: DEBUGCTL reserved bit 3");
    if (info) {
        report(wrmsr_faults(MSR_LBR_INFO0, 1ull << 20), "#GP: LBR_INFO reserved bit 20");
        report(rdmsr_faults(MSR_LBR_INFO0 + depth), "#GP: LBR_INFO beyond the depth");
    } else {
        report(rdmsr_faults(MSR_LBR_INFO0), "#GP: LBR_INFO on a format without it");
    }
    wrmsr(MSR_LBR_FROM0 + 1, 0x1234);
    wrmsr(MSR_LBR_TO0 + 1, 0x5678);
    wrmsr(MSR_LBR_TOS, 1);
    e = lbr_read(0, depth, info);
    report(e.from == 0x1234 && e.to == 0x5678 && tos() == 1, "FROM, TO and TOS are writable");

    /* The whole stack as a digest: two runs of this guest must record the same branches. */
    uint64_t digest = 0xcbf29ce484222325ull;
    for (int k = 0; k < depth; ++k) {
        e = lbr_read(k, depth, info);
        digest = (digest ^ e.from) * 0x100000001b3ull;
        digest = (digest ^ e.to) * 0x100000001b3ull;
        digest = (digest ^ e.info) * 0x100000001b3ull;
    }
    printf("LBR stack digest %lx\n", digest);
    report_summary();
}
