/* Benchmark workload: an integer loop (arithmetic, shifts, multiply, loads and stores,
 * branches) that prints a checksum. ITERATIONS sets the length. */
#include "sdk.h"

#ifndef ITERATIONS
#define ITERATIONS 20000000u
#endif

static uint32_t table[1024];

int main(void) {
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (uint32_t i = 0; i < 1024; ++i) table[i] = i * 2654435761u;
    for (uint32_t i = 0; i < ITERATIONS; ++i) {
        uint32_t x = table[i & 1023];
        h ^= x + (h << 6) + (h >> 2);
        h = (h << 13) | (h >> 51);
        if (h & 1) table[(i * 7) & 1023] = (uint32_t)h;
        h *= 0xFF51AFD7ED558CCDull;
    }
    printf("intloop: %u iterations, checksum 0x%016lx\n", ITERATIONS, h);
    return 0;
}
