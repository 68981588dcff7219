/* Benchmark workload: memory- and paging-heavy code — strided and random accesses over
 * 64 MiB, touching many pages (TLB misses), plus copies. Prints a checksum. */
#include "sdk.h"

#define SIZE (64u << 20)
#ifndef PASSES
#define PASSES 6u
#endif

static uint8_t arena[SIZE] __attribute__((aligned(4096)));

int main(void) {
    uint64_t sum = 0;
    uint32_t seed = 1;
    for (uint32_t p = 0; p < PASSES; ++p) {
        for (uint32_t off = 0; off < SIZE; off += 4096 + 64) arena[off] += (uint8_t)(off >> 12);
        for (uint32_t k = 0; k < 2000000; ++k) {
            seed = seed * 1664525u + 1013904223u;
            sum += arena[seed % SIZE];
            arena[(seed >> 7) % SIZE] ^= (uint8_t)k;
        }
        memcpy(arena + SIZE / 2, arena, 1u << 20);
    }
    printf("memory: %u passes, checksum 0x%016lx\n", PASSES, sum);
    return 0;
}
