/* Conformance: the MMX rules where QEMU 7.2 TCG departs from the SDM (vol. 1 table 9-3,
 * vol. 3 ch. 12, vol. 2 tables 22-6 and 22-8), run on emu and compared with the silicon on
 * kvm: a write to MMi sets bits 64-79 of Ri to all ones; CR0.EM raises #UD and CR0.TS #NM
 * for MMX instructions and EMMS; the forms with an XMM operand need CR4.OSFXSR. (#MF before
 * an MMX instruction is checked in tests/cpu.) */
#include "sdk.h"

static uint8_t fx[512] __attribute__((aligned(16)));

static void paddb_now(void* p) {
    (void)p;
    __asm__ volatile("paddb %%mm1, %%mm0" ::: "memory");
}
static void emms_now(void* p) {
    (void)p;
    __asm__ volatile("emms" ::: "memory");
}
static void movq2dq_now(void* p) {
    (void)p;
    __asm__ volatile("movq2dq %%mm0, %%xmm0" ::: "memory");
}
static void cvtpi2ps_now(void* p) {
    (void)p;
    __asm__ volatile("cvtpi2ps %%mm0, %%xmm0" ::: "memory");
}

int main(void) {
    write_cr0((read_cr0() & ~0xCull) | 0x22); /* EM, TS off; MP, NE on */
    write_cr4(read_cr4() | 0x600);            /* OSFXSR | OSXMMEXCPT */

    static const uint64_t v = 0x1122334455667788ull;
    __asm__ volatile("fninit\n\tfld1\n\tfld1\n\tmovq %0, %%mm3\n\tfxsave64 %1"
                     :
                     : "m"(v), "m"(fx)
                     : "memory");
    const unsigned se3 = fx[40 + 16 * 3] | fx[41 + 16 * 3] << 8;
    report(se3 == 0xFFFF, "MMX write: sign and exponent of R3 all ones");
    __asm__ volatile("movq %%mm3, %%rax\n\tfxsave64 %0" : : "m"(fx) : "memory", "rax");
    const unsigned se6 = fx[40 + 16 * 6] | fx[41 + 16 * 6] << 8;
    report(se6 == 0x3FFF, "MMX read: R6 keeps its exponent");
    __asm__ volatile("emms" ::: "memory");

    write_cr0(read_cr0() | 0x4);
    report(sdk_catch(paddb_now, 0) == 6, "CR0.EM: PADDB raises #UD");
    report(sdk_catch(emms_now, 0) == 6, "CR0.EM: EMMS raises #UD");
    write_cr0((read_cr0() & ~0x4ull) | 0x8);
    report(sdk_catch(paddb_now, 0) == 7, "CR0.TS: PADDB raises #NM");
    report(sdk_catch(emms_now, 0) == 7, "CR0.TS: EMMS raises #NM");
    __asm__ volatile("clts");

    write_cr4(read_cr4() & ~0x200ull);
    report(sdk_catch(movq2dq_now, 0) == 6, "MOVQ2DQ without CR4.OSFXSR is #UD");
    report(sdk_catch(cvtpi2ps_now, 0) == 6, "CVTPI2PS without CR4.OSFXSR is #UD");
    write_cr4(read_cr4() | 0x200);
    __asm__ volatile("emms" ::: "memory");
    report_summary();
}
