/* Benchmark workload: branch-heavy code — a bytecode interpreter with an unpredictable
 * dispatch and data-dependent conditionals. Prints a checksum. */
#include "sdk.h"
#ifdef LBR_RECORDING
#include "pmu.h"
#endif

#ifndef ROUNDS
#define ROUNDS 400000u
#endif

static uint8_t program[64];

int main(void) {
#ifdef LBR_RECORDING
    /* bench_branch_lbr: guest LBR recording on for the whole run, every branch class
     * (scripts/bench_lbr.sh compares it with bench_branch). */
    wrmsr(MSR_LBR_SELECT, 0);
    wrmsr(MSR_DEBUGCTL, DEBUGCTL_LBR);
#endif
    uint32_t seed = 12345;
    for (int k = 0; k < 64; ++k) {
        seed = seed * 1103515245u + 12345u;
        program[k] = (uint8_t)((seed >> 16) % 6);
    }
    uint64_t acc = 1, x = 7;
    for (uint32_t r = 0; r < ROUNDS; ++r) {
        for (int pc = 0; pc < 64; ++pc) {
            switch (program[pc]) {
                case 0: acc += x; break;
                case 1: acc ^= acc >> 3; break;
                case 2: if (acc & 1) x += 3; else x -= 1; break;
                case 3: acc = (acc << 1) | (acc >> 63); break;
                case 4: if ((acc ^ x) & 4) acc += r; break;
                default: x ^= acc; break;
            }
        }
    }
    printf("branch: %u rounds, checksum 0x%016lx\n", ROUNDS, acc ^ x);
    return 0;
}
