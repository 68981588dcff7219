/* Conformance: SSE/SSE2 integer and move instructions, MXCSR, FXSAVE/FXRSTOR, and the
 * control bits that gate them (CR4.OSFXSR: #UD, CR0.TS: #NM). The guest itself is built
 * without SSE code generation; the instructions are written out in assembly. LDMXCSR's
 * #GP on reserved bits is checked in tests/cpu: QEMU 7.2 TCG accepts them. */
#include "sdk.h"

typedef struct {
    uint64_t lo, hi;
} __attribute__((aligned(16))) v128;


/* r = a OP b through xmm0/xmm1. */
#define BINOP(insn, r, a, b)                                                               \
    __asm__ volatile("movdqa %1, %%xmm0\n\tmovdqa %2, %%xmm1\n\t" insn " %%xmm1, %%xmm0\n\t" \
                     "movdqa %%xmm0, %0"                                                   \
                     : "=m"(r)                                                             \
                     : "m"(a), "m"(b)                                                      \
                     : "memory")
#define UNOP_IMM(insn, imm, r, a)                                                          \
    __asm__ volatile("movdqa %1, %%xmm0\n\t" insn " $" #imm ", %%xmm0\n\tmovdqa %%xmm0, %0" \
                     : "=m"(r)                                                             \
                     : "m"(a)                                                              \
                     : "memory")

static int eq(v128 x, uint64_t lo, uint64_t hi) { return x.lo == lo && x.hi == hi; }

static void pxor_now(void *p) {
    (void)p;
    __asm__ volatile("pxor %%xmm0, %%xmm0" ::: "memory");
}
static void movdqa_misaligned(void *p) {
    __asm__ volatile("movdqa (%0), %%xmm0" ::"r"((uint8_t *)p + 4) : "memory");
}
static uint8_t fx_area[512 + 16] __attribute__((aligned(16)));
static void fxsave_misaligned(void *p) {
    (void)p;
    __asm__ volatile("fxsave64 (%0)" ::"r"(fx_area + 8) : "memory");
}

