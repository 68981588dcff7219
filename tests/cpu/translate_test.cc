// The translating engine against the interpreter (docs/translator.md): the same program on
// two bare machines, one per engine (native forms on, and off), must leave identical state after
// every run() step — registers, RFLAGS, RIP, the retired count, port events and memory. Programs
// are random instruction streams (random operands and flags, memory operands, and instructions that
// fault), plus fixed programs for self-modifying code and a code cache that fills up.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bare_machine.h"
#include "cpu/block.h"
#include "cpu/translate/translator.h"

namespace softkvm::cpu::test {
namespace {

constexpr uint64_t kScratch = 0x100000;   // 4 KiB the programs read and write (R15)
constexpr uint64_t kLastPage = 0x3FF000;  // R14: the last mapped page; 4 MiB on: #PF
// R13: the scratch page with garbage above bit 31, used with 32-bit addressing only.
constexpr uint64_t kScratch32 = kScratch | 0x5A5A00000000ull;

class Pair {
  public:
    explicit Pair(size_t cache_bytes = Translator::kDefaultCacheBytes) {
        ok_ = t_.cpu_.set_engine(Engine::Translate, cache_bytes);
        // Every block is translated when it first runs (the tests compare translations).
        if (ok_) t_.cpu_.translator()->set_translate_after(1);
    }
    bool ok() const { return ok_; }
    template <typename F>
    void both(F f) {
        f(i_);
        f(t_);
    }
    void load(const std::vector<uint8_t>& code, uint64_t at = BareMachine::kCode) {
        both([&](BareMachine& m) { std::memcpy(m.ram_ + at, code.data(), code.size()); });
    }
    // Steps both machines with the same instruction limits and compares after each step.
    void run_compare(const std::vector<uint64_t>& limits, const std::string& what) {
        for (uint64_t limit : limits) {
            const StopReason a = i_.cpu_.run(limit);
            const StopReason b = t_.cpu_.run(limit);
            ASSERT_EQ(a, b) << what << " limit " << limit;
            expect_same(what + " after run(" + std::to_string(limit) + ")");
            if (::testing::Test::HasFailure()) return;
            if (a != StopReason::InsnLimit) return;
        }
    }
    void expect_same(const std::string& what) {
        const CpuState& a = i_.cpu_.state();
        const CpuState& b = t_.cpu_.state();
        for (int r = 0; r < 16; ++r) EXPECT_EQ(a.gpr[r], b.gpr[r]) << what << " gpr " << r;
        EXPECT_EQ(a.rip, b.rip) << what;
        EXPECT_EQ(a.rflags, b.rflags) << what;
        EXPECT_EQ(a.cr2, b.cr2) << what;
        // The x87 registers with their MMX view, TOP and the tags.
        for (int r = 0; r < 8; ++r) {
            EXPECT_EQ(a.st[r].mant, b.st[r].mant) << what << " R" << r;
            EXPECT_EQ(a.st[r].se, b.st[r].se) << what << " R" << r;
        }
        EXPECT_EQ(a.fsw, b.fsw) << what;
        EXPECT_EQ(a.ftw, b.ftw) << what;
        EXPECT_EQ(i_.cpu_.instructions_retired(), t_.cpu_.instructions_retired()) << what;
        EXPECT_EQ(i_.owner_.outs.size(), t_.owner_.outs.size()) << what;
        for (size_t k = 0; k < std::min(i_.owner_.outs.size(), t_.owner_.outs.size()); ++k) {
            EXPECT_EQ(i_.owner_.outs[k].port, t_.owner_.outs[k].port) << what;
            EXPECT_EQ(i_.owner_.outs[k].value, t_.owner_.outs[k].value) << what;
        }
        EXPECT_EQ(i_.owner_.hlts, t_.owner_.hlts) << what;
        // The scratch page and the next, the stack below its top and the code pages.
        EXPECT_EQ(0, std::memcmp(i_.ram_ + kScratch, t_.ram_ + kScratch, 8192)) << what;
        EXPECT_EQ(0, std::memcmp(i_.ram_ + kLastPage, t_.ram_ + kLastPage, 4096)) << what;
        EXPECT_EQ(0, std::memcmp(i_.ram_ + BareMachine::kStack - 4096,
                                 t_.ram_ + BareMachine::kStack - 4096, 4096))
            << what;
        EXPECT_EQ(0, std::memcmp(i_.ram_ + BareMachine::kCode, t_.ram_ + BareMachine::kCode, 8192))
            << what;
    }
    uint64_t translated() const { return t_.cpu_.translator_stats().blocks_translated; }
    Cpu& translating_cpu() { return t_.cpu_; }
    BareMachine& translating() { return t_; }

  private:
    BareMachine i_, t_;
    bool ok_ = false;
};

// Random instruction streams over the forms a block holds most: moves, ALU with
// registers, immediates and memory (8, 32 and 64 bits, memory destinations too),
// INC/DEC/NEG/NOT, shifts, IMUL, LEA, MOVZX/MOVSX/MOVSXD, PUSH/POP, CALL/RET, JMP through
// a register and memory, NOPs, SETcc/CMOVcc, PUSHF/POPF, forward Jcc/JMP, DIV (#DE on a
// zero divisor), loads from an unmapped page (#PF), UD2 (#UD), MMX (MOVQ to and from GPRs,
// packed operations on registers and memory, shifts by immediates, EMMS). RSP, R13, R14
// and R15 are never written at random.
class StreamGen {
  public:
    explicit StreamGen(uint64_t seed) : rng_(seed) {}

