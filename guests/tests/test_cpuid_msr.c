/* Conformance: CPUID leaves a kernel reads and the MSRs it programs — the long-mode and
 * address-size facts, SYSCALL MSRs, FS/GS bases with SWAPGS, PAT's reset value, TSC and
 * RDTSCP. Values that legitimately differ between CPU models are not printed. #GP on an
 * unknown MSR is checked in tests/cpu: QEMU 7.2 TCG reads unknown MSRs as 0. */
#include "sdk.h"

int main(void) {
    uint32_t a, b, c, d;
    cpuid(0, 0, &a, &b, &c, &d);
    const uint32_t max_leaf = a;
    report(max_leaf >= 7, "leaf 0: maximum basic leaf >= 7");
    cpuid(0x80000000, 0, &a, &b, &c, &d);
    report(a >= 0x80000008, "extended leaves up to 0x80000008");
    cpuid(0x80000001, 0, &a, &b, &c, &d);
    report((d & (1u << 29)) && (d & (1u << 20)) && (d & (1u << 11)),
           "0x80000001: long mode, NX, SYSCALL");
    cpuid(0x80000008, 0, &a, &b, &c, &d);
    report((a & 0xFF) >= 36 && (a & 0xFF) <= 52 && ((a >> 8) & 0xFF) >= 48,
           "0x80000008: physical 36-52 bits, linear at least 48");
    cpuid(1, 0, &a, &b, &c, &d);
    report((d & (1u << 5)) && (d & (1u << 4)) && (d & (1u << 6)), "leaf 1: MSR, TSC, PAE");
    report(((a >> 8) & 0xF) != 0, "leaf 1: a family");

    wrmsr(0xC0000081, 0x0023001000000000ull);
    report(rdmsr(0xC0000081) == 0x0023001000000000ull, "STAR reads back");
    wrmsr(0xC0000082, 0xFFFFFFFF80001000ull);
    report(rdmsr(0xC0000082) == 0xFFFFFFFF80001000ull, "LSTAR reads back");
    wrmsr(0xC0000084, 0x47700);
    report(rdmsr(0xC0000084) == 0x47700, "FMASK reads back");

    static uint64_t fs_area[4] = {0x1111, 0x2222, 0x3333, 0x4444};
    wrmsr(0xC0000100, (uint64_t)fs_area);
    uint64_t v;
    __asm__ volatile("mov %%fs:8, %0" : "=r"(v));
    report(v == 0x2222, "FS_BASE applies to fs: references");

    static uint64_t gs_kernel[2] = {0xAAAA, 0xBBBB};
    static uint64_t gs_user[2] = {0xCCCC, 0xDDDD};
    wrmsr(0xC0000101, (uint64_t)gs_user);
    wrmsr(0xC0000102, (uint64_t)gs_kernel);
    __asm__ volatile("swapgs");
    __asm__ volatile("mov %%gs:8, %0" : "=r"(v));
    report(v == 0xBBBB, "swapgs installs KERNEL_GS_BASE");
    report(rdmsr(0xC0000102) == (uint64_t)gs_user, "swapgs saves the old GS base");
    __asm__ volatile("swapgs");
    report(rdmsr(0xC0000101) == (uint64_t)gs_user, "a second swapgs swaps back");

    report(rdmsr(0x277) == 0x0007040600070406ull, "PAT has its reset value");
    const uint64_t efer = rdmsr(0xC0000080);
    report((efer & 0x500) == 0x500, "EFER: LME and LMA set in long mode");

    const uint64_t t0 = rdtsc();
    for (volatile int k = 0; k < 1000; ++k) {
    }
    const uint64_t t1 = rdtsc();
    report(t1 > t0, "TSC advances");
    cpuid(0x80000001, 0, &a, &b, &c, &d);
    if (d & (1u << 27)) {
        wrmsr(0xC0000103, 42);
        uint32_t aux;
        __asm__ volatile("rdtscp" : "=c"(aux)::"rax", "rdx");
        report(aux == 42, "rdtscp returns TSC_AUX");
    }
    report_summary();
}
