// The translating engine's differential harness (translate_test.cc, translate_rmw_test.cc):
// a Pair of bare machines, one per engine, compared after every run() step, and StreamGen,
// the random instruction streams over the native forms and their neighbours.
#pragma once
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bare_machine.h"
#include "cpu/translate/translator.h"

namespace softkvm::cpu::test {

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
    Cpu& interpreting_cpu() { return i_.cpu_; }
    BareMachine& translating() { return t_; }

  private:
    BareMachine i_, t_;
    bool ok_ = false;
};

// Random instruction streams over the forms a block holds most: moves, ALU with
// registers, immediates and memory (8, 32 and 64 bits, memory destinations too),
// INC/DEC/NEG/NOT, shifts, IMUL, LEA, MOVZX/MOVSX/MOVSXD, PUSH/POP, CALL/RET, JMP and CALL
// through a register and memory, NOPs, SETcc/CMOVcc, PUSHF/POPF, forward Jcc/JMP, DIV (#DE on a
// zero divisor), loads from an unmapped page (#PF), UD2 (#UD), MMX (MOVQ to and from GPRs,
// packed operations on registers and memory, shifts by immediates, EMMS), read-modify-writes
// of memory with and without LOCK (ALU, INC/DEC, XCHG, XADD, CMPXCHG). RSP, R13, R14 and R15
// are never written at random.
class StreamGen {
  public:
    // `narrow`: registers from RAX, RCX and RDX only, so that most instructions use the
    // result of the one before (the translator's register reuse between instructions).
    explicit StreamGen(uint64_t seed, bool narrow = false) : rng_(seed), narrow_(narrow) {}

    std::vector<uint8_t> program(size_t insns) {
        std::vector<uint8_t> c;
        for (size_t k = 0; k < insns; ++k) one(c);
        c.push_back(0xF4);  // hlt
        return c;
    }

