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
