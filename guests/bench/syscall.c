/* Benchmark workload: ring transitions — ring 3 code making SYSCALLs and INT 0x80s to a
 * ring 0 handler. Prints a checksum. */
#include "sdk.h"

#ifndef CALLS
#define CALLS 1000000u
#endif

static uint64_t handler(uint64_t nr, uint64_t arg) { return nr + arg * 3; }
static volatile uint64_t int_count;
static void on_int80(struct sdk_frame *f) {
    ++int_count;
    f->rax += 1;
}

static void user(void) {
    uint64_t sum = 0;
    for (uint64_t k = 0; k < CALLS; ++k) {
        uint64_t rax = k & 7;
        __asm__ volatile("syscall" : "+a"(rax) : "D"(k) : "rcx", "r11", "memory");
        sum += rax;
        if ((k & 15) == 0) {
            rax = sum;
            __asm__ volatile("int $0x80" : "+a"(rax)::"memory");
            sum = rax;
        }
    }
    sdk_user_exit((int)(sum & 0x7FFFFFFF));
}

int main(void) {
    sdk_enable_user();
    sdk_enable_syscall(handler);
    sdk_on_vector(0x80, on_int80, 3);
    const int r = sdk_run_user(user, sdk_user_stack());
    printf("syscall: %u calls, %lu interrupts, checksum 0x%08x\n", CALLS, (uint64_t)int_count, r);
    return 0;
}
