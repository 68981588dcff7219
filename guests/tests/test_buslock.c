/* Conformance: bus-lock detection (spec §3; Intel SDM vol. 3 §9.1.2, §17.3.1.6) — every
 * locked form split across a 64-byte line and aligned, write-back vs WT/UC/WC/UC- memory
 * chosen through PAT, the implicitly locked page-table A-bit update on uncached paging
 * structures, CPL 0 vs 3, DR6.BLD's active-low polarity, one #DB together with TF and a
 * data breakpoint, the trap RIP, and DEBUGCTL bit 2.
 * Without CPUID.(7,0):ECX[24] (softkvm --cpu-feature -bus-lock-detect) the guest checks
 * the other side: DEBUGCTL bit 2 is #GP, DR6.BLD stays 1, no #DB; the locked forms still
 * compute the same values either way. */
#include "sdk.h"

#define MSR_DEBUGCTL 0x1D9
#define MSR_PAT 0x277
#define DEBUGCTL_BLD (1ull << 2)
#define DR6_BLD (1ull << 11)
#define DR6_BS (1ull << 14)
#define DR6_INIT 0xFFFF0FF0ull

/* ---- The locked forms: each takes the target in %rdi; <name>_end follows the locked
 * instruction, so it is where a trap-like #DB returns. ---- */
#define FORM(name, body) \
    ".globl " #name "\n" #name ":\n" body "\n.globl " #name "_end\n" #name "_end:\n"
__asm__(".text\n"
        FORM(bl_add, "lock addl $1, (%rdi)") "ret\n"
        FORM(bl_sub, "lock subl $1, (%rdi)") "ret\n"
        FORM(bl_or, "lock orl $0x10000, (%rdi)") "ret\n"
        FORM(bl_and, "lock andl $0xff, (%rdi)") "ret\n"
        FORM(bl_xor, "lock xorl $0xff, (%rdi)") "ret\n"
        FORM(bl_inc, "lock incl (%rdi)") "ret\n"
        FORM(bl_dec, "lock decl (%rdi)") "ret\n"
        FORM(bl_not, "lock notl (%rdi)") "ret\n"
        FORM(bl_neg, "lock negl (%rdi)") "ret\n"
        "bl_adc_pre: stc\n" FORM(bl_adc, "lock adcl $0, (%rdi)") "ret\n"
        "bl_sbb_pre: stc\n" FORM(bl_sbb, "lock sbbl $0, (%rdi)") "ret\n"
        FORM(bl_bts, "lock btsl $0, (%rdi)") "ret\n"
        FORM(bl_btr, "lock btrl $2, (%rdi)") "ret\n"
        FORM(bl_btc, "lock btcl $4, (%rdi)") "ret\n"
        "bl_xadd_pre: mov $2, %eax\n" FORM(bl_xadd, "lock xaddl %eax, (%rdi)") "ret\n"
        "bl_cmpxchg_pre: mov (%rdi), %eax\n mov $0x4321, %ecx\n"
        FORM(bl_cmpxchg, "lock cmpxchgl %ecx, (%rdi)") "ret\n"
        "bl_xchg_pre: mov $0x5678, %eax\n" FORM(bl_xchg, "xchgl %eax, (%rdi)") "ret\n"
        "bl_cx8_pre: push %rbx\n mov (%rdi), %eax\n mov 4(%rdi), %edx\n"
        " lea 1(%rax), %ebx\n mov %edx, %ecx\n"
        FORM(bl_cx8, "lock cmpxchg8b (%rdi)") "pop %rbx\n ret\n"
        "bl_cx16_pre: push %rbx\n mov (%rdi), %rax\n mov 8(%rdi), %rdx\n"
        " lea 1(%rax), %rbx\n mov %rdx, %rcx\n"
        FORM(bl_cx16, "lock cmpxchg16b (%rdi)") "pop %rbx\n ret\n"
        FORM(bl_plain_add, "addl $1, (%rdi)") "ret\n"
        /* POPF sets TF: the single-step trap follows the next instruction, the lock. */
        "bl_tf_pre: pushfq\n orq $0x100, (%rsp)\n popfq\n"
        FORM(bl_tf, "lock addl $1, (%rdi)") "ret\n"
        FORM(bl_load, "mov (%rdi), %eax") "ret\n");

