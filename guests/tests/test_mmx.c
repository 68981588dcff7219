/* Conformance: MMX (SDM vol. 1 ch. 9, vol. 3 ch. 12). Hand-checked cases for each
 * instruction family with reference values from the definitions, the x87 side of the
 * aliasing (TOP, tags, EMMS, FXSAVE/FXRSTOR), then a sweep of every MMX instruction over a
 * table of operands with one hash per instruction for the comparison with QEMU TCG. The
 * guest is built without MMX code generation: the instructions are written out in
 * assembly. What QEMU 7.2 TCG does otherwise than the SDM is in test_mmx_sdm.c. */
#include "sdk.h"

/* r = a OP b through mm0/mm1 (a use ends in a semicolon: the macro ends in a declaration). */
#define MBIN(insn)                                                    \
    static uint64_t insn##_(uint64_t a, uint64_t b) {                 \
        uint64_t r;                                                   \
        __asm__ volatile("movq %1, %%mm0\n\tmovq %2, %%mm1\n\t" #insn \
                         " %%mm1, %%mm0\n\t"                          \
                         "movq %%mm0, %0"                             \
                         : "=m"(r)                                    \
                         : "m"(a), "m"(b)                             \
                         : "memory");                                 \
        return r;                                                     \
    }                                                                 \
    static uint64_t insn##_(uint64_t, uint64_t)
/* r = a OP imm8 (shifts, b ignored). */
#define MIMM(insn, imm)                                                                   \
    static uint64_t insn##imm##_(uint64_t a, uint64_t b) {                                \
        uint64_t r;                                                                       \
        (void)b;                                                                          \
        __asm__ volatile("movq %1, %%mm0\n\t" #insn " $" #imm ", %%mm0\n\tmovq %%mm0, %0" \
                         : "=m"(r)                                                        \
                         : "m"(a)                                                         \
                         : "memory");                                                     \
        return r;                                                                         \
    }                                                                                     \
    static uint64_t insn##imm##_(uint64_t, uint64_t)
MBIN(paddb);
MBIN(paddw);
MBIN(paddd);
MBIN(paddq);
MBIN(psubb);
MBIN(psubw);
MBIN(psubd);
MBIN(psubq);
MBIN(paddsb);
MBIN(paddsw);
MBIN(psubsb);
MBIN(psubsw);
MBIN(paddusb);
MBIN(paddusw);
MBIN(psubusb);
MBIN(psubusw);
MBIN(pcmpeqb);
MBIN(pcmpeqw);
MBIN(pcmpeqd);
MBIN(pcmpgtb);
MBIN(pcmpgtw);
MBIN(pcmpgtd);
MBIN(pand);
MBIN(pandn);
MBIN(por);
MBIN(pxor);
MBIN(psllw);
MBIN(pslld);
MBIN(psllq);
MBIN(psrlw);
MBIN(psrld);
MBIN(psrlq);
MBIN(psraw);
MBIN(psrad);
MBIN(packsswb);
MBIN(packssdw);
MBIN(packuswb);
MBIN(punpcklbw);
MBIN(punpcklwd);
MBIN(punpckldq);
MBIN(punpckhbw);
MBIN(punpckhwd);
MBIN(punpckhdq);
MBIN(pmullw);
MBIN(pmulhw);
MBIN(pmaddwd);
MBIN(pmulhuw);
MBIN(pmuludq);
MBIN(pavgb);
MBIN(pavgw);
MBIN(pminub);
MBIN(pmaxub);
MBIN(pminsw);
MBIN(pmaxsw);
MBIN(psadbw);
MIMM(psllw, 5);
MIMM(pslld, 31);
MIMM(psllq, 33);
MIMM(psrlw, 15);
MIMM(psrld, 32);
MIMM(psrlq, 1);
MIMM(psraw, 3);
MIMM(psrad, 40);

