/* Conformance: MUL, IMUL (one-, two- and three-operand forms), DIV and IDIV at every
 * width, #DE on a zero divisor and on quotient overflow. After multiplication only CF and
 * OF are defined; after division no flag is. */
#include "check.h"

typedef __int128 i128;

static struct group g_mul[4], g_imul1[4], g_imul2[4], g_imul3[4], g_div[4], g_idiv[4];
static const char *const names[6][4] = {
    {"mul8", "mul16", "mul32", "mul64"},         {"imul1-8", "imul1-16", "imul1-32", "imul1-64"},
    {"imul2-16", "imul2-16", "imul2-32", "imul2-64"}, {"imul3-16", "imul3-16", "imul3-32", "imul3-64"},
    {"div8", "div16", "div32", "div64"},         {"idiv8", "idiv16", "idiv32", "idiv64"}};

static int64_t sx(uint64_t v, int bits) { return (int64_t)(v << (64 - bits)) >> (64 - bits); }

static void check_mul(int w, int bits, uint64_t a, uint64_t b) {
    const uint64_t m = width_mask(bits);
    uint64_t lo = a, hi = 0, f;
    /* Unsigned one-operand: rDX:rAX = rAX * src. */
    switch (bits) {
        case 8: __asm__ volatile("mulb %b[b]\n\tpushfq\n\tpop %[f]" : "+a"(lo), [f] "=r"(f) : [b] "q"(b) : "cc"); hi = (lo >> 8) & 0xFF; break;
        case 16: __asm__ volatile("mulw %w[b]\n\tpushfq\n\tpop %[f]" : "+a"(lo), "=d"(hi), [f] "=r"(f) : [b] "r"(b) : "cc"); break;
        case 32: __asm__ volatile("mull %k[b]\n\tpushfq\n\tpop %[f]" : "+a"(lo), "=d"(hi), [f] "=r"(f) : [b] "r"(b) : "cc"); break;
        default: __asm__ volatile("mulq %q[b]\n\tpushfq\n\tpop %[f]" : "+a"(lo), "=d"(hi), [f] "=r"(f) : [b] "r"(b) : "cc"); break;
    }
    const u128 p = (u128)(a & m) * (b & m);
    const uint64_t want_lo = (uint64_t)p & m, want_hi = (uint64_t)(p >> bits) & m;
    group_check(&g_mul[w], (lo & m) == want_lo && (hi & m) == want_hi, "product", a, b, lo & m, want_lo);
    const int carry = want_hi != 0;
    group_check(&g_mul[w], ((f & FLAG_CF) != 0) == carry && ((f & FLAG_OF) != 0) == carry, "CF/OF",
                a, b, f, (uint64_t)carry);

    /* Signed one-operand. */
    lo = a, hi = 0;
    switch (bits) {
        case 8: __asm__ volatile("imulb %b[b]\n\tpushfq\n\tpop %[f]" : "+a"(lo), [f] "=r"(f) : [b] "q"(b) : "cc"); hi = (lo >> 8) & 0xFF; break;
        case 16: __asm__ volatile("imulw %w[b]\n\tpushfq\n\tpop %[f]" : "+a"(lo), "=d"(hi), [f] "=r"(f) : [b] "r"(b) : "cc"); break;
        case 32: __asm__ volatile("imull %k[b]\n\tpushfq\n\tpop %[f]" : "+a"(lo), "=d"(hi), [f] "=r"(f) : [b] "r"(b) : "cc"); break;
        default: __asm__ volatile("imulq %q[b]\n\tpushfq\n\tpop %[f]" : "+a"(lo), "=d"(hi), [f] "=r"(f) : [b] "r"(b) : "cc"); break;
    }
    const i128 sp = (i128)sx(a, bits) * sx(b, bits);
    const uint64_t s_lo = (uint64_t)sp & m, s_hi = (uint64_t)(sp >> bits) & m;
    group_check(&g_imul1[w], (lo & m) == s_lo && (hi & m) == s_hi, "product", a, b, lo & m, s_lo);
    const int overflow = sp != (i128)sx(s_lo, bits);
    group_check(&g_imul1[w], ((f & FLAG_CF) != 0) == overflow && ((f & FLAG_OF) != 0) == overflow,
                "CF/OF", a, b, f, (uint64_t)overflow);

    if (bits == 8) return;
    /* Two-operand: dst = dst * src (truncated). */
    uint64_t d = a;
    switch (bits) {
        case 16: __asm__ volatile("imulw %w[b], %w[d]\n\tpushfq\n\tpop %[f]" : [d] "+r"(d), [f] "=r"(f) : [b] "r"(b) : "cc"); break;
        case 32: __asm__ volatile("imull %k[b], %k[d]\n\tpushfq\n\tpop %[f]" : [d] "+r"(d), [f] "=r"(f) : [b] "r"(b) : "cc"); break;
        default: __asm__ volatile("imulq %q[b], %q[d]\n\tpushfq\n\tpop %[f]" : [d] "+r"(d), [f] "=r"(f) : [b] "r"(b) : "cc"); break;
    }
    group_check(&g_imul2[w], (d & m) == s_lo, "product", a, b, d & m, s_lo);
    group_check(&g_imul2[w], ((f & FLAG_CF) != 0) == overflow && ((f & FLAG_OF) != 0) == overflow,
                "CF/OF", a, b, f, (uint64_t)overflow);
    /* Three-operand with an immediate: dst = src * -300. */
    const i128 ip = (i128)sx(a, bits) * -300;
    const uint64_t i_lo = (uint64_t)ip & m;
    switch (bits) {
        case 16: __asm__ volatile("imulw $-300, %w[a], %w[d]" : [d] "=r"(d) : [a] "r"(a) : "cc"); break;
        case 32: __asm__ volatile("imull $-300, %k[a], %k[d]" : [d] "=r"(d) : [a] "r"(a) : "cc"); break;
        default: __asm__ volatile("imulq $-300, %q[a], %q[d]" : [d] "=r"(d) : [a] "r"(a) : "cc"); break;
    }
    group_check(&g_imul3[w], (d & m) == i_lo, "product", a, 0, d & m, i_lo);
}

