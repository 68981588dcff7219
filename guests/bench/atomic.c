/* Benchmark workload: locked read-modify-writes on aligned write-back memory (a reference
 * counter and a spinlock-style exchange), none of them a bus lock: the bus-lock detector's
 * worst case, every locked instruction checked and none reported. Prints a checksum. */
#include "sdk.h"

#ifndef ITERATIONS
#define ITERATIONS 5000000u
#endif

static volatile uint32_t counters[16] __attribute__((aligned(64)));

int main(void) {
    uint32_t sum = 0;
    for (uint32_t k = 0; k < ITERATIONS; ++k) {
        volatile uint32_t *c = &counters[k & 15];
        __asm__ volatile("lock incl %0" : "+m"(*c));
        uint32_t v = k;
        __asm__ volatile("xchgl %0, %1" : "+r"(v), "+m"(counters[(k + 1) & 15]));
        sum = sum * 31 + v;
        for (int spin = 0; spin < 4; ++spin) sum += (sum >> 3) ^ spin;
    }
    printf("atomic: %u iterations, checksum 0x%08x\n", ITERATIONS, sum);
    return 0;
}
