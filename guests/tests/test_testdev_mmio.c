/* Conformance: instruction emulation against MMIO. pc-testdev's window at 0xff000000
 * (run with --device pc-testdev; QEMU -device pc-testdev) behaves like RAM, so every
 * instruction form that touches memory must give the same registers, flags and memory
 * whether its operands are in RAM or in the window: MOV at every width, MOVZX/MOVSX, ALU
 * and unary operations, shifts and bit tests, MUL/DIV, XCHG/XADD/CMPXCHG (locked too),
 * SETcc/CMOVcc, PUSH/POP of memory, the string instructions with and without REP and
 * backwards, and SSE moves. Each form runs four times: destination and source in RAM
 * (the reference), either in the window, and both; the operands sit 8 bytes before a
 * page boundary so most forms also cross it. */
#include "sdk.h"

#define WINDOW 0xFF000000ull

/* Registers in and out of a form (RAX, RDX, RCX; RDI/RSI as offsets), its flags, and
 * the exception it raised (-1: none). */
struct state {
    uint64_t a, d, c, di, si, flags;
    int vector;
};

typedef void (*form_fn)(uint8_t *dst, uint8_t *src, struct state *s);

#define FORM(fn, text)                                                                        \
    static void fn(uint8_t *dst, uint8_t *src, struct state *s) {                            \
        uint64_t a = s->a, d = s->d, c = s->c, fl;                                            \
        uint8_t *di = dst, *si = src;                                                         \
        __asm__ volatile(text "\n\tpushfq\n\tpopq %[fl]\n\tcld"                              \
                         : "+a"(a), "+d"(d), "+c"(c), "+D"(di), "+S"(si), [fl] "=r"(fl)      \
                         :                                                                    \
                         : "rbx", "memory", "cc");                                            \
        s->a = a, s->d = d, s->c = c, s->di = (uint64_t)(di - dst), s->si = (uint64_t)(si - src); \
        s->flags = fl & (FLAGS_ARITH | FLAG_DF);                                              \
    }

