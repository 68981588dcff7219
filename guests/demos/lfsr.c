/* Demo: a guest that profiles itself with the PMU and the LBR stack, as `perf record -b`
 * does inside a VM. A 16-bit Fibonacci LFSR chooses, at each step, between conditional
 * branches into two functions (func_a when the state's two low bits are 00, func_b
 * otherwise). PMC0 counts retired instructions and overflows every PERIOD of them; the
 * PMI handler finds the LBR stack frozen (FREEZE_LBRS_ON_PMI), adds its from->to pairs
 * that lie in the workload's code to a table, and re-arms. At the end the guest prints
 * its top pairs with their shares, and names them from a table the linker fills in.
 *
 * Under `softkvm profile --lbr` the host owns the LBR unit: the guest's LBR reads return
 * 0, so the first PMI finds an empty stack; the guest then says so and stops sampling. */
#include "pmu.h"
#include "sdk.h"

#define PMI_VECTOR 0xF0
#define PERIOD 9973u          /* instructions between PMIs (a prime: no lockstep) */
#define STEPS 2000000u        /* LFSR steps of the workload */
#define MAX_PAIRS 64

/* The workload, in assembly so that its branches are exactly these:
 *   lfsr_run(steps): state = 0xACE1; repeat steps times { feedback step; if the two low
 *   bits are 00 call func_a else call func_b }. Returns the accumulator. */
__asm__(".text\n"
        ".globl lfsr_run\n.type lfsr_run, @function\n"
        "lfsr_run:\n"
        "  mov $0xACE1, %edx\n"
        "  xor %eax, %eax\n"
        "1:\n"
        "  mov %edx, %ecx\n" /* taps 16, 14, 13, 11: x^16 + x^14 + x^13 + x^11 + 1 */
        "  shr $2, %ecx\n"
        "  xor %edx, %ecx\n"
        "  mov %edx, %esi\n"
        "  shr $3, %esi\n"
        "  xor %esi, %ecx\n"
        "  shr $2, %esi\n"
        "  xor %esi, %ecx\n"
        "  and $1, %ecx\n"
        "  shr $1, %edx\n"
        "  shl $15, %ecx\n"
        "  or %ecx, %edx\n"
        "  test $3, %dl\n"
        "  jnz 2f\n"
        "  call func_a\n"
        "  jmp 3f\n"
        "2:\n"
        "  call func_b\n"
        "3:\n"
        "  dec %rdi\n"
        "  jnz 1b\n"
        "  ret\n"
        ".size lfsr_run, . - lfsr_run\n"
        ".globl func_a\n.type func_a, @function\n"
        "func_a:\n"
        "  add %rdx, %rax\n"
        "  ret\n"
        ".size func_a, . - func_a\n"
        ".globl func_b\n.type func_b, @function\n"
        "func_b:\n"
        "  xor %rdx, %rax\n"
        "  rol $1, %rax\n"
        "  ret\n"
        ".size func_b, . - func_b\n"
        ".Llfsr_end:\n"
        /* The workload's size, as data: a label at its end would name the next function. */
        ".section .rodata\n.balign 8\n.globl lfsr_text_size\n"
        "lfsr_text_size: .quad .Llfsr_end - lfsr_run\n"
        ".text\n");

extern const uint64_t lfsr_text_size;
uint64_t lfsr_run(uint64_t steps);
void func_a(void);
void func_b(void);

/* The symbol table the linker fills in: the workload's functions, by address. */
static const struct {
    const char *name;
    const char *addr;
} symbols[] = {
    {"lfsr_run", (const char *)lfsr_run},
    {"func_a", (const char *)func_a},
    {"func_b", (const char *)func_b},
};

static struct pair {
    uint64_t from, to, count;
} pairs[MAX_PAIRS];
static int npairs;
static volatile uint64_t samples, records, dropped_pairs;
static volatile int host_owns_lbr;
static int depth;
static int streamlined; /* PMU version 4: the freeze is GLOBAL_STATUS.LBR_Frz */

static int in_workload(uint64_t a) {
    return a - (uint64_t)lfsr_run < lfsr_text_size;
}

static void count_pair(uint64_t from, uint64_t to) {
    for (int k = 0; k < npairs; ++k)
        if (pairs[k].from == from && pairs[k].to == to) {
            ++pairs[k].count;
            return;
        }
    if (npairs == MAX_PAIRS) {
        ++dropped_pairs;
        return;
    }
    pairs[npairs].from = from, pairs[npairs].to = to, pairs[npairs].count = 1;
    ++npairs;
}

static void arm_counter(void) {
    wrmsr(MSR_A_PMC0, (1ull << 48) - PERIOD);
}