/* r = PSHUFW of a (the source) by imm8 into mm0. */
static uint64_t pshufw0x1b_(uint64_t a, uint64_t b) {
    uint64_t r;
    (void)b;
    __asm__ volatile("pshufw $0x1b, %1, %%mm0\n\tmovq %%mm0, %0" : "=m"(r) : "m"(a) : "memory");
    return r;
}
static uint64_t pshufw0xa5_(uint64_t a, uint64_t b) {
    uint64_t r;
    (void)b;
    __asm__ volatile("pshufw $0xa5, %1, %%mm0\n\tmovq %%mm0, %0" : "=m"(r) : "m"(a) : "memory");
    return r;
}
static uint64_t pextrw_(uint64_t a, uint64_t b) {
    uint64_t r;
    (void)b;
    __asm__ volatile("movq %1, %%mm1\n\tpextrw $2, %%mm1, %%eax\n\tmov %%rax, %0"
                     : "=m"(r)
                     : "m"(a)
                     : "memory", "rax");
    return r;
}
static uint64_t pinsrw_(uint64_t a, uint64_t b) {
    uint64_t r;
    __asm__ volatile(
        "movq %1, %%mm0\n\tmov %2, %%rax\n\tpinsrw $1, %%eax, %%mm0\n\t"
        "pinsrw $7, %2, %%mm0\n\tmovq %%mm0, %0"
        : "=m"(r)
        : "m"(a), "m"(b)
        : "memory", "rax");
    return r;
}
static uint64_t pmovmskb_(uint64_t a, uint64_t b) {
    uint64_t r;
    (void)b;
    __asm__ volatile(
        "movq %1, %%mm1\n\tmov $-1, %%rax\n\tpmovmskb %%mm1, %%eax\n\t"
        "mov %%rax, %0"
        : "=m"(r)
        : "m"(a)
        : "memory", "rax");
    return r;
}
static uint64_t movd_(uint64_t a, uint64_t b) { /* movd r32 <-> mm, movq r64 <-> mm */
    uint64_t r;
    __asm__ volatile(
        "mov %1, %%rax\n\tmovd %%eax, %%mm2\n\tmov %2, %%rax\n\tmovq %%rax, %%mm3\n\t"
        "paddb %%mm2, %%mm3\n\tmov $-1, %%rax\n\tmovd %%mm3, %%eax\n\t"
        "movq %%mm2, %%rdx\n\tadd %%rdx, %%rax\n\tmov %%rax, %0"
        : "=m"(r)
        : "m"(a), "m"(b)
        : "memory", "rax", "rdx");
    return r;
}
static uint64_t memops_(uint64_t a, uint64_t b) { /* memory sources and stores */
    static uint64_t m0, m1;
    m0 = b, m1 = 0x5555555555555555ull;
    __asm__ volatile(
        "movq %2, %%mm0\n\tpaddsw %0, %%mm0\n\tpunpcklbw %0, %%mm0\n\t"
        "movd %%mm0, %1\n\tmovntq %%mm0, %0"
        : "+m"(m0), "+m"(m1)
        : "m"(a)
        : "memory");
    return m0 ^ (m1 << 1);
}
static uint64_t maskmovq_(uint64_t a, uint64_t b) {
    static uint64_t m;
    m = 0x0123456789ABCDEFull;
    __asm__ volatile("movq %1, %%mm0\n\tmovq %2, %%mm1\n\tmaskmovq %%mm1, %%mm0" ::"D"(&m), "m"(a),
                     "m"(b)
                     : "memory");
    return m;
}
static uint64_t movq2dq_(uint64_t a, uint64_t b) { /* xmm <-> mm */
    static uint64_t r[2] __attribute__((aligned(16)));
    uint64_t q;
    __asm__ volatile(
        "movq %2, %%mm0\n\tpcmpeqb %%xmm0, %%xmm0\n\tmovq2dq %%mm0, %%xmm0\n\t"
        "movq %3, %%mm1\n\tmovq2dq %%mm1, %%xmm1\n\tpaddw %%xmm1, %%xmm0\n\t"
        "movdq2q %%xmm0, %%mm2\n\tmovdqa %%xmm0, %0\n\tmovq %%mm2, %1"
        : "=m"(r), "=m"(q)
        : "m"(a), "m"(b)
        : "memory");
    return r[0] ^ r[1] * 3 ^ q * 5;
}
/* Conversions: a as two int32 -> singles and doubles; a shifted into single-precision
 * bit patterns -> int32 (rounded and truncated); the doubles -> int32; under the MXCSR
 * rounding `b & 3`, folded with the MXCSR after. */
