/* The demo guest: a greeting, then a computed result (the first primes and a CRC-32 of
 * them), the same on every accelerator and under QEMU. */
#include "sdk.h"

static uint32_t crc32(const uint8_t *p, unsigned long n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return ~c;
}

int main(void) {
    printf("Hello from a softkvm guest: 64-bit long mode, paging on.\n");
    static uint32_t primes[100];
    int n = 0;
    for (uint32_t v = 2; n < 100; ++v) {
        int prime = 1;
        for (int k = 0; k < n && primes[k] * primes[k] <= v; ++k)
            if (v % primes[k] == 0) prime = 0;
        if (prime) primes[n++] = v;
    }
    printf("The 100th prime is %u; CRC-32 of the first 100 primes: 0x%08x\n", primes[99],
           crc32((const uint8_t *)primes, sizeof primes));
    return 0;
}
