/* Source of make_images.cc apic.elf (32-bit code at 0x10000c): assemble with
 * as --32 and ld -m elf_i386 -Ttext=0x10000c --oformat=binary. */
.code32
start:
    /* Mask both 8259 PICs: only the local APIC timer interrupts (a PC's firmware, as
     * under QEMU, leaves the PIT's IRQ 0 unmasked, and this IDT has no vector for it). */
    mov $0xff, %al
    out %al, $0x21
    out %al, $0xa1
    lgdt gdtr
    ljmp $0x08, $reload
reload:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x90000, %esp
    /* IDT at 0x6000: vector 0x30 -> handler */
    mov $handler, %eax
    mov %ax, 0x6000+0x30*8
    movw $0x08, 0x6000+0x30*8+2
    movw $0x8E00, 0x6000+0x30*8+4
    shr $16, %eax
    mov %ax, 0x6000+0x30*8+6
    lidt idtr
    movl $0x1FF, 0xFEE000F0
    movl $0xB, 0xFEE003E0
    movl $0x30, 0xFEE00320
    movl $1000000, 0xFEE00380
    sti
    hlt
    cli
    mov $0x3f8, %dx
    mov $'\n', %al
    out %al, %dx
    mov $0xf4, %dx
    xor %eax, %eax
    out %eax, %dx
    hlt
handler:
    push %eax
    push %edx
    mov $0x3f8, %dx
    mov $'T', %al
    out %al, %dx
    movl $0, 0xFEE000B0
    pop %edx
    pop %eax
    iret
    .align 8
gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF
    .quad 0x00CF92000000FFFF
gdtr: .word 23
      .long gdt
idtr: .word 0x7ff
      .long 0x6000
