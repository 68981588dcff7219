/* Conformance: ADD ADC SUB SBB CMP NEG INC DEC AND OR XOR TEST NOT at 8/16/32/64 bits,
 * with every architecturally defined flag checked (AF is undefined after logic ops). */
#include "check.h"

/* Runs "op src, dst" with the given input flags; returns the result and output flags. */
#define BINOP(op, sz, a, b, fin, fout)                                                  \
    __asm__ volatile("push %[fi]\n\tpopfq\n\t" op " %" sz "[bb], %" sz "[aa]\n\t"        \
                     "pushfq\n\tpop %[fo]"                                               \
                     : [aa] "+r"(a), [fo] "=r"(fout)                                     \
                     : [bb] "r"(b), [fi] "r"(fin)                                        \
                     : "cc")

#define UNOP(op, sz, a, fin, fout)                                                      \
    __asm__ volatile("push %[fi]\n\tpopfq\n\t" op " %" sz "[aa]\n\tpushfq\n\tpop %[fo]" \
                     : [aa] "+r"(a), [fo] "=r"(fout)                                     \
                     : [fi] "r"(fin)                                                     \
                     : "cc")

enum kind { ADD, ADC, SUB, SBB, CMP, AND, OR, XOR, TEST };

static uint64_t ref_binop(enum kind k, uint64_t a, uint64_t b, int cf, int bits, uint64_t *r) {
    const uint64_t m = width_mask(bits);
    switch (k) {
        case ADD: return ref_add(a, b, 0, bits, r);
        case ADC: return ref_add(a, b, cf, bits, r);
        case SUB: return ref_sub(a, b, 0, bits, r);
        case SBB: return ref_sub(a, b, cf, bits, r);
        case CMP: {
            uint64_t f = ref_sub(a, b, 0, bits, r);
            *r = a & m;
            return f;
        }
        case AND: *r = a & b & m; return ref_zsp(*r, bits);
        case OR: *r = (a | b) & m; return ref_zsp(*r, bits);
        case XOR: *r = (a ^ b) & m; return ref_zsp(*r, bits);
        case TEST: *r = a & m; return ref_zsp(a & b & m, bits);
    }
    return 0;
}

#define RUN_BINOP(k, opname)                                                          \
    do {                                                                              \
        if (bits == 8) BINOP(opname, "b", x, y, fin, fout);                           \
        else if (bits == 16) BINOP(opname, "w", x, y, fin, fout);                     \
        else if (bits == 32) BINOP(opname, "k", x, y, fin, fout);                     \
        else BINOP(opname, "q", x, y, fin, fout);                                      \
    } while (0)

static void binop_group(enum kind k, const char *opname, int bits) {
    char name[16];
    int n = 0;
    for (const char *p = opname; *p; ++p) name[n++] = *p;
    if (bits >= 10) name[n++] = (char)('0' + bits / 10);
    name[n++] = (char)('0' + bits % 10);
    name[n] = 0;
    struct group g = {name, 0};
    const uint64_t undefined = (k == AND || k == OR || k == XOR || k == TEST) ? FLAG_AF : 0;
    for (unsigned i = 0; i < NVALUES; ++i)
        for (unsigned j = 0; j < NVALUES; ++j)
            for (int cf = 0; cf < 2; ++cf) {
                uint64_t x = kValues[i], y = kValues[j], fout;
                const uint64_t fin = 0x2 | (cf ? FLAG_CF : 0);
                switch (k) {
                    case ADD: RUN_BINOP(k, "add"); break;
                    case ADC: RUN_BINOP(k, "adc"); break;
                    case SUB: RUN_BINOP(k, "sub"); break;
                    case SBB: RUN_BINOP(k, "sbb"); break;
                    case CMP: RUN_BINOP(k, "cmp"); break;
                    case AND: RUN_BINOP(k, "and"); break;
                    case OR: RUN_BINOP(k, "or"); break;
                    case XOR: RUN_BINOP(k, "xor"); break;
                    case TEST: RUN_BINOP(k, "test"); break;
                }
                uint64_t want;
                const uint64_t wf = ref_binop(k, kValues[i], kValues[j], cf, bits, &want);
                const uint64_t m = width_mask(bits);
                group_check(&g, (x & m) == want, "result", kValues[i], kValues[j], x & m, want);
                group_check(&g, (fout & FLAGS_ARITH & ~undefined) == (wf & ~undefined), "flags",
                            kValues[i], kValues[j], fout & FLAGS_ARITH, wf);
                /* The bits above an 8/16-bit destination are untouched; 32-bit writes
                 * clear them. */
                const int writes = k != CMP && k != TEST;
                const uint64_t hi = (bits == 32 && writes) || bits == 64 ? 0 : kValues[i] & ~m;
                group_check(&g, (x & ~m) == hi, "upper bits", kValues[i], kValues[j], x & ~m, hi);
            }
    group_report(&g);
}

