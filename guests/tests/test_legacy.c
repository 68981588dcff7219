/* Conformance: legacy instructions (SDM vol. 2). In compatibility mode (GDT 0x40, 32-bit
 * code): the decimal adjustments AAA AAS DAA DAS AAM AAD over every AL with every AF and
 * CF, checked against the SDM's pseudo-code; AAM 0's #DE; PUSHA/POPA in 32 and 16 bits;
 * BOUND (#BR) and INTO (#OF, a trap); ARPL; XLAT with DS and an ES override; LDS/LES/LSS
 * and their #GP. In 64-bit mode: XLAT, LFS/LGS/LSS, and #UD for the opcodes that are
 * invalid there. Flags the SDM leaves undefined are masked out of every comparison (they
 * differ between processors). */
#include "sdk.h"

#define VEC_DE 0
#define VEC_OF 4
#define VEC_BR 5
#define VEC_UD 6
#define VEC_GP 13

#define CF 0x001u
#define PF 0x004u
#define AF 0x010u
#define ZF 0x040u
#define SF 0x080u
#define OF 0x800u

/* The compatibility-mode harness: run32 loads EAX..EBP and EFLAGS from `io`, calls the
 * 32-bit stub at io.fn, stores the registers and EFLAGS back and returns with a far RET. */
struct io32 {
    uint32_t eax, ebx, ecx, edx, esi, edi, ebp, flags, fn;
} __attribute__((packed));
volatile struct io32 io;
volatile uint32_t pa_out[8];
volatile uint16_t pa16_out[8];
volatile int32_t bound32[2];
volatile int16_t bound16[2];
volatile uint8_t xlat_table[256];
struct far32 {
    uint32_t off;
    uint16_t sel;
} __attribute__((packed));
volatile struct far32 fptr;

extern char run32[], s_daa[], s_das[], s_aaa[], s_aas[], s_aam[], s_aam16[], s_aam0[], s_aad[],
    s_aad7[], s_pusha[], s_popa[], s_pushaw[], s_bound[], s_bound16[], s_into[], s_arpl[],
    s_arpl_mem[], s_xlat[], s_xlat_es[], s_les[], s_lds[], s_lss[];
volatile uint16_t arpl_mem;

__asm__(
    ".text\n"
    ".code32\n"
    "run32:\n"
    "    mov io, %eax\n"
    "    mov io+4, %ebx\n"
    "    mov io+8, %ecx\n"
    "    mov io+12, %edx\n"
    "    mov io+16, %esi\n"
    "    mov io+20, %edi\n"
    "    mov io+24, %ebp\n"
    "    pushl io+28\n"
    "    popfl\n"
    "    call *io+32\n"
    "    pushfl\n"
    "    popl io+28\n"
    "    mov %eax, io\n"
    "    mov %ebx, io+4\n"
    "    mov %ecx, io+8\n"
    "    mov %edx, io+12\n"
    "    mov %esi, io+16\n"
    "    mov %edi, io+20\n"
    "    mov %ebp, io+24\n"
    "    lretl\n"
    "s_daa: daa\n ret\n"
    "s_das: das\n ret\n"
    "s_aaa: aaa\n ret\n"
    "s_aas: aas\n ret\n"
    "s_aam: aam\n ret\n"
    "s_aam16: aam $16\n ret\n"
    "s_aam0: .byte 0xd4, 0x00\n ret\n"
    "s_aad: aad\n ret\n"
    "s_aad7: aad $7\n ret\n"
    /* PUSHA, then its eight slots popped to pa_out (EDI first). */
    "s_pusha: pushal\n"
    "    popl pa_out\n popl pa_out+4\n popl pa_out+8\n popl pa_out+12\n"
    "    popl pa_out+16\n popl pa_out+20\n popl pa_out+24\n popl pa_out+28\n"
    "    ret\n"
    "s_pushaw: pushaw\n"
    "    popw pa16_out\n popw pa16_out+2\n popw pa16_out+4\n popw pa16_out+6\n"
    "    popw pa16_out+8\n popw pa16_out+10\n popw pa16_out+12\n popw pa16_out+14\n"
    "    ret\n"
    /* POPA of eight known slots; the ESP slot (0x55555555) is skipped. */
    "s_popa: pushl $0x11111111\n pushl $0x22222222\n pushl $0x33333333\n"
    "    pushl $0x44444444\n pushl $0x55555555\n pushl $0x66666666\n"
    "    pushl $0x77777777\n pushl $0x88888888\n"
    "    popal\n"
    "    ret\n"
    "s_bound: boundl %eax, bound32\n ret\n"
    "s_bound16: boundw %ax, bound16\n ret\n"
    "s_into: into\n ret\n"
    "s_arpl: arpl %bx, %ax\n ret\n"
    "s_arpl_mem: arpl %bx, arpl_mem\n ret\n"
    "s_xlat: xlat\n ret\n"
    "s_xlat_es: es xlat\n ret\n"
    /* LES/LDS/LSS of fptr: the selector loaded goes to ECX, then the flat data
     * selector back. */
    "s_les: les fptr, %eax\n mov %es, %ecx\n push %ds\n pop %es\n ret\n"
    "s_lds: push %ds\n lds fptr, %eax\n mov %ds, %ecx\n pop %ds\n ret\n"
    "s_lss: lss fptr, %eax\n mov %ss, %ecx\n ret\n"
    ".code64\n");

