/* Multiboot v1 header and the 32-bit entry: zero BSS, identity-map the first 1 GiB with
 * 2 MiB pages, enable PAE, long mode and paging, load a 64-bit GDT, and call main(). */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* page-align modules, memory information */

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .section .boot, "ax"
    .code32
    .global _start
_start:
    cli
    cld
    mov %ebx, sdk_mb_info   /* the multiboot information (EBX at entry, §3.2) */
    /* Zero BSS (page tables and stacks live there). */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb
    mov $boot_stack_top, %esp

    /* Identity map of the first 4 GiB with 2 MiB pages: PML4[0] -> PDPT, PDPT[i] -> the
     * i-th page of sdk_pd, PD entry j = j * 2 MiB (present, writable, large). The top
     * GiB (local APIC and other MMIO) is uncached: PCD | PWT. */
    mov $sdk_pdpt, %eax
    or $0x3, %eax
    mov %eax, sdk_pml4
    xor %ecx, %ecx
0:  mov %ecx, %eax
    shl $12, %eax
    add $sdk_pd, %eax
    or $0x3, %eax
    mov %eax, sdk_pdpt(,%ecx,8)
    inc %ecx
    cmp $4, %ecx
    jne 0b
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    cmp $1536, %ecx
    jb 2f
    or $0x18, %eax
2:  mov %eax, sdk_pd(,%ecx,8)
    mov %ecx, %eax
    shr $11, %eax              /* bits 32+ of the address: i >> 11 */
    mov %eax, sdk_pd+4(,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jne 1b

    mov $sdk_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax          /* PAE */
    mov %eax, %cr4
    mov $0xC0000080, %ecx   /* EFER */
    rdmsr
    or $0x100, %eax         /* LME */
    wrmsr
    mov %cr0, %eax
    or $0x80010000, %eax    /* PG | WP */
    mov %eax, %cr0
    lgdt gdt_ptr
    ljmp $0x08, $long_entry

    .code64
long_entry:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    mov $sdk_stack_top, %rsp
    xor %ebp, %ebp
    call sdk_init
    call main
    mov %eax, %edi
    call exit_guest
2:  hlt
    jmp 2b

    .section .data
    .align 4
    .global sdk_mb_info
sdk_mb_info:
    .long 0

/* Application-processor start-up. sdk_start_aps() copies this real-mode trampoline to
 * 0x8000 (start-up vector 0x08), fills in its GDT pointer and sends INIT and SIPI. */
    .section .rodata
    .code16
    .global sdk_ap_tramp, sdk_ap_tramp_end, sdk_ap_tramp_gdtr
sdk_ap_tramp:
    cli
    xor %ax, %ax
    mov %ax, %ds
    lgdtl 0x8000 + (sdk_ap_tramp_gdtr - sdk_ap_tramp)
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x40, $ap_entry32
    .align 4
sdk_ap_tramp_gdtr:
    .word 0
    .long 0
sdk_ap_tramp_end:

    .section .boot, "ax"
    .code32
ap_entry32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $sdk_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $0xC0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80010000, %eax
    mov %eax, %cr0
    ljmp $0x08, $ap_entry64
    .code64
ap_entry64:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $1, %eax
    lock xadd %eax, sdk_ap_count(%rip)   /* this AP's index: 0, 1, ... */
    lea 1(%rax), %edi                    /* CPU number: 1, 2, ... */
    mov %rdi, %rcx
    shl $13, %rcx                        /* 8 KiB stacks */
    lea sdk_ap_stacks(%rip), %rsp
    add %rcx, %rsp
    call sdk_ap_main
1:  cli
    hlt
    jmp 1b

    .section .data
    .align 16
    .global sdk_gdt
sdk_gdt:
    .quad 0                     /* null */
    .quad 0x00AF9A000000FFFF    /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00CF92000000FFFF    /* 0x10: data, DPL 0 */
    .quad 0x00CFFA000000FFFF    /* 0x18: 32-bit code, DPL 3 (SYSRET's STAR base) */
    .quad 0x00CFF2000000FFFF    /* 0x20: data, DPL 3 */
    .quad 0x00AFFA000000FFFF    /* 0x28: 64-bit code, DPL 3 */
    .quad 0, 0                  /* 0x30: TSS, filled in by sdk_init */
    .quad 0x00CF9A000000FFFF    /* 0x40: 32-bit code, DPL 0 (AP start-up) */
gdt_ptr:
    .word gdt_ptr - sdk_gdt - 1
    .long sdk_gdt

    .section .bss
    .align 4096
    .global sdk_pml4, sdk_pdpt, sdk_pd
sdk_pml4: .skip 4096
sdk_pdpt: .skip 4096
sdk_pd:   .skip 4 * 4096
    .align 16
boot_stack: .skip 1024
boot_stack_top:
    .align 16
sdk_stack: .skip 65536
    .global sdk_stack_top
sdk_stack_top:
    .global sdk_ap_stacks, sdk_ap_count
    .align 16
sdk_ap_stacks: .skip 8 * 8192
    .align 4
sdk_ap_count: .skip 4
