# A branchy Linux user program for guest.linux.perf_lbr, like the lfsr demo guest: a 16-bit
# Fibonacci LFSR (taps 16, 14, 13, 11) stepped STEPS times; each step calls func_a when
# the state's two low bits are 00 and func_b otherwise. Its taken branches per step: the
# loop's JNZ back edge, then either the JZ to the call of func_a, the call, func_a's RET
# (about one step in four), or the call of func_b, func_b's RET and the JMP over the other
# call (the rest). Raw system calls, no C library: every user-mode branch the process
# retires is in this file. `lfsr_start` and `lfsr_end` bound its code.
        .set STEPS, 400000
        .text
        .globl _start, lfsr_start, lfsr_loop, func_a, func_b, lfsr_end, STEPS
lfsr_start:
_start:
        mov $STEPS, %ecx
        mov $0xACE1, %eax               # the LFSR's state
        xor %ebx, %ebx                  # what the functions accumulate
lfsr_loop:
        mov %eax, %edx                  # bit = s ^ s >> 2 ^ s >> 3 ^ s >> 5
        shr $2, %edx
        xor %eax, %edx
        mov %eax, %esi
        shr $3, %esi
        xor %esi, %edx
        shr $2, %esi
        xor %esi, %edx
        and $1, %edx
        shr $1, %eax                    # s = s >> 1 | bit << 15
        shl $15, %edx
        or %edx, %eax
        test $3, %al
        jz 1f
        call func_b
        jmp 2f
1:      call func_a
2:      dec %ecx
        jnz lfsr_loop
        mov $60, %eax                   # exit(0)
        xor %edi, %edi
        syscall
func_a:
        add $1, %ebx
        ret
func_b:
        add %eax, %ebx
        ret
lfsr_end:
        .section .note.GNU-stack, "", @progbits