    std::vector<uint8_t> program(size_t insns) {
        std::vector<uint8_t> c;
        for (size_t k = 0; k < insns; ++k) one(c);
        c.push_back(0xF4);  // hlt
        return c;
    }

  private:
    uint32_t pick(uint32_t n) { return static_cast<uint32_t>(rng_() % n); }
    uint8_t reg() {  // any GPR but RSP, R13, R14, R15
        static const uint8_t regs[] = {0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12};
        return regs[pick(sizeof regs)];
    }
    // REX (W as given, R and B from the registers) + opcode + ModRM register form.
    void rr(std::vector<uint8_t>& c, bool w, std::initializer_list<uint8_t> op, uint8_t r,
            uint8_t m) {
        c.push_back(static_cast<uint8_t>(0x40 | (w ? 8 : 0) | (r >> 3 << 2) | (m >> 3)));
        for (uint8_t b : op) c.push_back(b);
        c.push_back(static_cast<uint8_t>(0xC0 | (r & 7) << 3 | (m & 7)));
    }
    // [R15 + disp8] (or [R14 + 4096 + disp8] for a fault) as the r/m operand.
    void rm_mem(std::vector<uint8_t>& c, bool w, std::initializer_list<uint8_t> op, uint8_t r,
                bool fault) {
        c.push_back(static_cast<uint8_t>(0x41 | (w ? 8 : 0) | (r >> 3 << 2)));
        for (uint8_t b : op) c.push_back(b);
        if (fault) {
            c.push_back(static_cast<uint8_t>(0x80 | (r & 7) << 3 | 6));  // [R14 + disp32]
            const uint32_t d = 4096 + pick(16) * 8;
            for (int k = 0; k < 4; ++k) c.push_back(static_cast<uint8_t>(d >> (8 * k)));
            return;
        }
        c.push_back(static_cast<uint8_t>(0x40 | (r & 7) << 3 | 7));
        c.push_back(static_cast<uint8_t>(pick(16) * 8));
    }
    void imm32(std::vector<uint8_t>& c) {
        const uint32_t v = static_cast<uint32_t>(rng_());
        for (int k = 0; k < 4; ++k) c.push_back(static_cast<uint8_t>(v >> (8 * k)));
    }
    void one(std::vector<uint8_t>& c) {
        static const uint8_t alu[] = {0x01, 0x09, 0x11, 0x19, 0x21, 0x29, 0x31, 0x39, 0x85};
        const bool w = pick(2);
        switch (pick(29)) {
            case 0:
            case 1:
            case 2:
                return rr(c, w, {alu[pick(sizeof alu)]}, reg(), reg());
            case 3:
                return rr(c, w, {0x89}, reg(), reg());  // mov r/m, r
            case 4: {                                   // mov r, imm32 / imm64
                const uint8_t r = reg();
                if (w)
                    c.push_back(static_cast<uint8_t>(0x48 | (r >> 3)));
                else if (r >= 8)
                    c.push_back(0x41);
                c.push_back(static_cast<uint8_t>(0xB8 + (r & 7)));
                imm32(c);
                if (w) imm32(c);
                return;
            }
            case 5:  // ALU r/m, imm8 (group 1)
                rr(c, w, {0x83}, static_cast<uint8_t>(pick(8)), reg());
                c.push_back(static_cast<uint8_t>(rng_()));
                return;
            case 6:  // ALU r/m, imm32
                rr(c, w, {0x81}, static_cast<uint8_t>(pick(8)), reg());
                imm32(c);
                return;
            case 7:  // inc, dec (group 5) / not, neg (group 3)
                if (pick(2)) return rr(c, w, {0xFF}, static_cast<uint8_t>(pick(2)), reg());
                return rr(c, w, {0xF7}, static_cast<uint8_t>(2 + pick(2)), reg());
            case 8: {  // shl/shr/sar/rol/ror r, imm8 (counts that mask to 0 among them)
                const uint8_t kind = static_cast<uint8_t>(std::array{0, 1, 4, 5, 7}[pick(5)]);
                if (pick(6) == 0) return rr(c, w, {0xD1}, kind, reg());  // count 1
                rr(c, w, {0xC1}, kind, reg());
                c.push_back(static_cast<uint8_t>(
                    pick(3) ? pick(70) : std::array{0, 1, 31, 32, 63, 64}[pick(6)]));
                return;
            }
            case 9:  // imul r, r/m; imul r, r/m, imm8; imul r, r/m, imm32
                switch (pick(3)) {
                    case 0:
                        return rr(c, w, {0x0F, 0xAF}, reg(), reg());
                    case 1:
                        rr(c, w, {0x6B}, reg(), reg());
                        c.push_back(static_cast<uint8_t>(rng_()));
                        return;
                    default:
                        rr(c, w, {0x69}, reg(), reg());
                        return imm32(c);
                }
            case 10: {  // load, store, ALU with memory: [R15 + disp8], with an address-size
                        // prefix, across the page end, RIP-relative (code page and after)
                const uint8_t op =
                    std::array<uint8_t, 6>{0x8B, 0x89, 0x03, 0x31, 0x2B, 0x39}[pick(6)];
                const uint8_t r = reg();
                switch (pick(5)) {
                    case 0: {  // [R15 or R14 + disp32] across the page end (R14: into
                               // unmapped memory, #PF)
                        const bool last = pick(2);
                        c.push_back(static_cast<uint8_t>(0x41 | (w ? 8 : 0) | (r >> 3 << 2)));
                        c.push_back(op);
                        c.push_back(static_cast<uint8_t>(0x80 | (r & 7) << 3 | (last ? 6 : 7)));
                        const uint32_t d = 4096 - 1 - pick(8);
                        for (int k = 0; k < 4; ++k) c.push_back(static_cast<uint8_t>(d >> (8 * k)));
                        return;
                    }
                    case 1: {
                        c.push_back(static_cast<uint8_t>(0x40 | (w ? 8 : 0) | (r >> 3 << 2)));
                        c.push_back(op);
                        c.push_back(static_cast<uint8_t>((r & 7) << 3 | 5));  // [rip + disp32]
                        const uint32_t d = pick(2) ? 0x1000 + pick(64) * 4 : pick(256);
                        for (int k = 0; k < 4; ++k) c.push_back(static_cast<uint8_t>(d >> (8 * k)));
                        return;
                    }
                    case 2:  // 32-bit address: [r13d + disp8] (R13's upper half dropped)
                        c.push_back(0x67);
                        c.push_back(static_cast<uint8_t>(0x41 | (w ? 8 : 0) | (r >> 3 << 2)));
                        c.push_back(op);
                        c.push_back(static_cast<uint8_t>(0x40 | (r & 7) << 3 | 5));
                        c.push_back(static_cast<uint8_t>(pick(16) * 8));
                        return;
                    default:
                        return rm_mem(c, w, {op}, r, false);
                }
            }
            case 11:  // a load or ALU source from an unmapped page: #PF
                if (pick(8) == 0)
                    return rm_mem(c, w, {pick(2) ? uint8_t{0x8B} : uint8_t{0x03}}, reg(), true);
                return rr(c, w, {0x8D}, reg(), reg());  // lea r, [r] (register form is #UD)
            case 12: {                                  // push r; pop r
                const uint8_t a = reg(), b = reg();
                if (a >= 8) c.push_back(0x41);
                c.push_back(static_cast<uint8_t>(0x50 + (a & 7)));
                if (b >= 8) c.push_back(0x41);
                c.push_back(static_cast<uint8_t>(0x58 + (b & 7)));
                return;
            }
            case 13:  // setcc r8
                return rr(c, false, {0x0F, static_cast<uint8_t>(0x90 + pick(16))}, 0, reg());
            case 14:  // cmovcc r, r
                return rr(c, w, {0x0F, static_cast<uint8_t>(0x40 + pick(16))}, reg(), reg());
            case 15:  // pushf; pop r; or r, random arithmetic flags; push r; popf
            {
                const uint8_t r = reg();
                c.push_back(0x9C);
                if (r >= 8) c.push_back(0x41);
                c.push_back(static_cast<uint8_t>(0x58 + (r & 7)));
                rr(c, true, {0x81}, 1, r);  // or r, imm32 (flags bits only below)
                const uint32_t f = static_cast<uint32_t>(rng_()) & 0x8D5;
                for (int k = 0; k < 4; ++k) c.push_back(static_cast<uint8_t>(f >> (8 * k)));
                if (r >= 8) c.push_back(0x41);
                c.push_back(static_cast<uint8_t>(0x50 + (r & 7)));
                c.push_back(0x9D);
                return;
            }
            case 16:  // jcc over the next few bytes (a mov r, imm32 of 5 or 6 bytes)
            case 17: {
                const uint8_t r = reg();
                c.push_back(pick(4) ? static_cast<uint8_t>(0x70 + pick(16)) : 0xEB);
                c.push_back(static_cast<uint8_t>(r >= 8 ? 6 : 5));
                if (r >= 8) c.push_back(0x41);
                c.push_back(static_cast<uint8_t>(0xB8 + (r & 7)));
                imm32(c);
                return;
            }
            case 18:  // div r: #DE on zero or overflow
                if (pick(3)) return rr(c, w, {0xF7}, 6, reg());
                return rr(c, w, {0x85}, reg(), reg());
            case 19:  // ud2 (rarely)
                if (pick(10) == 0) {
                    c.push_back(0x0F);
                    c.push_back(0x0B);
                    return;
                }
                return rr(c, w, {0x31}, reg(), reg());
            case 20:  // adc/sbb r/m, imm8
                rr(c, w, {0x83}, static_cast<uint8_t>(2 + pick(2)), reg());
                c.push_back(static_cast<uint8_t>(rng_()));
                return;
            case 21:  // movzx/movsx r, r8/r16; movsxd r64, r32
                if (pick(5) == 0) return rr(c, true, {0x63}, reg(), reg());
                return rr(c, w, {0x0F, std::array<uint8_t, 4>{0xB6, 0xB7, 0xBE, 0xBF}[pick(4)]},
                          reg(), reg());
            case 22:  // 8-bit ALU and MOV: r8, r8 / r8, imm8 (SPL..DIL with REX)
                if (pick(3) == 0) {
                    rr(c, false, {0x80}, static_cast<uint8_t>(pick(8)), reg());
                    c.push_back(static_cast<uint8_t>(rng_()));
                    return;
                }
                return rr(c, false,
                          {std::array<uint8_t, 9>{0x00, 0x08, 0x20, 0x28, 0x30, 0x38, 0x84, 0x88,
                                                  0x8A}[pick(9)]},
                          reg(), reg());
            case 23: {  // ALU m, imm (8, 32, 64 bits; CMP/TEST read, the rest write)
                const bool fault = pick(10) == 0;
                switch (pick(5)) {
                    case 0:
                        rm_mem(c, false, {0x80}, static_cast<uint8_t>(pick(8)), fault);
                        c.push_back(static_cast<uint8_t>(rng_()));
                        return;
                    case 1:
                        rm_mem(c, false, {0xF6}, 0, fault);  // test m8, imm8
                        c.push_back(static_cast<uint8_t>(rng_()));
                        return;
                    case 2:
                        rm_mem(c, w, {0x81}, static_cast<uint8_t>(pick(8)), fault);
                        return imm32(c);
                    case 3:
                        rm_mem(c, w, {0xF7}, 0, fault);  // test m, imm32
                        return imm32(c);
                    default:
                        rm_mem(c, w, {0x83}, static_cast<uint8_t>(pick(8)), fault);
                        c.push_back(static_cast<uint8_t>(rng_()));
                        return;
                }
            }
            case 24:  // movzx/movsx r, m8/m16; movsxd r64, m32; mov m8/r8 (loads fault rarely)
                switch (pick(4)) {
                    case 0:
                        return rm_mem(c, true, {0x63}, reg(), pick(10) == 0);
                    case 1:
                        return rm_mem(c, false, {pick(2) ? uint8_t{0x88} : uint8_t{0x8A}}, reg(),
                                      false);
                    default:
                        return rm_mem(
                            c, w, {0x0F, std::array<uint8_t, 4>{0xB6, 0xB7, 0xBE, 0xBF}[pick(4)]},
                            reg(), pick(10) == 0);
                }
            case 25: {  // call to the next instruction, then pop its return address
                const uint8_t r = reg();
                c.insert(c.end(), {0xE8, 0, 0, 0, 0});
                if (r >= 8) c.push_back(0x41);
                c.push_back(static_cast<uint8_t>(0x58 + (r & 7)));
                return;
            }
            case 26: {  // lea next(%rip),%r, then push %r; ret / jmp *%r / jmp *8(%r15)
                const uint8_t r = reg();
                const uint8_t how = static_cast<uint8_t>(pick(3));
                const uint8_t rex_b = r >= 8 ? 1 : 0;
                const uint8_t tail = how == 0 ? 2 + rex_b : how == 1 ? 2 + rex_b : 8;
                c.insert(c.end(), {static_cast<uint8_t>(0x48 | (r >> 3 << 2)), 0x8D,
                                   static_cast<uint8_t>((r & 7) << 3 | 5), tail, 0, 0, 0});
                if (how == 0) {
                    if (rex_b) c.push_back(0x41);
                    c.push_back(static_cast<uint8_t>(0x50 + (r & 7)));
                    c.push_back(0xC3);
                } else if (how == 1) {
                    if (rex_b) c.push_back(0x41);
                    c.insert(c.end(), {0xFF, static_cast<uint8_t>(0xE0 | (r & 7))});
                } else {
                    c.insert(c.end(), {static_cast<uint8_t>(0x49 | (r >> 3 << 2)), 0x89,
                                       static_cast<uint8_t>(0x40 | (r & 7) << 3 | 7), 0x08});
                    c.insert(c.end(), {0x41, 0xFF, 0x67, 0x08});
                }
                return;
            }
            case 27: {  // MMX: movq mm, r64; packed op from a register or memory; movq r64, mm
                static const uint8_t ops[] = {0xFC, 0xFD, 0xFE, 0xD4, 0xEC, 0xDD, 0xE9,
                                              0x74, 0x66, 0xDB, 0xDF, 0xEF, 0xF1, 0xD2,
                                              0xE2, 0x63, 0x67, 0x60, 0x6A, 0xD5, 0xE5,
                                              0xF5, 0xF4, 0xE0, 0xDA, 0xEE, 0xF6, 0x6F};
                const uint8_t a = static_cast<uint8_t>(pick(8)), b = static_cast<uint8_t>(pick(8));
                rr(c, true, {0x0F, 0x6E}, a, reg());
                const uint8_t op = ops[pick(sizeof ops)];
                switch (pick(4)) {
                    case 0:
                        rm_mem(c, false, {0x0F, op}, a, pick(10) == 0);
                        break;
                    case 1:  // psrlw/psraw/psllw, psrld/psrad/pslld, psrlq/psllq by imm8
                        rr(c, false, {0x0F, static_cast<uint8_t>(0x71 + pick(3))},
                           static_cast<uint8_t>(std::array{2, 4, 6}[pick(3)]), a);
                        c.push_back(static_cast<uint8_t>(pick(70)));
                        break;
                    default:
                        rr(c, false, {0x0F, op}, a, b);
                }
                rr(c, true, {0x0F, 0x7E}, a, reg());
                if (pick(4) == 0) c.insert(c.end(), {0x0F, 0x77});  // emms
                return;
            }
            default:  // nop forms
                switch (pick(3)) {
                    case 0:
                        c.push_back(0x90);
                        return;
                    case 1:
                        c.insert(c.end(), {0x0F, 0x1F, 0x00});
                        return;
                    default:
                        c.insert(c.end(), {0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00});
                        return;
                }
        }
    }
    std::mt19937_64 rng_;
};

TEST(TranslateTest, EngineNamesParse) {
    Engine e = Engine::Translate;
    EXPECT_TRUE(parse_engine("interp", e));
    EXPECT_EQ(e, Engine::Interp);
    EXPECT_TRUE(parse_engine("translate", e));
    EXPECT_EQ(e, Engine::Translate);
    EXPECT_FALSE(parse_engine("jit", e));
    EXPECT_STREQ(engine_name(Engine::Interp), "interp");
    EXPECT_STREQ(engine_name(Engine::Translate), "translate");
}

// `native`: frequent forms as host instructions (the default), or every instruction
// through its handler.
void random_streams(bool native) {
    uint64_t translated = 0;
    for (uint64_t seed = 1; seed <= 300; ++seed) {
        Pair p;
        ASSERT_TRUE(p.ok());
        p.translating_cpu().translator()->set_native(native);
        StreamGen g(seed);
        p.load(g.program(48));
        std::mt19937_64 rng(seed * 7919);
        p.both([&](BareMachine& m) {
            CpuState& s = m.cpu_.state();
            std::mt19937_64 r(seed);
            // Random values, and the edges where flags change (sign, carry, overflow).
            static const uint64_t edges[] = {
                0,          1,          0x7F,       0x80,  0x7FFFFFFF,  0x80000000,
                0xFFFFFFFF, ~0ull >> 1, 1ull << 63, ~0ull, 0x100000000, 0xFFFFFFFF80000000};
            for (int k = 0; k < 16; ++k)
                s.gpr[k] = r() % 3 ? r() >> (r() % 64) : edges[r() % std::size(edges)];
            s.gpr[RSP] = BareMachine::kStack;
            s.gpr[R13] = kScratch32;
            s.gpr[R14] = kLastPage;
            s.gpr[R15] = kScratch;
            s.rflags = FLAG_FIXED1 | (r() & 0x8D5);
            for (uint64_t a = 0; a < 4096; a += 8) m.put64(kScratch + a, r());
        });
        // Whole runs and runs cut at random instruction limits (blocks that would
        // overrun the budget are finished by the interpreter).
        std::vector<uint64_t> limits;
        uint64_t at = 0;
        for (int k = 0; k < 12; ++k) limits.push_back(at += 1 + rng() % (seed % 2 ? 40 : 6));
        limits.push_back(0);
        p.run_compare(limits, "seed " + std::to_string(seed));
        if (::testing::Test::HasFailure()) return;
        translated += p.translated();
    }
    EXPECT_GT(translated, 300u);  // the translating machine really ran translated blocks
}

TEST(TranslateTest, RandomStreamsMatchTheInterpreterAfterEveryStep) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    random_streams(true);
}

TEST(TranslateTest, RandomStreamsThroughHandlersOnlyMatchTheInterpreter) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    random_streams(false);
}

