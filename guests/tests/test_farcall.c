/* Conformance: far CALL and far JMP to code segments at the current privilege level, and
 * LMSW (SDM vol. 2, CALL, JMP, RET, LMSW). Far calls from 64-bit code with 32- and 64-bit
 * operands, into compatibility mode and back; what they push; the checks made before
 * anything changes (#GP with the selector, #GP(0) for a null one, #NP). The high half of a CS slot pushed with a 32-bit operand is not
 * checked: the SDM leaves it open. */
#include "sdk.h"

#define VEC_NP 11
#define VEC_GP 13

/* Targets of the far calls: each records RSP and the two stack slots above it on entry
 * and returns with a far RET of the call's operand size. far32_target runs in
 * compatibility mode (GDT 0x40, 32-bit code). */
extern char far64_target[], far64q_target[], far32_target[], after_call32[], after_call64[];
volatile uint64_t seen_rsp, seen_slot[2];
volatile uint32_t seen_esp;
#define SAVE_SLOTS                                                                         \
    "    mov %rsp, seen_rsp(%rip)\n"                                                        \
    "    mov (%rsp), %rax\n"                                                                \
    "    mov %rax, seen_slot(%rip)\n"                                                       \
    "    mov 8(%rsp), %rax\n"                                                               \
    "    mov %rax, seen_slot+8(%rip)\n"
__asm__(".text\n"
        ".code64\n"
        "far64_target:\n" SAVE_SLOTS "    lretl\n"
        "far64q_target:\n" SAVE_SLOTS "    lretq\n"
        ".code32\n"
        "far32_target:\n"
        "    mov %esp, seen_esp\n"
        "    lretl\n"
        ".code64\n");

struct far32 {
    uint32_t off;
    uint16_t sel;
} __attribute__((packed));
struct far64 {
    uint64_t off;
    uint16_t sel;
} __attribute__((packed));

static struct far32 p32;
static struct far64 p64;

/* RSP just before the far call. */
volatile uint64_t before, after;

__attribute__((noinline)) static void call32(void *arg) {
    (void)arg;
    __asm__ volatile("mov %%rsp, before(%%rip)\n"
                     "lcall *%0\n"
                     ".global after_call32\n"
                     "after_call32:\n"
                     "mov %%rsp, after(%%rip)" ::"m"(p32)
                     : "rax", "cc", "memory");
}
__attribute__((noinline)) static void call64(void *arg) {
    (void)arg;
    __asm__ volatile("mov %%rsp, before(%%rip)\n"
                     "rex64 lcall *%0\n"
                     ".global after_call64\n"
                     "after_call64:\n"
                     "mov %%rsp, after(%%rip)" ::"m"(p64)
                     : "rax", "cc", "memory");
}
static void jmp32(void *arg) {
    (void)arg;
    __asm__ volatile("ljmp *%0" ::"m"(p32) : "rax", "cc", "memory");
}


extern uint64_t sdk_gdt[];