static void on_pmi(struct sdk_frame *f) {
    (void)f;
    /* The stack is frozen at the overflow: GLOBAL_STATUS.LBR_Frz on a version-4 PMU, or
     * DEBUGCTL.LBR cleared before it (the legacy freeze). */
    const uint64_t status = rdmsr(MSR_GLOBAL_STATUS);
    const uint64_t tos = rdmsr(MSR_LBR_TOS);
    int empty = 1;
    for (int k = 0; k < depth; ++k) {
        const int i = (int)((tos + (uint64_t)(depth - k)) % (uint64_t)depth);
        const uint64_t from = lbr_from_ip(rdmsr(MSR_LBR_FROM0 + i));
        const uint64_t to = rdmsr(MSR_LBR_TO0 + i);
        if (from || to) empty = 0;
        if (in_workload(from) && in_workload(to)) {
            count_pair(from, to);
            ++records;
        }
    }
    ++samples;
    if (empty) {
        /* Every record reads 0: the host has taken the unit (KVM's "meaningless" MSRs). */
        host_owns_lbr = 1;
        wrmsr(MSR_PERFEVTSEL0, 0);
    } else {
        arm_counter();
    }
    APIC_LVT_PMC = PMI_VECTOR; /* delivery masked it */
    APIC_EOI = 0;
    /* Acknowledge the status read, as Linux does: on v4 this also clears LBR_Frz and
     * recording resumes; before v4, DEBUGCTL.LBR is set again. */
    wrmsr(MSR_GLOBAL_OVF_CTRL, status);
    if (!empty && !streamlined) wrmsr(MSR_DEBUGCTL, DEBUGCTL_LBR | DEBUGCTL_FREEZE_LBRS_ON_PMI);
}

/* "name+0xoff" from the linker's table (or "?"), padded to `pad` columns. */
static void print_symbol(uint64_t a, int pad) {
    const char *best = 0;
    uint64_t base = 0;
    for (unsigned k = 0; k < sizeof symbols / sizeof symbols[0]; ++k) {
        const uint64_t s = (uint64_t)symbols[k].addr;
        if (s <= a && s >= base) best = symbols[k].name, base = s;
    }
    int len = 1;
    if (!best) {
        printf("?");
    } else {
        const char *p = best;
        for (len = 0; p[len]; ++len) putchar_serial(p[len]);
        if (a != base) {
            printf("+0x%lx", (unsigned long)(a - base));
            len += 3;
            for (uint64_t off = a - base; off >= 16; off >>= 4) ++len;
        }
    }
    for (; len < pad; ++len) putchar_serial(' ');
}

int main(void) {
    depth = lbr_depth();
    streamlined = pmu_caps().version >= 4;
    if (lbr_format() == 0 || depth == 0) {
        printf("lfsr: no guest LBR (LBR format %d, depth %d)\n", lbr_format(), depth);
        return 2;
    }
    APIC_SVR = 0x1FF;
    sdk_on_vector(PMI_VECTOR, on_pmi, 0);
    APIC_LVT_PMC = PMI_VECTOR;
    wrmsr(MSR_LBR_SELECT, 0); /* every branch class at every CPL */
    wrmsr(MSR_DEBUGCTL, DEBUGCTL_LBR | DEBUGCTL_FREEZE_LBRS_ON_PMI);
    arm_counter();
    wrmsr(MSR_PERFEVTSEL0, EVENT_INSTRUCTIONS | EVTSEL_OS | EVTSEL_USR | EVTSEL_EN | EVTSEL_INT);
    __asm__ volatile("sti");
    const uint64_t acc = lfsr_run(STEPS);
    __asm__ volatile("cli");
    wrmsr(MSR_PERFEVTSEL0, 0);
    wrmsr(MSR_DEBUGCTL, 0);

    printf("lfsr: %u steps, accumulator 0x%lx\n", STEPS, (unsigned long)acc);
    if (host_owns_lbr) {
        printf("lfsr: the LBR stack reads 0 (the host owns the LBR unit): self-profile off\n");
        return 0;
    }
    printf("lfsr: self-profile: %lu samples (PMC0 overflow every %u instructions), %lu records "
           "in the workload\n",
           (unsigned long)samples, PERIOD, (unsigned long)records);
    /* Most frequent first (selection sort; ties by address, as the host's table). */
    for (int i = 0; i < npairs; ++i)
        for (int j = i + 1; j < npairs; ++j) {
            const struct pair a = pairs[i], b = pairs[j];
            if (b.count > a.count || (b.count == a.count && (b.from < a.from ||
                                                             (b.from == a.from && b.to < a.to)))) {
                pairs[i] = b;
                pairs[j] = a;
            }
        }
    printf("lfsr:   share  from                            to\n");
    for (int k = 0; k < npairs && k < 10; ++k) {
        const uint64_t milli = records ? pairs[k].count * 100000 / records : 0;
        printf("lfsr: %3lu.%02lu%%  0x%08lx ", (unsigned long)(milli / 1000),
               (unsigned long)(milli % 1000 / 10), (unsigned long)pairs[k].from);
        print_symbol(pairs[k].from, 20);
        printf("  0x%08lx ", (unsigned long)pairs[k].to);
        print_symbol(pairs[k].to, 0);
        printf("\n");
    }
    if (dropped_pairs) printf("lfsr: %lu records of pairs beyond the table\n",
                              (unsigned long)dropped_pairs);
    return 0;
}
