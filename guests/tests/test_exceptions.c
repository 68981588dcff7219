/* Conformance: delivery of the exceptions a 64-bit kernel meets — vector, error code
 * (pushed or not), fault versus trap RIP — for #DE #BP #UD #NP #GP #DF, the IST stack
 * switch, and non-canonical addresses. The #SS of a non-canonical stack reference is
 * checked in tests/cpu: QEMU 7.2 TCG does not raise it (nor #GP for reserved EFER bits).
 */
#include "sdk.h"

static volatile uint64_t sink;
static void divide_by_zero(void *p) {
    (void)p;
    volatile uint32_t z = 0;
    sink = 10 / z;
}
static void ud2(void *p) {
    (void)p;
    __asm__ volatile("ud2");
}
static void int3(void *p) {
    (void)p;
    __asm__ volatile("int3");
}
static void int_not_present(void *p) {
    (void)p;
    __asm__ volatile("int $0x90");
}
static void noncanonical_load(void *p) {
    (void)p;
    sink = *(volatile uint64_t *)0x0000800000000000ull;
}
static volatile uint64_t ist_rsp;
static void on_ist(struct sdk_frame *f) {
    (void)f;
    uint64_t rsp;
    __asm__ volatile("mov %%rsp, %0" : "=r"(rsp));
    ist_rsp = rsp;
}

int main(void) {
    report(sdk_catch(divide_by_zero, 0) == 0, "#DE on divide by zero");
    report(sdk_last_error() == 0, "#DE pushes no error code");

    report(sdk_catch(ud2, 0) == 6, "#UD on ud2");
    const uint64_t ud_rip = sdk_last_rip();
    report(*(const uint16_t *)ud_rip == 0x0B0F, "#UD is a fault: RIP points at ud2");

    report(sdk_catch(int3, 0) == 3, "#BP on int3");
    report(*(const uint8_t *)(sdk_last_rip() - 1) == 0xCC, "#BP is a trap: RIP follows int3");

    sdk_on_vector(0x90, on_ist, 0);
    sdk_gate_present(0x90, 0);
    report(sdk_catch(int_not_present, 0) == 11, "#NP on a not-present gate");
    report((sdk_last_error() & 3) == 2, "#NP error code flags the IDT");

    report(sdk_catch(noncanonical_load, 0) == 13, "non-canonical load: #GP");
    report(sdk_last_error() == 0, "non-canonical #GP error code 0");

    /* #NP while delivering #NP: contributory twice makes #DF, error code 0. */
    sdk_gate_present(11, 0);
    const int df = sdk_catch(int_not_present, 0);
    sdk_gate_present(11, 1);
    report(df == 8, "#NP during #NP delivery becomes #DF");
    report(sdk_last_error() == 0, "#DF error code 0");

    /* IST: vector 0x91 on its own stack. */
    sdk_on_vector(0x91, on_ist, 0);
    sdk_gate_ist(0x91, 2);
    __asm__ volatile("int $0x91");
    report(ist_rsp < sdk_ist_stack(2) && ist_rsp > sdk_ist_stack(2) - 16384,
           "IST 2 switches to its stack");
    report_summary();
}
