/* The split-lock storm demo: a ring-3 program hammers a counter that straddles two
 * cache lines with locked increments (from two places in its code), while the guest
 * kernel enables bus-lock #DB (DEBUGCTL bit 2) and logs each offending RIP once, as
 * Linux's split_lock_detect=warn does. The program measures its own throughput with the
 * TSC (1 tick = 1 ns of virtual time on softkvm emu): under `softkvm run
 * --bus-lock-ratelimit N` it falls to about N locked increments per second. */
#include "sdk.h"

#define MSR_DEBUGCTL 0x1D9
#define DEBUGCTL_BLD (1ull << 2)
#define DR6_BLD (1ull << 11)
#define DR6_INIT 0xFFFF0FF0ull
#define TSC_PER_SECOND 1000000000ul /* softkvm emu's virtual clock */

#define ROUNDS 20
#define PER_ROUND 5000

/* The counter starts 2 bytes before a 64-byte boundary: every 4-byte access splits. */
static uint8_t lines[128] __attribute__((aligned(64)));
#define COUNTER ((volatile uint32_t *)(lines + 62))

static uint64_t round_ticks[ROUNDS];

/* Two offending sites, so the kernel's log shows one line per RIP. */
__attribute__((noinline)) static void hammer_inc(volatile uint32_t *c, int n) {
    for (int k = 0; k < n; ++k) __asm__ volatile("lock incl %0" : "+m"(*c));
}
__attribute__((noinline)) static void hammer_xadd(volatile uint32_t *c, int n) {
    for (int k = 0; k < n; ++k) {
        uint32_t one = 1;
        __asm__ volatile("lock xaddl %1, %0" : "+m"(*c), "+r"(one));
    }
}

static void storm(void) {
    for (int r = 0; r < ROUNDS; ++r) {
        const uint64_t t0 = rdtsc();
        hammer_inc(COUNTER, PER_ROUND / 2);
        hammer_xadd(COUNTER, PER_ROUND / 2);
        round_ticks[r] = rdtsc() - t0;
    }
    sdk_user_exit(0);
}

/* ---- The kernel's bus-lock #DB handler: warn once per RIP ---- */
static uint64_t warned[16];
static int nwarned;
static uint64_t traps;

static uint64_t get_dr6(void) {
    uint64_t v;
    __asm__ volatile("mov %%dr6, %0" : "=r"(v));
    return v;
}

static void on_db(struct sdk_frame *f) {
    const uint64_t dr6 = get_dr6();
    __asm__ volatile("mov %0, %%dr6" ::"r"(DR6_INIT)); /* BLD back to 1 */
    if (dr6 & DR6_BLD) return;                         /* not a bus lock */
    ++traps;
    for (int k = 0; k < nwarned; ++k)
        if (warned[k] == f->rip) return;
    if (nwarned < 16) warned[nwarned++] = f->rip;
    printf("split lock: user task took a bus_lock trap at address: 0x%lx\n", f->rip);
}

static void print_rate(const char *what, uint64_t locks, uint64_t ticks) {
    const uint64_t rate10 = ticks ? locks * 10 * TSC_PER_SECOND / ticks : 0; /* tenths */
    printf("%s%lu locked increments in %lu.%03lu s: %lu.%lu per second\n", what, locks,
           ticks / TSC_PER_SECOND, ticks % TSC_PER_SECOND / 1000000, rate10 / 10, rate10 % 10);
}

int main(void) {
    uint32_t a, b, c, d;
    cpuid(7, 0, &a, &b, &c, &d);
    const int bld = (c >> 24) & 1;
    sdk_on_vector(1, on_db, 0);
    sdk_enable_user();
    if (bld) {
        wrmsr(MSR_DEBUGCTL, DEBUGCTL_BLD);
        printf("kernel: bus-lock detection on (split_lock_detect=warn)\n");
    } else {
        printf("kernel: this CPU has no bus-lock detection; no warnings\n");
    }
    sdk_run_user(storm, sdk_user_stack());
    wrmsr(MSR_DEBUGCTL, 0);

    uint64_t total = 0;
    for (int r = 0; r < ROUNDS; ++r) {
        total += round_ticks[r];
        if (r < 3 || r == ROUNDS - 1) {
            printf("round %2d: ", r + 1);
            print_rate("", PER_ROUND, round_ticks[r]);
        } else if (r == 3) {
            printf("...\n");
        }
    }
    print_rate("user program: ", (uint64_t)ROUNDS * PER_ROUND, total);
    printf("kernel: %lu bus-lock traps from %d places; counter = %u\n", traps, nwarned, *COUNTER);
    return *COUNTER == ROUNDS * PER_ROUND ? 0 : 1;
}
