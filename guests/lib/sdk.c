/* Guest SDK: console, printf, IDT and exception reports, the test reporter. */
#include "sdk.h"

#define COM1 0x3f8
#define DEBUG_EXIT_PORT 0xf4

/* ---- Freestanding memory functions (gcc may emit calls to them) ---- */

void *memset(void *d, int c, unsigned long n) {
    unsigned char *p = d;
    while (n--) *p++ = (unsigned char)c;
    return d;
}

void *memcpy(void *d, const void *s, unsigned long n) {
    unsigned char *p = d;
    const unsigned char *q = s;
    while (n--) *p++ = *q++;
    return d;
}

int memcmp(const void *a, const void *b, unsigned long n) {
    const unsigned char *p = a, *q = b;
    for (; n; --n, ++p, ++q)
        if (*p != *q) return *p < *q ? -1 : 1;
    return 0;
}

/* ---- Serial console: 115200 8N1, polled transmit ---- */

static void serial_init(void) {
    outb(COM1 + 1, 0x00); /* no interrupts */
    outb(COM1 + 3, 0x80); /* DLAB */
    outb(COM1 + 0, 0x01); /* divisor 1: 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); /* 8N1 */
    outb(COM1 + 2, 0xC7); /* FIFO on, cleared */
    outb(COM1 + 4, 0x0B); /* DTR, RTS, OUT2 */
}

void putchar_serial(char c) {
    while (!(inb(COM1 + 5) & 0x20)) {
    }
    outb(COM1, (uint8_t)c);
}

void puts_serial(const char *s) {
    while (*s) putchar_serial(*s++);
}

/* ---- printf: %d %i %u %x %X %o %c %s %p %% with l/ll, width, '0' and '-' flags ---- */

static void emit_number(uint64_t v, int base, int neg, int width, int zero, int left, int upper) {
    char buf[32];
    int n = 0;
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        buf[n++] = digits[v % (unsigned)base];
        v /= (unsigned)base;
    } while (v);
    int len = n + (neg ? 1 : 0);
    if (!left && !zero)
        for (; len < width; ++len) putchar_serial(' ');
    if (neg) putchar_serial('-');
    if (!left && zero)
        for (; len < width; ++len) putchar_serial('0');
    while (n) putchar_serial(buf[--n]);
    if (left)
        for (; len < width; ++len) putchar_serial(' ');
}

int vprintf(const char *fmt, va_list ap) {
    for (; *fmt; ++fmt) {
        if (*fmt != '%') {
            putchar_serial(*fmt);
            continue;
        }
        ++fmt;
        int zero = 0, left = 0, width = 0, lng = 0;
        for (;; ++fmt) {
            if (*fmt == '0') zero = 1;
            else if (*fmt == '-') left = 1;
            else break;
        }
        while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') ++lng, ++fmt;
        switch (*fmt) {
            case 'd':
            case 'i': {
                int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
                emit_number(v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, 10, v < 0, width,
                             zero, left, 0);
                break;
            }
            case 'u':
            case 'x':
            case 'X':
            case 'o': {
                uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
                int base = *fmt == 'u' ? 10 : *fmt == 'o' ? 8 : 16;
                emit_number(v, base, 0, width, zero, left, *fmt == 'X');
                break;
            }
            case 'p':
                puts_serial("0x");
                emit_number((uint64_t)va_arg(ap, void *), 16, 0, width, zero, left, 0);
                break;
            case 'c': putchar_serial((char)va_arg(ap, int)); break;
            case 's': {
                const char *s = va_arg(ap, const char *);
                int len = 0;
                while (s[len]) ++len;
                if (!left)
                    for (; len < width; ++len) putchar_serial(' ');
                puts_serial(s);
                if (left)
                    for (; len < width; ++len) putchar_serial(' ');
                break;
            }
            case '%': putchar_serial('%'); break;
            case 0: return 0;
            default:
                putchar_serial('%');
                putchar_serial(*fmt);
                break;
        }
    }
    return 0;
}

int printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    return 0;
}

/* ---- Exit and the test reporter ---- */

void exit_guest(int code) {
    outl(DEBUG_EXIT_PORT, (uint32_t)code);
    for (;;) __asm__ volatile("cli; hlt");
}

static int passed, failed;

void report(int cond, const char *name) {
    if (cond) {
        ++passed;
        printf("PASS: %s\n", name);
    } else {
        ++failed;
        printf("FAIL: %s\n", name);
    }
}

void report_summary(void) {
    printf("SUMMARY: %d passed, %d failed\n", passed, failed);
    exit_guest(failed ? 1 : 0);
}