static void unop_groups(int bits) {
    struct group gneg = {bits == 8 ? "neg8" : bits == 16 ? "neg16" : bits == 32 ? "neg32" : "neg64", 0};
    struct group ginc = {bits == 8 ? "inc8" : bits == 16 ? "inc16" : bits == 32 ? "inc32" : "inc64", 0};
    struct group gdec = {bits == 8 ? "dec8" : bits == 16 ? "dec16" : bits == 32 ? "dec32" : "dec64", 0};
    struct group gnot = {bits == 8 ? "not8" : bits == 16 ? "not16" : bits == 32 ? "not32" : "not64", 0};
    const uint64_t m = width_mask(bits);
    for (unsigned i = 0; i < NVALUES; ++i)
        for (int cf = 0; cf < 2; ++cf) {
            const uint64_t a = kValues[i];
            const uint64_t fin = 0x2 | (cf ? FLAG_CF : 0);
            uint64_t x, fout, want, wf;
#define DO_UNOP(op)                                                          \
    x = a;                                                                   \
    if (bits == 8) UNOP(op, "b", x, fin, fout);                              \
    else if (bits == 16) UNOP(op, "w", x, fin, fout);                        \
    else if (bits == 32) UNOP(op, "k", x, fin, fout);                        \
    else UNOP(op, "q", x, fin, fout)
            DO_UNOP("neg");
            wf = ref_sub(0, a, 0, bits, &want);
            group_check(&gneg, (x & m) == want, "result", a, 0, x & m, want);
            group_check(&gneg, (fout & FLAGS_ARITH) == wf, "flags", a, 0, fout & FLAGS_ARITH, wf);
            DO_UNOP("inc");
            wf = (ref_add(a, 1, 0, bits, &want) & ~FLAG_CF) | (cf ? FLAG_CF : 0);
            group_check(&ginc, (x & m) == want, "result", a, 0, x & m, want);
            group_check(&ginc, (fout & FLAGS_ARITH) == wf, "flags (CF kept)", a, 0,
                        fout & FLAGS_ARITH, wf);
            DO_UNOP("dec");
            wf = (ref_sub(a, 1, 0, bits, &want) & ~FLAG_CF) | (cf ? FLAG_CF : 0);
            group_check(&gdec, (x & m) == want, "result", a, 0, x & m, want);
            group_check(&gdec, (fout & FLAGS_ARITH) == wf, "flags (CF kept)", a, 0,
                        fout & FLAGS_ARITH, wf);
            DO_UNOP("not");
            group_check(&gnot, (x & m) == (~a & m), "result", a, 0, x & m, ~a & m);
            group_check(&gnot, (fout & FLAGS_ARITH) == (fin & FLAGS_ARITH), "flags unchanged", a,
                        0, fout, fin);
        }
    group_report(&gneg);
    group_report(&ginc);
    group_report(&gdec);
    group_report(&gnot);
}

int main(void) {
    static const int widths[] = {8, 16, 32, 64};
    for (int w = 0; w < 4; ++w) {
        const int bits = widths[w];
        binop_group(ADD, "add", bits);
        binop_group(ADC, "adc", bits);
        binop_group(SUB, "sub", bits);
        binop_group(SBB, "sbb", bits);
        binop_group(CMP, "cmp", bits);
        binop_group(AND, "and", bits);
        binop_group(OR, "or", bits);
        binop_group(XOR, "xor", bits);
        binop_group(TEST, "test", bits);
        unop_groups(bits);
    }
    /* Immediate and memory forms. */
    uint64_t v = 5, f;
    __asm__ volatile("addq $-6, %0\n\tpushfq\n\tpop %1" : "+r"(v), "=r"(f)::"cc");
    report(v == ~0ull && (f & FLAG_SF) && !(f & FLAG_CF), "add imm8 sign-extended");
    static volatile uint32_t mem = 0xFFFFFFFF;
    __asm__ volatile("addl $1, %0\n\tpushfq\n\tpop %1" : "+m"(mem), "=r"(f)::"cc");
    report(mem == 0 && (f & FLAG_ZF) && (f & FLAG_CF) && (f & FLAG_AF), "add to memory");
    uint8_t b = 0x7F;
    __asm__ volatile("incb %0\n\tpushfq\n\tpop %1" : "+m"(b), "=r"(f)::"cc");
    report(b == 0x80 && (f & FLAG_OF) && (f & FLAG_SF), "inc memory byte overflows");
    report_summary();
}
