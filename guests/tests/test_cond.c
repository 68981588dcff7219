/* Conformance: the 16 conditions through Jcc, SETcc and CMOVcc for every combination of
 * CF, ZF, SF, OF and PF; LOOP/LOOPE/LOOPNE/JRCXZ; LEA forms. */
#include "check.h"

static int expected(int cc, uint64_t f) {
    const int cf = !!(f & FLAG_CF), zf = !!(f & FLAG_ZF), sf = !!(f & FLAG_SF),
              of = !!(f & FLAG_OF), pf = !!(f & FLAG_PF);
    int r;
    switch (cc >> 1) {
        case 0: r = of; break;
        case 1: r = cf; break;
        case 2: r = zf; break;
        case 3: r = cf || zf; break;
        case 4: r = sf; break;
        case 5: r = pf; break;
        case 6: r = sf != of; break;
        default: r = zf || (sf != of); break;
    }
    return (cc & 1) ? !r : r;
}

#define COND(cc, s)                                                                          \
    case cc: {                                                                               \
        uint8_t set;                                                                         \
        uint64_t mov = 1, jmp = 0;                                                           \
        __asm__ volatile("push %[fi]\n\tpopfq\n\tset" s " %[set]\n\tcmov" s " %[two], %[mov]\n\t" \
                         "j" s " 1f\n\tjmp 2f\n1: movq $1, %[jmp]\n2:"                        \
                         : [set] "=q"(set), [mov] "+r"(mov), [jmp] "+r"(jmp)                  \
                         : [fi] "r"(fin), [two] "r"(2ull)                                    \
                         : "cc");                                                            \
        got_set = set, got_cmov = mov == 2, got_jcc = (int)jmp;                              \
        break;                                                                               \
    }

int main(void) {
    static const char *const names[16] = {"o", "no", "b", "ae", "e", "ne", "be", "a",
                                          "s", "ns", "p", "np", "l", "ge", "le", "g"};
    for (int cc = 0; cc < 16; ++cc) {
        int bad = 0;
        for (int bitsel = 0; bitsel < 32; ++bitsel) {
            const uint64_t fin = 0x2 | ((bitsel & 1) ? FLAG_CF : 0) | ((bitsel & 2) ? FLAG_ZF : 0) |
                                 ((bitsel & 4) ? FLAG_SF : 0) | ((bitsel & 8) ? FLAG_OF : 0) |
                                 ((bitsel & 16) ? FLAG_PF : 0);
            int got_set = 0, got_cmov = 0, got_jcc = 0;
            switch (cc) {
                COND(0, "o") COND(1, "no") COND(2, "b") COND(3, "ae") COND(4, "e") COND(5, "ne")
                COND(6, "be") COND(7, "a") COND(8, "s") COND(9, "ns") COND(10, "p") COND(11, "np")
                COND(12, "l") COND(13, "ge") COND(14, "le") COND(15, "g")
            }
            const int want = expected(cc, fin);
            if (got_set != want || got_cmov != want || got_jcc != want) ++bad;
        }
        char name[32] = "setcc/cmovcc/jcc: ";
        int n = 18;
        for (const char *p = names[cc]; *p; ++p) name[n++] = *p;
        name[n] = 0;
        report(bad == 0, name);
    }

    uint64_t rcx = 5, count = 0;
    __asm__ volatile("1: incq %1\n\tloop 1b" : "+c"(rcx), "+r"(count)::"cc");
    report(count == 5 && rcx == 0, "loop runs RCX times");
    rcx = 10, count = 0;
    __asm__ volatile("1: incq %1\n\tcmpq $3, %1\n\tloopne 1b" : "+c"(rcx), "+r"(count)::"cc");
    report(count == 3 && rcx == 7, "loopne stops when ZF=1");
    rcx = 10, count = 0;
    __asm__ volatile("1: incq %1\n\tcmpq %1, %1\n\tloope 1b" : "+c"(rcx), "+r"(count)::"cc");
    report(count == 10 && rcx == 0, "loope runs while ZF=1");
    rcx = 0;
    uint64_t taken = 0;
    __asm__ volatile("jrcxz 1f\n\tjmp 2f\n1: movq $1, %1\n2:" : "+c"(rcx), "+r"(taken));
    report(taken == 1, "jrcxz");

    uint64_t base = 1000, index = 7, ea;
    __asm__ volatile("leaq -8(%1,%2,8), %0" : "=r"(ea) : "r"(base), "r"(index));
    report(ea == 1048, "lea base+index*8+disp");
    uint32_t ea32;
    __asm__ volatile("leal 1(%q1,%q1,2), %0" : "=r"(ea32) : "r"(0xFFFFFFFFull));
    report(ea32 == 0xFFFFFFFEu, "lea with a 32-bit destination truncates");
    report_summary();
}
