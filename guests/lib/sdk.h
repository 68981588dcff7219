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
