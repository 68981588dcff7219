/* Conformance: MOVS STOS LODS CMPS SCAS at every width, with REP/REPE/REPNE, DF=1
 * (backwards), and RCX=0 doing nothing. */
#include "check.h"

static uint8_t src[256], dst[256];

static void reset(void) {
    for (int k = 0; k < 256; ++k) src[k] = (uint8_t)(k * 7 + 1), dst[k] = 0xEE;
}

int main(void) {
    uint64_t rsi, rdi, rcx, rax;

    reset();
    rsi = (uint64_t)src, rdi = (uint64_t)dst, rcx = 100;
    __asm__ volatile("cld\n\trep movsb" : "+S"(rsi), "+D"(rdi), "+c"(rcx)::"memory");
    report(memcmp(src, dst, 100) == 0 && dst[100] == 0xEE, "rep movsb copies exactly RCX bytes");
    report(rcx == 0 && rsi == (uint64_t)src + 100 && rdi == (uint64_t)dst + 100,
           "rep movsb advances RSI/RDI, RCX reaches 0");

    reset();
    rsi = (uint64_t)src, rdi = (uint64_t)dst, rcx = 8;
    __asm__ volatile("cld\n\trep movsq" : "+S"(rsi), "+D"(rdi), "+c"(rcx)::"memory");
    report(memcmp(src, dst, 64) == 0 && dst[64] == 0xEE && rdi == (uint64_t)dst + 64, "rep movsq");

    reset();
    rsi = (uint64_t)src + 6, rdi = (uint64_t)dst + 6, rcx = 4;
    __asm__ volatile("std\n\trep movsw\n\tcld" : "+S"(rsi), "+D"(rdi), "+c"(rcx)::"memory");
    report(memcmp(src, dst, 8) == 0 && dst[8] == 0xEE && rsi == (uint64_t)src - 2,
           "rep movsw backwards (DF=1)");

    reset();
    rdi = (uint64_t)dst, rcx = 0, rax = 0x55;
    __asm__ volatile("cld\n\trep stosb" : "+D"(rdi), "+c"(rcx) : "a"(rax) : "memory");
    report(dst[0] == 0xEE && rdi == (uint64_t)dst, "rep with RCX=0 does nothing");

    reset();
    rdi = (uint64_t)dst, rcx = 10, rax = 0x11223344;
    __asm__ volatile("cld\n\trep stosl" : "+D"(rdi), "+c"(rcx) : "a"(rax) : "memory");
    report(((uint32_t *)dst)[9] == 0x11223344 && dst[40] == 0xEE, "rep stosl");

    reset();
    rdi = (uint64_t)dst + 15, rcx = 16, rax = 0xAB;
    __asm__ volatile("std\n\trep stosb\n\tcld" : "+D"(rdi), "+c"(rcx) : "a"(rax) : "memory");
    report(dst[0] == 0xAB && dst[15] == 0xAB && dst[16] == 0xEE && rdi == (uint64_t)dst - 1,
           "rep stosb backwards");

    rsi = (uint64_t)src + 4;
    __asm__ volatile("cld\n\tlodsl" : "=a"(rax), "+S"(rsi)::"memory");
    report((uint32_t)rax == *(uint32_t *)(src + 4) && rsi == (uint64_t)src + 8, "lodsl");

    /* REPE CMPSB stops at the first difference. */
    reset();
    for (int k = 0; k < 50; ++k) dst[k] = src[k];
    dst[37] ^= 1;
    rsi = (uint64_t)src, rdi = (uint64_t)dst, rcx = 50;
    uint64_t f;
    __asm__ volatile("cld\n\trepe cmpsb\n\tpushfq\n\tpop %3"
                     : "+S"(rsi), "+D"(rdi), "+c"(rcx), "=r"(f)::"memory", "cc");
    report(rcx == 12 && rsi == (uint64_t)src + 38 && !(f & FLAG_ZF), "repe cmpsb stops at a difference");
    rsi = (uint64_t)src, rdi = (uint64_t)src, rcx = 50;
    __asm__ volatile("cld\n\trepe cmpsb\n\tpushfq\n\tpop %3"
                     : "+S"(rsi), "+D"(rdi), "+c"(rcx), "=r"(f)::"memory", "cc");
    report(rcx == 0 && (f & FLAG_ZF), "repe cmpsb over equal buffers");

    /* REPNE SCASB finds a byte. */
    static const char text[] = "find the x in here";
    rdi = (uint64_t)text, rcx = sizeof text, rax = 'x';
    __asm__ volatile("cld\n\trepne scasb\n\tpushfq\n\tpop %2"
                     : "+D"(rdi), "+c"(rcx), "=r"(f)
                     : "a"(rax)
                     : "memory", "cc");
    report(rdi == (uint64_t)text + 10 && (f & FLAG_ZF), "repne scasb finds the byte");
    /* SCASW flags as CMP: AX - [RDI]. */
    static const uint16_t word = 0x8000;
    rdi = (uint64_t)&word, rax = 0x7FFF;
    __asm__ volatile("cld\n\tscasw\n\tpushfq\n\tpop %1" : "+D"(rdi), "=r"(f) : "a"(rax) : "memory", "cc");
    uint64_t r;
    const uint64_t want = ref_sub(0x7FFF, 0x8000, 0, 16, &r);
    report((f & FLAGS_ARITH) == want, "scasw sets flags as cmp");
    report_summary();
}
