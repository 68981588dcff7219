/* Conformance: BT BTS BTR BTC (register and memory, with bit offsets beyond the operand
 * for memory), BSF BSR, BSWAP, LZCNT/POPCNT when CPUID says so, MOVZX/MOVSX/MOVSXD,
 * CBW-family, CWD-family. */
#include "check.h"

int main(void) {
    uint64_t v = 0x8000000000000001ull, f;
    __asm__ volatile("btq $63, %1\n\tpushfq\n\tpopq %0" : "=r"(f) : "r"(v) : "cc");
    report(f & FLAG_CF, "bt reg, imm");
    __asm__ volatile("btsq $4, %0\n\tpushfq\n\tpopq %1" : "+r"(v), "=r"(f)::"cc");
    report(v == 0x8000000000000011ull && !(f & FLAG_CF), "bts sets and returns the old bit");
    __asm__ volatile("btrq $0, %0\n\tpushfq\n\tpopq %1" : "+r"(v), "=r"(f)::"cc");
    report(v == 0x8000000000000010ull && (f & FLAG_CF), "btr clears");
    __asm__ volatile("btcq $63, %0\n\tpushfq\n\tpopq %1" : "+r"(v), "=r"(f)::"cc");
    report(v == 0x10 && (f & FLAG_CF), "btc complements");
    uint32_t r32 = 1;
    uint64_t off = 33;  /* register form: offset taken modulo 32 */
    __asm__ volatile("btl %k2, %1\n\tpushfq\n\tpopq %0" : "=r"(f) : "r"(r32), "r"(off) : "cc");
    report(!(f & FLAG_CF) == 0 ? 0 : 1, "bt reg, reg offset wraps at the width");

    /* Memory form: the bit offset addresses beyond the operand. */
    static uint32_t bits[8];
    int64_t idx = 200;
    __asm__ volatile("btsl %k1, %0" : "+m"(bits) : "r"((uint32_t)idx) : "cc", "memory");
    report(bits[6] == (1u << 8), "bts memory with offset 200 sets dword 6 bit 8");
    idx = -1;
    __asm__ volatile("btsq %1, %0" : "+m"(bits[4]) : "r"(idx) : "cc", "memory");
    report(bits[3] == 0x80000000u, "bts memory with offset -1 reaches the previous qword");

    uint64_t pos;
    v = 0x00F0000000000000ull;
    __asm__ volatile("bsfq %2, %0\n\tpushfq\n\tpopq %1" : "=r"(pos), "=r"(f) : "r"(v) : "cc");
    report(pos == 52 && !(f & FLAG_ZF), "bsf");
    __asm__ volatile("bsrq %2, %0\n\tpushfq\n\tpopq %1" : "=r"(pos), "=r"(f) : "r"(v) : "cc");
    report(pos == 55 && !(f & FLAG_ZF), "bsr");
    v = 0;
    __asm__ volatile("bsfq %1, %0\n\tpushfq\n\tpopq %0" : "=&r"(f) : "r"(v) : "cc");
    report(f & FLAG_ZF, "bsf of zero sets ZF");

    uint32_t x = 0x11223344;
    __asm__ volatile("bswap %0" : "+r"(x));
    report(x == 0x44332211, "bswap32");
    v = 0x0102030405060708ull;
    __asm__ volatile("bswap %0" : "+r"(v));
    report(v == 0x0807060504030201ull, "bswap64");

    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    if (c & (1u << 23)) {
        v = 0xF0F0F0F0F0F0F0F1ull;
        __asm__ volatile("popcntq %1, %0" : "=r"(pos) : "r"(v) : "cc");
        report(pos == 33, "popcnt (CPUID.1:ECX.POPCNT)");
    }
    cpuid(0x80000001, 0, &a, &b, &c, &d);
    if (c & (1u << 5)) {
        v = 0x0000100000000000ull;
        __asm__ volatile("lzcntq %1, %0" : "=r"(pos) : "r"(v) : "cc");
        report(pos == 19, "lzcnt (CPUID.80000001:ECX.ABM)");
    }

    int8_t sb = -5;
    uint64_t z;
    __asm__ volatile("movzbl %1, %k0" : "=r"(z) : "m"(sb));
    report(z == 0xFB, "movzx byte");
    __asm__ volatile("movsbq %1, %0" : "=r"(z) : "m"(sb));
    report(z == (uint64_t)-5, "movsx byte to 64");
    int32_t sd = -7;
    __asm__ volatile("movslq %1, %0" : "=r"(z) : "m"(sd));
    report(z == (uint64_t)-7, "movsxd");
    uint64_t rax = 0x80, rdx;
    __asm__ volatile("cbw" : "+a"(rax));
    report((rax & 0xFFFF) == 0xFF80, "cbw");
    rax = 0x80000000;
    __asm__ volatile("cdqe" : "+a"(rax));
    report(rax == 0xFFFFFFFF80000000ull, "cdqe");
    rax = 0x8000000000000000ull;
    __asm__ volatile("cqo" : "+a"(rax), "=d"(rdx));
    report(rdx == ~0ull, "cqo");
    rax = 0x7FFF;
    rdx = 0x1234;
    __asm__ volatile("cwd" : "+a"(rax), "+d"(rdx));
    report(rdx == 0, "cwd");
    report_summary();
}
