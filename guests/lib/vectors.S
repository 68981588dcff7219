/* Exception entry stubs for vectors 0-31: push a zero error code where the CPU pushes
 * none, push the vector, save the general registers and call sdk_exception(frame). */
    .code64
    .text

.macro VECTOR n, has_error
    .global sdk_vector_\n
sdk_vector_\n:
    .if \has_error == 0
    pushq $0
    .endif
    pushq $\n
    jmp vector_common
.endm

VECTOR 0, 0
VECTOR 1, 0
VECTOR 2, 0
VECTOR 3, 0
VECTOR 4, 0
VECTOR 5, 0
VECTOR 6, 0
VECTOR 7, 0
VECTOR 8, 1
VECTOR 9, 0
VECTOR 10, 1
VECTOR 11, 1
VECTOR 12, 1
VECTOR 13, 1
VECTOR 14, 1
VECTOR 15, 0
VECTOR 16, 0
VECTOR 17, 1
VECTOR 18, 0
VECTOR 19, 0
VECTOR 20, 0
VECTOR 21, 1
VECTOR 22, 0
VECTOR 23, 0
VECTOR 24, 0
VECTOR 25, 0
VECTOR 26, 0
VECTOR 27, 0
VECTOR 28, 0
VECTOR 29, 1
VECTOR 30, 1
VECTOR 31, 0

/* Vectors 32-255: 16-byte stubs from sdk_irq_stubs, in vector order. */
    .balign 16
    .global sdk_irq_stubs
sdk_irq_stubs:
    .set vec, 32
    .rept 224
    .balign 16
    pushq $0
    pushq $vec
    jmp vector_common
    .set vec, vec + 1
    .endr

vector_common:
    push %rax
    push %rcx
    push %rdx
    push %rbx
    push %rbp
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    call sdk_exception
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rbp
    pop %rbx
    pop %rdx
    pop %rcx
    pop %rax
    add $16, %rsp   /* vector and error code */
    iretq

/* int sdk_catch(void (*fn)(void *), void *arg): runs fn(arg); returns -1, or the vector
 * of the first exception fn raised (fn is abandoned at that point). */
    .global sdk_catch
sdk_catch:
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, sdk_catch_rsp(%rip)
    movl $1, sdk_catch_active(%rip)
    mov %rdi, %rax
    mov %rsi, %rdi
    call *%rax
    movl $0, sdk_catch_active(%rip)
    mov $-1, %eax
catch_return:
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret

/* The exception handler resumes here (RSP restored to sdk_catch_rsp). */
    .global sdk_catch_landing
sdk_catch_landing:
    mov sdk_catch_rsp(%rip), %rsp
    mov sdk_catch_vector(%rip), %eax
    jmp catch_return

/* SYSCALL entry: switch to the kernel syscall stack, call
 * uint64_t sdk_syscall(uint64_t nr = RAX, uint64_t arg = RDI) and SYSRET to the caller. */
    .global sdk_syscall_entry
sdk_syscall_entry:
    mov %rsp, sdk_syscall_user_rsp(%rip)
    mov sdk_syscall_stack_top(%rip), %rsp
    /* Everything but RAX, RCX and R11 survives a system call. */
    push %rcx
    push %r11
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    mov %rax, %rsi
    xchg %rsi, %rdi             /* nr -> RDI, arg -> RSI */
    call sdk_syscall
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %r11
    pop %rcx
    mov sdk_syscall_user_rsp(%rip), %rsp
    sysretq

/* int sdk_run_user(void (*fn)(void), uint64_t user_rsp): runs fn at CPL 3 until it
 * calls sdk_user_exit() (INT 0x81); returns the value passed there. */
    .global sdk_run_user
sdk_run_user:
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, sdk_user_kernel_rsp(%rip)
    pushq $0x23                 /* SS: user data, RPL 3 */
    pushq %rsi                  /* RSP */
    pushq $0x202                /* RFLAGS: IF */
    pushq $0x2B                 /* CS: user 64-bit code, RPL 3 */
    pushq %rdi                  /* RIP */
    iretq

    .global sdk_user_landing
sdk_user_landing:
    mov sdk_user_kernel_rsp(%rip), %rsp
    mov sdk_user_result(%rip), %eax
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret

    .global sdk_user_exit
sdk_user_exit:
    mov %edi, %eax
    int $0x81
1:  jmp 1b