// Every native form on operands at the flag edges (sign, carry and overflow boundaries,
// zero), with all status flags set or clear before it; PUSHF then makes its flags
// visible.
TEST(TranslateTest, NativeFormsAtOperandEdgesMatchTheInterpreter) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    // Each form works on RAX (destination) and RCX (source).
    const std::vector<std::vector<uint8_t>> forms = {
        {0x48, 0xFF, 0xC0},                    // inc %rax
        {0xFF, 0xC0},                          // inc %eax
        {0x48, 0xFF, 0xC8},                    // dec %rax
        {0xFF, 0xC8},                          // dec %eax
        {0x48, 0xD1, 0xE0},                    // shl $1,%rax
        {0x48, 0xC1, 0xE0, 0x05},              // shl $5,%rax
        {0xC1, 0xE0, 0x1F},                    // shl $31,%eax
        {0x48, 0xD1, 0xE8},                    // shr $1,%rax
        {0x48, 0xC1, 0xE8, 0x3F},              // shr $63,%rax
        {0xC1, 0xE8, 0x20},                    // shr $32,%eax (count masks to 0)
        {0x48, 0xD1, 0xF8},                    // sar $1,%rax
        {0xC1, 0xF8, 0x1F},                    // sar $31,%eax
        {0x48, 0xD1, 0xC0},                    // rol $1,%rax
        {0x48, 0xC1, 0xC8, 0x07},              // ror $7,%rax
        {0xD1, 0xC8},                          // ror $1,%eax
        {0xC1, 0xC0, 0x1F},                    // rol $31,%eax
        {0x48, 0x0F, 0xAF, 0xC1},              // imul %rcx,%rax
        {0x0F, 0xAF, 0xC1},                    // imul %ecx,%eax
        {0x48, 0x6B, 0xC1, 0xF9},              // imul $-7,%rcx,%rax
        {0x69, 0xC1, 0x00, 0x00, 0x01, 0x00},  // imul $0x10000,%ecx,%eax
        {0x48, 0x01, 0xC8},                    // add %rcx,%rax
        {0x29, 0xC8},                          // sub %ecx,%eax
        {0x48, 0x39, 0xC8},                    // cmp %rcx,%rax
        {0x48, 0x85, 0xC8},                    // test %rcx,%rax
        {0x31, 0xC8},                          // xor %ecx,%eax
        {0x48, 0x83, 0xC0, 0x01},              // add $1,%rax
        {0x3D, 0xFF, 0xFF, 0xFF, 0x7F},        // cmp $0x7fffffff,%eax
        {0x48, 0x89, 0xC8},                    // mov %rcx,%rax
    };
    static const uint64_t edges[] = {0,          1,          0x7F,        0x80,
                                     0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,  ~0ull >> 1,
                                     1ull << 63, ~0ull,      0x100000000, 0xFFFFFFFF80000000};
    for (const auto& form : forms) {
        Pair p;
        ASSERT_TRUE(p.ok());
        std::vector<uint8_t> code = form;
        code.insert(code.end(), {0x9C, 0x41, 0x5D, 0xF4});  // pushfq; pop %r13; hlt
        p.load(code);
        for (uint64_t a : edges) {
            for (uint64_t c : edges) {
                for (uint64_t f : {FLAG_FIXED1, FLAG_FIXED1 | FLAGS_ARITH}) {
                    p.both([&](BareMachine& m) {
                        CpuState& s = m.cpu_.state();
                        s.gpr[RAX] = a, s.gpr[RCX] = c, s.gpr[R13] = 0;
                        s.gpr[RSP] = BareMachine::kStack;
                        s.rflags = f;
                        s.rip = BareMachine::kCode;
                    });
                    p.run_compare({0}, "form " + std::to_string(form[0]) + "," +
                                           std::to_string(form[1]) + " a=" + std::to_string(a) +
                                           " c=" + std::to_string(c));
                    if (::testing::Test::HasFailure()) return;
                }
            }
        }
        EXPECT_GE(p.translated(), 1u);
    }
}

