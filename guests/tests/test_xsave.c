/* Conformance: XSAVE basics — CPUID leaf 0xD, CR4.OSXSAVE (and CPUID's OSXSAVE mirror),
 * XGETBV/XSETBV with their #UD/#GP rules, XSAVE/XRSTOR of the SSE component in the
 * standard format, and XRSTOR putting a component the header marks as initial back
 * to its initial state. */
#include "sdk.h"

static uint8_t area[1024] __attribute__((aligned(64)));

static uint64_t xgetbv(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
static uint64_t xsetbv_value;
static void xsetbv(void *p) {
    (void)p;
    __asm__ volatile("xsetbv" ::"c"(0), "a"((uint32_t)xsetbv_value),
                     "d"((uint32_t)(xsetbv_value >> 32)));
}
static void xgetbv_now(void *p) {
    (void)p;
    (void)xgetbv();
}
static void xsave_misaligned(void *p) {
    (void)p;
    __asm__ volatile("xsave64 (%0)" ::"r"(area + 16), "a"(3), "d"(0) : "memory");
}

int main(void) {
    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    report(c & (1u << 26), "CPUID: XSAVE");
    report(!(c & (1u << 27)), "CPUID.OSXSAVE clear while CR4.OSXSAVE is clear");
    report(sdk_catch(xgetbv_now, 0) == 6, "xgetbv without CR4.OSXSAVE is #UD");
    write_cr4(read_cr4() | (1u << 18) | 0x600); /* OSXSAVE, OSFXSR, OSXMMEXCPT */
    cpuid(1, 0, &a, &b, &c, &d);
    report(c & (1u << 27), "CPUID.OSXSAVE follows CR4.OSXSAVE");
    cpuid(0xD, 0, &a, &b, &c, &d);
    report((a & 3) == 3, "leaf 0xD: x87 and SSE are XSAVE components");
    report(c >= 576, "leaf 0xD: the area holds at least the legacy area and header");
    report(xgetbv() == 1, "XCR0 starts as x87 only");
    xsetbv_value = 3;
    report(sdk_catch(xsetbv, 0) == -1 && xgetbv() == 3, "xsetbv enables SSE state");
    xsetbv_value = 2;
    report(sdk_catch(xsetbv, 0) == 13, "xsetbv without x87 is #GP");
    xsetbv_value = 1ull << 63;
    report(sdk_catch(xsetbv, 0) == 13, "xsetbv of a reserved bit is #GP");
    report(xgetbv() == 3, "a failed xsetbv changes nothing");

    static const uint64_t v[2] __attribute__((aligned(16))) = {0x1122334455667788ull,
                                                               0x99AABBCCDDEEFF00ull};
    uint64_t back[2] __attribute__((aligned(16)));
    memset(area, 0, sizeof area);
    __asm__ volatile("movdqa %0, %%xmm7" ::"m"(v) : "memory");
    __asm__ volatile("xsave64 %0" : "+m"(area) : "a"(3), "d"(0) : "memory");
    report(memcmp(area + 160 + 7 * 16, v, 16) == 0, "xsave stores XMM7 in the legacy area");
    report(*(uint64_t *)(area + 512) & 2, "XSTATE_BV marks the SSE component");
    __asm__ volatile("pxor %%xmm7, %%xmm7" ::: "memory");
    __asm__ volatile("xrstor64 %0" ::"m"(area), "a"(3), "d"(0) : "memory");
    __asm__ volatile("movdqa %%xmm7, %0" : "=m"(back)::"memory");
    report(back[0] == v[0] && back[1] == v[1], "xrstor restores XMM7");
    *(uint64_t *)(area + 512) &= ~2ull; /* SSE component in its initial state */
    __asm__ volatile("xrstor64 %0" ::"m"(area), "a"(3), "d"(0) : "memory");
    __asm__ volatile("movdqa %%xmm7, %0" : "=m"(back)::"memory");
    report(back[0] == 0 && back[1] == 0, "xrstor initialises a component XSTATE_BV leaves out");
    report(sdk_catch(xsave_misaligned, 0) == 13, "xsave to an area not 64-byte aligned is #GP");
    report_summary();
}
