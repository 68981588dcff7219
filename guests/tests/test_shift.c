/* Conformance: SHL SHR SAR ROL ROR RCL RCR SHLD SHRD by 0, 1, N and masked counts at
 * 8/16/32/64 bits. Only defined results are checked: a count of 0 changes no flag; OF is
 * defined for count 1 only; AF is undefined; CF of SHL/SHR/SAL is undefined when the
 * count is at least the operand width (8/16-bit forms). */
#include "check.h"

#define SHIFT(op, sz, a, cnt, fin, fout)                                                 \
    __asm__ volatile("push %[fi]\n\tpopfq\n\t" op " %%cl, %" sz "[aa]\n\tpushfq\n\tpop %[fo]" \
                     : [aa] "+r"(a), [fo] "=r"(fout)                                      \
                     : "c"(cnt), [fi] "r"(fin)                                            \
                     : "cc")

#define SHIFTD(op, sz, a, b, cnt, fin, fout)                                              \
    __asm__ volatile("push %[fi]\n\tpopfq\n\t" op " %%cl, %" sz "[bb], %" sz "[aa]\n\t"   \
                     "pushfq\n\tpop %[fo]"                                                \
                     : [aa] "+r"(a), [fo] "=r"(fout)                                      \
                     : [bb] "r"(b), "c"(cnt), [fi] "r"(fin)                               \
                     : "cc")

enum op { SHL, SHR, SAR, ROL, ROR, RCL, RCR };
static const char *const op_names[] = {"shl", "shr", "sar", "rol", "ror", "rcl", "rcr"};

/* Reference: result, CF and OF for a masked count n > 0. */
static uint64_t ref_shift(enum op k, uint64_t a, unsigned n, int cf_in, int bits, int *cf, int *of) {
    const uint64_t m = width_mask(bits), s = sign_of(bits);
    a &= m;
    uint64_t r = 0;
    switch (k) {
        case SHL:
            r = n >= 64 ? 0 : (a << n) & m;
            *cf = n <= (unsigned)bits ? (int)((a >> (bits - n)) & 1) : 0;
            *of = ((r & s) != 0) != *cf;
            break;
        case SHR:
            r = n >= 64 ? 0 : a >> n;
            *cf = (int)((a >> (n - 1)) & 1);
            *of = (a & s) != 0;
            break;
        case SAR: {
            const int64_t sa = (int64_t)(a << (64 - bits)) >> (64 - bits);
            r = (uint64_t)(sa >> (n > 63 ? 63 : n)) & m;
            *cf = (int)((sa >> (n - 1 > 63 ? 63 : n - 1)) & 1);
            *of = 0;
            break;
        }
        case ROL: {
            const unsigned k2 = n % (unsigned)bits;
            r = k2 ? ((a << k2) | (a >> (bits - k2))) & m : a;
            *cf = (int)(r & 1);
            *of = ((r & s) != 0) != *cf;
            break;
        }
        case ROR: {
            const unsigned k2 = n % (unsigned)bits;
            r = k2 ? ((a >> k2) | (a << (bits - k2))) & m : a;
            *cf = (r & s) != 0;
            *of = ((r & s) != 0) != ((r & (s >> 1)) != 0);
            break;
        }
        case RCL:
        case RCR: {
            const unsigned k2 = n % (unsigned)(bits + 1);
            int c = cf_in;
            r = a;
            for (unsigned t = 0; t < k2; ++t) {
                if (k == RCL) {
                    const int out = (r & s) != 0;
                    r = ((r << 1) | (uint64_t)c) & m;
                    c = out;
                } else {
                    const int out = (int)(r & 1);
                    r = (r >> 1) | (c ? s : 0);
                    c = out;
                }
            }
            *cf = c;
            *of = k == RCL ? ((r & s) != 0) != c : ((r & s) != 0) != ((r & (s >> 1)) != 0);
            if (k == RCR) *of = ((a & s) != 0) != cf_in;
            break;
        }
    }
    return r;
}

static const unsigned kCounts[] = {0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255};