/* MOV */
FORM(mov_load8, "movb 1(%%rsi), %%al")
FORM(mov_load16, "movw 7(%%rsi), %%ax")
FORM(mov_load32, "movl 6(%%rsi), %%eax")
FORM(mov_load64, "movq 4(%%rsi), %%rax")
FORM(mov_load32_zx, "movl (%%rsi), %%eax")
FORM(mov_store8, "movb %%al, 3(%%rdi)")
FORM(mov_store16, "movw %%ax, 7(%%rdi)")
FORM(mov_store32, "movl %%eax, 6(%%rdi)")
FORM(mov_store64, "movq %%rax, 5(%%rdi)")
FORM(mov_imm8, "movb $0x5a, (%%rdi)")
FORM(mov_imm16, "movw $0x1234, 7(%%rdi)")
FORM(mov_imm32, "movl $0xdeadbeef, 6(%%rdi)")
FORM(mov_imm64, "movq $-2, 3(%%rdi)")
FORM(mov_high8, "movb 9(%%rsi), %%dh; movb %%ah, 2(%%rdi)")
/* MOVZX / MOVSX / MOVSXD */
FORM(movzx8, "movzbl 9(%%rsi), %%eax")
FORM(movzx16, "movzwq 7(%%rsi), %%rax")
FORM(movsx8, "movsbq 3(%%rsi), %%rax")
FORM(movsx16, "movswl 7(%%rsi), %%eax")
FORM(movsxd, "movslq 6(%%rsi), %%rax")
FORM(movsx8_16, "movsbw 2(%%rsi), %%ax")
/* ALU, memory destination */
FORM(add_m8, "addb %%al, 1(%%rdi)")
FORM(add_m16, "addw %%dx, 7(%%rdi)")
FORM(add_m32, "addl %%eax, 6(%%rdi)")
FORM(add_m64, "addq %%rdx, 4(%%rdi)")
FORM(or_m64, "orq %%rax, (%%rdi)")
FORM(and_m32, "andl %%edx, 2(%%rdi)")
FORM(xor_m16, "xorw %%ax, 7(%%rdi)")
FORM(sub_m64, "subq %%rax, 5(%%rdi)")
FORM(adc_m32, "stc; adcl %%eax, 3(%%rdi)")
FORM(sbb_m64, "stc; sbbq %%rdx, (%%rdi)")
FORM(cmp_m64, "cmpq %%rax, 4(%%rdi)")
FORM(add_imm32, "addl $0x7fffffff, 6(%%rdi)")
FORM(sub_imm8, "subb $3, (%%rdi)")
FORM(and_imm64, "andq $-16, 2(%%rdi)")
FORM(or_imm16, "orw $0x8000, 7(%%rdi)")
FORM(cmp_imm32, "cmpl $5, 1(%%rdi)")
FORM(xor_imm8, "xorb $0xff, 8(%%rdi)")
FORM(add_simm8_64, "addq $1, 4(%%rdi)")
/* ALU, memory source */
FORM(add_r64, "addq 4(%%rsi), %%rax")
FORM(sub_r32, "subl 6(%%rsi), %%edx")
FORM(and_r8, "andb 7(%%rsi), %%al")
FORM(cmp_r16, "cmpw 7(%%rsi), %%ax")
FORM(test_m32, "testl %%eax, 6(%%rsi)")
FORM(test_imm8, "testb $0x80, 3(%%rsi)")
FORM(imul_r64, "imulq 4(%%rsi), %%rax")
FORM(imul_imm32, "imull $-7, 2(%%rsi), %%edx")
FORM(mul_m64, "mulq 4(%%rsi)")
FORM(div_m32, "orb $1, 6(%%rsi); xorl %%edx, %%edx; divl 6(%%rsi)")
FORM(idiv_m16, "orb $1, 7(%%rsi); cwtd; idivw 7(%%rsi)")
/* Unary */
FORM(inc_m32, "incl 6(%%rdi)")
FORM(dec_m64, "decq 4(%%rdi)")
FORM(neg_m16, "negw 7(%%rdi)")
FORM(not_m64, "notq 5(%%rdi)")
FORM(inc_m8, "incb (%%rdi)")
/* Shifts and rotates */
FORM(shl1_m64, "shlq 4(%%rdi)")
FORM(sar_imm_m32, "sarl $3, 6(%%rdi)")
FORM(rol_cl_m16, "rolw %%cl, 7(%%rdi)")
FORM(shr_cl_m8, "shrb %%cl, (%%rdi)")
FORM(rcr_imm_m64, "stc; rcrq $5, 2(%%rdi)")
FORM(shld_m64, "shldq $7, %%rax, 4(%%rdi)")
FORM(shrd_cl_m32, "shrdl %%cl, %%edx, 6(%%rdi)")
/* Bit tests */
FORM(bt_imm_m32, "btl $3, 6(%%rsi)")
FORM(bts_imm_m64, "btsq $40, 4(%%rdi)")
FORM(btr_imm_m16, "btrw $9, 7(%%rdi)")
FORM(btc_imm_m32, "btcl $31, 2(%%rdi)")
FORM(bt_reg_m64, "btq %%rcx, (%%rsi)")
FORM(bts_reg_m32, "btsl %%ecx, 1(%%rdi)")
/* Exchange and compare-exchange */
FORM(xchg_m64, "xchgq %%rax, 4(%%rdi)")
FORM(xchg_m8, "xchgb %%dl, 1(%%rdi)")
FORM(lock_xadd_m32, "lock xaddl %%eax, 8(%%rdi)")
FORM(xadd_m16, "xaddw %%dx, 7(%%rdi)")
FORM(cmpxchg_ok, "movq (%%rdi), %%rax; lock cmpxchgq %%rdx, (%%rdi)")
FORM(cmpxchg_fail, "lock cmpxchgl %%edx, 8(%%rdi)")
FORM(cmpxchg8b_ok,
     "movl (%%rdi), %%eax; movl 4(%%rdi), %%edx; movl $0x01020304, %%ebx; movl $0x0a0b0c0d, %%ecx;"
     "lock cmpxchg8b (%%rdi)")