static uint64_t cvt_(uint64_t a, uint64_t b) {
    static uint64_t ps[2] __attribute__((aligned(16))), pd[2] __attribute__((aligned(16)));
    static const uint32_t plain = 0x1F80;
    uint64_t i1, i2;
    uint32_t csr = 0x1F80 | (uint32_t)(b & 3) << 13, after;
    __asm__ volatile(
        "ldmxcsr %[csr]\n\tmovq %[a], %%mm0\n\tpcmpeqb %%xmm0, %%xmm0\n\t"
        "cvtpi2ps %%mm0, %%xmm0\n\tmovdqa %%xmm0, %[ps]\n\t"
        "cvtpi2pd %%mm0, %%xmm1\n\tmovdqa %%xmm1, %[pd]\n\t"
        "movq %[a], %%xmm2\n\tpsllq $23, %%xmm2\n\tcvtps2pi %%xmm2, %%mm1\n\t"
        "cvttps2pi %%xmm2, %%mm2\n\tpaddd %%mm2, %%mm1\n\tmovq %%mm1, %[i1]\n\t"
        "cvtpd2pi %%xmm1, %%mm3\n\tcvttpd2pi %%xmm0, %%mm4\n\t"
        "psubd %%mm4, %%mm3\n\tmovq %%mm3, %[i2]\n\t"
        "stmxcsr %[after]\n\tldmxcsr %[plain]"
        : [ps] "=m"(ps), [pd] "=m"(pd), [i1] "=m"(i1), [i2] "=m"(i2), [after] "=m"(after)
        : [a] "m"(a), [csr] "m"(csr), [plain] "m"(plain)
        : "memory");
    return ps[0] ^ ps[1] * 3 ^ pd[0] * 5 ^ pd[1] * 7 ^ i1 * 11 ^ i2 * 13 ^ after;
}

