/* Conformance: KVM's paravirtual interface as a guest under KVM sees it — the CPUID
 * signature leaves 0x40000000/0x40000001 and VMCALL/VMMCALL hypercalls (Linux's
 * Documentation/virt/kvm/x86/hypercalls.rst): unknown numbers return -KVM_ENOSYS (-1000),
 * ring 3 gets -KVM_EPERM (-1), KVM_HC_SEND_IPI interrupts the named vCPUs and returns how
 * many, and no register but RAX changes. */
#include "sdk.h"

#define KVM_HC_VAPIC_POLL_IRQ 1
#define KVM_HC_KICK_CPU 5
#define KVM_HC_SEND_IPI 10
#define KVM_HC_SCHED_YIELD 11
#define KVM_ENOSYS 1000
#define KVM_EPERM 1
#define KVM_EINVAL 22

struct hc_regs {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, r8;
};

/* VMCALL (vmm = 0) or VMMCALL (vmm = 1) with r->rax..rsi in; every register out. */
static void hypercall(struct hc_regs *r, int vmm) {
    if (vmm)
        __asm__ volatile("vmmcall"
                         : "+a"(r->rax), "+b"(r->rbx), "+c"(r->rcx), "+d"(r->rdx), "+S"(r->rsi),
                           "+D"(r->rdi), "+r"(r->r8)::"memory");
    else
        __asm__ volatile("vmcall"
                         : "+a"(r->rax), "+b"(r->rbx), "+c"(r->rcx), "+d"(r->rdx), "+S"(r->rsi),
                           "+D"(r->rdi), "+r"(r->r8)::"memory");
}

static int64_t hc(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3) {
    struct hc_regs r = {nr, a0, a1, a2, a3, 0, 0};
    hypercall(&r, 0);
    return (int64_t)r.rax;
}

static volatile int ipi_count;
static void on_ipi(struct sdk_frame *f) {
    (void)f;
    ++ipi_count;
    *(volatile uint32_t *)0xFEE000B0 = 0; /* EOI */
}

static volatile int64_t user_ret;
static void user_vmcall(void) {
    uint64_t rax = 0x1234;
    __asm__ volatile("vmcall" : "+a"(rax)::"memory");
    user_ret = (int64_t)rax;
    sdk_user_exit(1);
}

int main(void) {
    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    report((c >> 31) & 1, "CPUID.1:ECX[31]: running under a hypervisor");
    cpuid(0x40000000, 0, &a, &b, &c, &d);
    char sig[13];
    memcpy(sig, &b, 4);
    memcpy(sig + 4, &c, 4);
    memcpy(sig + 8, &d, 4);
    sig[12] = 0;
    report(memcmp(sig, "KVMKVMKVM\0\0\0", 12) == 0, "CPUID 0x40000000: KVMKVMKVM signature");
    report(a >= 0x40000001, "CPUID 0x40000000: EAX names the features leaf");
    cpuid(0x40000001, 0, &a, &b, &c, &d);
    report((a >> 11) & 1, "CPUID 0x40000001: KVM_FEATURE_PV_SEND_IPI");
    report((a >> 13) & 1, "CPUID 0x40000001: KVM_FEATURE_PV_SCHED_YIELD");
    report((a >> 7) & 1, "CPUID 0x40000001: KVM_FEATURE_PV_UNHALT");

    struct hc_regs r = {0xdead, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
    hypercall(&r, 0);
    report((int64_t)r.rax == -KVM_ENOSYS, "vmcall with an unknown number: -KVM_ENOSYS");
    report(r.rbx == 0x11 && r.rcx == 0x22 && r.rdx == 0x33 && r.rsi == 0x44 && r.rdi == 0x55 &&
               r.r8 == 0x66,
           "vmcall changes no register but RAX");
    struct hc_regs m = {0x7777, 1, 2, 3, 4, 5, 6};
    hypercall(&m, 1);
    report((int64_t)m.rax == -KVM_ENOSYS, "vmmcall with an unknown number: -KVM_ENOSYS");
    report(hc(0x100000000ull | KVM_HC_VAPIC_POLL_IRQ, 0, 0, 0, 0) == -KVM_ENOSYS,
           "64-bit mode: the number is all of RAX");
    report(hc(KVM_HC_VAPIC_POLL_IRQ, 0, 0, 0, 0) == 0, "KVM_HC_VAPIC_POLL_IRQ returns 0");
    report(hc(KVM_HC_SCHED_YIELD, 0, 0, 0, 0) == 0, "KVM_HC_SCHED_YIELD returns 0");
    report(hc(KVM_HC_KICK_CPU, 0, 5, 0, 0) == 0, "KVM_HC_KICK_CPU of an absent vCPU returns 0");

    sdk_on_vector(0x50, on_ipi, 0);
    *(volatile uint32_t *)0xFEE000F0 = 0x1FF; /* SVR: APIC software enable */
    __asm__ volatile("cli");
    report(hc(KVM_HC_SEND_IPI, 1, 0, 0, 0x50) == 1, "KVM_HC_SEND_IPI to APIC ID 0: 1 vCPU");
    report(ipi_count == 0, "the IPI waits while IF is 0");
    __asm__ volatile("sti; nop; cli");
    report(ipi_count == 1, "the IPI is delivered once IF is 1");
    report(hc(KVM_HC_SEND_IPI, 0, 1, (uint64_t)-64, 0x50) == 1,
           "KVM_HC_SEND_IPI: the high bitmap starts 64 IDs after the minimum");
    __asm__ volatile("sti; nop; cli");
    report(ipi_count == 2, "the second IPI is delivered");
    report(hc(KVM_HC_SEND_IPI, 2, 0, 0, 0x50) == 0, "KVM_HC_SEND_IPI to an absent APIC ID: 0");
    report(hc(KVM_HC_SEND_IPI, 1, 0, 0, 0x50 | (3u << 18)) == -KVM_EINVAL,
           "KVM_HC_SEND_IPI with a shorthand: -KVM_EINVAL");
    report(hc(KVM_HC_SEND_IPI, 1, 0, 0, 0x50 | (1u << 11)) == -KVM_EINVAL,
           "KVM_HC_SEND_IPI in logical destination mode: -KVM_EINVAL");
    __asm__ volatile("sti; nop; cli");
    report(ipi_count == 2, "refused IPIs deliver nothing");

    sdk_enable_user();
    report(sdk_run_user(user_vmcall, sdk_user_stack()) == 1 && user_ret == -KVM_EPERM,
           "vmcall at CPL 3: -KVM_EPERM");
    report_summary();
}