FORM(cmpxchg8b_fail, "movl $0x01020304, %%ebx; lock cmpxchg8b 8(%%rdi)")
FORM(lock_or_m64, "lock orq %%rax, 8(%%rdi)")
FORM(lock_inc_m32, "lock incl 12(%%rdi)")
FORM(lock_bts_m64, "lock btsq $63, 8(%%rdi)")
FORM(lock_neg_m16, "lock negw 10(%%rdi)")
/* SETcc, CMOVcc */
FORM(setb_m8, "cmpq %%rax, %%rdx; setb 3(%%rdi)")
FORM(cmovb_m64, "cmpq %%rdx, %%rax; cmovbq 4(%%rsi), %%rax")
FORM(cmovae_m32, "cmpq %%rdx, %%rax; cmovael 6(%%rsi), %%edx")
/* PUSH / POP of memory */
FORM(push_m64, "pushq 4(%%rsi); popq %%rax")
FORM(pop_m64, "pushq %%rdx; popq 5(%%rdi)")
FORM(push_m16, "pushw 7(%%rsi); popw %%ax")
FORM(pop_m16, "pushw %%dx; popw 7(%%rdi)")
FORM(push_pop_mm, "pushq 4(%%rsi); popq 4(%%rdi)")
/* String instructions */
FORM(movsb1, "movsb")
FORM(movsw1, "addq $7, %%rdi; addq $7, %%rsi; movsw")
FORM(movsl1, "addq $6, %%rdi; addq $5, %%rsi; movsl")
FORM(movsq1, "addq $4, %%rdi; addq $4, %%rsi; movsq")
FORM(rep_movsb, "rep movsb")
FORM(rep_movsw, "addq $1, %%rdi; rep movsw")
FORM(rep_movsl, "rep movsl")
FORM(rep_movsq, "rep movsq")
FORM(rep_movsb_back, "std; addq $40, %%rdi; addq $40, %%rsi; rep movsb")
FORM(rep_movsq_back, "std; addq $80, %%rdi; addq $80, %%rsi; rep movsq")
FORM(rep_movsb_zero, "xorl %%ecx, %%ecx; rep movsb")
FORM(stosb1, "stosb")
FORM(rep_stosb, "rep stosb")
FORM(rep_stosw, "addq $3, %%rdi; rep stosw")
FORM(rep_stosq, "rep stosq")
FORM(rep_stosl_back, "std; addq $60, %%rdi; rep stosl")
FORM(lodsq1, "addq $4, %%rsi; lodsq")
FORM(rep_lodsb, "rep lodsb")
FORM(cmpsb1, "cmpsb")
FORM(repe_cmpsb,
     "movq (%%rsi), %%rax; movq %%rax, (%%rdi); movq 8(%%rsi), %%rax; movq %%rax, 8(%%rdi);"
     "repe cmpsb")
FORM(repe_cmpsq,
     "movq (%%rsi), %%rax; movq %%rax, (%%rdi); movq 8(%%rsi), %%rax; movq %%rax, 8(%%rdi);"
     "repe cmpsq")
