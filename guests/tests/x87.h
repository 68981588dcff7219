/* Shared part of the x87 conformance guests (test_x87.c, test_x87_sdm.c): each operation
 * runs from FNINIT under a control word on two double extended operands (ST(0) = a,
 * ST(1) = b), then FNSAVE captures the whole FPU state (control, status with TOP and
 * C0-C3, full tag word, the eight registers); the state of every operand pair is folded
 * into one hash per operation and control word, printed in hex. FIP/FDP/FOP are left out
 * (checked apart). Written in assembly: the guests are built without x87 code generation. */
#ifndef SOFTKVM_GUEST_X87_H
#define SOFTKVM_GUEST_X87_H
#include "sdk.h"

typedef struct {
    uint64_t mant;
    uint16_t se;
} __attribute__((packed)) f80;

struct fpu_image { /* FNSAVE, 32-bit protected-mode layout */
    uint32_t cw, sw, tw, fip, fcs_fop, fdp, fds;
    f80 st[8];
} __attribute__((packed));


static const f80 k_one = {0x8000000000000000ull, 0x3FFF};
static const f80 k_zero = {0, 0};
static struct fpu_image img;
static uint64_t scratch;

static inline int is(const f80 *v, uint64_t mant, uint16_t se) {
    return v->mant == mant && v->se == se;
}
static inline void fld1_now(void *p) {
    (void)p;
    __asm__ volatile("fld1\n\tfstp %%st(0)" ::: "memory");
}
/* FLDCW 0x037B (ZM clear), 1/0: ZE pending; FNSTSW (no wait) into *sw. */
static inline void divide_by_zero(uint16_t *sw) {
    static const uint16_t cw = 0x037B;
    __asm__ volatile("fninit\n\tfldcw %1\n\tfldz\n\tfld1\n\tfdivp\n\tfnstsw %0" : "=m"(*sw) : "m"(cw) : "memory");
}

/* One operation: FNINIT, FLDCW cw, FLD b, FLD a, body, FNSAVE. `m` is a scratch
 * memory operand (loads read it, stores write it). */
#define X87OP(name, body)                                                                 \
    static __attribute__((unused)) void name##_(struct fpu_image *img, const f80 *a, const f80 *b, uint16_t cw,   \
                        uint64_t *m) {                                                    \
        __asm__ volatile("fninit\n\tfldcw %[cw]\n\tfldt %[b]\n\tfldt %[a]\n\t" body       \
                         "\n\tfnsave %[img]"                                              \
                         : [img] "=m"(*img), [m] "+m"(*m)                                 \
                         : [a] "m"(*a), [b] "m"(*b), [cw] "m"(cw)                         \
                         : "memory", "rax", "cc");                                        \
    }
