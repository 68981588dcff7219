/* Conformance: SSE/SSE2 floating point where QEMU 7.2 TCG departs from the SDM (see
 * sse_fp.h): the full sweep with MXCSR.DE, two-NaN operands and MIN/MAX under DAZ, RCPPS
 * and RSQRTPS on special operands, and the delivery of unmasked exceptions: #XM with
 * CR4.OSXMMEXCPT, #UD without, the flags set and the destination unchanged (SDM vol. 1
 * §11.5.1). Its peer is the silicon: guest.kvm.test_sse_fp_sdm compares with emu. */
#include "sse_fp.h"

static uint32_t fault_csr;
static void divss_now(void *p) {
    v128 *r = p;
    __asm__ volatile("ldmxcsr %1\n\tmovdqa %0, %%xmm0\n\tdivss %2, %%xmm0\n\tmovdqa %%xmm0, %0"
                     : "+m"(*r)
                     : "m"(fault_csr), "m"(r[1])
                     : "memory");
}
static void addps_now(void *p) {
    v128 *r = p;
    __asm__ volatile("ldmxcsr %1\n\tmovdqa %0, %%xmm0\n\taddps %2, %%xmm0\n\tmovdqa %%xmm0, %0"
                     : "+m"(*r)
                     : "m"(fault_csr), "m"(r[1])
                     : "memory");
}

static v128 one_op(op_fn fn, uint64_t alo, uint64_t blo, uint32_t csr, uint32_t *out) {
    v128 a = {alo, 0}, b = {blo, 0}, r;
    *out = fn(&r, &a, &b, csr);
    return r;
}

int main(void) {
    write_cr4(read_cr4() | 0x600); /* OSFXSR | OSXMMEXCPT */
    uint32_t f;
    v128 r = one_op(addss_, 0x00000001, 0x3F800000, 0x1F80, &f);
    report((uint32_t)r.lo == 0x3F800000 && (f & 2), "a denormal operand sets DE");
    r = one_op(addss_, 0x00000001, 0x3F800000, 0x1FC0, &f);
    report(!(f & 2), "... not under DAZ");
    r = one_op(addss_, 0x7FC00000, 0xFFC00001, 0x1F80, &f);
    report((uint32_t)r.lo == 0x7FC00000, "two QNaNs: the first operand's");
    r = one_op(minss_, 0x80000001, 0x3F800000, 0x1FC0, &f);
    report((uint32_t)r.lo == 0x80000000, "minss under DAZ returns the denormal's zero");
    v128 x = {0x80000001ull << 32 | 0x00000000, 0xBF800000ull << 32 | 0x7F800000};
    rcpps_(&r, &x, &x, 0x1F80);
    report(r.lo == (0xFF800000ull << 32 | 0x7F800000) && r.hi == (0xBF800000ull << 32 | 0),
           "rcpps: +0 -> +inf, -denormal -> -inf, inf -> 0, -1 -> -1");
    rsqrtps_(&r, &x, &x, 0x1F80);
    report(r.lo == (0xFF800000ull << 32 | 0x7F800000) && r.hi == (0xFFC00000ull << 32 | 0),
           "rsqrtps: +0 -> +inf, -denormal -> -inf, inf -> 0, -1 -> default NaN");

    static v128 buf[2];
    buf[0].lo = 0x3F800000, buf[1].lo = 0;
    fault_csr = 0x1F80 & ~0x200u; /* ZM clear */
    report(sdk_catch(divss_now, buf) == 19, "unmasked divide by zero: #XM");
    report(buf[0].lo == 0x3F800000 && (get_mxcsr() & 4), "... ZE set, the destination unchanged");
    write_cr4(read_cr4() & ~0x400ull);
    report(sdk_catch(divss_now, buf) == 6, "... and #UD without CR4.OSXMMEXCPT");
    write_cr4(read_cr4() | 0x400);
    fault_csr = 0x1F80 & ~0x1000u; /* PM clear: 1/3 is inexact */
    buf[1].lo = 0x40400000;
    report(sdk_catch(divss_now, buf) == 19 && (get_mxcsr() & 0x20), "unmasked precision: #XM, PE set");
    fault_csr = 0x1F80 & ~0x800u; /* UM clear: an exact tiny result still underflows */
    buf[0].lo = 0x00800000, buf[1].lo = 0x40000000;
    report(sdk_catch(divss_now, buf) == 19 && (get_mxcsr() & 0x10), "unmasked underflow on an exact tiny result");
    fault_csr = 0x1F80 & ~0x80u; /* IM clear; one lane of four invalid */
    buf[0].lo = 0x3F8000003F800000ull, buf[0].hi = 0x7F8000003F800000ull;
    buf[1].lo = 0x3F8000003F800000ull, buf[1].hi = 0xFF8000003F800000ull;
    report(sdk_catch(addps_now, buf) == 19 && buf[0].lo == 0x3F8000003F800000ull &&
               (get_mxcsr() & 1), "addps: one invalid lane faults the whole instruction");
    set_mxcsr(0x1F80);
    report(rcp_checks(), "rcpps/rsqrtps within 1.5 * 2^-12 of 1/x and 1/sqrt(x)");

    sweep(0);
    report_summary();
}
