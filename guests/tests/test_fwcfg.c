/* What a guest learns about its machine from QEMU's fw_cfg device (ports 0x510/0x511)
 * and from its multiboot information: the signature, the processors, the RAM, the file
 * directory with etc/e820, the command line and the modules. Run with different
 * --cpus/--memory/--append/--initrd (QEMU: -smp/-m/-append/-initrd), the output must be
 * the same under softkvm and QEMU. */
#include "check.h"
#include "sdk.h"

#define FW_CFG_SEL 0x510
#define FW_CFG_DATA 0x511

static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }

static void fw_select(uint16_t key) { outw(FW_CFG_SEL, key); }
static void fw_read(void *buf, uint32_t n) {
    uint8_t *p = buf;
    for (uint32_t k = 0; k < n; ++k) p[k] = inb(FW_CFG_DATA);
}
static uint64_t fw_le(uint16_t key, int bytes) {
    uint8_t b[8] = {0};
    fw_select(key);
    fw_read(b, bytes);
    uint64_t v = 0;
    for (int k = bytes - 1; k >= 0; --k) v = (v << 8) | b[k];
    return v;
}
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

static void print_string(const char *what, uint32_t addr) {
    const char *s = (const char *)(uintptr_t)addr;
    printf("%s: \"", what);
    for (int k = 0; k < 4096 && s[k]; ++k) putchar_serial(s[k]);
    printf("\"\n");
}

int main(void) {
    char sig[5] = {0};
    fw_select(0x0000);
    fw_read(sig, 4);
    report(memcmp(sig, "QEMU", 4) == 0, "fw_cfg signature QEMU");
    report(fw_le(0x0001, 4) & 1, "FW_CFG_ID: traditional interface");
    /* Past the end of an item, and an item that does not exist, read as zeros. */
    fw_select(0x0000);
    fw_read(sig, 4);
    uint8_t after = inb(FW_CFG_DATA);
    report(after == 0, "reads past the end of an item are 0");
    report(fw_le(0x3f00, 4) == 0, "an absent item reads as 0");
    /* Selecting again rewinds. */
    report(fw_le(0x0000, 4) == 0x554D4551, "a new selection starts at offset 0");

    printf("nb_cpus: %u\n", (unsigned)fw_le(0x0005, 2));
    printf("max_cpus: %u\n", (unsigned)fw_le(0x000f, 2));
    printf("ram_size: 0x%lx\n", (unsigned long)fw_le(0x0003, 8));
    printf("cmdline_size (fw_cfg): %u\n", (unsigned)fw_le(0x0014, 4));

    /* The file directory: find etc/e820 and print its entries. */
    uint8_t cnt[4];
    fw_select(0x0019);
    fw_read(cnt, 4);
    uint32_t n = be32(cnt);
    int found = 0;
    for (uint32_t k = 0; k < n && k < 256; ++k) {
        uint8_t e[64];
        fw_read(e, 64);
        if (memcmp(e + 8, "etc/e820", 9) == 0) {
            uint32_t size = be32(e);
            uint16_t sel = (uint16_t)(e[4] << 8 | e[5]);
            found = 1;
            /* RAM entries only: QEMU 7.2 also reserves the HyperTransport range of its AMD
             * CPU models at 0xfd00000000, which softkvm's machine does not have. */
            fw_select(sel);
            for (uint32_t off = 0; off + 20 <= size; off += 20) {
                uint64_t addr, len;
                uint32_t type;
                fw_read(&addr, 8);
                fw_read(&len, 8);
                fw_read(&type, 4);
                if (type == 1) printf("  e820 ram 0x%lx 0x%lx\n", (unsigned long)addr, (unsigned long)len);
            }
            break;
        }
    }
    report(found, "the file directory lists etc/e820");

    /* The multiboot information. */
    const uint32_t *mbi = (const uint32_t *)(uintptr_t)sdk_mb_info;
    report(sdk_mb_info == 0x9500, "EBX at entry is 0x9500");
    report(mbi[0] & (1u << 2), "the information has a command line");
    if (mbi[0] & (1u << 2)) print_string("cmdline", mbi[4]);
    report(mbi[0] & (1u << 3), "the information has modules");
    if (mbi[0] & (1u << 3)) {
        const uint32_t *mods = (const uint32_t *)(uintptr_t)mbi[6];
        printf("mods_count: %u\n", mbi[5]);
        for (uint32_t k = 0; k < mbi[5] && k < 8; ++k) {
            const uint32_t *m = mods + 4 * k;
            printf("module %u: %u bytes, page-aligned %d\n", k, m[1] - m[0], (m[0] & 0xfff) == 0);
            print_string("  string", m[2]);
            const uint8_t *d = (const uint8_t *)(uintptr_t)m[0];
            printf("  data:");
            for (uint32_t j = 0; j < m[1] - m[0] && j < 16; ++j) printf(" %02x", d[j]);
            printf("\n");
            report(m[0] >= mbi[4] || m[1] <= 0x100000, "modules do not overlap the image");
        }
    }
    report_summary();
}