int main(void) {
    /* 32-bit operand in 64-bit mode: pushes CS then the return EIP, 4 bytes each. */
    p32 = (struct far32){(uint32_t)(uint64_t)far64_target, 0x08};
    call32(0);
    const uint32_t eip = (uint32_t)seen_slot[0], cs = (uint32_t)(seen_slot[0] >> 32);
    report(seen_rsp == before - 8, "lcall m16:32 pushes 8 bytes");
    report((uint16_t)cs == 0x08, "lcall m16:32 pushes CS");
    report(eip == (uint32_t)(uint64_t)after_call32, "lcall m16:32 pushes the return EIP");
    report(after == before, "lretl pops both");

    /* 64-bit operand (REX.W): CS and RIP as 8-byte slots. */
    p64 = (struct far64){(uint64_t)far64q_target, 0x08};
    call64(0);
    report(seen_rsp == before - 16, "rex64 lcall m16:64 pushes 16 bytes");
    report(seen_slot[1] == 0x08, "rex64 lcall pushes CS zero-extended to 64 bits");
    report(seen_slot[0] == (uint64_t)after_call64, "rex64 lcall pushes the return RIP");
    report(after == before, "lretq pops both");

    /* Into compatibility mode (32-bit code at DPL 0) and back with a 32-bit far RET. */
    p32 = (struct far32){(uint32_t)(uint64_t)far32_target, 0x40};
    seen_esp = 0;
    call32(0);
    report(seen_esp == (uint32_t)(before - 8), "lcall into compatibility mode and back");

    /* The checks before anything changes. */
    p32 = (struct far32){(uint32_t)(uint64_t)far64_target, 0x00};
    report(sdk_catch(call32, 0) == VEC_GP && sdk_last_error() == 0, "lcall to null selector #GP(0)");
    p32.sel = 0x10;
    report(sdk_catch(call32, 0) == VEC_GP && sdk_last_error() == 0x10,
           "lcall to a data segment #GP(sel)");
    p32.sel = 0x28;
    report(sdk_catch(call32, 0) == VEC_GP && sdk_last_error() == 0x28,
           "lcall to DPL 3 non-conforming code from CPL 0 #GP(sel)");
    p32.sel = 0x0B;
    report(sdk_catch(call32, 0) == VEC_GP && sdk_last_error() == 0x08,
           "lcall with RPL 3 > CPL to non-conforming code #GP(sel)");
    p32.sel = 0x1000;
    report(sdk_catch(call32, 0) == VEC_GP && sdk_last_error() == 0x1000,
           "lcall beyond the GDT limit #GP(sel)");
    p32.sel = 0x30;
    report(sdk_catch(call32, 0) == VEC_GP && sdk_last_error() == 0x30,
           "lcall to a TSS descriptor in IA-32e mode #GP(sel)");

    /* A not-present code segment: #NP(sel). */
    const uint64_t saved = sdk_gdt[8];
    sdk_gdt[8] = 0x00AF1A000000FFFFull; /* 0x40: 64-bit code, DPL 0, P = 0 */
    p32 = (struct far32){(uint32_t)(uint64_t)far64_target, 0x40};
    report(sdk_catch(call32, 0) == VEC_NP && sdk_last_error() == 0x40, "lcall to a not-present segment #NP(sel)");
    p32.sel = 0x40;
    report(sdk_catch(jmp32, 0) == VEC_NP && sdk_last_error() == 0x40,
           "ljmp to a not-present segment #NP(sel)");
    /* A conforming code segment with DPL 3 is callable from CPL 0 (DPL <= CPL fails: #GP)... */
    sdk_gdt[8] = 0x00AFFE000000FFFFull; /* 0x40: 64-bit conforming code, DPL 3 */
    report(sdk_catch(call32, 0) == VEC_GP && sdk_last_error() == 0x40,
           "lcall to conforming code with DPL > CPL #GP(sel)");
    sdk_gdt[8] = 0x00AF9E000000FFFFull; /* ... DPL 0 conforming: allowed */
    p32 = (struct far32){(uint32_t)(uint64_t)far64_target, 0x40};
    seen_rsp = 0;
    report(sdk_catch(call32, 0) == -1 && seen_rsp == before - 8,
           "lcall to conforming code with DPL = CPL");
    /* Back on the SDK's code segment (the far RET above returned to CS 0x08). */
    p32 = (struct far32){(uint32_t)(uint64_t)far64_target, 0x28};
    report(sdk_catch(jmp32, 0) == VEC_GP && sdk_last_error() == 0x28,
           "ljmp to DPL 3 non-conforming code from CPL 0 #GP(sel)");
    sdk_gdt[8] = saved;

    /* LMSW: CR0[3:0] from the source; PE stays set. */
    const uint64_t cr0 = read_cr0();
    uint16_t w = (uint16_t)((cr0 & ~0xFull) | 0x8); /* TS on, PE/MP/EM off */
    __asm__ volatile("lmsw %0" ::"r"(w) : "memory");
    uint64_t now = read_cr0();
    report((now & 0xF) == (0x8 | 0x1), "lmsw sets TS, clears MP/EM, cannot clear PE");
    report((now & ~0xFull) == (cr0 & ~0xFull), "lmsw leaves CR0[63:4] alone");
    uint16_t m = (uint16_t)(cr0 & 0xF);
    __asm__ volatile("lmsw %0" ::"m"(m) : "memory");
    report(read_cr0() == cr0, "lmsw m16 restores CR0[3:0]");
    write_cr0(cr0);
    report_summary();
}