/* ---- IDT and exceptions ---- */


struct idt_entry {
    uint16_t off0, sel;
    uint8_t ist, type;
    uint16_t off1;
    uint32_t off2, zero;
};

static struct idt_entry idt[256] __attribute__((aligned(16)));
static sdk_handler handlers[256];

/* The 64-bit TSS: RSP0 for interrupts from ring 3 (SDM vol. 3 §8.7). */
struct tss {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3, iomap_base;
} __attribute__((packed));
static struct tss tss;
static uint8_t interrupt_stack[16384] __attribute__((aligned(16)));
static uint8_t ist_stacks[2][16384] __attribute__((aligned(16)));
static uint8_t syscall_stack[16384] __attribute__((aligned(16)));
static uint8_t user_stack[16384] __attribute__((aligned(16)));
extern uint64_t sdk_gdt[];
extern uint64_t sdk_pml4[], sdk_pdpt[], sdk_pd[];
extern char sdk_irq_stubs[], sdk_user_landing[], sdk_syscall_entry[];
uint64_t sdk_user_kernel_rsp, sdk_syscall_user_rsp, sdk_syscall_stack_top;
uint32_t sdk_user_result;
static sdk_syscall_handler syscall_handler;

/* Set by sdk_catch (vectors.S). */
uint64_t sdk_catch_rsp;
uint32_t sdk_catch_active;
uint32_t sdk_catch_vector;
static uint64_t last_error, last_rip;
extern char sdk_catch_landing[];

uint64_t sdk_last_error(void) { return last_error; }
uint64_t sdk_last_rip(void) { return last_rip; }

static const char *const vector_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#MF-old", "#TS",
    "#NP", "#SS", "#GP", "#PF", "rsvd", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
    "rsvd", "rsvd", "rsvd", "rsvd", "rsvd", "rsvd", "#HV", "#VC", "#SX", "rsvd"};

void sdk_exception(struct sdk_frame *f) {
    if (handlers[f->vector]) {
        handlers[f->vector](f);
        return;
    }
    last_error = f->error;
    last_rip = f->rip;
    if (sdk_catch_active && f->vector < 32) {
        sdk_catch_active = 0;
        sdk_catch_vector = (uint32_t)f->vector;
        f->rip = (uint64_t)sdk_catch_landing;
        f->cs = 0x08; /* the landing runs in the kernel even if the fault was in ring 3 */
        f->ss = 0x10;
        f->rflags &= ~0x100ull; /* and without single-stepping */
        return;
    }
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    printf("EXCEPTION: vector %lu (%s) error 0x%lx rip 0x%lx cr2 0x%lx\n", f->vector,
           vector_names[f->vector & 31], f->error, f->rip, cr2);
    printf("FAIL: unexpected exception\n");
    printf("SUMMARY: %d passed, %d failed\n", passed, failed + 1);
    exit_guest(3);
}

#define VECTORS(X)                                                                          \
    X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15) \
        X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23) X(24) X(25) X(26) X(27) X(28)     \
            X(29) X(30) X(31)

#define DECLARE(n) extern char sdk_vector_##n[];
VECTORS(DECLARE)
#define ADDRESS(n) sdk_vector_##n,
static char *const vector_stubs[32] = {VECTORS(ADDRESS)};

static void set_gate(int v, void *handler, int dpl) {
    uint64_t a = (uint64_t)handler;
    idt[v].off0 = (uint16_t)a;
    idt[v].sel = 0x08;
    idt[v].ist = 0;
    idt[v].type = (uint8_t)(0x8E | (dpl << 5)); /* present, 64-bit interrupt gate */
    idt[v].off1 = (uint16_t)(a >> 16);
    idt[v].off2 = (uint32_t)(a >> 32);
    idt[v].zero = 0;
}

void sdk_on_vector(int v, sdk_handler h, int dpl) {
    handlers[v] = h;
    set_gate(v, v < 32 ? vector_stubs[v] : sdk_irq_stubs + (v - 32) * 16, dpl);
}

void sdk_set_gate(int v, void *entry, int dpl) { set_gate(v, entry, dpl); }

void sdk_gate_present(int v, int present) {
    if (present)
        idt[v].type |= 0x80;
    else
        idt[v].type &= 0x7F;
}

void sdk_gate_ist(int v, int ist) { idt[v].ist = (uint8_t)ist; }

uint64_t sdk_ist_stack(int ist) { return (uint64_t)(ist_stacks[ist - 1] + sizeof ist_stacks[0]); }

static void user_return(struct sdk_frame *f) {
    sdk_user_result = (uint32_t)f->rax;
    f->rip = (uint64_t)sdk_user_landing;
    f->cs = 0x08;
    f->ss = 0x10;
    f->rflags = 0x2;
}