static struct far32 to_run32;

/* Calls run32 in compatibility mode with the registers of `io`. The 64-bit registers it
 * cannot see are saved around the call. */
__attribute__((noinline)) static void call32(void* arg) {
    (void)arg;
    __asm__ volatile(
        "push %%rbx\n push %%rbp\n push %%r12\n push %%r13\n push %%r14\n push %%r15\n"
        "lcall *%0\n"
        "pop %%r15\n pop %%r14\n pop %%r13\n pop %%r12\n pop %%rbp\n pop %%rbx\n" ::"m"(to_run32)
        : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "cc", "memory");
}

/* Runs stub `fn` with EAX and the arithmetic flags given; returns the vector it raised, or
 * -1 (io holds the results). */
static int run(char* fn, uint32_t eax, uint32_t flags) {
    io.eax = eax;
    io.ebx = io.ecx = io.edx = io.esi = io.edi = io.ebp = 0;
    io.flags = 0x2 | flags;
    io.fn = (uint32_t)(uint64_t)fn;
    return sdk_catch(call32, 0);
}

/* The SDM's pseudo-code for each adjustment: AX and the defined flags from AX and the
 * input flags. */
static uint32_t zsp(uint8_t r) {
    return (r == 0 ? ZF : 0) | (r & 0x80 ? SF : 0) | (__builtin_parity(r) ? 0 : PF);
}
static void ref_daa(int sub, uint16_t ax, uint32_t f, uint16_t* out, uint32_t* of) {
    uint8_t al = (uint8_t)ax, old_al = al;
    int old_cf = f & CF, cf = 0, af = 0;
    if ((al & 0xF) > 9 || (f & AF)) {
        cf = old_cf || (sub ? al < 6 : al > 0xF9); /* the carry or borrow of AL +/- 6 */
        al = (uint8_t)(sub ? al - 6 : al + 6);
        af = 1;
    }
    if (old_al > 0x99 || old_cf) {
        al = (uint8_t)(sub ? al - 0x60 : al + 0x60);
        cf = 1;
    } else if (!sub) {
        cf = 0; /* DAA's second step clears CF; DAS's keeps the borrow */
    }
    *out = (uint16_t)((ax & 0xFF00) | al);
    *of = zsp(al) | (af ? AF : 0) | (cf ? CF : 0);
}
static void ref_aaa(int sub, uint16_t ax, uint32_t f, uint16_t* out, uint32_t* of) {
    int adj = (ax & 0xF) > 9 || (f & AF);
    if (adj) ax = (uint16_t)(sub ? ax - 0x106 : ax + 0x106);
    *out = ax & 0xFF0F;
    *of = adj ? AF | CF : 0;
}

/* Every AL with every AF and CF (and AH 0x00, 0x7F and 0xFF) through `stub`; the
 * mismatches against the reference are counted. */
