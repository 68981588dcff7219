/* Conformance: PUSH/POP (register, memory, immediate, 16-bit), CALL/RET (near, RET imm),
 * ENTER/LEAVE, recursion, and PUSHF/POPF. */
#include "check.h"

static uint64_t fib(uint64_t n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
static uint64_t ackermann(uint64_t m, uint64_t n) {
    if (m == 0) return n + 1;
    if (n == 0) return ackermann(m - 1, 1);
    return ackermann(m - 1, ackermann(m, n - 1));
}

int main(void) {
    uint64_t rsp0, rsp1, v;
    __asm__ volatile("mov %%rsp, %0\n\tpushq $-2\n\tmov %%rsp, %1\n\tpopq %2"
                     : "=&r"(rsp0), "=&r"(rsp1), "=r"(v));
    report(rsp0 - rsp1 == 8 && v == (uint64_t)-2, "push imm8 sign-extends to 64 bits");

    uint16_t w;
    __asm__ volatile("mov %%rsp, %0\n\tpushw $0x1234\n\tmov %%rsp, %1\n\tpopw %2"
                     : "=&r"(rsp0), "=&r"(rsp1), "=r"(w));
    report(rsp0 - rsp1 == 2 && w == 0x1234, "16-bit push/pop move RSP by 2");

    static uint64_t cell = 0xCAFE, out;
    __asm__ volatile("pushq %1\n\tpopq %0" : "=m"(out) : "m"(cell));
    report(out == 0xCAFE, "push and pop memory operands");

    /* pop into (%rsp): the address uses the incremented RSP. */
    __asm__ volatile("pushq $0\n\tpushq $77\n\tpopq (%%rsp)\n\tpopq %0" : "=r"(v));
    report(v == 77, "pop to [rsp] uses the incremented RSP");

    /* call/ret with an immediate: the callee pops its argument. */
    __asm__ volatile(
        "pushq $5\n\t"
        "call 1f\n\t"
        "jmp 2f\n"
        "1: mov 8(%%rsp), %0\n\t"
        "ret $8\n"
        "2:"
        : "=r"(v)::"memory");
    report(v == 5, "call, and ret imm16 pops the argument");
    __asm__ volatile("mov %%rsp, %0" : "=r"(rsp1));

    /* enter/leave with a nesting level (fixed registers: RBP is in use here). */
    uint64_t frame, rbp_in, rsp_after;
    __asm__ volatile(
        "push %%rbp\n\t"
        "mov %%rsp, %%rbp\n\t"
        "mov %%rbp, %%rax\n\t"
        "enter $32, $2\n\t"
        "mov %%rbp, %%rcx\n\t"
        "mov %%rsp, %%rdx\n\t"
        "leave\n\t"
        "pop %%rbp"
        : "=a"(rbp_in), "=c"(frame), "=d"(rsp_after)::"memory");
    report(frame == rbp_in - 8, "enter: new frame pointer");
    report(rsp_after == rbp_in - 8 - 16 - 32, "enter level 2: display and locals");

    report(fib(20) == 6765, "recursion: fib(20)");
    report(ackermann(2, 3) == 9, "recursion: ackermann(2, 3)");

    /* pushf/popf round trip of the arithmetic flags and DF. */
    uint64_t f;
    __asm__ volatile("pushfq\n\torq $0x8D5, (%%rsp)\n\tpopfq\n\tpushfq\n\tpopq %0\n\tcld\n\t"
                     "pushq $2\n\tpopfq"
                     : "=r"(f)::"cc");
    report((f & 0xFD5) == 0x8D5, "popf sets CF PF AF ZF SF OF");
    report_summary();
}