void sdk_enable_user(void) {
    sdk_pml4[0] |= 4;
    for (int k = 0; k < 4; ++k) sdk_pdpt[k] |= 4;
    for (int k = 0; k < 2048; ++k) sdk_pd[k] |= 4;
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0\n\tmov %0, %%cr3" : "=r"(cr3)::"memory");
}

uint64_t sdk_user_stack(void) { return (uint64_t)(user_stack + sizeof user_stack); }
uint64_t sdk_kernel_stack(void) { return (uint64_t)(interrupt_stack + sizeof interrupt_stack); }

uint64_t sdk_syscall(uint64_t nr, uint64_t arg) { return syscall_handler(nr, arg); }

void sdk_enable_syscall(sdk_syscall_handler h) {
    syscall_handler = h;
    sdk_syscall_stack_top = (uint64_t)(syscall_stack + sizeof syscall_stack);
    wrmsr(0xC0000080, rdmsr(0xC0000080) | 1);                   /* EFER.SCE */
    wrmsr(0xC0000081, (0x18ull << 48) | (0x08ull << 32));        /* STAR */
    wrmsr(0xC0000082, (uint64_t)sdk_syscall_entry);              /* LSTAR */
    wrmsr(0xC0000084, 0x200 | 0x100 | 0x400 | 0x40000);          /* FMASK: IF TF DF AC */
}

/* ---- Application processors ---- */

extern char sdk_ap_tramp[], sdk_ap_tramp_end[], sdk_ap_tramp_gdtr[];
extern volatile uint32_t sdk_ap_count;
static void (*ap_fn)(int);
static struct {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed)) idtr_all;

void sdk_ap_main(int cpu) {
    __asm__ volatile("lidt %0" ::"m"(idtr_all));
    ap_fn(cpu);
}

#define APIC_ICR_LOW (*(volatile uint32_t *)0xFEE00300ull)
#define APIC_ICR_HIGH (*(volatile uint32_t *)0xFEE00310ull)

int sdk_start_aps(int expected, void (*fn)(int cpu)) {
    ap_fn = fn;
    uint8_t *dst = (uint8_t *)0x8000;
    const unsigned long len = (unsigned long)(sdk_ap_tramp_end - sdk_ap_tramp);
    memcpy(dst, sdk_ap_tramp, len);
    struct {
        uint16_t limit;
        uint32_t base;
    } __attribute__((packed)) g = {(uint16_t)(8 * 9 - 1), (uint32_t)(uint64_t)sdk_gdt};
    memcpy(dst + (sdk_ap_tramp_gdtr - sdk_ap_tramp), &g, sizeof g);
    APIC_ICR_HIGH = 0;
    APIC_ICR_LOW = 0x000C4500; /* INIT, assert, all excluding self */
    APIC_ICR_LOW = 0x000C4608; /* start-up at vector 0x08: 0x8000 */
    for (long spin = 0; spin < 20000000 && (int)sdk_ap_count < expected; ++spin)
        __asm__ volatile("pause");
    return (int)sdk_ap_count;
}

void sdk_init(void) {
    serial_init();
    /* Mask the legacy 8259 PICs: firmware leaves the PIT's IRQ 0 at vector 8, which
     * would look like #DF (QEMU has them; softkvm does not, the writes are ignored). */
    outb(0x21, 0xFF);
    outb(0xA1, 0xFF);
    for (int v = 0; v < 32; ++v) set_gate(v, vector_stubs[v], 0);
    set_gate(3, vector_stubs[3], 3); /* INT3 from ring 3 */
    sdk_on_vector(0x81, user_return, 3);
    /* TSS descriptor at 0x30 (16 bytes), then LTR. */
    tss.rsp[0] = (uint64_t)(interrupt_stack + sizeof interrupt_stack);
    tss.iomap_base = sizeof tss; /* no I/O permission bitmap */
    tss.ist[0] = sdk_ist_stack(1);
    tss.ist[1] = sdk_ist_stack(2);
    const uint64_t base = (uint64_t)&tss, limit = sizeof tss - 1;
    sdk_gdt[6] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (0x89ull << 40) |
                 (((base >> 24) & 0xFF) << 56);
    sdk_gdt[7] = base >> 32;
    __asm__ volatile("ltr %w0" ::"r"(0x30));
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) idtr = {sizeof idt - 1, (uint64_t)idt};
    __asm__ volatile("lidt %0" ::"m"(idtr));
    idtr_all.limit = idtr.limit;
    idtr_all.base = idtr.base;
}