X87OP(fadd, "fadd %%st(1), %%st")
X87OP(fsub, "fsub %%st(1), %%st")
X87OP(fsubr, "fsubr %%st(1), %%st")
X87OP(fmul, "fmul %%st(1), %%st")
X87OP(fdiv, "fdiv %%st(1), %%st")
X87OP(fdivr, "fdivr %%st(1), %%st")
X87OP(faddp, "faddp")
X87OP(fsubp, "fsubrp") /* GNU as: fsubrp is Intel's FSUBP ST(1), ST(0) */
X87OP(fdivp, "fdivrp")
X87OP(fmulp_st2, "fld %%st(1)\n\tfmulp %%st, %%st(2)")
X87OP(fsqrt, "fsqrt")
X87OP(frndint, "frndint")
X87OP(fscale, "fscale")
X87OP(fxtract, "fxtract")
X87OP(fprem, "fprem")
X87OP(fprem1, "fprem1")
X87OP(fcom, "fcom %%st(1)")
X87OP(fcompp, "fcompp")
X87OP(fucom, "fucom %%st(1)")
X87OP(fucompp, "fucompp")
X87OP(fcomi, "fcomi %%st(1), %%st\n\tpushf\n\tpop %%rax\n\tand $0x8d5, %%eax\n\tmov %%rax, %[m]")
X87OP(fucomip, "fucomip %%st(1), %%st\n\tpushf\n\tpop %%rax\n\tand $0x8d5, %%eax\n\tmov %%rax, %[m]")
X87OP(ftst, "ftst")
X87OP(fxam, "fxam")
X87OP(fchs, "fchs")
X87OP(fabs, "fabs")
X87OP(fxch, "fxch %%st(1)")
X87OP(fld_st1, "fld %%st(1)")
X87OP(fstp_st1, "fstp %%st(1)")
X87OP(ffree, "ffree %%st(1)\n\tfincstp")
X87OP(fdecstp, "fdecstp")
X87OP(fcmovb, "mov $1, %%eax\n\tshr $1, %%eax\n\tfcmovb %%st(1), %%st")
X87OP(fcmovnbe, "xor %%eax, %%eax\n\tfcmovnbe %%st(1), %%st")
X87OP(fld1, "fld1")
X87OP(fldpi, "fldpi")
X87OP(fldl2e, "fldl2e")
X87OP(fldl2t, "fldl2t")
X87OP(fldlg2, "fldlg2")
X87OP(fldln2, "fldln2")
X87OP(fldz, "fldz")
X87OP(fsts, "fsts %[m]")
X87OP(fstl, "fstl %[m]")
X87OP(fstpt, "fstpt %[m]")
X87OP(fists, "fists %[m]")
X87OP(fistl, "fistl %[m]")
X87OP(fistpll, "fistpll %[m]")
X87OP(fisttpl, "fisttpl %[m]")
X87OP(fisttpll, "fisttpll %[m]")
X87OP(flds, "flds %[m]") /* m: set by the sweep from the operands */
X87OP(fldl, "fldl %[m]")
X87OP(fadds, "fsts %[m]\n\tfadds %[m]")
X87OP(fsubrl, "fstl %[m]\n\tfld %%st(1)\n\tfsubrl %[m]")
X87OP(fiaddl, "fistl %[m]\n\tfld %%st(1)\n\tfiaddl %[m]")
X87OP(fidivs, "fists %[m]\n\tfld %%st(1)\n\tfidivs %[m]")
X87OP(fild, "fistpll %[m]\n\tfildll %[m]\n\tfildl %[m]\n\tfilds %[m]")
X87OP(ficom, "fistl %[m]\n\tfld %%st(1)\n\tficoml %[m]")
X87OP(overflow, "fld1\n\tfld1\n\tfld1\n\tfld1\n\tfld1\n\tfld1\n\tfld1") /* 9 pushes */
X87OP(underflow, "fstp %%st(0)\n\tfstp %%st(0)\n\tfadd %%st(1), %%st")
X87OP(underflow_st, "fstp %%st(0)\n\tfstp %%st(0)\n\tfstl %[m]")
X87OP(fsin, "fsin")
X87OP(fcos, "fcos")
X87OP(fsincos, "fsincos")
X87OP(fptan, "fptan")
X87OP(fpatan, "fpatan")
X87OP(f2xm1, "f2xm1")
X87OP(fyl2x, "fyl2x")
X87OP(fyl2xp1, "fyl2xp1")

typedef void (*x87_fn)(struct fpu_image *, const f80 *, const f80 *, uint16_t, uint64_t *);
struct x87op {
    const char *name;
    x87_fn fn;
    uint16_t swmask; /* FSW bits hashed in the portable sweep */
};
/* FSW bits QEMU 7.2 TCG does not set as the SDM says: DE (never set) and C1 (not set on
 * rounding up); C0, C2 and C3 are undefined after arithmetic (QEMU sets C2 in FSQRT of a
 * negative zero); FPREM1's quotient bits differ when the quotient rounds up. */
