/* Shared helpers of the integer-ISA conformance guests: reference flag computations
 * (SDM vol. 1 §3.4.3 and appendix A), written from the definitions. */
#ifndef SOFTKVM_GUEST_CHECK_H
#define SOFTKVM_GUEST_CHECK_H
#include "sdk.h"

typedef unsigned __int128 u128;

static inline uint64_t width_mask(int bits) { return bits == 64 ? ~0ull : (1ull << bits) - 1; }
static inline uint64_t sign_of(int bits) { return 1ull << (bits - 1); }

static inline uint64_t ref_zsp(uint64_t r, int bits) {
    uint64_t f = 0;
    if ((r & width_mask(bits)) == 0) f |= FLAG_ZF;
    if (r & sign_of(bits)) f |= FLAG_SF;
    if (!__builtin_parity((unsigned)(r & 0xFF))) f |= FLAG_PF;
    return f;
}

static inline uint64_t ref_add(uint64_t a, uint64_t b, int cin, int bits, uint64_t *res) {
    const uint64_t m = width_mask(bits);
    a &= m, b &= m;
    const u128 wide = (u128)a + b + (unsigned)cin;
    const uint64_t r = (uint64_t)wide & m;
    uint64_t f = ref_zsp(r, bits);
    if (wide > m) f |= FLAG_CF;
    if ((a ^ r) & (b ^ r) & sign_of(bits)) f |= FLAG_OF;
    if ((a ^ b ^ r) & 0x10) f |= FLAG_AF;
    *res = r;
    return f;
}

static inline uint64_t ref_sub(uint64_t a, uint64_t b, int bin, int bits, uint64_t *res) {
    const uint64_t m = width_mask(bits);
    a &= m, b &= m;
    const uint64_t r = (a - b - (unsigned)bin) & m;
    uint64_t f = ref_zsp(r, bits);
    if ((u128)a < (u128)b + (unsigned)bin) f |= FLAG_CF;
    if ((a ^ b) & (a ^ r) & sign_of(bits)) f |= FLAG_OF;
    if ((a ^ b ^ r) & 0x10) f |= FLAG_AF;
    *res = r;
    return f;
}

/* Operand values every test walks through. */
static const uint64_t kValues[] = {
    0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x12345678, 0x7FFFFFFF,
    0x80000000, 0xFFFFFFFF, 0x100000000ull, 0x7FFFFFFFFFFFFFFFull, 0x8000000000000000ull,
    0xFFFFFFFFFFFFFFFFull, 0xDEADBEEFCAFEBABEull, 0x0123456789ABCDEFull};
#define NVALUES (sizeof kValues / sizeof kValues[0])

/* Counts failures of a group of checks and prints the first mismatch. */
struct group {
    const char *name;
    int fails;
};
static inline void group_check(struct group *g, int ok, const char *what, uint64_t a, uint64_t b,
                               uint64_t got, uint64_t want) {
    if (ok) return;
    if (g->fails++ == 0)
        printf("  %s: %s a=0x%lx b=0x%lx got 0x%lx want 0x%lx\n", g->name, what, a, b, got, want);
}
static inline void group_report(struct group *g) { report(g->fails == 0, g->name); }

#endif
