/* Conformance: XCHG (register and memory), CMPXCHG (success and failure, flags as CMP),
 * XADD, LOCK-prefixed forms, CMPXCHG8B and CMPXCHG16B. */
#include "check.h"

int main(void) {
    static uint64_t mem = 10;
    uint64_t r = 20, f;
    __asm__ volatile("xchg %0, %1" : "+r"(r), "+m"(mem));
    report(r == 10 && mem == 20, "xchg reg, mem");
    uint32_t a = 1, b = 2;
    __asm__ volatile("xchgl %0, %1" : "+r"(a), "+r"(b));
    report(a == 2 && b == 1, "xchg reg, reg");

    uint64_t rax = 20, nv = 99;
    __asm__ volatile("lock cmpxchgq %2, %1\n\tpushfq\n\tpopq %3"
                     : "+a"(rax), "+m"(mem), "=r"(nv), "=r"(f)
                     : "2"(nv)
                     : "cc", "memory");
    report(mem == 99 && (f & FLAG_ZF) && rax == 20, "lock cmpxchg succeeds when equal");
    rax = 5;
    __asm__ volatile("lock cmpxchgq %2, %1\n\tpushfq\n\tpopq %3"
                     : "+a"(rax), "+m"(mem), "=r"(nv), "=r"(f)
                     : "2"(nv)
                     : "cc", "memory");
    uint64_t res;
    const uint64_t want = ref_sub(5, 99, 0, 64, &res);
    report(mem == 99 && rax == 99 && !(f & FLAG_ZF), "cmpxchg fails: loads the accumulator");
    report((f & FLAGS_ARITH) == want, "cmpxchg flags are those of cmp");
    uint8_t bm = 0x80, bal = 0x80, bnew = 0x01;
    __asm__ volatile("cmpxchgb %2, %1" : "+a"(bal), "+m"(bm) : "q"(bnew) : "cc");
    report(bm == 0x01, "cmpxchg byte");

    static uint32_t counter = 100;
    uint32_t add = 5;
    __asm__ volatile("lock xaddl %0, %1" : "+r"(add), "+m"(counter)::"cc");
    report(add == 100 && counter == 105, "lock xadd returns the old value");
    __asm__ volatile("lock incl %0" : "+m"(counter)::"cc");
    __asm__ volatile("lock addl $10, %0" : "+m"(counter)::"cc");
    __asm__ volatile("lock notl %0" : "+m"(counter));
    report(counter == ~116u, "lock inc, add, not on memory");
    uint64_t bitmap = 0;
    __asm__ volatile("lock btsq $33, %0" : "+m"(bitmap)::"cc");
    report(bitmap == (1ull << 33), "lock bts");

    static uint64_t q8 = 0x1111111122222222ull;
    uint32_t lo = 0x22222222, hi = 0x11111111;
    __asm__ volatile("lock cmpxchg8b %0\n\tpushfq\n\tpopq %3"
                     : "+m"(q8), "+a"(lo), "+d"(hi), "=r"(f)
                     : "b"(0x44444444), "c"(0x33333333)
                     : "cc");
    report(q8 == 0x3333333344444444ull && (f & FLAG_ZF), "cmpxchg8b succeeds");
    static struct {
        uint64_t lo, hi;
    } __attribute__((aligned(16))) o16 = {1, 2};
    uint64_t l = 7, h = 8;
    __asm__ volatile("lock cmpxchg16b %0\n\tpushfq\n\tpopq %3"
                     : "+m"(o16), "+a"(l), "+d"(h), "=r"(f)
                     : "b"(3ull), "c"(4ull)
                     : "cc");
    report(o16.lo == 1 && o16.hi == 2 && l == 1 && h == 2 && !(f & FLAG_ZF),
           "cmpxchg16b fails and loads rdx:rax");
    report_summary();
}
