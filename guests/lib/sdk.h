/* softkvm guest SDK: serial console, printf, exceptions, and the test reporter. Guests
 * are freestanding 64-bit code loaded at 1 MiB and identity-mapped (first 1 GiB). */
#ifndef SOFTKVM_GUEST_SDK_H
#define SOFTKVM_GUEST_SDK_H

#include <stdarg.h>
#include <stdint.h>

/* Port I/O. */
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) {
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

/* The multiboot information's physical address (EBX at entry). */
extern uint32_t sdk_mb_info;

/* Console (16550 UART at 0x3f8). */
void putchar_serial(char c);
void puts_serial(const char *s);
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);

/* Test reporter: one "PASS: name" or "FAIL: name" line per check. */
void report(int cond, const char *name);
/* Prints "SUMMARY: N passed, M failed" and exits: 0 if all passed, 1 otherwise. */
void report_summary(void) __attribute__((noreturn));
/* Writes `code` to the debug-exit port 0xf4 and halts. */
void exit_guest(int code) __attribute__((noreturn));

/* Runs fn(arg) and returns -1, or the vector of the first exception it raised (fn is
 * abandoned then). sdk_last_error() is that exception's error code (0 if none). */
int sdk_catch(void (*fn)(void *), void *arg);
uint64_t sdk_last_error(void);
uint64_t sdk_last_rip(void);

/* The state an exception or interrupt handler sees; handlers may change it (RIP,
 * RFLAGS...) and the interrupted code resumes with the changes. */
struct sdk_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rdi, rsi, rbp, rbx, rdx, rcx, rax;
    uint64_t vector, error, rip, cs, rflags, rsp, ss;
};
typedef void (*sdk_handler)(struct sdk_frame *f);

/* Installs `h` for vector `v` (0-255) through an interrupt gate of privilege `dpl`. */
void sdk_on_vector(int v, sdk_handler h, int dpl);
/* Points vector v's gate straight at `entry` (an assembly handler of the test's own). */
void sdk_set_gate(int v, void *entry, int dpl);
/* Marks vector v's gate present or not (for #NP and #DF tests). */
void sdk_gate_present(int v, int present);
/* Delivers vector v on interrupt stack table entry `ist` (1-7; 0: none). */
void sdk_gate_ist(int v, int ist);
uint64_t sdk_ist_stack(int ist); /* top of IST stack `ist` (16 KiB each, 1-2) */

/* Ring 3: sdk_enable_user() makes all memory user-accessible; sdk_run_user() runs fn at
 * CPL 3 on its own stack until fn calls sdk_user_exit(code), and returns code. */
void sdk_enable_user(void);
int sdk_run_user(void (*fn)(void), uint64_t user_rsp);
void sdk_user_exit(int code) __attribute__((noreturn));
uint64_t sdk_user_stack(void);   /* top of a 16 KiB user stack */
uint64_t sdk_kernel_stack(void); /* top of the TSS.RSP0 stack (16 KiB) */

/* SYSCALL/SYSRET: after sdk_enable_syscall(h), SYSCALL with RAX=nr, RDI=arg calls
 * h(nr, arg) at CPL 0 and returns its value in RAX. */
typedef uint64_t (*sdk_syscall_handler)(uint64_t nr, uint64_t arg);
void sdk_enable_syscall(sdk_syscall_handler h);

/* Multiprocessor start-up: sends INIT and SIPI to all other processors; each runs
 * fn(cpu) (cpu = 1, 2, ...) on its own stack with the SDK's IDT, then halts. Returns how
 * many started within a bounded wait, once `expected` have. */
int sdk_start_aps(int expected, void (*fn)(int cpu));

/* MSRs and CPUID. */
static inline uint64_t rdmsr(uint32_t msr) {
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v) {
    __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}
static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t *a, uint32_t *b, uint32_t *c,
                         uint32_t *d) {
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}
static inline uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* Control and debug registers: read_cr0() ... write_dr7(v). Writes are compiler barriers,
 * since they change how memory is mapped or watched. */
#define SDK_SYSREG(reg)                                                  \
    static inline uint64_t read_##reg(void) {                            \
        uint64_t v;                                                      \
        __asm__ volatile("mov %%" #reg ", %0" : "=r"(v));                \
        return v;                                                        \
    }                                                                    \
    static inline void write_##reg(uint64_t v) {                         \
        __asm__ volatile("mov %0, %%" #reg ::"r"(v) : "memory");         \
    }
SDK_SYSREG(cr0)
SDK_SYSREG(cr2)
SDK_SYSREG(cr3)
SDK_SYSREG(cr4)
SDK_SYSREG(dr0)
SDK_SYSREG(dr1)
SDK_SYSREG(dr2)
SDK_SYSREG(dr3)
SDK_SYSREG(dr6)
SDK_SYSREG(dr7)
#undef SDK_SYSREG

/* Reads RFLAGS. */
static inline uint64_t read_flags(void) {
    uint64_t f;
    __asm__ volatile("pushfq; popq %0" : "=r"(f));
    return f;
}

#define FLAG_CF 0x001u
#define FLAG_PF 0x004u
#define FLAG_AF 0x010u
#define FLAG_ZF 0x040u
#define FLAG_SF 0x080u
#define FLAG_DF 0x400u
#define FLAG_OF 0x800u
#define FLAGS_ARITH (FLAG_CF | FLAG_PF | FLAG_AF | FLAG_ZF | FLAG_SF | FLAG_OF)

/* Freestanding helpers. */
void *memset(void *d, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);
int memcmp(const void *a, const void *b, unsigned long n);

#endif
