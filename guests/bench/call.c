/* Benchmark workload: call/return-heavy code — recursive Fibonacci, then small functions
 * called through a table of pointers (indirect calls). Prints a checksum. */
#include "sdk.h"

#ifndef FIB_N
#define FIB_N 30u
#endif
#ifndef ROUNDS
#define ROUNDS 5000000u
#endif

__attribute__((noinline)) static uint64_t fib(uint32_t n) {
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}
__attribute__((noinline)) static uint64_t add3(uint64_t x) {
    return x + 3;
}
__attribute__((noinline)) static uint64_t mix(uint64_t x) {
    return (x ^ (x >> 7)) * 5;
}
static uint64_t (*volatile ops[2])(uint64_t) = {add3, mix};

int main(void) {
    uint64_t acc = fib(FIB_N);
    for (uint32_t k = 0; k < ROUNDS; ++k) acc = ops[k & 1](acc) + k;
    printf("call: fib(%u), %u rounds, checksum 0x%016lx\n", FIB_N, ROUNDS, acc);
    return 0;
}