#define DECL(n) extern char n[], n##_end[]
DECL(bl_add); DECL(bl_sub); DECL(bl_or); DECL(bl_and); DECL(bl_xor); DECL(bl_inc);
DECL(bl_dec); DECL(bl_not); DECL(bl_neg); DECL(bl_adc); DECL(bl_sbb); DECL(bl_bts);
DECL(bl_btr); DECL(bl_btc); DECL(bl_xadd); DECL(bl_cmpxchg); DECL(bl_xchg); DECL(bl_cx8);
DECL(bl_cx16); DECL(bl_plain_add); DECL(bl_load); DECL(bl_tf);
extern char bl_adc_pre[], bl_sbb_pre[], bl_xadd_pre[], bl_cmpxchg_pre[], bl_xchg_pre[],
    bl_cx8_pre[], bl_cx16_pre[], bl_tf_pre[];

struct form {
    const char *name;
    void *entry; /* where to call */
    char *end;   /* the RIP after the locked instruction */
    int size;    /* bytes the locked access covers */
    uint64_t want; /* the low 32 (size 4) or 64 bits after it, from kInit */
};
static const uint64_t kInit = 0x1234;
static const struct form forms[] = {
    {"lock add", bl_add, bl_add_end, 4, 0x1235},
    {"lock sub", bl_sub, bl_sub_end, 4, 0x1233},
    {"lock or", bl_or, bl_or_end, 4, 0x11234},
    {"lock and", bl_and, bl_and_end, 4, 0x34},
    {"lock xor", bl_xor, bl_xor_end, 4, 0x12CB},
    {"lock inc", bl_inc, bl_inc_end, 4, 0x1235},
    {"lock dec", bl_dec, bl_dec_end, 4, 0x1233},
    {"lock not", bl_not, bl_not_end, 4, 0xFFFFEDCB},
    {"lock neg", bl_neg, bl_neg_end, 4, 0xFFFFEDCC},
    {"lock adc", bl_adc_pre, bl_adc_end, 4, 0x1235},
    {"lock sbb", bl_sbb_pre, bl_sbb_end, 4, 0x1233},
    {"lock bts", bl_bts, bl_bts_end, 4, 0x1235},
    {"lock btr", bl_btr, bl_btr_end, 4, 0x1230},
    {"lock btc", bl_btc, bl_btc_end, 4, 0x1224},
    {"lock xadd", bl_xadd_pre, bl_xadd_end, 4, 0x1236},
    {"lock cmpxchg", bl_cmpxchg_pre, bl_cmpxchg_end, 4, 0x4321},
    {"xchg (implicit lock)", bl_xchg_pre, bl_xchg_end, 4, 0x5678},
    {"lock cmpxchg8b", bl_cx8_pre, bl_cx8_end, 8, 0x1235},
};
#define NFORMS (int)(sizeof forms / sizeof forms[0])

static uint8_t line_buf[256] __attribute__((aligned(64)));

/* ---- Paging: PML4 entry 1 (virtual 512 GiB up) maps test pages with chosen PAT
 * entries; PD entry 1 maps a page table that is itself uncached. ---- */
#define P 0x1ull
#define RW 0x2ull
#define US 0x4ull
#define PWT 0x8ull
#define PCD 0x10ull
#define A 0x20ull
#define PAT4K 0x80ull
#define BASE 0x8000000000ull
extern uint64_t sdk_pml4[];
static uint64_t pdpt[512] __attribute__((aligned(4096)));
static uint64_t pd[512] __attribute__((aligned(4096)));
static uint64_t pt[512] __attribute__((aligned(4096)));
static uint64_t pt_uc[512] __attribute__((aligned(4096)));
static uint8_t pages[2][4096] __attribute__((aligned(4096)));