// A store into the running block rewrites its next instruction: both engines must run
// the new bytes (the block and its translation are dropped).
TEST(TranslateTest, SelfModifyingCodeDropsTheTranslation) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    Pair p;
    ASSERT_TRUE(p.ok());
    const std::vector<uint8_t> code = {
        0xB9, 0x03, 0x00, 0x00, 0x00,              // mov $3,%ecx
        0x48, 0x8D, 0x3D, 0x04, 0x00, 0x00, 0x00,  // loop: lea 4(%rip),%rdi: add's imm8
        0xFE, 0x07,                                // incb (%rdi)
        0x83, 0xC0, 0x01,                          // add $1,%eax  (imm8 at code+16)
        0xFF, 0xC9,                                // dec %ecx
        0x75, 0xF1,                                // jnz loop
        0xF4,                                      // hlt
    };
    p.load(code);
    p.both([](BareMachine& m) { m.cpu_.state().gpr[RAX] = 0; });
    p.run_compare({0}, "smc");
    EXPECT_EQ(p.translating_cpu().state().gpr[RAX], 2u + 3u + 4u);  // imm 1 -> 2, 3, 4
}

// A native store (MOV to memory) into the running block: code pages have no write TLB
// entries, so the store takes the handler's path, which drops the block.
TEST(TranslateTest, NativeStoreIntoTheRunningBlockIsSeen) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    Pair p;
    ASSERT_TRUE(p.ok());
    const std::vector<uint8_t> code = {
        0xB9, 0x03, 0x00, 0x00, 0x00,        // mov $3,%ecx
        0xB8, 0x00, 0x00, 0x00, 0x00,        // mov $0,%eax
        0x8D, 0x51, 0x10,                    // loop: lea 0x10(%rcx),%edx
        0x89, 0x15, 0x01, 0x00, 0x00, 0x00,  // mov %edx,1(%rip): the add's imm32
        0x05, 0x01, 0x00, 0x00, 0x00,        // add $1,%eax (imm32 at code+20)
        0xFF, 0xC9,                          // dec %ecx
        0x75, 0xEE,                          // jnz loop
        0xF4,                                // hlt
    };
    p.load(code);
    p.run_compare({0}, "native smc");
    EXPECT_EQ(p.translating_cpu().state().gpr[RAX], 0x13u + 0x12u + 0x11u);
}