struct div_args {
    int bits, is_signed;
    uint64_t hi, lo, divisor, q, r;
};

static void do_div(void *p) {
    struct div_args *d = p;
    uint64_t lo = d->lo, hi = d->hi;
    const uint64_t v = d->divisor;
#define DIVOP(insn, sz)                                                                      \
    __asm__ volatile(insn " %" sz "[v]" : "+a"(lo), "+d"(hi) : [v] "r"(v) : "cc")
    if (d->bits == 8) {
        lo = (lo & 0xFF) | (hi << 8);
        if (d->is_signed) __asm__ volatile("idivb %b[v]" : "+a"(lo) : [v] "q"(v) : "cc");
        else __asm__ volatile("divb %b[v]" : "+a"(lo) : [v] "q"(v) : "cc");
        d->q = lo & 0xFF, d->r = (lo >> 8) & 0xFF;
        return;
    }
    if (d->bits == 16) { if (d->is_signed) DIVOP("idivw", "w"); else DIVOP("divw", "w"); }
    else if (d->bits == 32) { if (d->is_signed) DIVOP("idivl", "k"); else DIVOP("divl", "k"); }
    else { if (d->is_signed) DIVOP("idivq", "q"); else DIVOP("divq", "q"); }
    d->q = lo, d->r = hi;
}

static void check_div(int w, int bits, int is_signed, uint64_t hi, uint64_t lo, uint64_t v) {
    const uint64_t m = width_mask(bits);
    hi &= m, lo &= m, v &= m;
    struct div_args d = {bits, is_signed, hi, lo, v, 0, 0};
    const u128 n = bits == 64 ? ((u128)hi << 64) | lo : (((u128)hi << bits) | lo);
    int want_de = v == 0;
    uint64_t wq = 0, wr = 0;
    if (!want_de && !is_signed) {
        const u128 q = n / v;
        want_de = (q >> bits) != 0;
        wq = (uint64_t)q & m, wr = (uint64_t)(n % v) & m;
    } else if (!want_de) {
        const int nb = 2 * bits;
        const i128 sn = nb == 128 ? (i128)n : (i128)(n << (128 - nb)) >> (128 - nb);
        const i128 sv = sx(v, bits);
        const i128 minv = -((i128)1 << (nb - 1));
        if (sv == -1 && sn == minv) {
            want_de = 1;
        } else {
            const i128 q = sn / sv;
            want_de = q > ((i128)1 << (bits - 1)) - 1 || q < -((i128)1 << (bits - 1));
            wq = (uint64_t)q & m, wr = (uint64_t)(sn % sv) & m;
        }
    }
    struct group *g = is_signed ? &g_idiv[w] : &g_div[w];
    const int vec = sdk_catch(do_div, &d);
    if (want_de) {
        group_check(g, vec == 0, "#DE", lo, v, (uint64_t)vec, 0);
    } else {
        group_check(g, vec == -1, "no exception", lo, v, (uint64_t)vec, (uint64_t)-1);
        group_check(g, (d.q & m) == wq && (d.r & m) == wr, "quotient/remainder", lo, v, d.q & m, wq);
    }
}

int main(void) {
    static const int widths[] = {8, 16, 32, 64};
    for (int w = 0; w < 4; ++w) {
        g_mul[w].name = names[0][w], g_imul1[w].name = names[1][w];
        g_imul2[w].name = names[2][w], g_imul3[w].name = names[3][w];
        g_div[w].name = names[4][w], g_idiv[w].name = names[5][w];
        for (unsigned i = 0; i < NVALUES; ++i)
            for (unsigned j = 0; j < NVALUES; ++j) {
                check_mul(w, widths[w], kValues[i], kValues[j]);
                check_div(w, widths[w], 0, kValues[i] & 3, kValues[j], kValues[i]);
                check_div(w, widths[w], 1, (kValues[j] >> 60) & 1 ? ~0ull : 0, kValues[j],
                          kValues[i]);
            }
        report(g_mul[w].fails == 0, g_mul[w].name);
        report(g_imul1[w].fails == 0, g_imul1[w].name);
        if (w > 0) {
            report(g_imul2[w].fails == 0, g_imul2[w].name);
            report(g_imul3[w].fails == 0, g_imul3[w].name);
        }
        report(g_div[w].fails == 0, g_div[w].name);
        report(g_idiv[w].fails == 0, g_idiv[w].name);
    }
    /* #DE leaves the destination registers unchanged and reports the DIV's RIP. */
    struct div_args z = {32, 0, 0, 7, 0, 0, 0};
    report(sdk_catch(do_div, &z) == 0, "divide by zero raises #DE");
    report(sdk_last_error() == 0, "#DE pushes no error code");
    report_summary();
}