enum { VA_WB, VA_WT, VA_UC, VA_WC, VA_UCMINUS };
static const struct {
    const char *name;
    uint64_t flags;
} kTypes[] = {
    {"WB", 0}, {"WT", PWT}, {"UC", PCD | PWT}, {"WC", PAT4K}, {"UC-", PCD},
};
static uint64_t va(int n) { return BASE + (uint64_t)n * 4096; }

static void setup_paging(void) {
    /* PAT entry 4 (PAT=1, PCD=0, PWT=0) becomes WC; entries 0-3 keep WB, WT, UC-, UC. */
    wrmsr(MSR_PAT, (rdmsr(MSR_PAT) & ~0xFF00000000ull) | 0x0100000000ull);
    for (int n = 0; n < 5; ++n) pt[n] = (uint64_t)pages[0] | P | RW | US | kTypes[n].flags;
    pt_uc[0] = (uint64_t)pages[1] | P | RW | US; /* A clear: the first access sets it */
    pd[0] = (uint64_t)pt | P | RW | US;
    pd[1] = (uint64_t)pt_uc | P | RW | US | PCD | PWT; /* the page table is UC */
    pdpt[0] = (uint64_t)pd | P | RW | US;
    sdk_pml4[1] = (uint64_t)pdpt | P | RW | US;
    write_cr3(read_cr3());
}

/* ---- Debug state ---- */

static volatile int db_count;
static volatile uint64_t db_dr6, db_rip;
static void on_db(struct sdk_frame *f) {
    if (db_count++ == 0) db_dr6 = read_dr6(), db_rip = f->rip;
    write_dr6(DR6_INIT); /* B0-B3, BS cleared; BLD set back to 1 */
    f->rflags &= ~0x100ull;
}

static int have_bld;
static const struct form *cur;
static uint64_t cur_target;

static void call_form(void) {
    __asm__ volatile("call *%0" ::"r"(cur->entry), "D"(cur_target)
                     : "rax", "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11", "memory", "cc");
}
static void user_form(void) {
    call_form();
    sdk_user_exit(0);
}

/* Runs `f` on `target` at CPL `cpl`; returns the number of #DBs it raised. */
static int run_form(const struct form *f, uint64_t target, int cpl) {
    cur = f;
    cur_target = target;
    db_count = 0;
    db_dr6 = db_rip = 0;
    if (cpl == 3)
        sdk_run_user(user_form, sdk_user_stack());
    else
        call_form();
    return db_count;
}

static uint64_t read_value(uint64_t target, int size) {
    if (size == 4) return *(volatile uint32_t *)target;
    return *(volatile uint64_t *)target;
}
static void init_value(uint64_t target) {
    *(volatile uint64_t *)target = kInit;
    *(volatile uint64_t *)(target + 8) = 0;
}

/* A trap after the locked instruction with BLD (and nothing else) reported. */
static int bus_lock_trap(const struct form *f) {
    return db_count == 1 && db_rip == (uint64_t)f->end && db_dr6 == (DR6_INIT & ~DR6_BLD);
}

static void check_forms(void) {
    static char name[96];
    const uint64_t split = (uint64_t)line_buf + 62, aligned = (uint64_t)line_buf + 128;
    for (int k = 0; k < NFORMS; ++k) {
        const struct form *f = &forms[k];
        const uint64_t s = f->size == 8 ? (uint64_t)line_buf + 60 : split;
        int ok = 1;
        for (int cpl = 0; cpl <= 3; cpl += 3) {
            init_value(s);
            const int split_dbs = run_form(f, s, cpl);
            const int split_trap = bus_lock_trap(f);
            ok &= read_value(s, f->size) == f->want;
            init_value(aligned);
            const int aligned_dbs = run_form(f, aligned, cpl);
            ok &= read_value(aligned, f->size) == f->want;
            ok &= aligned_dbs == 0;
            if (cpl == 3 && have_bld)
                ok &= split_trap;
            else
                ok &= split_dbs == 0;
        }
        /* The CPU model's report line: what the form computed and which #DB it raised. */
        const char *what = have_bld ? "split traps at CPL 3 only, aligned never"
                                    : "no #DB without the feature";
        int n = 0;
        for (const char *p = f->name; *p && n < 40;) name[n++] = *p++;
        name[n++] = ':', name[n++] = ' ';
        for (const char *p = what; *p && n < 94;) name[n++] = *p++;
        name[n] = 0;
        report(ok, name);
    }
}