#define M_ARITH 0xB8FD
#define M_CMP 0xFDFD
#define M_REM 0xBCFD
#define XO(n) {#n, n##_, 0xFFFF}
#define XP(n, m) {#n, n##_, m}

/* Operands: zeros, ones, halfway and inexact values, extremes, denormals, a pseudo-denormal,
 * infinities, NaNs, large integers, tiny and huge values for FSCALE and FPREM. */
static const f80 xvals[] = {
    {0, 0},
    {0, 0x8000},
    {0x8000000000000000ull, 0x3FFF},
    {0x8000000000000000ull, 0xBFFF},
    {0xC000000000000000ull, 0x3FFF},
    {0xC90FDAA22168C235ull, 0x4000},
    {0xAAAAAAAAAAAAAAABull, 0x3FFD},
    {0xFFFFFFFFFFFFFFFFull, 0x7FFE},
    {0x8000000000000000ull, 0x0001},
    {0x0000000000000001ull, 0x0000},
    {0x8000000000000000ull, 0x7FFF},
    {0x8000000000000000ull, 0xFFFF},
    {0xC000000000000000ull, 0x7FFF},
    {0xA000000000000000ull, 0x7FFF},
    {0x8000000000000000ull, 0x403E},
    {0xFFFFFFFFFFFFFC00ull, 0xC03D},
    {0x9876543210FEDCBAull, 0x4005},
    {0x8000000000000001ull, 0x3FFF},
    {0xC000000000000000ull, 0x4000},
    {0x8000000000000000ull, 0x3F00},
};
#define NX (sizeof xvals / sizeof xvals[0])

static const __attribute__((unused)) uint16_t cws[] = {0x037F, 0x027F, 0x007F, 0x077F, 0x0B7F, 0x0F7F};

