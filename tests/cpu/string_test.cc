// REP MOVS and REP STOS (exec/string.cc), which run a page at a time on host memory once
// the software TLB maps the pages: every result must be the element-by-element one. A
// reference model in the test replays the string an element at a time on a copy of the
// memory; the CPU must leave the same bytes, RSI, RDI and RCX, and count one retired
// instruction per iteration, whatever the instruction limits that cut the string.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "machine.h"

namespace softkvm::cpu::test {
namespace {

using StringTest = Machine;

constexpr uint64_t kArea = 0x100000;  // the strings' 64 KiB, identity-mapped RAM
constexpr uint64_t kAreaSize = 0x10000;

struct Rep {
    bool movs = true;
    uint8_t size = 1;   // element: 1, 2, 4 or 8 bytes
    bool down = false;  // DF
    uint64_t src = 0, dst = 0, count = 0, value = 0;
};

void put_imm64(std::vector<uint8_t>& code, uint8_t op, uint64_t v) {
    code.insert(code.end(), {0x48, op});
    for (int k = 0; k < 8; ++k) code.push_back(static_cast<uint8_t>(v >> (8 * k)));
}

// movabs src,%rsi; movabs dst,%rdi; movabs count,%rcx; movabs value,%rax; cld/std;
// rep movs/stos; hlt. The REP is at offset kRepAt.
constexpr uint64_t kRepAt = 41;
std::vector<uint8_t> program(const Rep& r) {
    std::vector<uint8_t> code;
    put_imm64(code, 0xBE, r.src);
    put_imm64(code, 0xBF, r.dst);
    put_imm64(code, 0xB9, r.count);
    put_imm64(code, 0xB8, r.value);
    code.push_back(r.down ? 0xFD : 0xFC);
    code.push_back(0xF3);
    if (r.size == 2) code.push_back(0x66);
    if (r.size == 8) code.push_back(0x48);
    code.push_back(r.movs ? (r.size == 1 ? 0xA4 : 0xA5) : (r.size == 1 ? 0xAA : 0xAB));
    code.push_back(0xF4);
    return code;
}

// The string an element at a time on `mem` (guest-physical = linear here).
void reference(const Rep& r, std::vector<uint8_t>& mem) {
    const int64_t step = r.down ? -static_cast<int64_t>(r.size) : r.size;
    uint64_t src = r.src, dst = r.dst;
    for (uint64_t k = 0; k < r.count; ++k) {
        uint8_t element[8];
        if (r.movs)
            std::memcpy(element, &mem[src], r.size);
        else
            std::memcpy(element, &r.value, r.size);
        std::memcpy(&mem[dst], element, r.size);
        src += static_cast<uint64_t>(step);
        dst += static_cast<uint64_t>(step);
    }
}

std::string describe(const Rep& r) {
    return std::string(r.movs ? "movs" : "stos") + " size " + std::to_string(r.size) +
           (r.down ? " down" : " up") + " src " + std::to_string(r.src) + " dst " +
           std::to_string(r.dst) + " count " + std::to_string(r.count);
}

// Runs `r` on a fresh machine in steps of random instruction limits; checks RCX against
// the instructions retired at every step and the memory and registers at the end.
void check(const Rep& r, std::mt19937_64& rng) {
    const std::string what = describe(r);
    BareMachine m;
    for (uint64_t k = 0; k < kAreaSize; ++k) m.ram_[kArea + k] = static_cast<uint8_t>(rng());
    std::vector<uint8_t> expect(m.ram_, m.ram_ + BareMachine::kRamSize);
    reference(r, expect);
    const std::vector<uint8_t> code = program(r);
    std::memcpy(m.ram_ + BareMachine::kCode, code.data(), code.size());
    uint64_t limit = 0;
    for (int step = 0;; ++step) {
        ASSERT_LT(step, 100000) << what;
        limit += 1 + rng() % (rng() % 2 ? 20 : 5000);
        const StopReason stop = m.cpu_.run(limit);
        if (stop != StopReason::InsnLimit) {
            ASSERT_EQ(stop, StopReason::Owner) << what;
            break;
        }
        ASSERT_EQ(m.cpu_.instructions_retired(), limit) << what;
        // Five instructions before the REP; each iteration retires one instruction.
        if (limit > 5 && m.cpu_.state().rip == BareMachine::kCode + kRepAt && r.count) {
            ASSERT_EQ(m.cpu_.state().gpr[RCX], r.count - (limit - 5)) << what << " limit " << limit;
        }
    }
    ASSERT_EQ(m.owner_.hlts, 1) << what;
    const int64_t moved = static_cast<int64_t>(r.count * r.size) * (r.down ? -1 : 1);
    EXPECT_EQ(m.cpu_.state().gpr[RCX], 0u) << what;
    EXPECT_EQ(m.cpu_.state().gpr[RDI], r.dst + static_cast<uint64_t>(moved)) << what;
    EXPECT_EQ(m.cpu_.state().gpr[RSI], r.movs ? r.src + static_cast<uint64_t>(moved) : r.src)
        << what;
    EXPECT_EQ(m.cpu_.instructions_retired(), 5 + std::max<uint64_t>(r.count, 1) + 1) << what;
    EXPECT_EQ(0, std::memcmp(m.ram_ + kArea, expect.data() + kArea, kAreaSize)) << what;
}

TEST_F(StringTest, RandomRepMovsAndStosMatchTheElementByElementModel) {
    std::mt19937_64 rng(20261202);
    for (int round = 0; round < 250; ++round) {
        Rep r;
        r.movs = rng() % 3 != 0;
        r.size = static_cast<uint8_t>(1u << (rng() % 4));
        r.down = rng() % 3 == 0;
        r.value = rng();
        // Up to 3 pages of elements, from near a page's end or start (misaligned too).
        r.count = rng() % 4 == 0 ? rng() % 16 : rng() % (3 * 4096 / r.size);
        const uint64_t span = r.count * r.size;
        auto place = [&]() {
            const uint64_t page = kArea + 0x4000 + (rng() % 6) * 0x1000;
            const uint64_t off = rng() % 2 ? rng() % 24 : 0x1000 - rng() % 24;
            return page + off;
        };
        r.dst = place();
        // The source: anywhere, or overlapping the destination by a few bytes either way
        // (a copy onto itself shifted repeats its pattern).
        r.src = rng() % 3 == 0 ? r.dst + rng() % 17 - 8 : place();
        if (r.down) {
            // The string runs down from its first element: keep it in the area.
            r.dst += span;
            r.src += span;
        }
        check(r, rng);
        if (HasFailure()) return;
    }
}

TEST_F(StringTest, RepStosFaultsAtTheFirstUnmappedElementWithItsRegisters) {
    // rep stosq from 0x3FE000 with RCX 0x1000: 1024 elements fill the last two mapped
    // pages, the 1025th is at 0x400000 (not mapped): #PF there, RDI and RCX pointing at it.
    Rep r;
    r.movs = false, r.size = 8, r.dst = 0x3FE000, r.count = 0x1000, r.value = 0x1122334455667788;
    const std::vector<uint8_t> code = program(r);
    std::memcpy(ram_ + kCode, code.data(), code.size());
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_PF);
    EXPECT_EQ(cpu_.state().cr2, 0x400000u);
    EXPECT_EQ(frame(1), kCode + kRepAt);  // the REP restarts
    EXPECT_EQ(frame(0), PFERR_W);         // not present, write, supervisor
    // The stub's RBX points at the frame; RDI and RCX are as the fault left them.
    EXPECT_EQ(cpu_.state().gpr[RDI], 0x400000u);
    EXPECT_EQ(cpu_.state().gpr[RCX], 0x1000u - 1024u);
    for (uint64_t a = 0x3FE000; a < 0x400000; a += 8) ASSERT_EQ(get64(a), r.value) << a;
}

TEST_F(StringTest, RepMovsIntoItsOwnCodePageRunsTheNewCode) {
    // rep movsb copies 3 NOPs over the UD2 that follows it in its own page: the CPU runs
    // the NOPs (the decoded UD2 is dropped), then HLT.
    Rep r;
    r.movs = true, r.size = 1, r.src = kArea, r.count = 3;
    std::vector<uint8_t> code = program(r);
    r.dst = kCode + code.size() - 1;  // where the HLT was
    code = program(r);
    code.back() = 0x0F;  // ud2, then a byte the copy overwrites too, then hlt
    code.insert(code.end(), {0x0B, 0x90, 0xF4});
    std::memcpy(ram_ + kCode, code.data(), code.size());
    std::memset(ram_ + kArea, 0x90, 3);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), -1);
    EXPECT_EQ(owner_.hlts, 1);
    EXPECT_EQ(cpu_.state().rip, kCode + code.size());
}

}  // namespace
}  // namespace softkvm::cpu::test