static const struct form cx16 = {"lock cmpxchg16b", bl_cx16_pre, bl_cx16_end, 16, 0x1235};
static const struct form plain = {"add (no lock)", bl_plain_add, bl_plain_add_end, 4, 0x1235};
static const struct form tf_add = {"lock add with TF", bl_tf_pre, bl_tf_end, 4, 0x1235};
static const struct form load = {"mov load", bl_load, bl_load_end, 4, 0x1234};

static void gp_cx16(void *p) {
    (void)p;
    run_form(&cx16, (uint64_t)line_buf + 8, 0);
}

static void check_memory_types(void) {
    /* An aligned lock is a bus lock on anything but WB (SDM vol. 3 §9.1.4). */
    for (int t = 0; t < 5; ++t) {
        const uint64_t target = va(t) + 64;
        init_value(target);
        const int dbs = run_form(&forms[0], target, 3);
        const int want_trap = have_bld && t != VA_WB;
        report(read_value(target, 4) == 0x1235 && (want_trap ? bus_lock_trap(&forms[0]) : dbs == 0),
               t == VA_WB    ? "aligned lock add on WB memory: no bus lock"
               : t == VA_WT  ? "aligned lock add on WT memory (PAT)"
               : t == VA_UC  ? "aligned lock add on UC memory (PAT)"
               : t == VA_WC  ? "aligned lock add on WC memory (PAT entry 4 reprogrammed)"
                             : "aligned lock add on UC- memory (PAT)");
    }
    /* The same page made UC by its PTE (and INVLPG): now a bus lock; WB again: none. */
    for (int uc = 1; uc >= 0; --uc) {
        pt[VA_WB] = (uint64_t)pages[0] | P | RW | US | (uc ? PCD | PWT : 0);
        __asm__ volatile("invlpg (%0)" ::"r"(va(VA_WB)) : "memory");
        init_value(va(VA_WB) + 64);
        const int dbs = run_form(&forms[0], va(VA_WB) + 64, 3);
        const int want_trap = have_bld && uc;
        report(want_trap ? bus_lock_trap(&forms[0]) : dbs == 0,
               uc ? "PTE changed to UC and INVLPG: the aligned lock is a bus lock"
                  : "PTE back to WB and INVLPG: no bus lock");
    }
    /* CMPXCHG16B needs 16-byte alignment, so it never splits a line: a misaligned one is
     * #GP, an aligned one is a bus lock only on non-WB memory. */
    init_value((uint64_t)line_buf + 64);
    int dbs = run_form(&cx16, (uint64_t)line_buf + 64, 3);
    int ok = dbs == 0 && read_value((uint64_t)line_buf + 64, 8) == 0x1235;
    init_value(va(VA_UC) + 128);
    dbs = run_form(&cx16, va(VA_UC) + 128, 3);
    ok &= read_value(va(VA_UC) + 128, 8) == 0x1235 && (have_bld ? bus_lock_trap(&cx16) : dbs == 0);
    report(ok, "lock cmpxchg16b: aligned WB none, UC a bus lock");
    report(sdk_catch(gp_cx16, 0) == 13, "lock cmpxchg16b misaligned: #GP, not a bus lock");
    /* A split without LOCK is not a bus lock. */
    init_value((uint64_t)line_buf + 62);
    dbs = run_form(&plain, (uint64_t)line_buf + 62, 3);
    report(dbs == 0 && read_value((uint64_t)line_buf + 62, 4) == 0x1235,
           "split add without LOCK: no bus lock");
    /* The accessed-bit update of a page-table entry is a locked update: in an uncached
     * page table it is a bus lock, charged to the instruction whose access walked it. */
    *(volatile uint32_t *)pages[1] = 0x1234;
    dbs = run_form(&load, BASE + (2ull << 20), 3);
    report(have_bld ? bus_lock_trap(&load) : dbs == 0,
           "A-bit update in an uncached page table: a bus lock of the load");
    report((pt_uc[0] & A) != 0, "the walk set the accessed bit");
    dbs = run_form(&load, BASE + (2ull << 20), 3);
    report(dbs == 0, "the second load finds the bit set: no locked update");
}