static uint64_t mix(uint64_t h, uint64_t v) {
    h = (h ^ v) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

/* The state an operation leaves, without FIP/FCS/FOP/FDP/FDS. */
static uint64_t image_hash(uint64_t h, const struct fpu_image *img, uint64_t m) {
    h = mix(h, img->cw & 0xFFFF);
    h = mix(h, img->sw & 0xFFFF);
    h = mix(h, img->tw & 0xFFFF);
    for (int k = 0; k < 8; ++k) {
        if (((img->tw >> (2 * (((img->sw >> 11) + k) & 7))) & 3) == 3) continue; /* empty */
        h = mix(mix(h, img->st[k].mant), img->st[k].se);
    }
    return mix(h, m);
}

/* The sweep compared with QEMU: every exception masked, 64-bit precision (QEMU 7.2 rounds
 * FLD m64, FPREM and FRNDINT to a reduced precision control, where the SDM applies it to
 * arithmetic only), no stack faults (QEMU does not model them); those are in the full sweep
 * of test_x87_sdm.c. */
static const __attribute__((unused)) struct x87op portable_ops[] = {
    XP(fadd, M_ARITH), XP(fsub, M_ARITH), XP(fsubr, M_ARITH), XP(fmul, M_ARITH),
    XP(fdiv, M_ARITH), XP(fdivr, M_ARITH), XP(faddp, M_ARITH), XP(fsubp, M_ARITH),
    XP(fdivp, M_ARITH), XP(fmulp_st2, M_ARITH), XP(fsqrt, M_ARITH), XP(frndint, M_ARITH),
    XP(fscale, M_ARITH), XP(fxtract, M_ARITH), XP(fprem, M_REM), XP(fprem1, M_REM),
    XP(fcom, M_CMP), XP(fcompp, M_CMP), XP(fucom, M_CMP), XP(fucompp, M_CMP),
    XP(fcomi, M_ARITH), XP(fucomip, M_ARITH), XP(ftst, M_CMP), XP(fxam, M_CMP),
    XP(fchs, M_ARITH), XP(fabs, M_ARITH), XP(fxch, M_ARITH), XP(fld_st1, M_ARITH),
    XP(fstp_st1, M_ARITH), XP(ffree, M_ARITH), XP(fdecstp, M_ARITH), XP(fcmovb, M_ARITH),
    XP(fcmovnbe, M_ARITH), XP(fld1, M_ARITH), XP(fldpi, M_ARITH), XP(fldl2e, M_ARITH),
    XP(fldl2t, M_ARITH), XP(fldlg2, M_ARITH), XP(fldln2, M_ARITH), XP(fldz, M_ARITH),
    XP(fsts, M_ARITH), XP(fstl, M_ARITH), XP(fstpt, M_ARITH), XP(fists, M_ARITH),
    XP(fistl, M_ARITH), XP(fistpll, M_ARITH), XP(fisttpl, M_ARITH), XP(fisttpll, M_ARITH),
    XP(flds, M_ARITH), XP(fldl, M_ARITH), XP(fadds, M_ARITH), XP(fsubrl, M_ARITH),
    XP(fiaddl, M_ARITH), XP(fidivs, M_ARITH), XP(fild, M_ARITH), XP(ficom, M_CMP),
};
static const __attribute__((unused)) uint16_t portable_cws[] = {0x037F, 0x077F, 0x0B7F, 0x0F7F};

/* Every operation with the full status word, and the stack faults. */
static const __attribute__((unused)) struct x87op all_ops[] = {
    XO(fadd), XO(fsub), XO(fsubr), XO(fmul), XO(fdiv), XO(fdivr), XO(faddp), XO(fsubp),
    XO(fdivp), XO(fmulp_st2), XO(fsqrt), XO(frndint), XO(fscale), XO(fxtract), XO(fprem),
    XO(fprem1), XO(fcom), XO(fcompp), XO(fucom), XO(fucompp), XO(fcomi), XO(fucomip),
    XO(ftst), XO(fxam), XO(fchs), XO(fabs), XO(fxch), XO(fld_st1), XO(fstp_st1), XO(ffree),
    XO(fdecstp), XO(fcmovb), XO(fcmovnbe), XO(fld1), XO(fldpi), XO(fldl2e), XO(fldl2t),
    XO(fldlg2), XO(fldln2), XO(fldz), XO(fsts), XO(fstl), XO(fstpt), XO(fists), XO(fistl),
    XO(fistpll), XO(fisttpl), XO(fisttpll), XO(flds), XO(fldl), XO(fadds), XO(fsubrl),
    XO(fiaddl), XO(fidivs), XO(fild), XO(ficom), XO(overflow), XO(underflow),
    XO(underflow_st),
};

static int is_nan80(const f80 *v) { return (v->se & 0x7FFF) == 0x7FFF && (v->mant << 1); }

/* Each operation over every operand pair under each control word: one hash line each.
 * `portable`: the FSW bits of the op's mask, and no pair of NaNs (QEMU 7.2 propagates the
 * wrong one in FSCALE). */
static void sweep(const struct x87op *ops, unsigned nops, const uint16_t *modes, unsigned nmodes,
                  int portable) {
    static struct fpu_image img;
    for (unsigned c = 0; c < nmodes; ++c)
        for (unsigned o = 0; o < nops; ++o) {
            uint64_t h = 0xcbf29ce484222325ull;
            for (unsigned i = 0; i < NX; ++i)
                for (unsigned j = 0; j < NX; ++j) {
                    if (portable && is_nan80(&xvals[i]) && is_nan80(&xvals[j])) continue;
                    uint64_t m = (xvals[i].mant >> 32 | xvals[i].mant << 32) ^ xvals[j].se;
                    ops[o].fn(&img, &xvals[i], &xvals[j], modes[c], &m);
                    img.sw &= portable ? ops[o].swmask : 0xFFFF;
                    h = image_hash(h, &img, m);
                }
            printf("%-12s fcw %04x hash %016lx\n", ops[o].name, modes[c], h);
        }
}

#endif
