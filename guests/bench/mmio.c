/* Benchmark workload: MMIO-heavy code, as a driver talks to a device. A register page
 * above RAM that no device claims: every access exits to the VMM, reads return all ones.
 * First 10,000 read/write pairs in straight-line code, each run once (as in a driver's
 * set-up path: every access is at a new RIP), then a polling loop of ITERATIONS pairs.
 * Prints a checksum. */
#include "sdk.h"

#ifndef ITERATIONS
#define ITERATIONS 100000u
#endif

#define MMIO_BASE 0xD0000000ull /* identity-mapped by the SDK, uncached */

#define PAIR                     \
    sum = sum * 31 + reg[0];     \
    reg[1] = (uint32_t)sum;
#define PAIR10 PAIR PAIR PAIR PAIR PAIR PAIR PAIR PAIR PAIR PAIR
#define PAIR100 PAIR10 PAIR10 PAIR10 PAIR10 PAIR10 PAIR10 PAIR10 PAIR10 PAIR10 PAIR10
#define PAIR1000 PAIR100 PAIR100 PAIR100 PAIR100 PAIR100 PAIR100 PAIR100 PAIR100 PAIR100 PAIR100

static uint64_t straight_line(volatile uint32_t* reg) {
    uint64_t sum = 0;
    PAIR1000 PAIR1000 PAIR1000 PAIR1000 PAIR1000 PAIR1000 PAIR1000 PAIR1000 PAIR1000 PAIR1000
    return sum;
}

int main(void) {
    volatile uint32_t* reg = (volatile uint32_t*)MMIO_BASE;
    uint64_t sum = straight_line(reg);
    for (uint32_t k = 0; k < ITERATIONS; ++k) {
        reg[1] = k;
        sum += reg[0];
        sum = sum * 31 + k;
    }
    printf("mmio: %u accesses, checksum 0x%016lx\n", 2 * (10000u + ITERATIONS), sum);
    return 0;
}