static void check_adjust(const char* name, char* stub, int sub, int daa) {
    static const uint16_t ahs[3] = {0x00, 0x7F, 0xFF};
    const uint32_t mask = daa ? CF | AF | SF | ZF | PF : CF | AF;
    int bad = 0, n = 0;
    for (int h = 0; h < 3; ++h)
        for (uint32_t al = 0; al < 256; ++al)
            for (uint32_t fl = 0; fl < 4; ++fl) {
                uint32_t f = (fl & 1 ? CF : 0) | (fl & 2 ? AF : 0);
                uint16_t ax = (uint16_t)(ahs[h] << 8 | al), want;
                uint32_t wf;
                (daa ? ref_daa : ref_aaa)(sub, ax, f, &want, &wf);
                ++n;
                if (run(stub, 0xABCD0000u | ax, f) != -1 || (uint16_t)io.eax != want ||
                    (io.eax >> 16) != 0xABCD || (io.flags & mask) != (wf & mask)) {
                    if (!bad)
                        printf(
                            "  %s AX=%04x flags=%x: got AX=%04x flags=%x, want AX=%04x "
                            "flags=%x\n",
                            name, ax, f, io.eax & 0xFFFF, io.flags & mask, want, wf & mask);
                    ++bad;
                }
            }
    printf("%s: %d inputs, %d differ from the SDM\n", name, n, bad);
    report(bad == 0, name);
}

static void check_aam_aad(void) {
    int bad = 0;
    for (uint32_t ax = 0; ax < 0x10000; ax += 0x35) {
        uint8_t al = (uint8_t)ax, ah = (uint8_t)(ax >> 8);
        struct {
            char* stub;
            uint16_t want;
        } c[4] = {{s_aam, (uint16_t)((al / 10) << 8 | al % 10)},
                  {s_aam16, (uint16_t)((al / 16) << 8 | al % 16)},
                  {s_aad, (uint8_t)(al + ah * 10)},
                  {s_aad7, (uint8_t)(al + ah * 7)}};
        for (int k = 0; k < 4; ++k) {
            uint8_t r = (uint8_t)c[k].want;
            if (run(c[k].stub, ax, CF | AF | OF) != -1 || (uint16_t)io.eax != c[k].want ||
                (io.flags & (SF | ZF | PF)) != zsp(r))
                ++bad;
        }
    }
    report(bad == 0, "AAM 10/16 and AAD 10/7: AX and SF ZF PF as the SDM gives");
    report(run(s_aam0, 0x1234, 0) == VEC_DE && (uint16_t)io.eax == 0x1234, "AAM 0 raises #DE");
}

static void check_pusha_popa(void) {
    io.fn = (uint32_t)(uint64_t)s_pusha;
    io.eax = 0xA0A0A0A0;
    io.ebx = 0xB0B0B0B0;
    io.ecx = 0xC0C0C0C0;
    io.edx = 0xD0D0D0D0;
    io.esi = 0x51515151;
    io.edi = 0xD1D1D1D1;
    io.ebp = 0xBEBEBEBE;
    io.flags = 0x2;
    sdk_catch(call32, 0);
    /* The ESP slot: the stack pointer before PUSHA, 4 below the run32 frame's return. */
    report(pa_out[0] == 0xD1D1D1D1 && pa_out[1] == 0x51515151 && pa_out[2] == 0xBEBEBEBE &&
               pa_out[4] == 0xB0B0B0B0 && pa_out[5] == 0xD0D0D0D0 && pa_out[6] == 0xC0C0C0C0 &&
               pa_out[7] == 0xA0A0A0A0,
           "PUSHAD pushes EAX ECX EDX EBX ESP EBP ESI EDI");
    uint32_t esp_slot = pa_out[3];
    io.fn = (uint32_t)(uint64_t)s_pushaw;
    sdk_catch(call32, 0);
    report(pa16_out[0] == 0xD1D1 && pa16_out[1] == 0x5151 && pa16_out[2] == 0xBEBE &&
               pa16_out[4] == 0xB0B0 && pa16_out[5] == 0xD0D0 && pa16_out[6] == 0xC0C0 &&
               pa16_out[7] == 0xA0A0 && pa16_out[3] == (uint16_t)esp_slot,
           "PUSHAW pushes the 16-bit registers and SP");
    run(s_popa, 0, 0);
    report(io.edi == 0x88888888 && io.esi == 0x77777777 && io.ebp == 0x66666666 &&
               io.ebx == 0x44444444 && io.edx == 0x33333333 && io.ecx == 0x22222222 &&
               io.eax == 0x11111111,
           "POPAD pops EDI ESI EBP, skips the ESP slot, pops EBX EDX ECX EAX");
}