static void shift_group(enum op k, int bits) {
    char name[16];
    int n = 0;
    for (const char *p = op_names[k]; *p; ++p) name[n++] = *p;
    if (bits >= 10) name[n++] = (char)('0' + bits / 10);
    name[n++] = (char)('0' + bits % 10);
    name[n] = 0;
    struct group g = {name, 0};
    const uint64_t m = width_mask(bits);
    for (unsigned i = 0; i < NVALUES; ++i)
        for (unsigned c = 0; c < sizeof kCounts / sizeof kCounts[0]; ++c)
            for (int cf_in = 0; cf_in < 2; ++cf_in) {
                const uint64_t a = kValues[i];
                const unsigned count = kCounts[c];
                const uint64_t fin = 0x2 | (cf_in ? FLAG_CF : 0) | FLAG_OF | FLAG_ZF;
                uint64_t x = a, fout = 0;
#define RUN(opstr)                                                  \
    if (bits == 8) SHIFT(opstr, "b", x, count, fin, fout);          \
    else if (bits == 16) SHIFT(opstr, "w", x, count, fin, fout);    \
    else if (bits == 32) SHIFT(opstr, "k", x, count, fin, fout);    \
    else SHIFT(opstr, "q", x, count, fin, fout)
                switch (k) {
                    case SHL: RUN("shl"); break;
                    case SHR: RUN("shr"); break;
                    case SAR: RUN("sar"); break;
                    case ROL: RUN("rol"); break;
                    case ROR: RUN("ror"); break;
                    case RCL: RUN("rcl"); break;
                    case RCR: RUN("rcr"); break;
                }
                const unsigned masked = count & (bits == 64 ? 63 : 31);
                if (masked == 0) {
                    /* Nothing changes, except that a 32-bit register write clears the
                     * upper half. */
                    const uint64_t want = bits == 32 ? a & m : a;
                    group_check(&g, x == want, "count 0 result", a, count, x, want);
                    group_check(&g, (fout & FLAGS_ARITH) == (fin & FLAGS_ARITH),
                                "count 0 flags", a, count, fout, fin);
                    continue;
                }
                int cf, of;
                const uint64_t want = ref_shift(k, a, masked, cf_in, bits, &cf, &of);
                group_check(&g, (x & m) == want, "result", a, count, x & m, want);
                const int cf_defined = !((k == SHL || k == SHR) && masked >= (unsigned)bits);
                const int rc = (k == RCL || k == RCR) ? masked % (unsigned)(bits + 1) : masked;
                if (cf_defined && !((k == RCL || k == RCR) && rc == 0))
                    group_check(&g, ((fout & FLAG_CF) != 0) == cf, "CF", a, count,
                                fout & FLAG_CF, (uint64_t)cf);
                if (masked == 1)
                    group_check(&g, ((fout & FLAG_OF) != 0) == of, "OF", a, count,
                                fout & FLAG_OF, (uint64_t)of);
                if (k <= SAR) {
                    const uint64_t zsp = ref_zsp(want, bits);
                    group_check(&g, (fout & (FLAG_ZF | FLAG_SF | FLAG_PF)) == zsp, "ZF/SF/PF",
                                a, count, fout & (FLAG_ZF | FLAG_SF | FLAG_PF), zsp);
                } else {
                    /* Rotates leave SF, ZF, PF and AF alone. */
                    const uint64_t keep = FLAG_ZF | FLAG_SF | FLAG_PF | FLAG_AF;
                    group_check(&g, (fout & keep) == (fin & keep), "SF/ZF/PF/AF kept", a, count,
                                fout & keep, fin & keep);
                }
            }
    group_report(&g);
}

static void double_shift_group(int left, int bits) {
    struct group g = {left ? (bits == 16 ? "shld16" : bits == 32 ? "shld32" : "shld64")
                           : (bits == 16 ? "shrd16" : bits == 32 ? "shrd32" : "shrd64"),
                      0};
    const uint64_t m = width_mask(bits);
    for (unsigned i = 0; i < NVALUES; ++i)
        for (unsigned j = 0; j < NVALUES; j += 3)
            for (unsigned c = 0; c < sizeof kCounts / sizeof kCounts[0]; ++c) {
                const uint64_t a = kValues[i], b = kValues[j];
                const unsigned count = kCounts[c];
                const unsigned masked = count & (bits == 64 ? 63 : 31);
                if (masked > (unsigned)bits) continue; /* undefined for 16-bit operands */
                const uint64_t fin = 0x2 | FLAG_CF;
                uint64_t x = a, fout;
                if (left) {
                    if (bits == 16) SHIFTD("shld", "w", x, b, count, fin, fout);
                    else if (bits == 32) SHIFTD("shld", "k", x, b, count, fin, fout);
                    else SHIFTD("shld", "q", x, b, count, fin, fout);
                } else {
                    if (bits == 16) SHIFTD("shrd", "w", x, b, count, fin, fout);
                    else if (bits == 32) SHIFTD("shrd", "k", x, b, count, fin, fout);
                    else SHIFTD("shrd", "q", x, b, count, fin, fout);
                }
                if (masked == 0) {
                    const uint64_t want = bits == 32 ? a & m : a;
                    group_check(&g, x == want, "count 0", a, b, x, want);
                    continue;
                }
                const uint64_t am = a & m, bm = b & m;
                uint64_t want;
                int cf;
                if (left) {
                    want = masked == (unsigned)bits ? bm : ((am << masked) | (bm >> (bits - masked))) & m;
                    cf = (int)((am >> (bits - masked)) & 1);
                } else {
                    want = masked == (unsigned)bits ? bm : ((am >> masked) | (bm << (bits - masked))) & m;
                    cf = (int)((am >> (masked - 1)) & 1);
                }
                group_check(&g, (x & m) == want, "result", a, b, x & m, want);
                group_check(&g, ((fout & FLAG_CF) != 0) == cf, "CF", a, b, fout, (uint64_t)cf);
                const uint64_t zsp = ref_zsp(want, bits);
                group_check(&g, (fout & (FLAG_ZF | FLAG_SF | FLAG_PF)) == zsp, "ZF/SF/PF", a, b,
                            fout, zsp);
                if (masked == 1) {
                    const int of = ((want ^ am) & sign_of(bits)) != 0;
                    group_check(&g, ((fout & FLAG_OF) != 0) == of, "OF", a, b, fout,
                                (uint64_t)of);
                }
            }
    group_report(&g);
}

int main(void) {
    static const int widths[] = {8, 16, 32, 64};
    for (int w = 0; w < 4; ++w)
        for (int k = SHL; k <= RCR; ++k) shift_group((enum op)k, widths[w]);
    for (int w = 1; w < 4; ++w) {
        double_shift_group(1, widths[w]);
        double_shift_group(0, widths[w]);
    }
    /* Immediate-count forms and a memory operand. */
    uint32_t v = 0x80000001u;
    __asm__ volatile("roll $1, %0" : "+r"(v)::"cc");
    report(v == 3, "rol imm8 by 1");
    static volatile uint16_t mem = 0x8001;
    __asm__ volatile("shrw $4, %0" : "+m"(mem)::"cc");
    report(mem == 0x0800, "shr memory by imm");
    report_summary();
}
