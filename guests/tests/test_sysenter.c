/* Conformance: the SYSENTER MSRs (0x174-0x176), SYSENTER from ring 3 and SYSEXIT back in
 * 64-bit mode (with REX.W) where the CPUID vendor is Intel (#UD on AMD), and SYSRET without
 * REX.W to a 32-bit compatibility-mode segment (SDM vol. 2, SYSENTER, SYSEXIT, SYSRET). */
#include "sdk.h"

#define MSR_SYSENTER_CS 0x174
#define MSR_SYSENTER_ESP 0x175
#define MSR_SYSENTER_EIP 0x176
#define MSR_STAR 0xC0000081
#define VEC_GP 13

extern uint64_t sdk_user_kernel_rsp;
/* Set by the SYSENTER entry: what it saw. */
uint64_t sysenter_seen_cs, sysenter_seen_ss, sysenter_seen_rsp, sysenter_seen_flags;
uint64_t sysenter_user_rdi;
static uint8_t sysenter_stack[4096] __attribute__((aligned(16)));
int sysret32_run(uint64_t target, uint64_t user_rsp);
void sysenter_entry(void);
void compat_code(void);
void compat_int_code(void);

/* sysret32_run(target, user_rsp): like sdk_run_user, but enters ring 3 with SYSRETL at a
 * 32-bit target; the user code ends with INT 0x81 (sdk_user_exit) and EAX = its result.
 * sysenter_entry: the SYSENTER target; records CS, SS, RSP and RFLAGS, then SYSEXITQ to
 * RDX with RSP = RCX and RAX = RDI + 1. compat_code: 32-bit code; `dec %eax` (0x48, a REX
 * prefix in 64-bit mode) on 7 exits with 6. */
__asm__(".text\n"
        ".global sysret32_run\n"
        "sysret32_run:\n"
        "  push %rbp\n push %rbx\n push %r12\n push %r13\n push %r14\n push %r15\n"
        "  mov %rsp, sdk_user_kernel_rsp(%rip)\n"
        "  mov %rdi, %rcx\n"
        "  mov $2, %r11d\n"
        "  mov %rsi, %rsp\n"
        "  sysretl\n"
        ".global sysenter_entry\n"
        "sysenter_entry:\n"
        "  mov %rsp, sysenter_seen_rsp(%rip)\n"
        "  mov %cs, %eax\n mov %rax, sysenter_seen_cs(%rip)\n"
        "  mov %ss, %eax\n mov %rax, sysenter_seen_ss(%rip)\n"
        "  pushfq\n pop %rax\n mov %rax, sysenter_seen_flags(%rip)\n"
        "  lea 1(%rdi), %rax\n"
        "  sysexitq\n"
        ".code32\n"
        ".global compat_code\n"
        "compat_code:\n"
        "  mov $7, %eax\n"
        "  .byte 0x48\n" /* dec %eax */
        "  int $0x81\n"
        ".global compat_int_code\n"
        "compat_int_code:\n"
        "  mov $40, %eax\n"
        "  int $0x82\n" /* the handler adds 2 and returns here with IRETQ */
        "  push %eax\n"
        "  pop %ecx\n"  /* a 4-byte push and pop: 32-bit stack */
        "  int $0x81\n"
        ".code64\n");

static volatile uint64_t int82_cs;
static void on_int82(struct sdk_frame *f) {
    int82_cs = f->cs;
    f->rax += 2;
}

/* Ring 3: SYSENTER with RDX/RCX set for the SYSEXITQ that returns here. */
static void user_sysenter(void) {
    uint64_t rax;
    __asm__ volatile("mov %%rsp, %%rcx\n"
                     "lea 1f(%%rip), %%rdx\n"
                     "sysenter\n"
                     "1:\n"
                     : "=a"(rax)
                     : "D"(41ull)
                     : "rcx", "rdx", "memory");
    uint16_t cs, ss;
    __asm__ volatile("mov %%cs, %0\n mov %%ss, %1" : "=r"(cs), "=r"(ss));
    sdk_user_exit(rax == 42 && cs == 0x2B && ss == 0x33 ? 1 : 0);
}

static void do_sysexit_cpl0_noncanonical(void *p) {
    (void)p;
    __asm__ volatile("mov $0x0000800000000000, %%rdx\n xor %%ecx, %%ecx\n sysexitq" ::: "rcx",
                     "rdx");
}
static void run_user_sysenter(void *p) { *(int *)p = sdk_run_user(user_sysenter, sdk_user_stack()); }

int main(void) {
    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    report((d >> 11) & 1, "CPUID.1:EDX[11] advertises SYSENTER/SYSEXIT");

    wrmsr(MSR_SYSENTER_CS, 0x08);
    wrmsr(MSR_SYSENTER_ESP, 0xFFFF800000001230ull);
    wrmsr(MSR_SYSENTER_EIP, 0x123456789ull);
    report(rdmsr(MSR_SYSENTER_CS) == 0x08, "IA32_SYSENTER_CS reads back");
    report(rdmsr(MSR_SYSENTER_ESP) == 0xFFFF800000001230ull, "IA32_SYSENTER_ESP reads back");
    report(rdmsr(MSR_SYSENTER_EIP) == 0x123456789ull, "IA32_SYSENTER_EIP reads back");
    /* A non-canonical address: #GP per the SDM (tests/cpu checks it on emu); QEMU 7.2 TCG
     * stores it and KVM makes it canonical, so it is not checked here. */

    /* SYSENTER/SYSEXIT in 64-bit mode are Intel's: AMD processors raise #UD. */
    cpuid(0, 0, &a, &b, &c, &d);
    const int intel = b == 0x756e6547 && d == 0x49656e69 && c == 0x6c65746e; /* GenuineIntel */
    sdk_enable_user();
    const uint64_t kstack = (uint64_t)(sysenter_stack + sizeof sysenter_stack);
    wrmsr(MSR_SYSENTER_ESP, kstack);
    wrmsr(MSR_SYSENTER_EIP, (uint64_t)sysenter_entry);
    int user_result = -1;
    const int vec = sdk_catch(run_user_sysenter, &user_result);
    report(intel ? vec == -1 && user_result == 1 : vec == 6,
           "64-bit sysenter from ring 3 (Intel: sysexitq back to CS 0x2b, SS 0x33; AMD: #UD)");
    report(!intel || (sysenter_seen_cs == 0x08 && sysenter_seen_ss == 0x10),
           "sysenter enters CS = SYSENTER_CS, SS = SYSENTER_CS + 8");
    report(!intel || sysenter_seen_rsp == kstack, "sysenter loads RSP from IA32_SYSENTER_ESP");
    report(!intel || !(sysenter_seen_flags & 0x200), "sysenter clears IF");
    report(sdk_catch(do_sysexit_cpl0_noncanonical, 0) == (intel ? VEC_GP : 6),
           "sysexitq to a non-canonical RDX (Intel: #GP; AMD: #UD)");

    wrmsr(MSR_STAR, (0x18ull << 48) | (0x08ull << 32));
    wrmsr(0xC0000080, rdmsr(0xC0000080) | 1); /* EFER.SCE */
    report(sysret32_run((uint64_t)compat_code, sdk_user_stack()) == 6,
           "sysretl enters 32-bit compatibility mode (0x48 is DEC EAX)");
    sdk_on_vector(0x82, on_int82, 3);
    report(sysret32_run((uint64_t)compat_int_code, sdk_user_stack()) == 42,
           "compatibility mode: INT through a 64-bit gate and IRETQ back");
    report(int82_cs == 0x1B, "the interrupt frame holds CS = STAR[63:48] | 3");
    report_summary();
}