static void check_bound_into_arpl(void) {
    bound32[0] = -5;
    bound32[1] = 70000;
    bound16[0] = -3;
    bound16[1] = 9;
    report(run(s_bound, (uint32_t)-5, 0) == -1 && run(s_bound, 70000, 0) == -1 &&
               run(s_bound, 0, 0) == -1,
           "BOUND within [lower, upper] (signed, 32-bit)");
    report(run(s_bound, (uint32_t)-6, 0) == VEC_BR && run(s_bound, 70001, 0) == VEC_BR,
           "BOUND outside raises #BR");
    report(run(s_bound16, 0xFFFFFFFDu, 0) == -1 && run(s_bound16, 9, 0) == -1 &&
               run(s_bound16, 0xFFFF000Au, 0) == VEC_BR && run(s_bound16, 0xFFFC, 0) == VEC_BR,
           "BOUND with 16-bit operands compares AX only");
    report(run(s_into, 7, 0) == -1 && (io.flags & OF) == 0, "INTO with OF clear goes on");
    report(run(s_into, 7, OF) == VEC_OF, "INTO with OF set raises #OF");
    report(sdk_last_rip() == (uint64_t)s_into + 1, "#OF from INTO is a trap (RIP after INTO)");
    int ok = 1;
    for (uint32_t d = 0; d < 4; ++d)
        for (uint32_t sr = 0; sr < 4; ++sr) {
            io.ebx = 0x5558 | sr;
            io.flags = 0x2 | (d & 1 ? ZF : 0);
            io.fn = (uint32_t)(uint64_t)s_arpl;
            io.eax = 0xFFFF1230 | d;
            /* run() would clear EBX: set the fields by hand. */
            if (sdk_catch(call32, 0) != -1) ok = 0;
            uint32_t want = d < sr ? (0xFFFF1230 | sr) : (0xFFFF1230 | d);
            if (io.eax != want || !!(io.flags & ZF) != (d < sr)) ok = 0;
        }
    report(ok, "ARPL raises the destination's RPL to the source's and sets ZF, else clears ZF");
    arpl_mem = 0x0010;
    io.ebx = 0x0023;
    io.flags = 0x2;
    io.fn = (uint32_t)(uint64_t)s_arpl_mem;
    report(sdk_catch(call32, 0) == -1 && arpl_mem == 0x0013 && (io.flags & ZF),
           "ARPL with a memory destination");
}

static void check_xlat_far(void) {
    for (int k = 0; k < 256; ++k) xlat_table[k] = (uint8_t)(k * 7 + 3);
    io.ebx = (uint32_t)(uint64_t)xlat_table;
    io.eax = 0x12345600 | 200;
    io.flags = 0x2;
    io.fn = (uint32_t)(uint64_t)s_xlat;
    report(sdk_catch(call32, 0) == -1 && io.eax == (0x12345600 | (uint8_t)(200 * 7 + 3)),
           "XLAT: AL = [EBX + AL]");
    io.ebx = (uint32_t)(uint64_t)xlat_table;
    io.eax = 17;
    io.fn = (uint32_t)(uint64_t)s_xlat_es;
    report(sdk_catch(call32, 0) == -1 && io.eax == (uint8_t)(17 * 7 + 3), "XLAT with ES:");

    fptr.off = 0xCAFE1234;
    fptr.sel = 0x23;
    report(run(s_les, 0, 0) == -1 && io.eax == 0xCAFE1234 && (io.ecx & 0xFFFF) == 0x23,
           "LES loads ES and the offset");
    fptr.sel = 0x10;
    report(run(s_lds, 0, 0) == -1 && io.eax == 0xCAFE1234 && (io.ecx & 0xFFFF) == 0x10,
           "LDS loads DS and the offset");
    report(run(s_lss, 0, 0) == -1 && io.eax == 0xCAFE1234 && (io.ecx & 0xFFFF) == 0x10,
           "LSS loads SS and the offset");
    fptr.sel = 0x30;
    report(run(s_les, 0x5A5A, 0) == VEC_GP && sdk_last_error() == 0x30 && io.eax == 0x5A5A,
           "LES of a system descriptor: #GP(selector), EAX unchanged");
    fptr.sel = 0x20;
    report(run(s_lss, 0x5A5A, 0) == VEC_GP && sdk_last_error() == 0x20,
           "LSS of a DPL 3 data segment at CPL 0: #GP(selector)");
    fptr.sel = 0;
    report(run(s_lss, 0x5A5A, 0) == VEC_GP && sdk_last_error() == 0,
           "LSS of the null selector outside 64-bit mode: #GP(0)");
}

