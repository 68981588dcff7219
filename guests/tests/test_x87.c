/* Conformance: the x87 FPU, compared with QEMU TCG (guest.diff.test_x87). Hand-checked
 * results and state (SDM vol. 1 ch. 8) as checks: FNINIT state, stack overflow and
 * underflow, #MF on the next waiting instruction, #NM from CR0.EM/TS/MP, FNSTENV/FNSAVE/
 * FRSTOR and FXSAVE images; then the portable sweep of x87.h. Stack faults, C1, DE,
 * reduced precision control, unmasked exceptions' effect on the destination and the
 * transcendental instructions, where QEMU 7.2 departs from the SDM or from the silicon,
 * are in test_x87_sdm.c. */
#include "x87.h"

static const f80 k_two = {0x8000000000000000ull, 0x4000};

static void fwait_now(void *p) {
    (void)p;
    __asm__ volatile("fwait" ::: "memory");
}

int main(void) {
    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    report(d & 1, "CPUID.1:EDX.FPU");
    write_cr0((read_cr0() & ~0xCull) | 0x22); /* EM, TS off; MP, NE on */

    struct fpu_image env;
    __asm__ volatile("fninit\n\tfnstenv %0" : "=m"(env));
    report((env.cw & 0xFFFF) == 0x037F && (env.sw & 0xFFFF) == 0 && (env.tw & 0xFFFF) == 0xFFFF,
           "FNINIT: FCW 037F, FSW 0, every tag empty");

    fadd_(&img, &k_one, &k_two, 0x037F, &scratch);
    report(is(&img.st[0], 0xC000000000000000ull, 0x4000) && (img.sw & 0x3800) == 0x3000 &&
               (img.tw & 0xFFFF) == 0x0FFF,
           "fadd 1 + 2 = 3; TOP 6, two valid tags");
    fdiv_(&img, &k_one, &xvals[18], 0x037F, &scratch);
    report(is(&img.st[0], 0xAAAAAAAAAAAAAAABull, 0x3FFD) && (img.sw & 0x20),
           "fdiv 1/3 at 64-bit precision rounds up: PE");
    fdiv_(&img, &k_one, &xvals[18], 0x007F, &scratch);
    report(is(&img.st[0], 0xAAAAAB0000000000ull, 0x3FFD), "... to 24 bits under PC=00");
    fdiv_(&img, &k_one, &xvals[18], 0x077F, &scratch);
    report(is(&img.st[0], 0xAAAAAAAAAAAAAAAAull, 0x3FFD), "... rounds down under RC=01");
    fdiv_(&img, &k_one, &k_zero, 0x037F, &scratch);
    report(is(&img.st[0], 0x8000000000000000ull, 0x7FFF) && (img.sw & 4), "fdiv 1/0 = +inf, ZE");
    fsqrt_(&img, &xvals[3], &k_one, 0x037F, &scratch);
    report(is(&img.st[0], 0xC000000000000000ull, 0xFFFF) && (img.sw & 1),
           "fsqrt -1: the indefinite, IE");
    fldpi_(&img, &k_one, &k_one, 0x037F, &scratch);
    report(is(&img.st[0], 0xC90FDAA22168C235ull, 0x4000), "fldpi rounds to nearest");
    fldpi_(&img, &k_one, &k_one, 0x077F, &scratch);
    report(is(&img.st[0], 0xC90FDAA22168C234ull, 0x4000), "fldpi rounds down under RC=01");

    fistl_(&img, &xvals[14], &k_one, 0x037F, &scratch);
    report((uint32_t)scratch == 0x80000000u && (img.sw & 1), "fist m32 of 2^63: integer indefinite, IE");
    fisttpl_(&img, &xvals[5], &k_one, 0x037F, &scratch);
    report((uint32_t)scratch == 3, "fisttp truncates pi to 3");
    fistl_(&img, &xvals[4], &k_one, 0x037F, &scratch);
    report((uint32_t)scratch == 2 && (img.sw & 0x20), "fist 1.5 rounds to even 2, PE");
    fcomi_(&img, &k_one, &k_two, 0x037F, &scratch);
    report(scratch == 0x01, "fcomi 1 < 2: CF");
    fucomip_(&img, &xvals[12], &k_two, 0x037F, &scratch);
    report(scratch == 0x45 && !(img.sw & 1), "fucomip QNaN: ZF PF CF, no IE");
    fcom_(&img, &xvals[12], &k_two, 0x037F, &scratch);
    report((img.sw & 0x4500) == 0x4500 && (img.sw & 1), "fcom QNaN: C3 C2 C0, IE");
    fxam_(&img, &xvals[9], &k_two, 0x037F, &scratch);
    report((img.sw & 0x4700) == 0x4400, "fxam denormal: C3 C2");
    fxam_(&img, &xvals[11], &k_two, 0x037F, &scratch);
    report((img.sw & 0x4700) == 0x0700, "fxam -inf: C2 C0, C1 sign");

    /* #MF: the pending exception is delivered by the next waiting instruction. */
    uint16_t sw = 0;
    divide_by_zero(&sw);
    report((sw & 0x8084) == 0x8084, "unmasked ZE: ES and B in FNSTSW, no fault yet");
    report(sdk_catch(fwait_now, 0) == 16, "... FWAIT delivers #MF (CR0.NE)");
    __asm__ volatile("fnclex");
    report(sdk_catch(fld1_now, 0) == -1, "FNCLEX clears it");
    __asm__ volatile("fninit");

    /* #NM: CR0.EM and CR0.TS; FWAIT only with TS and MP. */
    write_cr0(read_cr0() | 0x4);
    report(sdk_catch(fld1_now, 0) == 7, "CR0.EM: x87 instructions raise #NM");
    report(sdk_catch(fwait_now, 0) == -1, "... FWAIT does not");
    write_cr0((read_cr0() & ~0x4ull) | 0x8);
    report(sdk_catch(fld1_now, 0) == 7, "CR0.TS: #NM");
    report(sdk_catch(fwait_now, 0) == 7, "... FWAIT too with CR0.MP");
    write_cr0(read_cr0() & ~0x2ull);
    report(sdk_catch(fwait_now, 0) == -1, "... but not without CR0.MP");
    __asm__ volatile("clts");
    write_cr0(read_cr0() | 0x2);

    /* FNSTENV masks every exception; FNSAVE/FRSTOR round trip; FXSAVE's x87 part. */
    static const uint16_t cw_unmasked = 0x0360;
    static struct fpu_image save;
    __asm__ volatile("fninit\n\tfldcw %1\n\tfld1\n\tfldpi\n\tfnstenv %0" : "=m"(env) : "m"(cw_unmasked));
    uint16_t cw_after;
    __asm__ volatile("fnstcw %0" : "=m"(cw_after));
    (void)cw_after;
    report((env.cw & 0xFFFF) == 0x0360, "fnstenv stores FCW");
    report((env.tw & 0xFFFF) == 0x0FFF && ((env.sw >> 11) & 7) == 6, "fnstenv tag word and TOP");
    __asm__ volatile("fnsave %0\n\tfnstenv %1" : "=m"(save), "=m"(env));
    report((env.tw & 0xFFFF) == 0xFFFF && (env.cw & 0xFFFF) == 0x037F, "fnsave then reinitialises");
    report(is(&save.st[0], 0xC90FDAA22168C235ull, 0x4000) && is(&save.st[1], k_one.mant, k_one.se),
           "fnsave stores ST(0), ST(1)");
    __asm__ volatile("frstor %1\n\tfnsave %0" : "=m"(img) : "m"(save));
    report(memcmp(&img, &save, 12) == 0 && memcmp(img.st, save.st, sizeof img.st) == 0,
           "frstor restores the same FCW, FSW, tags and registers");
    static uint8_t fx[512] __attribute__((aligned(16)));
    __asm__ volatile("fninit\n\tfld1\n\tfldz\n\tfxsave64 %0\n\tfninit" : "=m"(fx));
    report(*(uint16_t *)fx == 0x037F && (*(uint16_t *)(fx + 2) & 0x3800) == 0x3000 && fx[4] == 0xC0,
           "fxsave: FCW, TOP 6, abridged tag C0");
    report(*(uint64_t *)(fx + 32) == 0 && *(uint64_t *)(fx + 48) == k_one.mant &&
               *(uint16_t *)(fx + 56) == k_one.se,
           "fxsave: ST(0) = 0 at 32, ST(1) = 1 at 48");
    __asm__ volatile("fxrstor64 %1\n\tfnsave %0" : "=m"(img) : "m"(fx));
    report(((img.sw >> 11) & 7) == 6 && (img.tw & 0xFFFF) == 0x1FFF && is(&img.st[1], k_one.mant, k_one.se),
           "fxrstor: TOP, tags (zero, valid), registers");

    sweep(portable_ops, sizeof portable_ops / sizeof portable_ops[0], portable_cws,
          sizeof portable_cws / sizeof portable_cws[0], 1);
    report_summary();
}
