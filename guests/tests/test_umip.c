/* Conformance: SMSW (register and memory forms, at CPL 0 and 3) and CR4.UMIP, which makes
 * SGDT, SIDT, SLDT, SMSW and STR raise #GP(0) at CPL > 0 and leaves them working at CPL 0
 * (SDM vol. 3 §2.5; CPUID.(7,0):ECX[2]). */
#include "sdk.h"

#define CR4_UMIP (1ull << 11)
#define VEC_GP 13


static volatile uint64_t user_value;
static uint8_t user_buf[16];

static void user_smsw(void) {
    uint64_t v = 0;
    __asm__ volatile("smsw %k0" : "+r"(v));
    user_value = v;
    sdk_user_exit(1);
}
static void user_sgdt(void) { __asm__ volatile("sgdt %0" : "=m"(user_buf)); sdk_user_exit(1); }
static void user_sidt(void) { __asm__ volatile("sidt %0" : "=m"(user_buf)); sdk_user_exit(1); }
static void user_sldt(void) {
    uint16_t v;
    __asm__ volatile("sldt %0" : "=r"(v));
    sdk_user_exit(1);
}
static void user_str(void) {
    uint16_t v;
    __asm__ volatile("str %0" : "=r"(v));
    user_value = v;
    sdk_user_exit(1);
}
static void user_smsw_mem(void) {
    __asm__ volatile("smsw %0" : "=m"(*(uint16_t *)user_buf));
    sdk_user_exit(1);
}

struct user_call {
    void (*fn)(void);
    int result;
};
static void run_user_wrapper(void *p) {
    struct user_call *c = p;
    c->result = sdk_run_user(c->fn, sdk_user_stack());
}
/* Runs fn at CPL 3: the vector of the exception it raised, or -1 if it exited normally. */
static int at_cpl3(void (*fn)(void)) {
    struct user_call c = {fn, -1};
    int v = sdk_catch(run_user_wrapper, &c);
    return v >= 0 ? v : (c.result == 1 ? -1 : -2);
}

static void set_cr4_umip(void *p) {
    (void)p;
    write_cr4(read_cr4() | CR4_UMIP);
}

int main(void) {
    const uint64_t cr0 = read_cr0();
    uint64_t v = ~0ull;
    __asm__ volatile("smsw %0" : "+r"(v));
    report(v == cr0, "smsw r64 reads all of CR0");
    uint32_t v32 = 0;
    __asm__ volatile("smsw %0" : "=r"(v32));
    report(v32 == (uint32_t)cr0, "smsw r32 reads CR0[31:0]");
    uint16_t m[2] = {0x5555, 0xAAAA};
    __asm__ volatile("smsw %0" : "=m"(m[0]));
    report(m[0] == (uint16_t)cr0 && m[1] == 0xAAAA, "smsw m16 stores CR0[15:0] only");

    sdk_enable_user();
    report(at_cpl3(user_smsw) == -1 && user_value == (uint32_t)cr0,
           "smsw at CPL 3 without UMIP reads CR0");
    report(at_cpl3(user_sgdt) == -1, "sgdt at CPL 3 without UMIP");
    report(at_cpl3(user_str) == -1 && user_value != 0, "str at CPL 3 without UMIP");

    uint32_t a, b, c, d;
    cpuid(7, 0, &a, &b, &c, &d);
    report((c >> 2) & 1, "CPUID.(7,0):ECX[2] advertises UMIP");
    report(sdk_catch(set_cr4_umip, 0) == -1 && (read_cr4() & CR4_UMIP), "CR4.UMIP can be set");

    report(at_cpl3(user_smsw) == VEC_GP && sdk_last_error() == 0, "umip: smsw r32 at CPL 3 #GP(0)");
    report(at_cpl3(user_smsw_mem) == VEC_GP, "umip: smsw m16 at CPL 3 #GP");
    report(at_cpl3(user_sgdt) == VEC_GP && sdk_last_error() == 0, "umip: sgdt at CPL 3 #GP(0)");
    report(at_cpl3(user_sidt) == VEC_GP, "umip: sidt at CPL 3 #GP");
    report(at_cpl3(user_sldt) == VEC_GP, "umip: sldt at CPL 3 #GP");
    report(at_cpl3(user_str) == VEC_GP, "umip: str at CPL 3 #GP");

    uint8_t gdt[10] = {0};
    __asm__ volatile("sgdt %0" : "=m"(gdt));
    report(gdt[0] != 0 || gdt[1] != 0, "umip: sgdt at CPL 0 still works");
    v = 0;
    __asm__ volatile("smsw %0" : "+r"(v));
    report(v == cr0, "umip: smsw at CPL 0 still works");

    write_cr4(read_cr4() & ~CR4_UMIP);
    report(at_cpl3(user_sidt) == -1, "sidt at CPL 3 after clearing UMIP");
    report_summary();
}
