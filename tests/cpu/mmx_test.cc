// MMX (docs/fpu.md "MMX"): every instruction of the model against the host's own MMX
// unit from the same operands (the x87 state after it, as FXSAVE shows it: TOP, the tag
// word, and the registers' sign/exponent bits, compared too), then the SDM's rules the host
// cannot show in-process: the #UD/#NM/#MF order, CR4.OSFXSR, the FXSAVE/FXRSTOR view of
// MM0-7 and the decoding of the forms the model leaves #UD.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <random>

#include "cpu/decoder.h"
#include "cpu/exec/handlers.h"
#include "machine.h"

namespace softkvm::cpu::test {
namespace {

struct Insn {
    const char* text;
    uint8_t bytes[6];
    uint8_t len;
};

// GNU as encodings of the text in the first column (mm0/xmm0/eax: destination).
const Insn kMmx[] = {
    {"paddb %mm1,%mm0", {0x0f, 0xfc, 0xc1}, 3},
    {"paddw %mm1,%mm0", {0x0f, 0xfd, 0xc1}, 3},
    {"paddd %mm1,%mm0", {0x0f, 0xfe, 0xc1}, 3},
    {"paddq %mm1,%mm0", {0x0f, 0xd4, 0xc1}, 3},
    {"psubb %mm1,%mm0", {0x0f, 0xf8, 0xc1}, 3},
    {"psubw %mm1,%mm0", {0x0f, 0xf9, 0xc1}, 3},
    {"psubd %mm1,%mm0", {0x0f, 0xfa, 0xc1}, 3},
    {"psubq %mm1,%mm0", {0x0f, 0xfb, 0xc1}, 3},
    {"paddsb %mm1,%mm0", {0x0f, 0xec, 0xc1}, 3},
    {"paddsw %mm1,%mm0", {0x0f, 0xed, 0xc1}, 3},
    {"psubsb %mm1,%mm0", {0x0f, 0xe8, 0xc1}, 3},
    {"psubsw %mm1,%mm0", {0x0f, 0xe9, 0xc1}, 3},
    {"paddusb %mm1,%mm0", {0x0f, 0xdc, 0xc1}, 3},
    {"paddusw %mm1,%mm0", {0x0f, 0xdd, 0xc1}, 3},
    {"psubusb %mm1,%mm0", {0x0f, 0xd8, 0xc1}, 3},
    {"psubusw %mm1,%mm0", {0x0f, 0xd9, 0xc1}, 3},
    {"pcmpeqb %mm1,%mm0", {0x0f, 0x74, 0xc1}, 3},
    {"pcmpeqw %mm1,%mm0", {0x0f, 0x75, 0xc1}, 3},
    {"pcmpeqd %mm1,%mm0", {0x0f, 0x76, 0xc1}, 3},
    {"pcmpgtb %mm1,%mm0", {0x0f, 0x64, 0xc1}, 3},
    {"pcmpgtw %mm1,%mm0", {0x0f, 0x65, 0xc1}, 3},
    {"pcmpgtd %mm1,%mm0", {0x0f, 0x66, 0xc1}, 3},
    {"pand %mm1,%mm0", {0x0f, 0xdb, 0xc1}, 3},
    {"pandn %mm1,%mm0", {0x0f, 0xdf, 0xc1}, 3},
    {"por %mm1,%mm0", {0x0f, 0xeb, 0xc1}, 3},
    {"pxor %mm1,%mm0", {0x0f, 0xef, 0xc1}, 3},
    {"psllw %mm1,%mm0", {0x0f, 0xf1, 0xc1}, 3},
    {"pslld %mm1,%mm0", {0x0f, 0xf2, 0xc1}, 3},
    {"psllq %mm1,%mm0", {0x0f, 0xf3, 0xc1}, 3},
    {"psrlw %mm1,%mm0", {0x0f, 0xd1, 0xc1}, 3},
    {"psrld %mm1,%mm0", {0x0f, 0xd2, 0xc1}, 3},
    {"psrlq %mm1,%mm0", {0x0f, 0xd3, 0xc1}, 3},
    {"psraw %mm1,%mm0", {0x0f, 0xe1, 0xc1}, 3},
    {"psrad %mm1,%mm0", {0x0f, 0xe2, 0xc1}, 3},
    {"psllw $3,%mm0", {0x0f, 0x71, 0xf0, 0x03}, 4},
    {"pslld $17,%mm0", {0x0f, 0x72, 0xf0, 0x11}, 4},
    {"psllq $40,%mm0", {0x0f, 0x73, 0xf0, 0x28}, 4},
    {"psrlw $16,%mm0", {0x0f, 0x71, 0xd0, 0x10}, 4},
    {"psrld $5,%mm0", {0x0f, 0x72, 0xd0, 0x05}, 4},
    {"psrlq $63,%mm0", {0x0f, 0x73, 0xd0, 0x3f}, 4},
    {"psraw $9,%mm0", {0x0f, 0x71, 0xe0, 0x09}, 4},
    {"psrad $200,%mm0", {0x0f, 0x72, 0xe0, 0xc8}, 4},
    {"packsswb %mm1,%mm0", {0x0f, 0x63, 0xc1}, 3},
    {"packssdw %mm1,%mm0", {0x0f, 0x6b, 0xc1}, 3},
    {"packuswb %mm1,%mm0", {0x0f, 0x67, 0xc1}, 3},
    {"punpcklbw %mm1,%mm0", {0x0f, 0x60, 0xc1}, 3},
    {"punpcklwd %mm1,%mm0", {0x0f, 0x61, 0xc1}, 3},
    {"punpckldq %mm1,%mm0", {0x0f, 0x62, 0xc1}, 3},
    {"punpckhbw %mm1,%mm0", {0x0f, 0x68, 0xc1}, 3},
    {"punpckhwd %mm1,%mm0", {0x0f, 0x69, 0xc1}, 3},
    {"punpckhdq %mm1,%mm0", {0x0f, 0x6a, 0xc1}, 3},
    {"punpcklbw 64(%rdi),%mm0", {0x0f, 0x60, 0x47, 0x40}, 4},
    {"punpckhdq 64(%rdi),%mm0", {0x0f, 0x6a, 0x47, 0x40}, 4},
    {"pmullw %mm1,%mm0", {0x0f, 0xd5, 0xc1}, 3},
    {"pmulhw %mm1,%mm0", {0x0f, 0xe5, 0xc1}, 3},
    {"pmaddwd %mm1,%mm0", {0x0f, 0xf5, 0xc1}, 3},
    {"pmulhuw %mm1,%mm0", {0x0f, 0xe4, 0xc1}, 3},
    {"pmuludq %mm1,%mm0", {0x0f, 0xf4, 0xc1}, 3},
    {"pavgb %mm1,%mm0", {0x0f, 0xe0, 0xc1}, 3},
    {"pavgw %mm1,%mm0", {0x0f, 0xe3, 0xc1}, 3},
    {"pminub %mm1,%mm0", {0x0f, 0xda, 0xc1}, 3},
    {"pmaxub %mm1,%mm0", {0x0f, 0xde, 0xc1}, 3},
    {"pminsw %mm1,%mm0", {0x0f, 0xea, 0xc1}, 3},
    {"pmaxsw %mm1,%mm0", {0x0f, 0xee, 0xc1}, 3},
    {"psadbw %mm1,%mm0", {0x0f, 0xf6, 0xc1}, 3},
    {"pshufw $0x1b,%mm1,%mm0", {0x0f, 0x70, 0xc1, 0x1b}, 4},
    {"pshufw $0xe4,64(%rdi),%mm0", {0x0f, 0x70, 0x47, 0x40, 0xe4}, 5},
    {"pextrw $2,%mm1,%eax", {0x0f, 0xc5, 0xc1, 0x02}, 4},
    {"pinsrw $3,%eax,%mm0", {0x0f, 0xc4, 0xc0, 0x03}, 4},
    {"pinsrw $5,64(%rdi),%mm0", {0x0f, 0xc4, 0x47, 0x40, 0x05}, 5},
    {"pmovmskb %mm1,%eax", {0x0f, 0xd7, 0xc1}, 3},
    {"movd %mm1,%eax", {0x0f, 0x7e, 0xc8}, 3},
    {"movd %eax,%mm0", {0x0f, 0x6e, 0xc0}, 3},
    {"movq %rax,%mm0", {0x48, 0x0f, 0x6e, 0xc0}, 4},
    {"movq %mm1,%rax", {0x48, 0x0f, 0x7e, 0xc8}, 4},
    {"movq %mm1,%mm0", {0x0f, 0x6f, 0xc1}, 3},
    {"movq 64(%rdi),%mm0", {0x0f, 0x6f, 0x47, 0x40}, 4},
    {"movd 64(%rdi),%mm0", {0x0f, 0x6e, 0x47, 0x40}, 4},
    {"movq %mm1,64(%rdi)", {0x0f, 0x7f, 0x4f, 0x40}, 4},
    {"movd %mm1,64(%rdi)", {0x0f, 0x7e, 0x4f, 0x40}, 4},
    {"movntq %mm1,64(%rdi)", {0x0f, 0xe7, 0x4f, 0x40}, 4},
    {"movq2dq %mm1,%xmm0", {0xf3, 0x0f, 0xd6, 0xc1}, 4},
    {"movdq2q %xmm0,%mm0", {0xf2, 0x0f, 0xd6, 0xc0}, 4},
    {"cvtpi2ps %mm1,%xmm0", {0x0f, 0x2a, 0xc1}, 3},
    {"cvtpi2pd %mm1,%xmm0", {0x66, 0x0f, 0x2a, 0xc1}, 4},
    {"cvtpi2ps 64(%rdi),%xmm0", {0x0f, 0x2a, 0x47, 0x40}, 4},
    {"cvtps2pi %xmm0,%mm0", {0x0f, 0x2d, 0xc0}, 3},
    {"cvttps2pi %xmm0,%mm0", {0x0f, 0x2c, 0xc0}, 3},
    {"cvtpd2pi %xmm0,%mm0", {0x66, 0x0f, 0x2d, 0xc0}, 4},
    {"cvttpd2pi %xmm0,%mm0", {0x66, 0x0f, 0x2c, 0xc0}, 4},
    {"cvtps2pi 64(%rdi),%mm0", {0x0f, 0x2d, 0x47, 0x40}, 4},
    {"cvtpd2pi 64(%rdi),%mm0", {0x66, 0x0f, 0x2d, 0x47, 0x40}, 5},
    {"maskmovq %mm1,%mm0", {0x0f, 0xf7, 0xc1}, 3},
    {"paddsw 64(%rdi),%mm0", {0x0f, 0xed, 0x47, 0x40}, 4},
    {"emms", {0x0f, 0x77}, 2},
};

// The data block a snippet works on (RDI points at it).
struct alignas(64) Block {
    uint64_t mm0, mm1;       // 0, 8: MM0 and MM1 before
    uint64_t xmm0[2];        // 16: XMM0 before
    uint64_t rax;            // 32: RAX before
    uint64_t rax_after;      // 40
    uint32_t mxcsr;          // 48
    uint32_t saved_mxcsr;    // 52
    uint64_t pad0;           // 56
    uint64_t mem[2];         // 64: the memory operand
    uint64_t xmm0_after[2];  // 80
    uint8_t pad1[32];        // 96
    uint8_t fx[512];         // 128: FXSAVE after
};
static_assert(sizeof(Block) == 640);

// stmxcsr 52(rdi); fninit; ldmxcsr 48(rdi); movq (rdi),mm0; movq 8(rdi),mm1;
// pxor mm2..mm7 (zeros with exponents all ones); movdqu 16(rdi),xmm0; mov 32(rdi),rax;
// ffree st(7); ffree st(6); fld1 (TOP 7, R6 empty); INSN;
// fxsave 128(rdi); movdqu xmm0,80(rdi); mov rax,40(rdi); emms; fninit; fldz x 8; fninit
// (the x87 registers zero and empty again, as the process started: other tests compare
// x87 images natively); ldmxcsr 52(rdi)
const uint8_t kPre[] = {0x0f, 0xae, 0x5f, 0x34, 0xdb, 0xe3, 0x0f, 0xae, 0x57, 0x30,
                        0x0f, 0x6f, 0x07, 0x0f, 0x6f, 0x4f, 0x08, 0x0f, 0xef, 0xd2,
                        0x0f, 0xef, 0xdb, 0x0f, 0xef, 0xe4, 0x0f, 0xef, 0xed, 0x0f,
                        0xef, 0xf6, 0x0f, 0xef, 0xff, 0xf3, 0x0f, 0x6f, 0x47, 0x10,
                        0x48, 0x8b, 0x47, 0x20, 0xdd, 0xc7, 0xdd, 0xc6, 0xd9, 0xe8};
const uint8_t kPost[] = {0x0f, 0xae, 0x87, 0x80, 0x00, 0x00, 0x00, 0xf3, 0x0f, 0x7f, 0x47,
                         0x50, 0x48, 0x89, 0x47, 0x28, 0x0f, 0x77, 0xdb, 0xe3, 0xd9, 0xee,
                         0xd9, 0xee, 0xd9, 0xee, 0xd9, 0xee, 0xd9, 0xee, 0xd9, 0xee, 0xd9,
                         0xee, 0xd9, 0xee, 0xdb, 0xe3, 0x0f, 0xae, 0x57, 0x34};

std::vector<uint8_t> snippet(const Insn& in) {
    std::vector<uint8_t> v(std::begin(kPre), std::end(kPre));
    v.insert(v.end(), in.bytes, in.bytes + in.len);
    v.insert(v.end(), std::begin(kPost), std::end(kPost));
    return v;
}

class MmxTest : public Machine {
  protected:
    static constexpr uint64_t kData = 0x30000;
    MmxTest() {
        CpuState& s = cpu_.state();
        s.cr0 |= CR0_NE | CR0_MP;
        s.cr4 |= CR4_OSFXSR | CR4_OSXMMEXCPT;
        cpu_.state_changed();
        page_ = static_cast<uint8_t*>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    }
    ~MmxTest() override {
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
    int emulate(const std::vector<uint8_t>& code, Block* b = nullptr) {
        CpuState& s = cpu_.state();
        if (b) std::memcpy(ram_ + kData, b, sizeof *b);
        std::memcpy(ram_ + kCode, code.data(), code.size());
        ram_[kCode + code.size()] = 0xF4;
        cpu_.host_wrote(kCode, code.size() + 1);
        s.rip = kCode;
        s.gpr[RDI] = kData;
        owner_.outs.clear();
        cpu_.run(0);
        if (b) std::memcpy(b, ram_ + kData, sizeof *b);
        return owner_.outs.empty() ? -1 : static_cast<int>(owner_.outs.back().value);
    }
    uint8_t* page_;
};

// Operands with the saturation and sign edges of every lane width, and random ones.
uint64_t operand(std::mt19937_64& rng) {
    static const uint64_t s[] = {0,
                                 ~0ull,
                                 0x7F7F7F7F7F7F7F7Full,
                                 0x8080808080808080ull,
                                 0x7FFF80007FFF8000ull,
                                 0x800000007FFFFFFFull,
                                 0x0001FFFF00FF0100ull,
                                 0x8000000000000000ull,
                                 0x0000000000000001ull,
                                 0x3F800000C0400000ull,  // 1.0f, -3.0f
                                 0x000000000000003Full,  // shift counts
                                 0x0000000000000010ull};
    const uint64_t r = rng();
    return r % 3 == 0 ? s[(r >> 8) % std::size(s)] : rng();
}

// Single and double values that convert to integers in range, out of range, NaN.
uint64_t fp_operand(std::mt19937_64& rng) {
    static const uint64_t s[] = {
        0x3FC000003F000000ull, 0xC0700000BF400001ull, 0x4F0000004EFFFFFFull, 0x7FC00000CF000000ull,
        0x4004000000000000ull, 0xC1E0000000000000ull, 0x41E0000000000000ull, 0x7FF8000000000000ull};
    const uint64_t r = rng();
    return r % 2 ? s[(r >> 8) % std::size(s)] : (0x3F000000ull + (rng() & 0x01FFFFFF)) << (r & 32);
}

TEST_F(MmxTest, EveryInstructionMatchesTheHostCpu) {
    std::mt19937_64 rng(13);
    for (const Insn& in : kMmx) {
        const std::vector<uint8_t> code = snippet(in);
        for (int k = 0; k < 150; ++k) {
            Block b{};
            b.mm0 = operand(rng), b.mm1 = operand(rng);
            b.xmm0[0] = fp_operand(rng), b.xmm0[1] = fp_operand(rng);
            b.rax = operand(rng);
            b.mem[0] = k % 2 ? operand(rng) : fp_operand(rng);
            b.mem[1] = fp_operand(rng);
            b.mxcsr = 0x1F80 | static_cast<uint32_t>((rng() & 3) << 13);  // rounding
            Block n = b, e = b;
            native(code, n);
            ASSERT_EQ(emulate(code, &e), -1) << in.text;
            const auto where = [&] {
                return ::testing::Message() << in.text << " mm0=" << std::hex << b.mm0
                                            << " mm1=" << b.mm1 << " rax=" << b.rax << " k=" << k;
            };
            // Everything but the saved host MXCSR and the FXSAVE image.
            EXPECT_EQ(std::memcmp(&n, &e, 52), 0) << where();
            EXPECT_EQ(std::memcmp(&n.mem, &e.mem, 32), 0) << where();
            // FXSAVE: FCW, FSW (TOP), the abridged tag word, MXCSR, R0-R7 (80 bits each)
            // and XMM0; not FOP/FIP/FDP (the last x87 instruction's, FLD1's, at other
            // addresses) nor MXCSR_MASK (the host part's).
            EXPECT_EQ(std::memcmp(n.fx, e.fx, 5), 0) << where();
            EXPECT_EQ(std::memcmp(n.fx + 24, e.fx + 24, 4), 0) << where();
            // After EMMS every register is empty and FCW/FSW/FTW and the pointers are
            // as after FNINIT: the host may then take the x87 state for its initial
            // configuration and restore zeros after a context switch (seen under load),
            // so only the registers behind valid tags are compared.
            const bool emms = in.bytes[0] == 0x0f && in.bytes[1] == 0x77;
            for (int r = 0; r < 8 && !emms; ++r)
                EXPECT_EQ(std::memcmp(n.fx + 32 + 16 * r, e.fx + 32 + 16 * r, 10), 0)
                    << where() << " R" << r;
            EXPECT_EQ(std::memcmp(n.fx + 160, e.fx + 160, 16), 0) << where();
            if (HasFailure()) return;
        }
    }
}

// The x87 side of the aliasing, on the model's state (SDM vol. 1 table 9-3).
TEST_F(MmxTest, MmxWritesAliasThePhysicalRegistersAndResetTopAndTags) {
    CpuState& s = cpu_.state();
    s.gpr[RAX] = 0x1122334455667788ull;
    // fninit; fld1; fld1 (TOP 6); movq %rax,%mm3; hlt
    ASSERT_EQ(emulate({0xdb, 0xe3, 0xd9, 0xe8, 0xd9, 0xe8, 0x48, 0x0f, 0x6e, 0xd8}), -1);
    EXPECT_EQ((s.fsw >> 11) & 7, 0);
    EXPECT_EQ(s.ftw, 0xFF);
    EXPECT_EQ(s.st[3].mant, 0x1122334455667788ull);  // R3, not ST(3) (which is R1)
    EXPECT_EQ(s.st[3].se, 0xFFFF);
    EXPECT_EQ(s.st[6].mant, 0x8000000000000000ull);  // the FLD1 values stay
    EXPECT_EQ(s.st[6].se, 0x3FFF);
    // movq %mm3,%rbx: a read changes no register's exponent.
    s.st[4] = {0x8000000000000000ull, 0x3FFF};
    s.ftw = 0x10;
    ASSERT_EQ(emulate({0x48, 0x0f, 0x7e, 0xdb}), -1);
    EXPECT_EQ(s.gpr[RBX], 0x1122334455667788ull);
    EXPECT_EQ(s.st[4].se, 0x3FFF);
    EXPECT_EQ(s.ftw, 0xFF);
    // emms after fld1 (TOP 7): every tag empty and TOP 0 (table 9-3; the silicon agrees).
    ASSERT_EQ(emulate({0x0f, 0x77, 0xd9, 0xe8, 0x0f, 0x77}), -1);
    EXPECT_EQ(s.ftw, 0);
    EXPECT_EQ((s.fsw >> 11) & 7, 0);
    EXPECT_EQ(s.st[7].se, 0x3FFF);  // the registers stay
}

TEST_F(MmxTest, SaturationEdges) {
    CpuState& s = cpu_.state();
    auto run = [&](std::vector<uint8_t> insn, uint64_t a, uint64_t b) {
        s.st[0].mant = a, s.st[1].mant = b;
        EXPECT_EQ(emulate(insn), -1);
        return s.st[0].mant;
    };
    const std::vector<uint8_t> paddsb{0x0f, 0xec, 0xc1}, psubusb{0x0f, 0xd8, 0xc1},
        paddusw{0x0f, 0xdd, 0xc1}, psubsw{0x0f, 0xe9, 0xc1}, packuswb{0x0f, 0x67, 0xc1},
        packssdw{0x0f, 0x6b, 0xc1}, pmaddwd{0x0f, 0xf5, 0xc1};
    EXPECT_EQ(run(paddsb, 0x7F80000000000001ull, 0x01FF000000000001ull), 0x7F80000000000002ull);
    EXPECT_EQ(run(psubusb, 0x0005000000000000ull, 0x0106000000000000ull), 0);
    EXPECT_EQ(run(paddusw, 0xFFFF000000000000ull, 0x0001000000000000ull), 0xFFFF000000000000ull);
    EXPECT_EQ(run(psubsw, 0x8000000000000000ull, 0x0001000000000000ull), 0x8000000000000000ull);
    // Words -1, 300, 255, 0 | 128, -300, 1, 2 -> bytes 0, 255, 255, 0 | 128, 0, 1, 2.
    EXPECT_EQ(run(packuswb, 0x000000FF012CFFFFull, 0x00020001FED40080ull), 0x0201008000FFFF00ull);
    EXPECT_EQ(run(packssdw, 0x8000000000010000ull, 0x7FFFFFFF00000005ull), 0x7FFF000580007FFFull);
    // 0x8000 * 0x8000 twice: 0x80000000 (wraps, no saturation).
    EXPECT_EQ(run(pmaddwd, 0x0000000080008000ull, 0x0000000080008000ull), 0x0000000080000000ull);
}

// CR0.EM: #UD; then CR0.TS: #NM; then a pending unmasked x87 exception: #MF; memory
// faults last (SDM vol. 3 §12.5, vol. 2 table 22-8).
TEST_F(MmxTest, ExceptionOrder) {
    CpuState& s = cpu_.state();
    const std::vector<uint8_t> paddb_far{0x0f, 0xfc, 0x04, 0x25, 0x00, 0x00, 0x00, 0x40};
    s.fsw |= 0x80 | 0x01;  // ES, IE pending
    s.cr0 |= CR0_EM | CR0_TS;
    EXPECT_EQ(emulate(paddb_far), VEC_UD);  // paddb 0x40000000,%mm0: unmapped
    s.cr0 &= ~CR0_EM;
    EXPECT_EQ(emulate(paddb_far), VEC_NM);
    s.cr0 &= ~CR0_TS;
    EXPECT_EQ(emulate(paddb_far), VEC_MF);
    s.fsw = 0;
    EXPECT_EQ(emulate(paddb_far), VEC_PF);
    // EMMS: #UD with EM, #NM with TS, #MF when pending.
    s.cr0 |= CR0_EM;
    EXPECT_EQ(emulate({0x0f, 0x77}), VEC_UD);
    s.cr0 = (s.cr0 & ~CR0_EM) | CR0_TS;
    EXPECT_EQ(emulate({0x0f, 0x77}), VEC_NM);
    s.cr0 &= ~CR0_TS;
    s.fsw |= 0x80 | 0x01;
    s.ftw = 0x0F;
    EXPECT_EQ(emulate({0x0f, 0x77}), VEC_MF);
    EXPECT_EQ(s.ftw, 0x0F);  // nothing done
    // A faulting instruction leaves the x87 state alone.
    s.fsw = 3 << 11;
    ASSERT_EQ(emulate(paddb_far), VEC_PF);
    EXPECT_EQ(s.ftw, 0x0F);
    EXPECT_EQ((s.fsw >> 11) & 7, 3);
}

// The MMX forms need no CR4.OSFXSR, but those with an XMM operand do (SDM vol. 2 tables
// 22-5, 22-6, 22-8).
TEST_F(MmxTest, OsfxsrGuardsOnlyTheFormsWithAnXmmOperand) {
    CpuState& s = cpu_.state();
    s.cr4 &= ~CR4_OSFXSR;
    cpu_.state_changed();
    EXPECT_EQ(emulate({0x0f, 0xfc, 0xc1}), -1);            // paddb %mm1,%mm0
    EXPECT_EQ(emulate({0x0f, 0xe0, 0xc1}), -1);            // pavgb %mm1,%mm0
    EXPECT_EQ(emulate({0xf3, 0x0f, 0xd6, 0xc1}), VEC_UD);  // movq2dq %mm1,%xmm0
    EXPECT_EQ(emulate({0x0f, 0x2a, 0xc1}), VEC_UD);        // cvtpi2ps %mm1,%xmm0
    EXPECT_EQ(emulate({0x0f, 0x2d, 0xc0}), VEC_UD);        // cvtps2pi %xmm0,%mm0
}

// CVTPI2PS from memory is pure SSE: no MMX transition.
TEST_F(MmxTest, ConversionFromMemoryLeavesTheX87StateAlone) {
    CpuState& s = cpu_.state();
    s.ftw = 0x01;
    s.fsw = 5 << 11;
    put64(kData, 0x00000002FFFFFFFFull);
    ASSERT_EQ(emulate({0x0f, 0x2a, 0x07}), -1);  // cvtpi2ps (%rdi),%xmm0
    EXPECT_EQ(s.xmm[0].lo, 0x40000000BF800000ull);
    EXPECT_EQ(s.ftw, 0x01);
    EXPECT_EQ((s.fsw >> 11) & 7, 5);
    ASSERT_EQ(emulate({0x0f, 0x2a, 0xc1}), -1);  // cvtpi2ps %mm1,%xmm0
    EXPECT_EQ(s.ftw, 0xFF);
    EXPECT_EQ((s.fsw >> 11) & 7, 0);
}

// FXSAVE stores MMi in the R_i slot (bytes 32 + 16i) with its exponent bits; FXRSTOR
// brings a changed image back into MMi.
TEST_F(MmxTest, FxsaveAndFxrstorRoundTripTheMmxView) {
    CpuState& s = cpu_.state();
    s.gpr[RAX] = 0x0123456789ABCDEFull;
    // movq %rax,%mm5; fxsave (%rdi)
    ASSERT_EQ(emulate({0x48, 0x0f, 0x6e, 0xe8, 0x0f, 0xae, 0x07}), -1);
    EXPECT_EQ(get64(kData + 32 + 16 * 5), 0x0123456789ABCDEFull);
    EXPECT_EQ(get64(kData + 40 + 16 * 5) & 0xFFFF, 0xFFFFu);
    EXPECT_EQ(ram_[kData + 4], 0xFF);            // abridged tag word: all valid
    EXPECT_EQ(get64(kData) >> 16 & 0x3800, 0u);  // FSW.TOP = 0
    put64(kData + 32 + 16 * 5, 0xFEDCBA9876543210ull);
    // fxrstor (%rdi); movq %mm5,%rbx
    ASSERT_EQ(emulate({0x0f, 0xae, 0x0f, 0x48, 0x0f, 0x7e, 0xeb}), -1);
    EXPECT_EQ(s.gpr[RBX], 0xFEDCBA9876543210ull);
}

TEST(MmxDecode, MmxFormsDecodeAndOthersStayUndefined) {
    Decoder d;
    DecodedInsn in;
    const uint8_t paddb[] = {0x0f, 0xfc, 0xc1};
    ASSERT_TRUE(d.decode(Mode::Long64, paddb, sizeof paddb, in));
    EXPECT_EQ(in.op[0].kind, OpKind::Mm);
    EXPECT_EQ(in.op[1].kind, OpKind::Mm);
    EXPECT_NE(in.fn, op_ud);
    const uint8_t movd[] = {0x0f, 0x7e, 0xc8};  // movd %mm1,%eax
    ASSERT_TRUE(d.decode(Mode::Long64, movd, sizeof movd, in));
    EXPECT_EQ(in.op[1].kind, OpKind::Mm);
    EXPECT_NE(in.fn, op_ud);
    // SSSE3 on MMX registers (pshufb, pabsb), 3DNow! (pfadd) and VEX (vpaddb): #UD.
    const std::vector<std::vector<uint8_t>> ud = {{0x0f, 0x38, 0x00, 0xc1},
                                                  {0x0f, 0x38, 0x1c, 0xc1},
                                                  {0x0f, 0x0f, 0xc1, 0x9e},
                                                  {0xc5, 0xf9, 0xfc, 0xc1}};
    for (const auto& b : ud)
        if (d.decode(Mode::Long64, b.data(), b.size(), in)) {
            EXPECT_EQ(in.fn, op_ud) << int(b[1]);
        }
}

}  // namespace
}  // namespace softkvm::cpu::test
