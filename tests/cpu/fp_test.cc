// The floating-point units against the host's own silicon and the SDM: SSE/SSE2 and x87
// instructions run natively (in an executable page) and on the software CPU from the same
// operands and control words (every exception masked natively, so the host takes no
// SIGFPE; an x87 snippet ends in FNSAVE, whose image is compared without FIP/FDP/FOP,
// which recent Intel parts update only on unmasked exceptions); then the exception
// delivery the host cannot show in-process: #XM/#UD, #MF, #NM, stack faults.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <random>

#include "cpu/exec/x87.h"
#include "machine.h"

namespace softkvm::cpu::test {
namespace {

struct Insn {
    const char* text;
    uint8_t bytes[6];
    uint8_t len;
};

// GNU as encodings of the text in the first column.
const Insn kSse[] = {
    {"addps %xmm1,%xmm0", {0x0f, 0x58, 0xc1}, 3},
    {"addpd %xmm1,%xmm0", {0x66, 0x0f, 0x58, 0xc1}, 4},
    {"addss %xmm1,%xmm0", {0xf3, 0x0f, 0x58, 0xc1}, 4},
    {"addsd %xmm1,%xmm0", {0xf2, 0x0f, 0x58, 0xc1}, 4},
    {"subps %xmm1,%xmm0", {0x0f, 0x5c, 0xc1}, 3},
    {"subsd %xmm1,%xmm0", {0xf2, 0x0f, 0x5c, 0xc1}, 4},
    {"mulps %xmm1,%xmm0", {0x0f, 0x59, 0xc1}, 3},
    {"mulsd %xmm1,%xmm0", {0xf2, 0x0f, 0x59, 0xc1}, 4},
    {"divps %xmm1,%xmm0", {0x0f, 0x5e, 0xc1}, 3},
    {"divpd %xmm1,%xmm0", {0x66, 0x0f, 0x5e, 0xc1}, 4},
    {"divss %xmm1,%xmm0", {0xf3, 0x0f, 0x5e, 0xc1}, 4},
    {"divsd %xmm1,%xmm0", {0xf2, 0x0f, 0x5e, 0xc1}, 4},
    {"minps %xmm1,%xmm0", {0x0f, 0x5d, 0xc1}, 3},
    {"maxpd %xmm1,%xmm0", {0x66, 0x0f, 0x5f, 0xc1}, 4},
    {"minss %xmm1,%xmm0", {0xf3, 0x0f, 0x5d, 0xc1}, 4},
    {"maxsd %xmm1,%xmm0", {0xf2, 0x0f, 0x5f, 0xc1}, 4},
    {"sqrtps %xmm1,%xmm0", {0x0f, 0x51, 0xc1}, 3},
    {"sqrtpd %xmm1,%xmm0", {0x66, 0x0f, 0x51, 0xc1}, 4},
    {"sqrtss %xmm1,%xmm0", {0xf3, 0x0f, 0x51, 0xc1}, 4},
    {"sqrtsd %xmm1,%xmm0", {0xf2, 0x0f, 0x51, 0xc1}, 4},
    {"cmpps $1,%xmm1,%xmm0", {0x0f, 0xc2, 0xc1, 0x01}, 4},
    {"cmppd $3,%xmm1,%xmm0", {0x66, 0x0f, 0xc2, 0xc1, 0x03}, 5},
    {"cmpss $5,%xmm1,%xmm0", {0xf3, 0x0f, 0xc2, 0xc1, 0x05}, 5},
    {"cmpsd $6,%xmm1,%xmm0", {0xf2, 0x0f, 0xc2, 0xc1, 0x06}, 5},
    {"cmpps $7,%xmm1,%xmm0", {0x0f, 0xc2, 0xc1, 0x07}, 4},
    {"cvtss2sd %xmm1,%xmm0", {0xf3, 0x0f, 0x5a, 0xc1}, 4},
    {"cvtsd2ss %xmm1,%xmm0", {0xf2, 0x0f, 0x5a, 0xc1}, 4},
    {"cvtps2pd %xmm1,%xmm0", {0x0f, 0x5a, 0xc1}, 3},
    {"cvtpd2ps %xmm1,%xmm0", {0x66, 0x0f, 0x5a, 0xc1}, 4},
    {"cvtdq2ps %xmm1,%xmm0", {0x0f, 0x5b, 0xc1}, 3},
    {"cvtps2dq %xmm1,%xmm0", {0x66, 0x0f, 0x5b, 0xc1}, 4},
    {"cvttps2dq %xmm1,%xmm0", {0xf3, 0x0f, 0x5b, 0xc1}, 4},
    {"cvtdq2pd %xmm1,%xmm0", {0xf3, 0x0f, 0xe6, 0xc1}, 4},
    {"cvtpd2dq %xmm1,%xmm0", {0xf2, 0x0f, 0xe6, 0xc1}, 4},
    {"cvttpd2dq %xmm1,%xmm0", {0x66, 0x0f, 0xe6, 0xc1}, 4},
    {"shufps $0x4e,%xmm1,%xmm0", {0x0f, 0xc6, 0xc1, 0x4e}, 4},
    {"unpckhpd %xmm1,%xmm0", {0x66, 0x0f, 0x15, 0xc1}, 4},
    {"andnps %xmm1,%xmm0", {0x0f, 0x55, 0xc1}, 3},
    // SSE2 integer instructions of sse_int.cc.
    {"paddsb %xmm1,%xmm0", {0x66, 0x0f, 0xec, 0xc1}, 4},
    {"paddsw %xmm1,%xmm0", {0x66, 0x0f, 0xed, 0xc1}, 4},
    {"psubsb %xmm1,%xmm0", {0x66, 0x0f, 0xe8, 0xc1}, 4},
    {"psubsw %xmm1,%xmm0", {0x66, 0x0f, 0xe9, 0xc1}, 4},
    {"paddusb %xmm1,%xmm0", {0x66, 0x0f, 0xdc, 0xc1}, 4},
    {"paddusw %xmm1,%xmm0", {0x66, 0x0f, 0xdd, 0xc1}, 4},
    {"psubusb %xmm1,%xmm0", {0x66, 0x0f, 0xd8, 0xc1}, 4},
    {"psubusw %xmm1,%xmm0", {0x66, 0x0f, 0xd9, 0xc1}, 4},
    {"pavgb %xmm1,%xmm0", {0x66, 0x0f, 0xe0, 0xc1}, 4},
    {"pavgw %xmm1,%xmm0", {0x66, 0x0f, 0xe3, 0xc1}, 4},
    {"pmulhw %xmm1,%xmm0", {0x66, 0x0f, 0xe5, 0xc1}, 4},
    {"pmulhuw %xmm1,%xmm0", {0x66, 0x0f, 0xe4, 0xc1}, 4},
    {"pmaddwd %xmm1,%xmm0", {0x66, 0x0f, 0xf5, 0xc1}, 4},
    {"psadbw %xmm1,%xmm0", {0x66, 0x0f, 0xf6, 0xc1}, 4},
    {"packsswb %xmm1,%xmm0", {0x66, 0x0f, 0x63, 0xc1}, 4},
    {"packssdw %xmm1,%xmm0", {0x66, 0x0f, 0x6b, 0xc1}, 4},
    {"packuswb %xmm1,%xmm0", {0x66, 0x0f, 0x67, 0xc1}, 4},
    {"pshuflw $0x1b,%xmm1,%xmm0", {0xf2, 0x0f, 0x70, 0xc1, 0x1b}, 5},
    {"pshufhw $0x4e,%xmm1,%xmm0", {0xf3, 0x0f, 0x70, 0xc1, 0x4e}, 5},
};
const Insn kX87[] = {
    {"fadd %st(1),%st", {0xd8, 0xc1}, 2},
    {"fsub %st(1),%st", {0xd8, 0xe1}, 2},
    {"fsubr %st(1),%st", {0xd8, 0xe9}, 2},
    {"fmul %st(1),%st", {0xd8, 0xc9}, 2},
    {"fdiv %st(1),%st", {0xd8, 0xf1}, 2},
    {"fdivr %st(1),%st", {0xd8, 0xf9}, 2},
    {"faddp", {0xde, 0xc1}, 2},
    {"fsubrp", {0xde, 0xe9}, 2},
    {"fdivrp", {0xde, 0xf9}, 2},
    {"fsqrt", {0xd9, 0xfa}, 2},
    {"frndint", {0xd9, 0xfc}, 2},
    {"fscale", {0xd9, 0xfd}, 2},
    {"fxtract", {0xd9, 0xf4}, 2},
    {"fprem", {0xd9, 0xf8}, 2},
    {"fprem1", {0xd9, 0xf5}, 2},
    {"fcom %st(1)", {0xd8, 0xd1}, 2},
    {"fucompp", {0xda, 0xe9}, 2},
    {"ftst", {0xd9, 0xe4}, 2},
    {"fxam", {0xd9, 0xe5}, 2},
    {"fchs", {0xd9, 0xe0}, 2},
    {"fabs", {0xd9, 0xe1}, 2},
    {"fxch %st(1)", {0xd9, 0xc9}, 2},
    {"fsin", {0xd9, 0xfe}, 2},
    {"fcos", {0xd9, 0xff}, 2},
    {"fsincos", {0xd9, 0xfb}, 2},
    {"fptan", {0xd9, 0xf2}, 2},
    {"fpatan", {0xd9, 0xf3}, 2},
    {"f2xm1", {0xd9, 0xf0}, 2},
    {"fyl2x", {0xd9, 0xf1}, 2},
    {"fyl2xp1", {0xd9, 0xf9}, 2},
    {"fldpi", {0xd9, 0xeb}, 2},
    {"fldl2t", {0xd9, 0xe9}, 2},
    {"fldlg2", {0xd9, 0xec}, 2},
    {"fadds 48(%rdi)", {0xd8, 0x47, 0x30}, 3},
    {"fsubrl 48(%rdi)", {0xdc, 0x6f, 0x30}, 3},
    {"fimull 48(%rdi)", {0xda, 0x4f, 0x30}, 3},
    {"fidivrs 48(%rdi)", {0xde, 0x7f, 0x30}, 3},
    {"flds 48(%rdi)", {0xd9, 0x47, 0x30}, 3},
    {"fldl 48(%rdi)", {0xdd, 0x47, 0x30}, 3},
    {"fsts 48(%rdi)", {0xd9, 0x57, 0x30}, 3},
    {"fstpl 48(%rdi)", {0xdd, 0x5f, 0x30}, 3},
    {"fists 48(%rdi)", {0xdf, 0x57, 0x30}, 3},
    {"fistpl 48(%rdi)", {0xdb, 0x5f, 0x30}, 3},
    {"fistpll 48(%rdi)", {0xdf, 0x7f, 0x30}, 3},
    {"fisttpll 48(%rdi)", {0xdd, 0x4f, 0x30}, 3},
    {"ficoml 48(%rdi)", {0xda, 0x57, 0x30}, 3},
    {"fcomps 48(%rdi)", {0xd8, 0x5f, 0x30}, 3},
    {"fcomi %st(1),%st", {0xdb, 0xf1}, 2},
    {"fucomip %st(1),%st", {0xdf, 0xe9}, 2},
    {"fcmovbe %st(1),%st", {0xda, 0xd1}, 2},
    {"fld %st(1)", {0xd9, 0xc1}, 2},
    {"fstp %st(1)", {0xdd, 0xd9}, 2},
    {"fincstp", {0xd9, 0xf7}, 2},
    {"ffree %st(0)", {0xdd, 0xc0}, 2},
    {"fdecstp", {0xd9, 0xf6}, 2},
    {"fildll 48(%rdi)", {0xdf, 0x6f, 0x30}, 3},
    {"fstpt 48(%rdi)", {0xdb, 0x7f, 0x30}, 3},
    {"fdivrp %st,%st(1)", {0xde, 0xf9}, 2},
    {"fsubp %st,%st(1)", {0xde, 0xe1}, 2},
};

// The data block a snippet works on (RDI points at it).
struct Block {
    uint8_t a[16], b[16];  // 0: XMM0 / ST(0) operand, 16: XMM1 / ST(1) operand
    uint32_t mxcsr;        // 32
    uint16_t fcw, pad0;    // 36
    uint32_t saved_mxcsr;  // 40
    uint16_t saved_fcw, pad1;
    uint8_t xmm0[16];  // 48: XMM0 after
    uint32_t mxcsr_after, pad2[3];
    uint8_t fnsave[108];  // 80
    uint8_t pad3[52];
};
static_assert(sizeof(Block) == 240);

// stmxcsr 40(rdi); ldmxcsr 32(rdi); movdqu (rdi),xmm0; movdqu 16(rdi),xmm1; INSN;
// movdqu xmm0,48(rdi); stmxcsr 64(rdi); ldmxcsr 40(rdi)
const uint8_t kSsePre[] = {0x0f, 0xae, 0x5f, 0x28, 0x0f, 0xae, 0x57, 0x20, 0xf3,
                           0x0f, 0x6f, 0x07, 0xf3, 0x0f, 0x6f, 0x4f, 0x10};
const uint8_t kSsePost[] = {0xf3, 0x0f, 0x7f, 0x47, 0x30, 0x0f, 0xae,
                            0x5f, 0x40, 0x0f, 0xae, 0x57, 0x28};
// mov 1(rdi),al; cmp 17(rdi),al (EFLAGS from the operands, for FCMOVcc: the host's would
// otherwise be whatever the caller left); fnstcw 44(rdi); fninit; fldcw 36(rdi);
// fldt 16(rdi); fldt (rdi); INSN; fnsave 80(rdi); fldcw 44(rdi)
const uint8_t kX87Pre[] = {0x8a, 0x47, 0x01, 0x3a, 0x47, 0x11, 0xd9, 0x7f, 0x2c, 0xdb,
                           0xe3, 0xd9, 0x6f, 0x24, 0xdb, 0x6f, 0x10, 0xdb, 0x2f};
const uint8_t kX87Post[] = {0xdd, 0x77, 0x50, 0xd9, 0x6f, 0x2c};

std::vector<uint8_t> snippet(const Insn& in, bool x87) {
    std::vector<uint8_t> v(x87 ? std::begin(kX87Pre) : std::begin(kSsePre),
                           x87 ? std::end(kX87Pre) : std::end(kSsePre));
    v.insert(v.end(), in.bytes, in.bytes + in.len);
    v.insert(v.end(), x87 ? std::begin(kX87Post) : std::begin(kSsePost),
             x87 ? std::end(kX87Post) : std::end(kSsePost));
    return v;
}

class FpTest : public Machine {
  protected:
    static constexpr uint64_t kData = 0x30000;
    FpTest() {
        CpuState& s = cpu_.state();
        s.cr0 |= CR0_NE | CR0_MP;
        s.cr4 |= CR4_OSFXSR | CR4_OSXMMEXCPT;
        cpu_.state_changed();
        page_ = static_cast<uint8_t*>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    }
    ~FpTest() override {
        if (page_ != MAP_FAILED) munmap(page_, 4096);
    }
    void native(const std::vector<uint8_t>& code, Block& b) {
        std::memcpy(page_, code.data(), code.size());
        page_[code.size()] = 0xC3;  // ret
        __builtin___clear_cache(reinterpret_cast<char*>(page_),
                                reinterpret_cast<char*>(page_ + 4096));
        reinterpret_cast<void (*)(Block*)>(page_)(&b);
    }
    // Runs `code` then HLT; returns the vector of an exception taken, or -1.
    int emulate(const std::vector<uint8_t>& code, Block& b) {
        CpuState& s = cpu_.state();
        std::memcpy(ram_ + kData, &b, sizeof b);
        std::memcpy(ram_ + kCode, code.data(), code.size());
        ram_[kCode + code.size()] = 0xF4;
        cpu_.host_wrote(kCode, code.size() + 1);
        s.rip = kCode;
        s.gpr[RDI] = kData;
        owner_.outs.clear();
        cpu_.run(0);
        std::memcpy(&b, ram_ + kData, sizeof b);
        return owner_.outs.empty() ? -1 : static_cast<int>(owner_.outs.back().value);
    }
    uint8_t* page_;
};

// Special and pseudo-random operands.
uint32_t f32(std::mt19937_64& rng) {
    static const uint32_t s[] = {0,          0x80000000, 0x3F800000, 0xBF800000, 0x7F7FFFFF,
                                 0x00800000, 0x00000001, 0x807FFFFF, 0x7F800000, 0xFF800000,
                                 0x7FC00000, 0xFFC00001, 0x7F800001, 0x4F000000, 0xCF000000,
                                 0x3EAAAAAB, 0x4B000001, 0x00400000};
    const uint64_t r = rng();
    switch (r % 3) {
        case 0:
            return s[(r >> 8) % std::size(s)];
        case 1:
            return static_cast<uint32_t>(r >> 16);
        default:  // near 1.0, to make rounding and integer conversion cases
            return 0x3F000000u + static_cast<uint32_t>((r >> 16) & 0x01FFFFFF);
    }
}
uint64_t f64(std::mt19937_64& rng) {
    static const uint64_t s[] = {0,
                                 0x8000000000000000ull,
                                 0x3FF0000000000000ull,
                                 0x7FEFFFFFFFFFFFFFull,
                                 0x0010000000000000ull,
                                 0x0000000000000001ull,
                                 0x7FF0000000000000ull,
                                 0x7FF8000000000000ull,
                                 0xFFF8000000000001ull,
                                 0x7FF0000000000001ull,
                                 0x41E0000000000000ull,
                                 0xC3E0000000000000ull};
    const uint64_t r = rng();
    switch (r % 3) {
        case 0:
            return s[(r >> 8) % std::size(s)];
        case 1:
            return rng();
        default:
            return 0x3FE0000000000000ull + (rng() & 0x003FFFFFFFFFFFFFull);
    }
}

bool is_double(const Insn& in) {
    const std::string t = in.text;
    return t.find("pd ") != std::string::npos || t.find("sd ") != std::string::npos ||
           t.find("pd2") != std::string::npos || t.find("sd2") != std::string::npos;
}

TEST_F(FpTest, SseMatchesTheHostCpu) {
    ASSERT_NE(page_, MAP_FAILED);
    std::mt19937_64 rng(7);
    const uint32_t modes[] = {0x1F80, 0x3F80, 0x5F80, 0x7F80, 0x9F80, 0x1FC0, 0x9FC0};
    for (const Insn& in : kSse) {
        const auto code = snippet(in, false);
        for (int k = 0; k < 1000; ++k) {
            Block b{};
            for (int l = 0; l < 4; ++l) {
                if (is_double(in) && l < 2) {
                    const uint64_t x = f64(rng), y = f64(rng);
                    std::memcpy(b.a + 8 * l, &x, 8);
                    std::memcpy(b.b + 8 * l, &y, 8);
                } else if (!is_double(in)) {
                    const uint32_t x = f32(rng), y = f32(rng);
                    std::memcpy(b.a + 4 * l, &x, 4);
                    std::memcpy(b.b + 4 * l, &y, 4);
                }
            }
            b.mxcsr = modes[k % std::size(modes)];
            Block host = b, emu = b;
            native(code, host);
            ASSERT_EQ(emulate(code, emu), -1) << in.text;
            ASSERT_EQ(0, std::memcmp(host.xmm0, emu.xmm0, 16))
                << in.text << " mxcsr " << std::hex << b.mxcsr;
            ASSERT_EQ(host.mxcsr_after, emu.mxcsr_after)
                << in.text << " mxcsr " << std::hex << b.mxcsr;
        }
    }
}

// 80-bit operands: specials (denormal, pseudo-denormal, unnormal, NaNs, infinities, the
// extremes) and random values of every magnitude and near 1.
void f80(std::mt19937_64& rng, uint8_t* p) {
    static const std::pair<uint64_t, uint16_t> s[] = {
        {0, 0},
        {0, 0x8000},
        {0x8000000000000000ull, 0x3FFF},
        {0xFFFFFFFFFFFFFFFFull, 0x7FFE},
        {0x8000000000000000ull, 0x0001},
        {0x0000000000000001ull, 0x0000},
        {0x8000000000000001ull, 0x0000},  // pseudo-denormal
        {0x4000000000000000ull, 0x3FFF},  // unnormal: unsupported
        {0x8000000000000000ull, 0x7FFF},
        {0xC000000000000000ull, 0xFFFF},
        {0xA000000000000000ull, 0x7FFF},
        {0x8000000000000000ull, 0x403E},
        {0xC90FDAA22168C235ull, 0x4000},
    };
    uint64_t m;
    uint16_t se;
    const uint64_t r = rng();
    switch (r % 3) {
        case 0:
            m = s[(r >> 8) % std::size(s)].first, se = s[(r >> 8) % std::size(s)].second;
            break;
        case 1:
            m = rng() | (1ull << 63), se = static_cast<uint16_t>(rng() % 0x7FFF) | (r & 0x8000);
            break;
        default:
            m = rng() | (1ull << 63), se = static_cast<uint16_t>(0x3FF0 + (r >> 20) % 32);
            break;
    }
    std::memcpy(p, &m, 8);
    std::memcpy(p + 8, &se, 2);
}

// An FNSAVE image without FIP, FCS|FOP, FDP, FDS (bytes 12-27).
void expect_same_fnsave(const Block& host, const Block& emu, const char* text, uint16_t fcw) {
    uint32_t h[3], e[3];
    std::memcpy(h, host.fnsave, 12);
    std::memcpy(e, emu.fnsave, 12);
    EXPECT_EQ(0, std::memcmp(host.fnsave, emu.fnsave, 12))
        << text << " fcw " << std::hex << fcw << ": host cw/sw/tw " << h[0] << " " << h[1] << " "
        << h[2] << ", emu " << e[0] << " " << e[1] << " " << e[2];
    EXPECT_EQ(0, std::memcmp(host.fnsave + 28, emu.fnsave + 28, 80))
        << text << " fcw " << std::hex << fcw;
}

TEST_F(FpTest, X87MatchesTheHostCpu) {
    ASSERT_NE(page_, MAP_FAILED);
    std::mt19937_64 rng(11);
    // Masked with each precision and rounding control, then some exceptions unmasked: the
    // snippet's only waiting instruction after INSN follows FNSAVE, which reinitialises.
    const uint16_t cws[] = {0x037F, 0x027F, 0x007F, 0x077F, 0x0B7F, 0x0F7F, 0x0340, 0x0376};
    for (const Insn& in : kX87) {
        const auto code = snippet(in, true);
        for (int k = 0; k < 1000; ++k) {
            Block b{};
            f80(rng, b.a);
            f80(rng, b.b);
            // The memory operand at 48: an m16/m32/m64 integer or real from the operands.
            const uint64_t m = (k & 1) ? rng() : (b.a[7] & 1) ? f64(rng) : f32(rng);
            std::memcpy(b.xmm0, &m, 8);
            b.fcw = cws[k % std::size(cws)];
            Block host = b, emu = b;
            native(code, host);
            ASSERT_EQ(emulate(code, emu), -1) << in.text;
            expect_same_fnsave(host, emu, in.text, b.fcw);
            if (::testing::Test::HasFailure()) {
                uint64_t am, bm, mm;
                uint16_t ae, be;
                std::memcpy(&am, b.a, 8), std::memcpy(&ae, b.a + 8, 2);
                std::memcpy(&bm, b.b, 8), std::memcpy(&be, b.b + 8, 2);
                std::memcpy(&mm, b.xmm0, 8);
                ADD_FAILURE() << std::hex << "a " << ae << ":" << am << " b " << be << ":" << bm
                              << " m " << mm;
            }
            EXPECT_EQ(0, std::memcmp(host.xmm0, emu.xmm0, 16)) << in.text << " (memory)";
            if (::testing::Test::HasFailure()) return;
        }
    }
}

// An unmasked SSE exception: #XM with CR4.OSXMMEXCPT, #UD without; the flag is set and
// the destination keeps its value (SDM vol. 1 §11.5.1).
TEST_F(FpTest, UnmaskedSseExceptionRaisesXmOrUd) {
    const auto code = snippet(kSse[10], false);  // divss
    for (bool osxmmexcpt : {true, false}) {
        CpuState& s = cpu_.state();
        s.cr4 = osxmmexcpt ? (s.cr4 | CR4_OSXMMEXCPT) : (s.cr4 & ~CR4_OSXMMEXCPT);
        cpu_.state_changed();
        Block b{};
        const uint32_t one = 0x3F800000;
        std::memcpy(b.a, &one, 4);  // 1 / 0 with ZM clear
        b.mxcsr = 0x1F80 & ~0x200u;
        EXPECT_EQ(emulate(code, b), osxmmexcpt ? VEC_XM : VEC_UD);
        EXPECT_EQ(cpu_.state().xmm[0].lo, one);
        EXPECT_EQ(cpu_.state().mxcsr & 0x3F, 0x4u);  // ZE
    }
}

// An unmasked x87 exception is delivered as #MF by the next waiting instruction, not by
// the FN* forms; CR0.EM and CR0.TS raise #NM, FWAIT only with CR0.TS and CR0.MP.
TEST_F(FpTest, X87ExceptionsWaitForTheNextWaitingInstruction) {
    CpuState& s = cpu_.state();
    // fninit; fldcw 36(rdi) (ZM clear); fld1; fldz; fdivp (1/0); fnstsw ax; fwait
    const std::vector<uint8_t> code = {0xdb, 0xe3, 0xd9, 0x6f, 0x24, 0xd9, 0xe8,
                                       0xd9, 0xee, 0xde, 0xf9, 0xdf, 0xe0, 0x9b};
    Block b{};
    b.fcw = 0x037B;
    EXPECT_EQ(emulate(code, b), VEC_MF);
    EXPECT_EQ(s.fsw & 0x80FF, 0x8084u);                     // B, ES, ZE
    EXPECT_EQ(get64(s.gpr[RBX]), kCode + code.size() - 1);  // the fault is on FWAIT
    s.cr0 |= CR0_TS;
    cpu_.state_changed();
    EXPECT_EQ(emulate({0xd9, 0xe8}, b), VEC_NM);  // fld1
    EXPECT_EQ(emulate({0x9b}, b), VEC_NM);        // fwait: TS and MP
    s.cr0 &= ~CR0_MP;
    cpu_.state_changed();
    s.fsw = 0;
    EXPECT_EQ(emulate({0x9b}, b), -1);  // fwait: TS without MP
}

// FPREM and FPREM1 of a QNaN clear C1 and C2 and leave C0 and C3 as they were: the
// guest's, whatever the host's last x87 operation left in the host's status word (the
// silicon does so; found by fuzz_cpu, whose result for an input depended on the inputs
// run before it in the same process). The host's codes are set natively first, the
// opposite of the guest's: equal operands give C3 (FUCOMPP), 1 > 0 none; FXAM (done by
// the model, not on the host) gives the guest C0 for a NaN.
TEST_F(FpTest, X87RemainderOfANanKeepsTheGuestsC0AndC3) {
    ASSERT_NE(page_, MAP_FAILED);
    using x87::kC0;
    using x87::kCc;
    const CpuState::F80 qnan{0xC000000000000000ull, 0x7FFF}, one{0x8000000000000000ull, 0x3FFF};
    // fldz; fldz (or fld1); fucompp
    const std::vector<uint8_t> host_equal = {0xd9, 0xee, 0xd9, 0xee, 0xda, 0xe9};
    const std::vector<uint8_t> host_greater = {0xd9, 0xee, 0xd9, 0xe8, 0xda, 0xe9};
    for (const uint8_t rem : {0xf5, 0xf8}) {  // FPREM1, FPREM
        for (const bool fxam : {false, true}) {
            Block b{};
            std::memcpy(b.a, &qnan.mant, 8), std::memcpy(b.a + 8, &qnan.se, 2);
            std::memcpy(b.b, &one.mant, 8), std::memcpy(b.b + 8, &one.se, 2);
            // fninit; fldt 16(rdi) (1.0); fldt (rdi) (QNaN); [fxam]; fprem(1); fnstsw ax
            std::vector<uint8_t> code = {0xdb, 0xe3, 0xdb, 0x6f, 0x10, 0xdb, 0x2f};
            if (fxam) code.insert(code.end(), {0xd9, 0xe5});
            code.insert(code.end(), {0xd9, rem, 0xdf, 0xe0});
            Block scratch{};
            native(fxam ? host_greater : host_equal, scratch);
            ASSERT_EQ(emulate(code, b), -1);
            // C3 C2 C1 C0: none after FNINIT; C0 after FXAM of a positive QNaN.
            EXPECT_EQ(cpu_.state().gpr[RAX] & kCc, fxam ? kC0 : 0u)
                << (rem == 0xf5 ? "fprem1" : "fprem") << (fxam ? " after fxam" : "");
            EXPECT_EQ(cpu_.state().fsw & kCc, fxam ? kC0 : 0u);
        }
    }
}

// PINSRW/PEXTRW, MOVNTI, MOVNTDQ (aligned) and MASKMOVDQU (byte-masked store at RDI).
TEST_F(FpTest, Sse2WordInsertsAndNonTemporalStores) {
    CpuState& s = cpu_.state();
    s.xmm[0] = {0x0706050403020100ull, 0x0F0E0D0C0B0A0908ull};
    s.xmm[1] = {0x8000800000000080ull, 0x0000000000000080ull};
    s.gpr[RSI] = 0xABCD1234;
    Block b{};
    // pinsrw $5,%esi,%xmm0; pextrw $5,%xmm0,%edx; movnti %rsi,48(%rdi);
    // maskmovdqu %xmm1,%xmm0 (to 80(%rdi) via RDI+80)
    const std::vector<uint8_t> code = {0x66, 0x0f, 0xc4, 0xc6, 0x05, 0x66, 0x0f, 0xc5,
                                       0xd0, 0x05, 0x48, 0x0f, 0xc3, 0x77, 0x30, 0x48,
                                       0x83, 0xc7, 0x50, 0x66, 0x0f, 0xf7, 0xc1};
    EXPECT_EQ(emulate(code, b), -1);
    EXPECT_EQ(s.xmm[0].hi, 0x0F0E0D0C12340908ull);
    EXPECT_EQ(s.gpr[RDX], 0x1234u);
    EXPECT_EQ(get64(kData + 48), 0xABCD1234u);
    EXPECT_EQ(get64(kData + 80), 0x0700050000000000ull);  // bytes 0, 5, 7 (mask bit 7 set)
    EXPECT_EQ(get64(kData + 88), 0x08ull);                // byte 8
    // movntdq %xmm0,8(%rdi): misaligned, #GP
    s.gpr[RDI] = kData;
    EXPECT_EQ(emulate({0x66, 0x0f, 0xe7, 0x47, 0x08}, b), VEC_GP);
}

}  // namespace
}  // namespace softkvm::cpu::test