  private:
    uint32_t pick(uint32_t n) { return static_cast<uint32_t>(rng_() % n); }
    uint8_t reg() {  // any GPR but RSP, R13, R14, R15
        if (narrow_) return static_cast<uint8_t>(pick(3));
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
    // [R15 + disp8] at any byte of the first 128 (unaligned, across a 64-byte line).
    void mem_at(std::vector<uint8_t>& c, bool w, std::initializer_list<uint8_t> op, uint8_t r,
                uint8_t disp) {
        c.push_back(static_cast<uint8_t>(0x41 | (w ? 8 : 0) | (r >> 3 << 2)));
        for (uint8_t b : op) c.push_back(b);
        c.push_back(static_cast<uint8_t>(0x40 | (r & 7) << 3 | 7));
        c.push_back(disp);
    }
    // Read-modify-writes of memory, with LOCK or without: ALU m, r; ALU m, imm; INC/DEC m;
    // XCHG; XADD; CMPXCHG (after a load of the same operand into RAX half the time, so
    // that both outcomes occur), in 8, 32 and 64 bits; aligned, unaligned, split across a
    // 64-byte line, or faulting.
    void rmw(std::vector<uint8_t>& c, bool w) {
        const bool lock = pick(3) != 0;
        const bool byte = pick(4) == 0;
        const uint8_t disp = static_cast<uint8_t>(pick(3) ? pick(16) * 8 : pick(128));
        const uint8_t r = reg();
        auto at = [&](std::initializer_list<uint8_t> op, uint8_t rr) {
            if (pick(12) == 0) return rm_mem(c, w, op, rr, true);  // #PF
            mem_at(c, w, op, rr, disp);
        };
        switch (pick(6)) {
            case 0: {  // add/or/and/sub/xor m, r; unlocked also cmp/test m, r
                static const uint8_t ops[] = {0x01, 0x09, 0x21, 0x29, 0x31, 0x39, 0x85};
                const uint8_t op = ops[pick(lock ? 5 : 7)];
                if (lock) c.push_back(0xF0);
                return at({static_cast<uint8_t>(op - (byte ? 1 : 0))}, r);
            }
            case 1: {  // add/or/and/sub/xor m, imm8 / imm32
                static const uint8_t kinds[] = {0, 1, 4, 5, 6};
                if (lock) c.push_back(0xF0);
                const uint8_t kind = kinds[pick(5)];
                if (byte) {
                    at({0x80}, kind);
                    c.push_back(static_cast<uint8_t>(rng_()));
                } else if (pick(2)) {
                    at({0x83}, kind);
                    c.push_back(static_cast<uint8_t>(rng_()));
                } else {
                    at({0x81}, kind);
                    imm32(c);
                }
                return;
            }
            case 2:  // inc/dec m
                if (lock) c.push_back(0xF0);
                return at({static_cast<uint8_t>(byte ? 0xFE : 0xFF)},
                          static_cast<uint8_t>(pick(2)));
            case 3:  // xchg m, r
                return at({static_cast<uint8_t>(byte ? 0x86 : 0x87)}, r);
            case 4:  // xadd m, r
                if (lock) c.push_back(0xF0);
                return at({0x0F, static_cast<uint8_t>(byte ? 0xC0 : 0xC1)}, r);
            default:  // cmpxchg m, r
                if (pick(2)) mem_at(c, w, {static_cast<uint8_t>(byte ? 0x8A : 0x8B)}, 0, disp);
                if (lock) c.push_back(0xF0);
                return at({0x0F, static_cast<uint8_t>(byte ? 0xB0 : 0xB1)}, r);
        }
    }
    void imm32(std::vector<uint8_t>& c) {
        const uint32_t v = static_cast<uint32_t>(rng_());
        for (int k = 0; k < 4; ++k) c.push_back(static_cast<uint8_t>(v >> (8 * k)));
    }
    void one(std::vector<uint8_t>& c) {
        static const uint8_t alu[] = {0x01, 0x09, 0x11, 0x19, 0x21, 0x29, 0x31, 0x39, 0x85};
        const bool w = pick(2);
        switch (pick(31)) {
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
            case 8: {  // shl/shr/sar/rol/ror r, imm8 or CL (counts that mask to 0 among them),
                       // a quarter of them on 16 bits
                const uint8_t kind = static_cast<uint8_t>(std::array{0, 1, 4, 5, 7}[pick(5)]);
                const bool word = pick(4) == 0;
                if (word) c.push_back(0x66);
                if (pick(6) == 0) return rr(c, w && !word, {0xD1}, kind, reg());  // count 1
                if (pick(5) == 0) return rr(c, w && !word, {0xD3}, kind, reg());  // count CL
                rr(c, w && !word, {0xC1}, kind, reg());
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
            case 23: {  // ALU m, imm (8, 32, 64 bits; CMP/TEST read, the rest write);
                        // MOV m, imm (8, 16, 32, 64 bits); MOV m16, r16
                const bool fault = pick(10) == 0;
                switch (pick(9)) {
                    case 5:
                        rm_mem(c, w, {0xC7}, 0, fault);  // mov m, imm32 (sign-extended)
                        return imm32(c);
                    case 7:
                        c.push_back(0x66);
                        return rm_mem(c, false, {0x89}, reg(), fault);  // mov m16, r16
                    case 8:
                        c.push_back(0x66);
                        rm_mem(c, false, {0xC7}, 0, fault);  // mov m16, imm16
                        c.push_back(static_cast<uint8_t>(rng_()));
                        c.push_back(static_cast<uint8_t>(rng_()));
                        return;
                    case 6:
                        rm_mem(c, false, {0xC6}, 0, fault);  // mov m8, imm8
                        c.push_back(static_cast<uint8_t>(rng_()));
                        return;
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
            case 26: {  // lea next(%rip),%r, then push %r; ret / jmp *%r / jmp *8(%r15) /
                        // call *%r / call *8(%r15) (the calls then pop the return address)
                const uint8_t r = reg();
                const uint8_t how = static_cast<uint8_t>(pick(5));
                const uint8_t rex_b = r >= 8 ? 1 : 0;
                const uint8_t tail = how == 0 || how == 1 || how == 3 ? 2 + rex_b : 8;
                c.insert(c.end(), {static_cast<uint8_t>(0x48 | (r >> 3 << 2)), 0x8D,
                                   static_cast<uint8_t>((r & 7) << 3 | 5), tail, 0, 0, 0});
                if (how == 0) {
                    if (rex_b) c.push_back(0x41);
                    c.push_back(static_cast<uint8_t>(0x50 + (r & 7)));
                    c.push_back(0xC3);
                } else if (how == 1 || how == 3) {
                    if (rex_b) c.push_back(0x41);
                    c.insert(c.end(),
                             {0xFF, static_cast<uint8_t>((how == 1 ? 0xE0 : 0xD0) | (r & 7))});
                } else {
                    c.insert(c.end(), {static_cast<uint8_t>(0x49 | (r >> 3 << 2)), 0x89,
                                       static_cast<uint8_t>(0x40 | (r & 7) << 3 | 7), 0x08});
                    c.insert(c.end(),
                             {0x41, 0xFF, static_cast<uint8_t>(how == 2 ? 0x67 : 0x57), 0x08});
                }
                if (how >= 3) {  // pop %r
                    if (rex_b) c.push_back(0x41);
                    c.push_back(static_cast<uint8_t>(0x58 + (r & 7)));
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
            case 28:
            case 29:
                return rmw(c, w);
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
    bool narrow_ = false;
};

}  // namespace softkvm::cpu::test