/* 64-bit mode: XLAT, LFS/LGS/LSS with a 32-bit offset, and #UD for the rest. */
#define UD_STUB(name, bytes)                           \
    static void name(void* a) {                        \
        (void)a;                                       \
        __asm__ volatile(".byte " bytes ::: "memory"); \
    }
UD_STUB(ud_daa, "0x27")
UD_STUB(ud_aas, "0x3f")
UD_STUB(ud_aam, "0xd4, 0x0a")
UD_STUB(ud_aad, "0xd5, 0x0a")
UD_STUB(ud_pusha, "0x60")
UD_STUB(ud_popa, "0x61")
UD_STUB(ud_into, "0xce")

static void check_long_mode(void) {
    report(sdk_catch(ud_daa, 0) == VEC_UD && sdk_catch(ud_aas, 0) == VEC_UD &&
               sdk_catch(ud_aam, 0) == VEC_UD && sdk_catch(ud_aad, 0) == VEC_UD &&
               sdk_catch(ud_pusha, 0) == VEC_UD && sdk_catch(ud_popa, 0) == VEC_UD &&
               sdk_catch(ud_into, 0) == VEC_UD,
           "DAA AAS AAM AAD PUSHA POPA INTO raise #UD in 64-bit mode");
    for (int k = 0; k < 256; ++k) xlat_table[k] = (uint8_t)(255 - k);
    uint64_t rax = 0x1122334455667700ull | 0x42, rbx = (uint64_t)xlat_table;
    __asm__ volatile("xlat" : "+a"(rax) : "b"(rbx) : "memory");
    report(rax == (0x1122334455667700ull | (255 - 0x42)), "XLAT in 64-bit mode: AL = [RBX + AL]");
    fptr.off = 0x87654321;
    fptr.sel = 0x10;
    uint32_t off = 0;
    uint16_t fs = 0, gs = 0, ss = 0;
    __asm__ volatile("lfs %3, %0\n mov %%fs, %1" : "=r"(off), "=r"(fs) : "0"(0), "m"(fptr));
    __asm__ volatile("lgs %2, %0\n mov %%gs, %1" : "=r"(off), "=r"(gs) : "m"(fptr));
    __asm__ volatile("lss %2, %0\n mov %%ss, %1" : "=r"(off), "=r"(ss) : "m"(fptr));
    report(off == 0x87654321 && fs == 0x10 && gs == 0x10 && ss == 0x10,
           "LFS LGS LSS in 64-bit mode load the selector and the 32-bit offset");
}

int main(void) {
    to_run32.off = (uint32_t)(uint64_t)run32;
    to_run32.sel = 0x40;
    check_adjust("DAA", s_daa, 0, 1);
    check_adjust("DAS", s_das, 1, 1);
    check_adjust("AAA", s_aaa, 0, 0);
    check_adjust("AAS", s_aas, 1, 0);
    check_aam_aad();
    check_pusha_popa();
    check_bound_into_arpl();
    check_xlat_far();
    check_long_mode();
    report_summary();
}