// The longest block (Block::kMaxInsns instructions) of the longest native form, a memory
// access, still fits its translation's size bound: it is translated and runs natively.
TEST(TranslateTest, LongestBlockOfMemoryFormsIsTranslated) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    Pair p;
    ASSERT_TRUE(p.ok());
    std::vector<uint8_t> code;
    for (size_t k = 0; k < Block::kMaxInsns; ++k) {
        // add 0x7f(%r15,%rcx,8),%rax: base, index, displacement, flags
        code.insert(code.end(), {0x49, 0x03, 0x44, 0xCF, 0x7F});
    }
    code.push_back(0xF4);
    p.load(code);
    p.both([](BareMachine& m) {
        m.cpu_.state().gpr[R15] = kScratch;
        m.cpu_.state().gpr[RCX] = 3;
        m.put64(kScratch + 0x7F + 24, 0x0123456789ABCDEFull);
    });
    p.run_compare({0}, "longest block");
    EXPECT_EQ(p.translated(), 2u);  // the 64 additions, then the HLT
    EXPECT_EQ(p.translating_cpu().state().gpr[RAX], 0x0123456789ABCDEFull * 64);
}

// A code cache much smaller than the program's translations flushes again and again;
// the results stay the interpreter's.
TEST(TranslateTest, FullCodeCacheFlushesAndStaysExact) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    Pair p(16 * 1024);
    ASSERT_TRUE(p.ok());
    // 200 blocks of `add $k,%eax; jmp next`, run 50 times by an outer loop on ECX.
    std::vector<uint8_t> code = {0xB9, 0x32, 0x00, 0x00, 0x00};  // mov $50,%ecx
    const size_t top = code.size();
    for (int k = 0; k < 200; ++k) {
        code.insert(code.end(), {0x83, 0xC0, static_cast<uint8_t>(k), 0xEB, 0x00});
    }
    code.insert(code.end(), {0xFF, 0xC9, 0x0F, 0x85});  // dec %ecx; jnz top (rel32)
    const int32_t rel = static_cast<int32_t>(top) - static_cast<int32_t>(code.size() + 4);
    for (int k = 0; k < 4; ++k) code.push_back(static_cast<uint8_t>(rel >> (8 * k)));
    code.push_back(0xF4);
    p.load(code);
    p.both([](BareMachine& m) { m.cpu_.state().gpr[RAX] = 0; });
    p.run_compare({777, 5000, 0}, "flushes");
    EXPECT_GT(p.translating_cpu().translator_stats().cache_flushes, 2u);
    int64_t sum = 0;  // ADD's imm8 is sign-extended
    for (int k = 0; k < 200; ++k) sum += static_cast<int8_t>(k);
    EXPECT_EQ(p.translating_cpu().state().gpr[RAX],
              static_cast<uint32_t>(static_cast<uint64_t>(sum * 50)));
}

