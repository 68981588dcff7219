/* Conformance: SSE/SSE2 floating point, compared with QEMU TCG (guest.diff.test_sse_fp).
 * Hand-checked results (IEEE 754, SDM vol. 1 ch. 4 and 11) as checks, then the sweep of
 * sse_fp.h over the cases where QEMU 7.2 follows the SDM; the rest, and the unmasked
 * exceptions QEMU 7.2 does not deliver, are in test_sse_fp_sdm.c. */
#include "sse_fp.h"

static v128 one_op(op_fn fn, uint64_t alo, uint64_t blo, uint32_t csr, uint32_t *out) {
    v128 a = {alo, 0}, b = {blo, 0}, r;
    *out = fn(&r, &a, &b, csr);
    return r;
}

int main(void) {
    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    report((d & (1u << 25)) && (d & (1u << 26)), "CPUID: SSE, SSE2");
    write_cr4(read_cr4() | 0x600); /* OSFXSR | OSXMMEXCPT */

    uint32_t f;
    v128 r = one_op(addss_, 0x3FC00000, 0x40100000, 0x1F80, &f);
    report((uint32_t)r.lo == 0x40700000 && (f & 0x3F) == 0, "addss 1.5 + 2.25 = 3.75, exact");
    r = one_op(divss_, 0x3F800000, 0x40400000, 0x1F80, &f);
    report((uint32_t)r.lo == 0x3EAAAAAB && (f & 0x3F) == 0x20, "divss 1/3 rounds to nearest, PE");
    r = one_op(divss_, 0x3F800000, 0x40400000, 0x3F80, &f);
    report((uint32_t)r.lo == 0x3EAAAAAA, "divss 1/3 rounds down under RC=01");
    r = one_op(divss_, 0x3F800000, 0x40400000, 0x5F80, &f);
    report((uint32_t)r.lo == 0x3EAAAAAB, "divss 1/3 rounds up under RC=10");
    r = one_op(sqrtsd_, 0, 0x4000000000000000ull, 0x1F80, &f);
    report(r.lo == 0x3FF6A09E667F3BCDull, "sqrtsd 2");
    r = one_op(sqrtss_, 0, 0xBF800000, 0x1F80, &f);
    report((uint32_t)r.lo == 0xFFC00000 && (f & 1), "sqrtss -1 is the default NaN, IE");
    r = one_op(divss_, 0, 0, 0x1F80, &f);
    report((uint32_t)r.lo == 0xFFC00000 && (f & 1), "divss 0/0 is the default NaN, IE");
    r = one_op(divss_, 0x3F800000, 0, 0x1F80, &f);
    report((uint32_t)r.lo == 0x7F800000 && (f & 4), "divss 1/0 is +inf, ZE");
    r = one_op(mulss_, 0x7F7FFFFF, 0x40000000, 0x1F80, &f);
    report((uint32_t)r.lo == 0x7F800000 && (f & 0x28) == 0x28, "mulss overflow: +inf, OE and PE");
    r = one_op(mulss_, 0x7F7FFFFF, 0x40000000, 0x7F80, &f);
    report((uint32_t)r.lo == 0x7F7FFFFF, "... the largest finite value when truncating");
    r = one_op(mulss_, 0x00800000, 0x3F000000, 0x1F80, &f);
    report((uint32_t)r.lo == 0x00400000 && (f & 0x30) == 0, "mulss to an exact denormal: no UE when masked");
    r = one_op(mulss_, 0x00800000, 0x3F000000, 0x9F80, &f);
    report((uint32_t)r.lo == 0 && (f & 0x30) == 0x30, "FTZ flushes the tiny result, UE and PE");
    r = one_op(addss_, 0x00000001, 0, 0x1FC0, &f);
    report((uint32_t)r.lo == 0, "DAZ reads a denormal source as zero");
    r = one_op(addss_, 0x7F800001, 0x3F800000, 0x1F80, &f);
    report((uint32_t)r.lo == 0x7FC00001 && (f & 1), "an SNaN operand is quieted, IE");
    r = one_op(cvttss2si32_, 0xC0200000, 0, 0x1F80, &f);
    report((uint32_t)r.lo == 0xFFFFFFFE, "cvttss2si -2.5 truncates to -2");
    r = one_op(cvtss2si32_, 0x40200000, 0, 0x1F80, &f);
    report((uint32_t)r.lo == 2 && (f & 0x20), "cvtss2si 2.5 rounds to even 2, PE");
    r = one_op(cvtsd2si64_, 0x43E0000000000000ull, 0, 0x1F80, &f);
    report(r.lo == 0x8000000000000000ull && (f & 1), "cvtsd2si64 2^63: integer indefinite, IE");
    r = one_op(cvtsi2sd64_, 0, 0x7FFFFFFFFFFFFFFFull, 0x1F80, &f);
    report(r.lo == 0x43E0000000000000ull && (f & 0x20), "cvtsi2sd 2^63-1 rounds, PE");
    r = one_op(cvtsd2ss_, 0, 0x3FF0000010000000ull, 0x1F80, &f);
    report((uint32_t)r.lo == 0x3F800000 && (f & 0x20), "cvtsd2ss rounds, PE");
    r = one_op(comiss_, 0x7FC00000, 0x3F800000, 0x1F80, &f);
    report(r.lo == 0x45 && (f & 1), "comiss QNaN: unordered (ZF PF CF), IE");
    r = one_op(ucomiss_, 0x7FC00000, 0x3F800000, 0x1F80, &f);
    report(r.lo == 0x45 && !(f & 1), "ucomiss QNaN: unordered, no IE");
    r = one_op(comisd_, 0x3FF0000000000000ull, 0x4000000000000000ull, 0x1F80, &f);
    report(r.lo == 0x01, "comisd 1 < 2: CF only, OF SF AF cleared");
    r = one_op(cmpss2_, 0x3F800000, 0x3F800000, 0x1F80, &f);
    report((uint32_t)r.lo == 0xFFFFFFFF, "cmpless 1 <= 1");
    r = one_op(cmpss1_, 0x7FC00000, 0x3F800000, 0x1F80, &f);
    report((uint32_t)r.lo == 0 && (f & 1), "cmpltss with a QNaN is false and signals IE");
    r = one_op(cmpss0_, 0x7FC00000, 0x3F800000, 0x1F80, &f);
    report((uint32_t)r.lo == 0 && !(f & 1), "cmpeqss with a QNaN is quiet");
    r = one_op(movmskps_, 0x80000000ull << 32, 0, 0x1F80, &f);
    report(r.lo == 2, "movmskps");
    report(rcp_checks(), "rcpps/rsqrtps within 1.5 * 2^-12 of 1/x and 1/sqrt(x)");
    set_mxcsr(0x1F80);
    report(get_mxcsr() == 0x1F80, "ldmxcsr clears the flags again");

    sweep(1);
    report_summary();
}
