// A user program whose retired instructions and branches are known from its code alone,
// for `perf stat` inside the guest (guest.linux.perf_stat): a loop of ITERATIONS rounds
// of four instructions (one a conditional branch), then exit(0). Raw system calls, no C
// library, so every user-mode instruction the process retires is one of these.
    .set ITERATIONS, 100000
    .globl _start, count_loop, count_loop_end, ITERATIONS
    .text
_start:
    mov $ITERATIONS, %ecx
    xor %eax, %eax
count_loop:
    add $3, %eax
    xor %ecx, %eax
    dec %ecx
    jnz count_loop
count_loop_end:
    mov $60, %eax  // exit(0)
    xor %edi, %edi
    syscall
