/* Conformance: ring 3 round trips — IRETQ to CPL 3, INT n through a DPL-3 gate (and #GP
 * through a DPL-0 one), SYSCALL/SYSRET, privileged instructions at CPL 3, I/O above IOPL,
 * and the stack switch to TSS.RSP0 on entry to the kernel. */
#include "sdk.h"

static volatile uint64_t seen_cs, seen_ss, seen_rsp, kernel_rsp_in_handler;

static void user_reads_cpl(void) {
    uint16_t cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    sdk_user_exit(cs & 3);
}

static void note_frame(struct sdk_frame *f) {
    seen_cs = f->cs;
    seen_ss = f->ss;
    seen_rsp = f->rsp;
    uint64_t rsp;
    __asm__ volatile("mov %%rsp, %0" : "=r"(rsp));
    kernel_rsp_in_handler = rsp;
    f->rax = 0x5A;
}

static void user_int80(void) {
    uint64_t rax = 0;
    __asm__ volatile("int $0x80" : "+a"(rax)::"memory");
    sdk_user_exit((int)rax);
}

static void user_int82(void) { __asm__ volatile("int $0x82"); sdk_user_exit(0); }
static void user_hlt(void) { __asm__ volatile("hlt"); sdk_user_exit(0); }
static void user_cli(void) { __asm__ volatile("cli"); sdk_user_exit(0); }
static void user_mov_cr3(void) {
    uint64_t v;
    __asm__ volatile("mov %%cr3, %0" : "=r"(v));
    sdk_user_exit(0);
}
static void user_out(void) { outb(0x80, 1); sdk_user_exit(0); }
static void user_rdmsr(void) { (void)rdmsr(0xC0000080); sdk_user_exit(0); }

static uint64_t syscall_handler(uint64_t nr, uint64_t arg) {
    uint16_t cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    return nr * 1000 + arg + (cs == 0x08 ? 7 : 0);
}

static void user_syscalls(void) {
    uint64_t total = 0;
    for (uint64_t k = 0; k < 10; ++k) {
        uint64_t rax = 3;
        __asm__ volatile("syscall" : "+a"(rax) : "D"(k) : "rcx", "r11", "memory");
        total += rax;
    }
    /* 10 calls: 3000 + k + 7 each */
    sdk_user_exit(total == 10 * 3007 + 45 ? 1 : 0);
}

struct user_call {
    void (*fn)(void);
    int result;
};
static void run_user_wrapper(void *p) {
    struct user_call *c = p;
    c->result = sdk_run_user(c->fn, sdk_user_stack());
}
static int user_fault(void (*fn)(void)) {
    struct user_call c = {fn, -1};
    return sdk_catch(run_user_wrapper, &c);
}

int main(void) {
    sdk_enable_user();
    report(sdk_run_user(user_reads_cpl, sdk_user_stack()) == 3, "iretq enters CPL 3");

    sdk_on_vector(0x80, note_frame, 3);
    const int r = sdk_run_user(user_int80, sdk_user_stack());
    report(r == 0x5A, "int 0x80 through a DPL-3 gate returns to ring 3");
    report(seen_cs == 0x2B && seen_ss == 0x23, "interrupt frame holds the user CS and SS");
    report(seen_rsp <= sdk_user_stack() && seen_rsp > sdk_user_stack() - 4096,
           "interrupt frame holds the user RSP");
    report(kernel_rsp_in_handler < sdk_kernel_stack() &&
               kernel_rsp_in_handler > sdk_kernel_stack() - 16384,
           "the handler runs on the TSS.RSP0 stack");

    sdk_on_vector(0x82, note_frame, 0);
    report(user_fault(user_int82) == 13, "int through a DPL-0 gate from ring 3 is #GP");
    /* The SDM's error code is vector * 8 + 2; QEMU 7.2 reports vector * 16 + 2 in 64-bit
     * mode (fixed upstream later), so the differential test checks only the IDT flag
     * here; tests/cpu checks the exact value on emu. */
    report((sdk_last_error() & 7) == 2, "#GP error code flags the IDT entry");
    report(user_fault(user_hlt) == 13, "hlt at CPL 3 is #GP");
    report(user_fault(user_cli) == 13, "cli at CPL 3 with IOPL 0 is #GP");
    report(user_fault(user_mov_cr3) == 13, "mov from cr3 at CPL 3 is #GP");
    report(user_fault(user_rdmsr) == 13, "rdmsr at CPL 3 is #GP");
    report(user_fault(user_out) == 13, "out at CPL 3 above IOPL without a bitmap is #GP");

    sdk_enable_syscall(syscall_handler);
    const int sr = sdk_run_user(user_syscalls, sdk_user_stack());
    report(sr == 1, "syscall/sysret: ten round trips with results");
    uint16_t cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    report(cs == 0x08, "back in the kernel at CPL 0");
    report_summary();
}