FORM(repne_cmpsw, "repne cmpsw")
FORM(repne_scasb, "movb 13(%%rdi), %%al; repne scasb")
FORM(repe_scasq, "movq (%%rdi), %%rax; repe scasq")
FORM(scasl1, "scasl")
/* SSE moves (and one SSE2 operation with a memory operand) */
FORM(movdqu_ld_st, "movdqu 4(%%rsi), %%xmm0; movdqu %%xmm0, 3(%%rdi)")
FORM(movups_ld_st, "movups (%%rsi), %%xmm1; movups %%xmm1, 8(%%rdi)")
FORM(movdqa_ld_st, "movdqa 8(%%rsi), %%xmm0; movdqa %%xmm0, 8(%%rdi)")
FORM(movaps_ld_st, "movaps 8(%%rsi), %%xmm2; movaps %%xmm2, 24(%%rdi)")
FORM(movq_xmm, "movq 4(%%rsi), %%xmm0; movq %%xmm0, 5(%%rdi)")
FORM(movd_xmm, "movd 6(%%rsi), %%xmm0; movd %%xmm0, %%eax; movd %%xmm0, 1(%%rdi)")
FORM(movnti_m64, "movnti %%rax, 4(%%rdi)")
FORM(movntdq_m128, "movdqu 3(%%rsi), %%xmm0; movntdq %%xmm0, 8(%%rdi)")
FORM(paddb_m128, "movdqu (%%rdi), %%xmm0; paddb 8(%%rsi), %%xmm0; movdqu %%xmm0, (%%rdi)")
FORM(pcmpeqb_m128, "movdqu 1(%%rdi), %%xmm0; pcmpeqb 8(%%rsi), %%xmm0; pmovmskb %%xmm0, %%eax")

static const struct {
    const char *name;
    form_fn fn;
} forms[] = {
#define F(x) {#x, x}
    F(mov_load8), F(mov_load16), F(mov_load32), F(mov_load64), F(mov_load32_zx),
    F(mov_store8), F(mov_store16), F(mov_store32), F(mov_store64), F(mov_imm8),
    F(mov_imm16), F(mov_imm32), F(mov_imm64), F(mov_high8), F(movzx8),
    F(movzx16), F(movsx8), F(movsx16), F(movsxd), F(movsx8_16),
    F(add_m8), F(add_m16), F(add_m32), F(add_m64), F(or_m64),
    F(and_m32), F(xor_m16), F(sub_m64), F(adc_m32), F(sbb_m64),
    F(cmp_m64), F(add_imm32), F(sub_imm8), F(and_imm64), F(or_imm16),
    F(cmp_imm32), F(xor_imm8), F(add_simm8_64), F(add_r64), F(sub_r32),
    F(and_r8), F(cmp_r16), F(test_m32), F(test_imm8), F(imul_r64),
    F(imul_imm32), F(mul_m64), F(div_m32), F(idiv_m16), F(inc_m32),
    F(dec_m64), F(neg_m16), F(not_m64), F(inc_m8), F(shl1_m64),
    F(sar_imm_m32), F(rol_cl_m16), F(shr_cl_m8), F(rcr_imm_m64), F(shld_m64),
    F(shrd_cl_m32), F(bt_imm_m32), F(bts_imm_m64), F(btr_imm_m16), F(btc_imm_m32),
    F(bt_reg_m64), F(bts_reg_m32), F(xchg_m64), F(xchg_m8), F(lock_xadd_m32),
    F(xadd_m16), F(cmpxchg_ok), F(cmpxchg_fail), F(cmpxchg8b_ok), F(cmpxchg8b_fail),
    F(lock_or_m64), F(lock_inc_m32), F(lock_bts_m64), F(lock_neg_m16), F(setb_m8),
    F(cmovb_m64), F(cmovae_m32), F(push_m64), F(pop_m64), F(push_m16),
    F(pop_m16), F(push_pop_mm), F(movsb1), F(movsw1), F(movsl1),
    F(movsq1), F(rep_movsb), F(rep_movsw), F(rep_movsl), F(rep_movsq),
    F(rep_movsb_back), F(rep_movsq_back), F(rep_movsb_zero), F(stosb1), F(rep_stosb),
    F(rep_stosw), F(rep_stosq), F(rep_stosl_back), F(lodsq1), F(rep_lodsb),
    F(cmpsb1), F(repe_cmpsb), F(repe_cmpsq), F(repne_cmpsw), F(repne_scasb),
    F(repe_scasq), F(scasl1), F(movdqu_ld_st), F(movups_ld_st), F(movdqa_ld_st),
    F(movaps_ld_st), F(movq_xmm), F(movd_xmm), F(movnti_m64), F(movntdq_m128),
    F(paddb_m128), F(pcmpeqb_m128),
#undef F
};

