/* Source of make_images.cc udloop.elf (32-bit code at 0x10000c): assemble with
 * as --32 and ld -m elf_i386 -Ttext=0x10000c --oformat=binary. A #UD handler whose first
 * instruction is ud2: every delivery raises #UD again and no instruction retires, so the
 * virtual clock stands still and --max-insns cannot end the run (softkvm run: 121). */
.code32
start:
    lgdt gdtr
    ljmp $0x08, $reload
reload:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x1000000, %esp
    mov $handler, %eax
    mov %ax, idt+6*8
    movw $0x08, idt+6*8+2
    movw $0x8E00, idt+6*8+4
    shr $16, %eax
    mov %ax, idt+6*8+6
    lidt idtr
    ud2
handler:
    ud2
.align 8
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
gdtr:
    .word 23
    .long gdt
idtr:
    .word 7*8-1
    .long idt
idt:
    .fill 7*8, 1, 0
