# A Linux user program for guest.linux.splitlock: 100 locked adds to a dword that
# straddles two cache lines (split locks, each a bus lock), then one line on stdout and
# exit(0). Raw system calls, no C library. `split_lock_add` is the locked instruction,
# `after_split_lock` the next one (the RIP a bus-lock trap reports).
        .text
        .globl _start, split_lock_add, after_split_lock
_start:
        mov $100, %ecx
split_lock_add:
        lock addl $1, buf+62(%rip)
after_split_lock:
        dec %ecx
        jnz split_lock_add
        mov $1, %eax                    # write(1, msg, len)
        mov $1, %edi
        lea msg(%rip), %rsi
        mov $len, %edx
        syscall
        mov $60, %eax                   # exit(0)
        xor %edi, %edi
        syscall

        .section .rodata
msg:    .ascii "splitlock: 100 split-locked adds done\n"
        .set len, . - msg

        .bss
        .balign 64
buf:    .skip 128
        .section .note.GNU-stack, "", @progbits