// Resident shared memory of this process in KiB (/proc/self/status), -1 if not reported.
long rss_shmem_kib() {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (std::fgets(line, sizeof line, f))
        if (std::sscanf(line, "RssShmem: %ld kB", &kib) == 1) break;
    std::fclose(f);
    return kib;
}

// The code cache is one memory file mapped twice (written through one view, run from the
// other); written code leaves the writing view, so the process's RSS counts it once.
TEST(TranslateTest, WrittenCodeIsResidentOnce) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    const long before = rss_shmem_kib();
    if (before < 0) GTEST_SKIP() << "the host does not report RssShmem";
    Pair p;
    ASSERT_TRUE(p.ok());
    // 4000 blocks of `add $k,%eax; jmp next`, then HLT: each block translated once.
    std::vector<uint8_t> code;
    for (int k = 0; k < 4000; ++k)
        code.insert(code.end(), {0x83, 0xC0, static_cast<uint8_t>(k), 0xEB, 0x00});
    code.push_back(0xF4);
    p.load(code);
    p.run_compare({0}, "4000 blocks");
    const Translator::Stats st = p.translating_cpu().translator_stats();
    ASSERT_GE(st.blocks_translated, 4001u);
    ASSERT_GT(st.cache_bytes_used, 1u << 20);  // several of the 256 KiB unmapping steps
    const long grown = rss_shmem_kib() - before;
    EXPECT_LE(grown, static_cast<long>(st.cache_bytes_used / 1024 + 512))
        << "KiB of shared memory for " << st.cache_bytes_used / 1024 << " KiB of code";
}