typedef uint64_t (*mop)(uint64_t, uint64_t);
struct entry {
    const char* name;
    mop fn;
};
#define E(f) \
    { #f, f##_ }
static const struct entry kOps[] = {
    E(paddb),     E(paddw),     E(paddd),     E(paddq),      E(psubb),      E(psubw),
    E(psubd),     E(psubq),     E(paddsb),    E(paddsw),     E(psubsb),     E(psubsw),
    E(paddusb),   E(paddusw),   E(psubusb),   E(psubusw),    E(pcmpeqb),    E(pcmpeqw),
    E(pcmpeqd),   E(pcmpgtb),   E(pcmpgtw),   E(pcmpgtd),    E(pand),       E(pandn),
    E(por),       E(pxor),      E(psllw),     E(pslld),      E(psllq),      E(psrlw),
    E(psrld),     E(psrlq),     E(psraw),     E(psrad),      E(packsswb),   E(packssdw),
    E(packuswb),  E(punpcklbw), E(punpcklwd), E(punpckldq),  E(punpckhbw),  E(punpckhwd),
    E(punpckhdq), E(pmullw),    E(pmulhw),    E(pmaddwd),    E(pmulhuw),    E(pmuludq),
    E(pavgb),     E(pavgw),     E(pminub),    E(pmaxub),     E(pminsw),     E(pmaxsw),
    E(psadbw),    E(psllw5),    E(pslld31),   E(psllq33),    E(psrlw15),    E(psrld32),
    E(psrlq1),    E(psraw3),    E(psrad40),   E(pshufw0x1b), E(pshufw0xa5), E(pextrw),
    E(pinsrw),    E(pmovmskb),  E(movd),      E(memops),     E(maskmovq),   E(movq2dq),
    E(cvt),
};

static const uint64_t kVals[] = {0,
                                 1,
                                 0xFFFFFFFFFFFFFFFFull,
                                 0x7F7F7F7F7F7F7F7Full,
                                 0x8080808080808080ull,
                                 0x7FFF80007FFF8000ull,
                                 0x800000007FFFFFFFull,
                                 0x0001FFFF00FF0100ull,
                                 0x8000000000000000ull,
                                 0x000000000000000Full,
                                 0x0000000000000010ull,
                                 0x0000000000000021ull,
                                 0x0123456789ABCDEFull,
                                 0xFEDCBA9876543210ull,
                                 0x00000001FFFFFFFEull,
                                 0x4B0000014AFFFFFFull,
                                 0xDEADBEEFCAFEBABEull};
#define NVALS (sizeof kVals / sizeof kVals[0])

/* FNSTENV image (32-bit protected-mode layout). */
struct env {
    uint32_t fcw, fsw, ftw, fip, fcs, fdp, fds;
};
static void fnstenv(struct env* e) {
    __asm__ volatile("fnstenv %0\n\tfldenv %0" : "=m"(*e));
}

static uint8_t fx[512] __attribute__((aligned(16)));

static void paddb_now(void* p) {
    (void)p;
    __asm__ volatile("paddb %%mm1, %%mm0" ::: "memory");
}

int main(void) {
    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    report((d >> 23) & 1, "CPUID.1:EDX.MMX");
    write_cr0((read_cr0() & ~0xCull) | 0x22); /* EM, TS off; MP, NE on */
    write_cr4(read_cr4() | 0x600);            /* OSFXSR | OSXMMEXCPT */

    /* Hand-checked lanes. */
    report(paddb_(0x01FF7F80000000FFull, 0x0101010100000001ull) == 0x0200808100000000ull,
           "paddb wraps per byte");
    report(paddsb_(0x7F80017F00000000ull, 0x01FF0280000000FFull) == 0x7F8003FF000000FFull,
           "paddsb saturates at 0x7F and 0x80");
    report(psubusw_(0x0005FFFF00010000ull, 0x0006000100010001ull) == 0x0000FFFE00000000ull,
           "psubusw saturates at 0");
    report(paddusb_(0xF0F0000000000000ull, 0x2010000000000000ull) == 0xFFFF000000000000ull,
           "paddusb saturates at 0xFF");
    report(pcmpgtw_(0x7FFF800000010000ull, 0x8000000000010001ull) == 0xFFFF000000000000ull,
           "pcmpgtw is signed");
    report(packuswb_(0x000000FF012CFFFFull, 0x00020001FED40080ull) == 0x0201008000FFFF00ull,
           "packuswb: unsigned saturation of signed words");
    report(packsswb_(0x0080FF7F007FFF80ull, 0) == 0x000000007F807F80ull,
           "packsswb: signed saturation");
    report(packssdw_(0x8000000000010000ull, 0x7FFFFFFF00000005ull) == 0x7FFF000580007FFFull,
           "packssdw: signed saturation");
    report(punpcklbw_(0x0000000044332211ull, 0x00000000DDCCBBAAull) == 0xDD44CC33BB22AA11ull,
           "punpcklbw interleaves the low bytes");
    report(punpckhdq_(0x1111111122222222ull, 0x3333333344444444ull) == 0x3333333311111111ull,
           "punpckhdq interleaves the high dwords");
    report(pmaddwd_(0x0000000080008000ull, 0x0000000080008000ull) == 0x0000000080000000ull,
           "pmaddwd: 0x8000 * 0x8000 twice wraps");
    report(pmulhw_(0x7FFF800000020000ull, 0x7FFF800000030000ull) == 0x3FFF400000000000ull,
           "pmulhw: high words of signed products");
    report(pmuludq_(0xFFFFFFFFFFFFFFFFull, 0x00000000FFFFFFFFull) == 0xFFFFFFFE00000001ull,
           "pmuludq: low dwords into a quadword");
    report(psraw_(0x8000400000000000ull, 20) == 0xFFFF000000000000ull,
           "psraw by more than 15 fills with the sign");
    report(psrlq_(0x8000000000000000ull, 64) == 0 && psllq_(1, 63) == 0x8000000000000000ull,
           "psrlq by 64 clears, psllq by 63");
    report(psadbw_(0x00FF00FF00FF00FFull, 0xFF00FF00FF00FF00ull) == 8 * 255,
           "psadbw sums the absolute byte differences");
    report(pshufw0x1b_(0x4444333322221111ull, 0) == 0x1111222233334444ull,
           "pshufw reverses the words");
    report(
        pextrw_(0x4444333322221111ull, 0) == 0x3333 && pmovmskb_(0x80FF007F01800000ull, 0) == 0xC4,
        "pextrw, pmovmskb zero-extend into the GPR");
    report(maskmovq_(0x1111111111111111ull, 0x80000000000000FFull) == 0x1123456789ABCD11ull,
           "maskmovq stores the selected bytes");

    /* The x87 side: TOP 0, every tag valid, exponent bits of a written register all
     * ones; a read leaves the exponent alone; EMMS empties every tag. */
    struct env e;
    static uint64_t v = 0x1122334455667788ull;
    __asm__ volatile("fninit\n\tfld1\n\tfld1\n\tmovq %0, %%mm3" ::"m"(v) : "memory");
    fnstenv(&e);
    /* FNSTENV computes each full tag from a non-empty register's contents (as the
     * silicon does): none is empty, MM3 (exponent all ones) is special, the 1.0s valid. */
    int none_empty = 1;
    for (int k = 0; k < 8; ++k) none_empty &= ((e.ftw >> (2 * k)) & 3) != 3;
    report(((e.fsw >> 11) & 7) == 0 && none_empty && ((e.ftw >> 6) & 3) == 2 &&
               ((e.ftw >> 12) & 15) == 0,
           "MMX write: TOP 0, no register empty");
    __asm__ volatile("fxsave64 %0" : "=m"(fx));
    uint64_t m3, se6;
    memcpy(&m3, fx + 32 + 16 * 3, 8);
    se6 = fx[40 + 16 * 6] | fx[41 + 16 * 6] << 8;
    report(m3 == v, "MMX write: MM3 is R3's significand (TOP 0: FXSAVE slot 3)");
    report(se6 == 0x3FFF, "the x87 values in R6 and R7 stay");
    __asm__ volatile("emms" ::: "memory");
    fnstenv(&e);
    report((e.ftw & 0xFFFF) == 0xFFFF && ((e.fsw >> 11) & 7) == 0, "EMMS: every tag empty");
    /* FXRSTOR of a changed image: MM3 reads it back. */
    v = 0xCAFEF00DDEADBEEFull;
    memcpy(fx + 32 + 16 * 3, &v, 8);
    uint64_t back;
    __asm__ volatile("fxrstor64 %1\n\tmovq %%mm3, %0" : "=m"(back) : "m"(fx) : "memory");
    report(back == v, "FXRSTOR loads MM3");
    __asm__ volatile("emms" ::: "memory");

    /* MMX forms need no CR4.OSFXSR (the forms with an XMM operand: test_mmx_sdm). */
    write_cr4(read_cr4() & ~0x200ull);
    report(sdk_catch(paddb_now, 0) == -1, "MMX without CR4.OSFXSR runs");
    write_cr4(read_cr4() | 0x200);

    /* The sweep: one hash per instruction. */
    for (unsigned k = 0; k < sizeof kOps / sizeof kOps[0]; ++k) {
        uint64_t h = 0xcbf29ce484222325ull;
        for (unsigned i = 0; i < NVALS; ++i)
            for (unsigned j = 0; j < NVALS; ++j) {
                h ^= kOps[k].fn(kVals[i], kVals[j]);
                h *= 0x100000001b3ull;
            }
        printf("%s %lx\n", kOps[k].name, (unsigned long)h);
    }
    __asm__ volatile("emms" ::: "memory");
    report_summary();
}