/* Each operand area: 0x200 bytes from 0x100 before a page boundary; the operand pointer
 * is 8 bytes before that boundary. */
#define AREA 0x200
#define BEFORE 0x100
#define OPERAND (BEFORE - 8)

static uint8_t ram[4][0x2000] __attribute__((aligned(4096)));
static uint8_t ref_dst[AREA], ref_src[AREA];

static uint8_t *ram_area(int k) { return ram[k] + 0x1000 - BEFORE; }
static uint8_t *window_area(int k) { return (uint8_t *)(uintptr_t)(WINDOW + 0x1000 + 0x2000 * k - BEFORE); }

static void fill(volatile uint8_t *dst, volatile uint8_t *src) {
    for (int k = 0; k < AREA; ++k) {
        dst[k] = (uint8_t)(k * 7 + 1);
        src[k] = (uint8_t)((k * 13 + 5) ^ 0xA5);
    }
}

struct call {
    form_fn fn;
    uint8_t *dst, *src;
    struct state *s;
};
static void call_form(void *arg) {
    struct call *c = arg;
    c->fn(c->dst + OPERAND, c->src + OPERAND, c->s);
}

static struct state run(form_fn fn, uint8_t *dst, uint8_t *src) {
    struct state s = {0x1122334455667788ull, 0x80000000ffff0001ull, 21, 0, 0, 0, -1};
    fill(dst, src);
    struct call c = {fn, dst, src, &s};
    s.vector = sdk_catch(call_form, &c);
    __asm__ volatile("cld");
    return s;
}

static int same(const struct state *x, const struct state *y) {
    return x->a == y->a && x->d == y->d && x->c == y->c && x->di == y->di && x->si == y->si &&
           x->flags == y->flags && x->vector == y->vector;
}

int main(void) {
    write_cr4(read_cr4() | 0x600); /* OSFXSR | OSXMMEXCPT: SSE instructions allowed */
    /* The window is RAM-like: a quick look before the forms. */
    volatile uint64_t *w = (volatile uint64_t *)(uintptr_t)WINDOW;
    w[0] = 0x0123456789abcdefull;
    report(w[0] == 0x0123456789abcdefull, "the window keeps a 64-bit store");

    static const char *const where[3] = {"destination in the window", "source in the window",
                                         "both in the window"};
    for (unsigned k = 0; k < sizeof forms / sizeof forms[0]; ++k) {
        const struct state ref = run(forms[k].fn, ram_area(0), ram_area(1));
        memcpy(ref_dst, ram_area(0), AREA);
        memcpy(ref_src, ram_area(1), AREA);
        if (ref.vector >= 0) {
            printf("FAIL: %s raises vector %d on RAM\n", forms[k].name, ref.vector);
            report(0, forms[k].name);
            continue;
        }
        int ok = 1;
        for (int m = 0; m < 3; ++m) {
            uint8_t *dst = m == 1 ? ram_area(2) : window_area(0);
            uint8_t *src = m == 0 ? ram_area(3) : window_area(1);
            const struct state got = run(forms[k].fn, dst, src);
            if (!same(&ref, &got)) {
                printf("%s, %s: rax %lx/%lx rdx %lx/%lx rcx %lx/%lx flags %lx/%lx vector %d\n",
                       forms[k].name, where[m], ref.a, got.a, ref.d, got.d, ref.c, got.c,
                       ref.flags, got.flags, got.vector);
                ok = 0;
            }
            for (int b = 0; b < AREA; ++b) {
                const uint8_t dv = ((volatile uint8_t *)dst)[b], sv = ((volatile uint8_t *)src)[b];
                if (dv != ref_dst[b] || sv != ref_src[b]) {
                    printf("%s, %s: memory differs at operand%+d\n", forms[k].name, where[m],
                           b - OPERAND);
                    ok = 0;
                    break;
                }
            }
        }
        report(ok, forms[k].name);
    }
    report_summary();
}