// A fault in the middle of a translated block: the exception unwinds through generated
// code, the faulting instruction does not retire, RIP and RSP are its own.
TEST(TranslateTest, FaultInsideATranslatedBlockIsPrecise) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    Pair p;
    ASSERT_TRUE(p.ok());
    // push %rax; mov $1,%eax; div %ecx (ecx = 0); nop; hlt: one block, translated when
    // first entered.
    p.load({0x50, 0xB8, 0x01, 0x00, 0x00, 0x00, 0xF7, 0xF1, 0x90, 0xF4});
    p.both([](BareMachine& m) { m.cpu_.state().gpr[RCX] = 0; });
    p.run_compare({0}, "fault");
    EXPECT_GE(p.translated(), 1u);
    EXPECT_EQ(p.translating().vector_taken(), VEC_DE);
    EXPECT_EQ(p.translating().frame(0), BareMachine::kCode + 6);   // RIP of DIV
    EXPECT_EQ(p.translating().frame(3), BareMachine::kStack - 8);  // RSP after the PUSH
}

// A loop of blocks joined by Jcc, JMP, CALL and RET (the RETs through the jump cache):
// translated blocks continue into each other without the run loop, yet every
// instruction limit still stops both engines at the same instruction.
const std::vector<uint8_t> kChainLoop = {
    0xB9, 0xC8, 0x00, 0x00, 0x00,  //       mov $200,%ecx
    0x01, 0xC8,                    // top:  add %ecx,%eax
    0xF6, 0xC1, 0x01,              //       test $1,%cl
    0x74, 0x0A,                    //       jz even
    0x6B, 0xC0, 0x03,              //       imul $3,%eax,%eax
    0xE8, 0x0F, 0x00, 0x00, 0x00,  //       call f
    0xEB, 0x08,                    //       jmp next
    0x83, 0xF0, 0x55,              // even: xor $0x55,%eax
    0xE8, 0x08, 0x00, 0x00, 0x00,  //       call g
    0xFF, 0xC9,                    // next: dec %ecx
    0x75, 0xE3,                    //       jnz top
    0xF4,                          //       hlt
    0xFF, 0xC2,                    // f:    inc %edx
    0xC3,                          //       ret
    0x83, 0xC2, 0x07,              // g:    add $7,%edx
    0xC3,                          //       ret
};