int main(void) {
    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    report((d & (1u << 25)) && (d & (1u << 26)) && (d & (1u << 24)), "CPUID: SSE, SSE2, FXSR");

    write_cr4(read_cr4() & ~0x600ull);
    report(sdk_catch(pxor_now, 0) == 6, "SSE without CR4.OSFXSR is #UD");
    write_cr4(read_cr4() | 0x600); /* OSFXSR | OSXMMEXCPT */
    write_cr0((read_cr0() & ~0x4ull) | 0x2); /* EM off, MP on */
    report(sdk_catch(pxor_now, 0) == -1, "SSE with CR4.OSFXSR runs");

    static v128 x = {0x0102030405060708ull, 0xF0E0D0C0B0A09080ull};
    static v128 y = {0x1111111111111111ull, 0x8080808080808080ull};
    static v128 r;
    BINOP("paddb", r, x, y);
    report(eq(r, 0x1213141516171819ull, 0x7060504030201000ull), "paddb wraps per byte");
    BINOP("paddw", r, x, y);
    report(eq(r, 0x1213141516171819ull, 0x7160514031201100ull), "paddw");
    BINOP("paddd", r, x, y);
    report(eq(r, 0x1213141516171819ull, 0x7161514031211100ull), "paddd");
    BINOP("paddq", r, x, y);
    report(eq(r, 0x1213141516171819ull, 0x7161514131211100ull), "paddq carries across dwords");
    BINOP("psubd", r, y, x);
    report(eq(r, 0x100F0E0D0C0B0A09ull, 0x8F9FAFC0CFDFF000ull), "psubd");
    BINOP("pxor", r, x, x);
    report(eq(r, 0, 0), "pxor of a register with itself is zero");
    BINOP("pand", r, x, y);
    report(eq(r, x.lo & y.lo, x.hi & y.hi), "pand");
    BINOP("por", r, x, y);
    report(eq(r, x.lo | y.lo, x.hi | y.hi), "por");
    BINOP("pandn", r, x, y);
    report(eq(r, ~x.lo & y.lo, ~x.hi & y.hi), "pandn");

    /* The strlen idiom: compare bytes with zero, collect the mask. */
    static const char text[16] __attribute__((aligned(16))) = "sixteen bytes!";
    uint32_t mask;
    __asm__ volatile(
        "pxor %%xmm1, %%xmm1\n\t"
        "movdqa %1, %%xmm0\n\t"
        "pcmpeqb %%xmm1, %%xmm0\n\t"
        "pmovmskb %%xmm0, %0"
        : "=r"(mask)
        : "m"(text)
        : "memory");
    report(mask == 0xC000, "pcmpeqb + pmovmskb find the terminating zeros");

    __asm__ volatile("pshufd $0x1B, %1, %%xmm0\n\tmovdqa %%xmm0, %0" /* reverse dwords */
                     : "=m"(r)
                     : "m"(x)
                     : "memory");
    report(eq(r, 0xB0A09080F0E0D0C0ull, 0x0506070801020304ull), "pshufd");
    UNOP_IMM("psllq", 8, r, x);
    report(eq(r, 0x0203040506070800ull, 0xE0D0C0B0A0908000ull), "psllq by 8");
    UNOP_IMM("psrlq", 60, r, x);
    report(eq(r, 0, 0xF), "psrlq by 60");
    UNOP_IMM("pslldq", 3, r, x);
    report(eq(r, 0x0405060708000000ull, 0xC0B0A09080010203ull), "pslldq by 3 bytes");
    UNOP_IMM("psrldq", 9, r, x);
    report(eq(r, 0x00F0E0D0C0B0A090ull, 0), "psrldq by 9 bytes");
    UNOP_IMM("psraw", 4, r, y);
    report(eq(r, 0x0111011101110111ull, 0xF808F808F808F808ull), "psraw keeps the sign");
    BINOP("punpcklbw", r, x, y);
    report(eq(r, 0x1105110611071108ull, 0x1101110211031104ull), "punpcklbw");
    BINOP("pmuludq", r, x, y);
    report(r.lo == 0x05060708ull * 0x11111111ull, "pmuludq");
    BINOP("pminub", r, x, y);
    report(r.hi == 0x8080808080808080ull && r.lo == 0x0102030405060708ull, "pminub");

    uint64_t g = 0x123456789ABCDEF0ull, out32, out64;
    __asm__ volatile(
        "movq %2, %%xmm2\n\t"
        "movd %%xmm2, %k0\n\t"
        "movq %%xmm2, %1"
        : "=r"(out32), "=r"(out64)
        : "r"(g)
        : "memory");
    report(out32 == 0x9ABCDEF0 && out64 == g, "movq/movd between GPRs and XMM");

    static uint8_t unaligned[40];
    __asm__ volatile("movdqa %1, %%xmm3\n\tmovdqu %%xmm3, %0" : "=m"(*(v128 *)(unaligned + 3)) : "m"(x) : "memory");
    report(memcmp(unaligned + 3, &x, 16) == 0, "movdqu stores to an unaligned address");
    report(sdk_catch(movdqa_misaligned, fx_area) == 13, "movdqa from a misaligned address is #GP");

    uint32_t m = 0;
    __asm__ volatile("stmxcsr %0" : "=m"(m));
    report(m == 0x1F80, "MXCSR has its reset value");

    /* FXSAVE/FXRSTOR round trip of XMM registers. */
    __asm__ volatile("movdqa %0, %%xmm5" ::"m"(x) : "memory");
    __asm__ volatile("fxsave64 %0" : "=m"(fx_area)::"memory");
    report(*(uint32_t *)(fx_area + 24) == 0x1F80, "fxsave stores MXCSR");
    report(memcmp(fx_area + 160 + 5 * 16, &x, 16) == 0, "fxsave stores XMM5");
    __asm__ volatile("pxor %%xmm5, %%xmm5" ::: "memory");
    __asm__ volatile("fxrstor64 %0" ::"m"(fx_area));
    __asm__ volatile("movdqa %%xmm5, %0" : "=m"(r));
    report(eq(r, x.lo, x.hi), "fxrstor restores XMM5");
    report(sdk_catch(fxsave_misaligned, 0) == 13, "fxsave to a misaligned area is #GP");

    write_cr0(read_cr0() | 0x8); /* CR0.TS */
    report(sdk_catch(pxor_now, 0) == 7, "SSE with CR0.TS is #NM");
    __asm__ volatile("clts");
    report(sdk_catch(pxor_now, 0) == -1, "clts allows SSE again");
    report_summary();
}