static void check_debug_combinations(void) {
    const struct form *f = &forms[0];
    const uint64_t split = (uint64_t)line_buf + 62;
    const uint64_t bld = have_bld ? DR6_BLD : 0; /* cleared when the feature reports */
    /* With TF: one #DB carrying BS and BLD. */
    init_value(split);
    run_form(&tf_add, split, 3);
    report(db_count == 1 && db_rip == (uint64_t)tf_add.end &&
               db_dr6 == ((DR6_INIT | DR6_BS) & ~bld) && read_value(split, 4) == 0x1235,
           "TF and a bus lock: one #DB with BS and BLD, after the instruction");
    /* With a data breakpoint on the split location: one #DB with B0 and BLD. */
    write_dr0(split);
    write_dr7(0x1 | (1u << 16) | (3u << 18)); /* L0, write, 4 bytes */
    init_value(split);
    run_form(f, split, 3);
    write_dr7(0);
    const uint64_t want_bp = (DR6_INIT | 1) & ~bld;
    report(db_count == 1 && db_rip == (uint64_t)f->end && db_dr6 == want_bp,
           "data breakpoint and a bus lock: one #DB with B0 and BLD");
}

static int debugctl_value;
static void write_debugctl_bld(void *p) {
    (void)p;
    wrmsr(MSR_DEBUGCTL, DEBUGCTL_BLD);
    debugctl_value = (int)rdmsr(MSR_DEBUGCTL);
}

int main(void) {
    sdk_on_vector(1, on_db, 0);
    sdk_enable_user();
    setup_paging();
    uint32_t a, b, c, d;
    cpuid(7, 0, &a, &b, &c, &d);
    have_bld = (c >> 24) & 1;
    printf("CPUID.(7,0):ECX.BUS_LOCK_DETECT = %d\n", have_bld);

    /* DR6.BLD is active-low: it reads 1 unless a bus-lock #DB cleared it. */
    write_dr6(DR6_INIT);
    report(read_dr6() == DR6_INIT, "DR6 reads 0xffff0ff0 after writing it (BLD = 1)");
    write_dr6(0);
    report((read_dr6() & DR6_BLD) == (have_bld ? 0 : DR6_BLD),
           have_bld ? "DR6.BLD is writable with the feature (reads 0 after writing 0)"
                    : "DR6.BLD is fixed to 1 without the feature");
    write_dr6(DR6_INIT);

    const int vec = sdk_catch(write_debugctl_bld, 0);
    if (have_bld)
        report(vec == -1 && debugctl_value == (int)DEBUGCTL_BLD, "DEBUGCTL bit 2 is writable");
    else
        report(vec == 13, "DEBUGCTL bit 2 without the CPUID bit: #GP");

    if (have_bld) {
        /* DEBUGCTL.BLD clear: no #DB at CPL 3 for a split lock. */
        wrmsr(MSR_DEBUGCTL, 0);
        init_value((uint64_t)line_buf + 62);
        report(run_form(&forms[0], (uint64_t)line_buf + 62, 3) == 0,
               "DEBUGCTL.BLD clear: a split lock at CPL 3 raises no #DB");
        wrmsr(MSR_DEBUGCTL, DEBUGCTL_BLD);
    }
    check_forms();
    check_memory_types();
    check_debug_combinations();
    report(read_dr6() == DR6_INIT, "DR6.BLD reads 1 again after the handler set it");
    if (have_bld) wrmsr(MSR_DEBUGCTL, 0);
    report_summary();
}