TEST(TranslateTest, ChainedBlocksStopAtEveryInstructionLimit) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    for (uint64_t seed = 1; seed <= 20; ++seed) {
        Pair p;
        ASSERT_TRUE(p.ok());
        p.load(kChainLoop);
        std::mt19937_64 rng(seed);
        std::vector<uint64_t> limits;
        uint64_t at = 0;
        for (int k = 0; k < 40; ++k) limits.push_back(at += 1 + rng() % (seed * 5));
        limits.push_back(0);
        p.run_compare(limits, "chain seed " + std::to_string(seed));
        if (::testing::Test::HasFailure()) return;
        EXPECT_EQ(p.translating_cpu().state().rip, BareMachine::kCode + 0x23);  // after HLT
    }
    // Unlimited: most blocks are entered from other blocks' code.
    Pair p;
    ASSERT_TRUE(p.ok());
    p.load(kChainLoop);
    p.run_compare({0}, "chain");
    EXPECT_GT(p.translating_cpu().translator_stats().chained_blocks, 600u);
    // mov, 100 odd rounds of 10 instructions and 100 even ones of 9, hlt.
    EXPECT_EQ(p.translating_cpu().instructions_retired(), 1u + 100 * 10 + 100 * 9 + 1);
}

// A timer deadline falls inside a run of chained blocks: the interrupt is taken at the
// same instruction boundary (the same clock and RIP) as in the interpreter.
TEST(TranslateTest, DeadlineInsideChainedBlocksInterruptsAtTheSameInstruction) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    for (uint64_t deadline = 1; deadline < 400; deadline += 13) {
        Pair p;
        ASSERT_TRUE(p.ok());
        p.load(kChainLoop);
        p.both([&](BareMachine& m) {
            m.owner_.irq_vector = 0x30;
            m.cpu_.state().rflags |= FLAG_IF;
            m.cpu_.set_deadline(deadline);
        });
        p.run_compare({0}, "deadline " + std::to_string(deadline));
        if (::testing::Test::HasFailure()) return;
        EXPECT_EQ(p.translating().vector_taken(), 0x30);
        // Delivered when the clock reached the deadline: the stub's 3 instructions after.
        EXPECT_EQ(p.translating_cpu().clock(), deadline + 3) << deadline;
    }
}

// POPF sets TF inside a chained loop: single-stepping starts after the same instruction
// in both engines (a block is not entered from another while TF is set).
TEST(TranslateTest, TrapFlagSetInsideChainedBlocksStepsAsTheInterpreter) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    std::vector<uint8_t> code = {
        0xB9, 0x40, 0x00, 0x00, 0x00,  //       mov $64,%ecx
        0xFF, 0xC0,                    // top:  inc %eax
        0x83, 0xF9, 0x05,              //       cmp $5,%ecx
        0x75, 0x09,                    //       jne skip
        0x9C,                          //       pushf
        0x48, 0x81, 0x0C, 0x24,        //       orq $0x100,(%rsp)
        0x00, 0x01, 0x00, 0x00,        //
        0x9D,                          //       popf
        0xFF, 0xC9,                    // skip: dec %ecx
        0x75, 0xE9,                    //       jnz top
        0xF4,                          //       hlt
    };
    Pair p;
    ASSERT_TRUE(p.ok());
    p.load(code);
    p.run_compare({0}, "tf");
    EXPECT_EQ(p.translating().vector_taken(), VEC_DB);
    // The trap follows the instruction after POPF (DEC at +22): RIP +24.
    EXPECT_EQ(p.translating().frame(0), BareMachine::kCode + 24);
    EXPECT_GT(p.translating_cpu().translator_stats().chained_blocks, 50u);
}

// With the VMs' threshold a block runs in the interpreter until it starts for the fourth
// time; both engines still agree, before and after.
TEST(TranslateTest, BlocksAreTranslatedOnlyOnceHot) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    for (uint8_t rounds : {3, 4, 5, 10}) {
        Pair p;
        ASSERT_TRUE(p.ok());
        p.translating_cpu().translator()->set_translate_after(Translator::kHotRuns);
        const std::vector<uint8_t> code = {
            0xB9, rounds, 0x00, 0x00, 0x00,  //       mov $rounds,%ecx
            0x01, 0xC8,                      // top:  add %ecx,%eax
            0xFF, 0xC9,                      //       dec %ecx
            0x75, 0xFA,                      //       jnz top
            0xF4,                            //       hlt
        };
        p.load(code);
        p.run_compare({0}, "rounds " + std::to_string(rounds));
        // The first block runs MOV to JNZ once; the loop's block from `top` runs
        // rounds - 1 times: translated from its fourth run on.
        EXPECT_EQ(p.translated(), rounds - 1 >= 4 ? 1u : 0u) << int{rounds};
    }
}
}  // namespace
}  // namespace softkvm::cpu::test
