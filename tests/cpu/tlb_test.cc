// The software TLB against the SDM's rules for caching translations (vol. 3A §4.10):
// INVLPG of any address in a large page drops the whole page; MOV to CR3 keeps global
// translations (PTE.G with CR4.PGE) and drops the rest, with the block links into them;
// a change of CR4.PGE and INVLPG drop global translations too. Each case runs on both
// engines: translated code reads through the same TLB and follows the same links.
#include <gtest/gtest.h>

#include "machine.h"

namespace softkvm::cpu::test {
namespace {

// Linear 0x400000 (PD entry 2) goes through a page table at 0x7000 whose entry 0 maps
// frame kFrameA or kFrameB.
constexpr uint64_t kPt = 0x7000;
constexpr uint64_t kFrameA = 0x100000, kFrameB = 0x101000;

void map_4k_page(BareMachine& m, uint64_t frame, bool global) {
    m.put64(0x3010, kPt | PTE_P | PTE_RW);
    m.put64(kPt, frame | PTE_P | PTE_RW | (global ? PTE_G : 0));
}

struct DataCase {
    bool global, pge, toggle_pge, invlpg;
    uint32_t second;  // what the read after MOV to CR3 sees
};

// Reads linear 0x400000 (frame A holds 0xAAAA, frame B 0xBBBB), points its PTE at frame
// B without INVLPG, optionally toggles CR4.PGE (R8) or INVLPGs the page (R9), reloads CR3
// and reads it again: both values go out on port 0x10.
//   mov 0x400000,%eax; mov %rsi,0x7000; test %r8,%r8; jz 1f; mov %cr4,%rdx; mov %rdx,%rcx
//   xor $0x80,%rcx; mov %rcx,%cr4; mov %rdx,%cr4; 1: test %r9,%r9; jz 2f; invlpg 0x400000
//   2: mov %cr3,%rdx; mov %rdx,%cr3; mov 0x400000,%ebx; out %eax,$0x10; mov %ebx,%eax
//   out %eax,$0x10; hlt
void run_data_case(const DataCase& c) {
    const uint8_t code[] = {0x8b, 0x04, 0x25, 0x00, 0x00, 0x40, 0x00, 0x48, 0x89, 0x34, 0x25, 0x00,
                            0x70, 0x00, 0x00, 0x4d, 0x85, 0xc0, 0x74, 0x13, 0x0f, 0x20, 0xe2, 0x48,
                            0x89, 0xd1, 0x48, 0x81, 0xf1, 0x80, 0x00, 0x00, 0x00, 0x0f, 0x22, 0xe1,
                            0x0f, 0x22, 0xe2, 0x4d, 0x85, 0xc9, 0x74, 0x08, 0x0f, 0x01, 0x3c, 0x25,
                            0x00, 0x00, 0x40, 0x00, 0x0f, 0x20, 0xda, 0x0f, 0x22, 0xda, 0x8b, 0x1c,
                            0x25, 0x00, 0x00, 0x40, 0x00, 0xe7, 0x10, 0x89, 0xd8, 0xe7, 0x10, 0xf4};
    for (Engine e : {Engine::Interp, Engine::Translate}) {
        BareMachine m;
        if (!m.cpu_.set_engine(e)) continue;
        if (m.cpu_.translator()) m.cpu_.translator()->set_translate_after(1);
        m.load(code);
        map_4k_page(m, kFrameA, c.global);
        m.put64(kFrameA, 0xAAAA);
        m.put64(kFrameB, 0xBBBB);
        CpuState& s = m.cpu_.state();
        if (c.pge) s.cr4 |= CR4_PGE;
        s.gpr[RSI] = kFrameB | PTE_P | PTE_RW | (c.global ? PTE_G : 0);
        s.gpr[R8] = c.toggle_pge;
        s.gpr[R9] = c.invlpg;
        m.cpu_.state_changed();
        EXPECT_EQ(m.cpu_.run(0), StopReason::Owner);
        ASSERT_EQ(m.owner_.outs.size(), 2u) << engine_name(e);
        EXPECT_EQ(m.owner_.outs[0].value, 0xAAAAu) << engine_name(e);
        EXPECT_EQ(m.owner_.outs[1].value, c.second) << engine_name(e);
    }
}

TEST(TlbTest, GlobalTranslationSurvivesMovToCr3) {
    run_data_case({true, true, false, false, 0xAAAA});
}

TEST(TlbTest, NonGlobalTranslationGoesWithMovToCr3) {
    run_data_case({false, true, false, false, 0xBBBB});
}

// With a global translation in the TLB, MOV to CR3 drops exactly the non-global ones:
// those filled since the last flush, which the CPU lists (up to
// Cpu::kMaxNonGlobalFills), or all of them found by looking at every entry once more were
// filled. Reads linear 0x401000 (global, frame C) and 0x400000 (frame A), then R8 more
// non-global pages from 0x402000 on, points both PTEs elsewhere (frames B and D) and
// reloads CR3: 0x400000 now reads frame B, 0x401000 still frame C.
//   mov 0x401000,%ecx; mov 0x400000,%eax; mov $0x402000,%rdi
//   1: test %r8,%r8; jz 2f; mov (%rdi),%edx; add $0x1000,%rdi; dec %r8; jmp 1b
//   2: mov %rsi,0x7000; mov %r9,0x7008; mov %cr3,%rdx; mov %rdx,%cr3
//   mov 0x400000,%eax; out %eax,$0x10; mov 0x401000,%eax; out %eax,$0x10; hlt
void run_nonglobal_fills(uint64_t more) {
    const uint8_t code[] = {0x8b, 0x0c, 0x25, 0x00, 0x10, 0x40, 0x00, 0x8b, 0x04, 0x25, 0x00, 0x00,
                            0x40, 0x00, 0x48, 0xc7, 0xc7, 0x00, 0x20, 0x40, 0x00, 0x4d, 0x85, 0xc0,
                            0x74, 0x0e, 0x8b, 0x17, 0x48, 0x81, 0xc7, 0x00, 0x10, 0x00, 0x00, 0x49,
                            0xff, 0xc8, 0xeb, 0xed, 0x48, 0x89, 0x34, 0x25, 0x00, 0x70, 0x00, 0x00,
                            0x4c, 0x89, 0x0c, 0x25, 0x08, 0x70, 0x00, 0x00, 0x0f, 0x20, 0xda, 0x0f,
                            0x22, 0xda, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x40, 0x00, 0xe7, 0x10, 0x8b,
                            0x04, 0x25, 0x00, 0x10, 0x40, 0x00, 0xe7, 0x10, 0xf4};
    constexpr uint64_t kFrameC = 0x102000, kFrameD = 0x103000, kMore = 0x104000;
    for (Engine e : {Engine::Interp, Engine::Translate}) {
        BareMachine m;
        if (!m.cpu_.set_engine(e)) continue;
        if (m.cpu_.translator()) m.cpu_.translator()->set_translate_after(1);
        m.load(code);
        map_4k_page(m, kFrameA, false);
        m.put64(kPt + 8, kFrameC | PTE_P | PTE_RW | PTE_G);
        for (uint64_t k = 0; k < more; ++k) m.put64(kPt + 16 + 8 * k, kMore | PTE_P | PTE_RW);
        m.put64(kFrameA, 0xAAAA);
        m.put64(kFrameB, 0xBBBB);
        m.put64(kFrameC, 0xCCCC);
        m.put64(kFrameD, 0xDDDD);
        CpuState& s = m.cpu_.state();
        s.cr4 |= CR4_PGE;
        s.gpr[RSI] = kFrameB | PTE_P | PTE_RW;
        s.gpr[R9] = kFrameD | PTE_P | PTE_RW | PTE_G;
        s.gpr[R8] = more;
        m.cpu_.state_changed();
        EXPECT_EQ(m.cpu_.run(0), StopReason::Owner);
        ASSERT_EQ(m.owner_.outs.size(), 2u) << engine_name(e);
        EXPECT_EQ(m.owner_.outs[0].value, 0xBBBBu) << engine_name(e) << " after " << more;
        EXPECT_EQ(m.owner_.outs[1].value, 0xCCCCu) << engine_name(e) << " after " << more;
    }
}

TEST(TlbTest, MovToCr3DropsTheListedNonGlobalTranslations) {
    run_nonglobal_fills(0);
    run_nonglobal_fills(100);
}

TEST(TlbTest, MovToCr3DropsEveryNonGlobalTranslationPastTheList) {
    run_nonglobal_fills(400);  // more than Cpu::kMaxNonGlobalFills (PT entries 2-401)
}

TEST(TlbTest, GlobalFlagIsIgnoredWithoutCr4Pge) {
    run_data_case({true, false, false, false, 0xBBBB});
}

TEST(TlbTest, ChangingCr4PgeDropsGlobalTranslations) {
    run_data_case({true, true, true, false, 0xBBBB});
}

TEST(TlbTest, InvlpgDropsAGlobalTranslation) {
    run_data_case({true, true, false, true, 0xBBBB});
}

// A loop calls a function at linear 0x400000 three times (frame A: mov $1,%eax; ret), so
// the run loop links the call block to it and caches it by linear address; then its PTE
// is pointed at frame B (mov $2,%eax; ret) without INVLPG (or with it: R9), CR3 is
// reloaded and the loop runs again. ESI sums the results: 6 when the old translation and
// the links into it were kept (a global page), 9 when they went.
//   mov $0x400000,%ebx; mov $3,%ecx; 1: call *%rbx; add %eax,%esi; dec %ecx; jnz 1b
//   mov %rdi,0x7000; test %r9,%r9; jz 2f; invlpg (%rbx); 2: mov %cr3,%rdx; mov %rdx,%cr3
//   mov $3,%ecx; 3: call *%rbx; add %eax,%esi; dec %ecx; jnz 3b; mov %esi,%eax
//   out %eax,$0x10; hlt
// -1: no such engine in this build.
int64_t run_code_case(Engine e, bool global, bool invlpg) {
    const uint8_t code[] = {0xbb, 0x00, 0x00, 0x40, 0x00, 0xb9, 0x03, 0x00, 0x00, 0x00, 0xff, 0xd3,
                            0x01, 0xc6, 0xff, 0xc9, 0x75, 0xf8, 0x48, 0x89, 0x3c, 0x25, 0x00, 0x70,
                            0x00, 0x00, 0x4d, 0x85, 0xc9, 0x74, 0x03, 0x0f, 0x01, 0x3b, 0x0f, 0x20,
                            0xda, 0x0f, 0x22, 0xda, 0xb9, 0x03, 0x00, 0x00, 0x00, 0xff, 0xd3, 0x01,
                            0xc6, 0xff, 0xc9, 0x75, 0xf8, 0x89, 0xf0, 0xe7, 0x10, 0xf4};
    const uint8_t one[] = {0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3};  // mov $1,%eax; ret
    const uint8_t two[] = {0xb8, 0x02, 0x00, 0x00, 0x00, 0xc3};  // mov $2,%eax; ret
    BareMachine m;
    if (!m.cpu_.set_engine(e)) return -1;
    if (m.cpu_.translator()) m.cpu_.translator()->set_translate_after(1);
    m.load(code);
    m.load(one, kFrameA);
    m.load(two, kFrameB);
    map_4k_page(m, kFrameA, global);
    CpuState& s = m.cpu_.state();
    s.cr4 |= CR4_PGE;
    s.gpr[RDI] = kFrameB | PTE_P | PTE_RW | (global ? PTE_G : 0);
    s.gpr[R9] = invlpg;
    m.cpu_.state_changed();
    EXPECT_EQ(m.cpu_.run(0), StopReason::Owner);
    EXPECT_EQ(m.owner_.outs.size(), 1u) << engine_name(e);
    return m.owner_.outs.empty() ? 0 : int64_t{m.owner_.outs[0].value};
}

TEST(TlbTest, LinksIntoGlobalCodeSurviveMovToCr3AndGoWithInvlpg) {
    for (Engine e : {Engine::Interp, Engine::Translate}) {
        const int64_t kept = run_code_case(e, true, false);
        if (kept < 0) continue;
        EXPECT_EQ(kept, 6) << engine_name(e);
        EXPECT_EQ(run_code_case(e, false, false), 9) << engine_name(e);
        EXPECT_EQ(run_code_case(e, true, true), 9) << engine_name(e);
    }
}

// A direct CALL into the non-global page at 0x400000, from code in a global 2 MiB page
// (so that MOV to CR3 keeps some translations and links): eleven calls, and after the
// ninth the PTE is pointed at frame B and CR3 reloaded. The same CALL then reaches the new
// function: 9 * 1 + 2 * 2 = 13. (The translator's direct exit remembers its successor in
// a slot that no list names; it must die with the links into non-global code.)
//   mov $11,%ecx; 1: call 0x400000; add %eax,%esi; cmp $3,%ecx; jne 2f; mov %rdi,0x7000
//   mov %cr3,%rdx; mov %rdx,%cr3; 2: dec %ecx; jnz 1b; mov %esi,%eax; out %eax,$0x10; hlt
TEST(TlbTest, ADirectCallIntoNonGlobalCodeFollowsMovToCr3) {
    const uint8_t code[] = {0xb9, 0x0b, 0x00, 0x00, 0x00, 0xe8, 0xf6, 0xff, 0x3e, 0x00,
                            0x01, 0xc6, 0x83, 0xf9, 0x03, 0x75, 0x0e, 0x48, 0x89, 0x3c,
                            0x25, 0x00, 0x70, 0x00, 0x00, 0x0f, 0x20, 0xda, 0x0f, 0x22,
                            0xda, 0xff, 0xc9, 0x75, 0xe2, 0x89, 0xf0, 0xe7, 0x10, 0xf4};
    const uint8_t one[] = {0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3};  // mov $1,%eax; ret
    const uint8_t two[] = {0xb8, 0x02, 0x00, 0x00, 0x00, 0xc3};  // mov $2,%eax; ret
    for (Engine e : {Engine::Interp, Engine::Translate}) {
        BareMachine m;
        if (!m.cpu_.set_engine(e)) continue;
        if (m.cpu_.translator()) m.cpu_.translator()->set_translate_after(1);
        m.load(code);
        m.load(one, kFrameA);
        m.load(two, kFrameB);
        m.put64(0x3000, m.get64(0x3000) | PTE_G);  // the code's 2 MiB page
        map_4k_page(m, kFrameA, false);
        CpuState& s = m.cpu_.state();
        s.cr4 |= CR4_PGE;
        s.gpr[RDI] = kFrameB | PTE_P | PTE_RW;
        m.cpu_.state_changed();
        EXPECT_EQ(m.cpu_.run(0), StopReason::Owner) << engine_name(e);
        ASSERT_EQ(m.owner_.outs.size(), 1u) << engine_name(e);
        EXPECT_EQ(m.owner_.outs[0].value, 13u) << engine_name(e);
    }
}

TEST(TlbTest, InvlpgOfAnotherPartOfA2MiBCodePageDropsTheLinksIntoIt) {
    // As SystemTestEngines.InvlpgOfARemappedCodePageDropsTheLinksIntoIt, but the INVLPG
    // names the last 4 KiB of the 2 MiB page (0x3ff000), not the function's (0x300000):
    // it invalidates the whole large page all the same (SDM vol. 3A §4.10.4.1).
    //   mov $0x300000,%ebx; mov $3,%ecx; 1: call *%rbx; add %eax,%esi; dec %ecx; jnz 1b
    //   mov $0x83,%eax; mov %rax,0x3008; invlpg 0x3ff000; mov $3,%ecx
    //   2: call *%rbx; add %eax,%esi; dec %ecx; jnz 2b; mov %esi,%eax; out %eax,$0x10; hlt
    const uint8_t code[] = {0xbb, 0x00, 0x00, 0x30, 0x00, 0xb9, 0x03, 0x00, 0x00, 0x00, 0xff, 0xd3,
                            0x01, 0xc6, 0xff, 0xc9, 0x75, 0xf8, 0xb8, 0x83, 0x00, 0x00, 0x00, 0x48,
                            0x89, 0x04, 0x25, 0x08, 0x30, 0x00, 0x00, 0x0f, 0x01, 0x3c, 0x25, 0x00,
                            0xf0, 0x3f, 0x00, 0xb9, 0x03, 0x00, 0x00, 0x00, 0xff, 0xd3, 0x01, 0xc6,
                            0xff, 0xc9, 0x75, 0xf8, 0x89, 0xf0, 0xe7, 0x10, 0xf4};
    expect_calls_reach_remapped_page(code);
}

// Links and direct-exit slots are keyed by RIP, not by privilege: a block on a user page
// that jumped into a supervisor page at CPL 0 must not take that link at CPL 3, where the
// fetch from the supervisor page faults (SDM vol. 3A §4.6.1). Linear 0x400000 (U=1) holds
// `jmp 0x401000`; 0x401000 (U=0) holds `ret`. The kernel calls 0x400000 three times
// (the link and the slot are made), then SYSRETs to it at CPL 3: #PF at 0x401000, error
// code P|U/S|I/D.
//   mov $3,%ecx; 1: call 0x400000; dec %ecx; jnz 1b; mov $0x400000,%ecx; mov $2,%r11d
//   sysretq
TEST(TlbTest, ALinkMadeAtCpl0IntoASupervisorPageFaultsAtCpl3) {
    const uint8_t code[] = {0xb9, 0x03, 0x00, 0x00, 0x00, 0xe8, 0xf6, 0xff, 0x3e, 0x00,
                            0xff, 0xc9, 0x75, 0xf7, 0xb9, 0x00, 0x00, 0x40, 0x00, 0x41,
                            0xbb, 0x02, 0x00, 0x00, 0x00, 0x48, 0x0f, 0x07};
    const uint8_t jump[] = {0xe9, 0xfb, 0x0f, 0x00, 0x00};  // jmp 0x401000
    const uint8_t ret[] = {0xc3};
    for (Engine e : {Engine::Interp, Engine::Translate}) {
        BareMachine m;
        if (!m.cpu_.set_engine(e)) continue;
        if (m.cpu_.translator()) m.cpu_.translator()->set_translate_after(1);
        m.load(code);
        m.load(jump, kFrameA);
        m.load(ret, kFrameB);
        for (uint64_t t : {0x1000, 0x2000}) m.put64(t, m.get64(t) | PTE_US);
        m.put64(0x3010, kPt | PTE_P | PTE_RW | PTE_US);
        m.put64(kPt, kFrameA | PTE_P | PTE_RW | PTE_US);
        m.put64(kPt + 8, kFrameB | PTE_P | PTE_RW);
        m.put64(0x6004, 0x70000);  // the TSS's RSP0, for the #PF taken at CPL 3
        CpuState& s = m.cpu_.state();
        s.efer |= msr::EFER_SCE;
        s.star = 0x10ull << 48;  // SYSRET: CS 0x23, SS 0x1b
        s.tr.base = 0x6000;
        m.cpu_.state_changed();
        EXPECT_EQ(m.cpu_.run(0), StopReason::Owner) << engine_name(e);
        EXPECT_EQ(m.vector_taken(), VEC_PF) << engine_name(e);
        EXPECT_EQ(m.cpu_.state().cr2, 0x401000u) << engine_name(e);
        EXPECT_EQ(m.frame(0), 0x15u) << engine_name(e);  // P, U/S, I/D
        EXPECT_EQ(m.frame(1), 0x401000u) << engine_name(e);
    }
}

// A supervisor read of a user page under CR4.SMAP is allowed only while RFLAGS.AC is set
// (SDM vol. 3A §4.6.1): a translation made under STAC must not let a read after CLAC
// through. Linear 0x400000 is a user page.
//   mov $3,%ecx; 1: stac; mov 0x400000,%eax; clac; dec %ecx; jnz 1b; mov 0x400000,%ebx; hlt
TEST(TlbTest, ASupervisorReadOfAUserPageAfterClacFaultsUnderSmap) {
    const uint8_t code[] = {0xb9, 0x03, 0x00, 0x00, 0x00, 0x0f, 0x01, 0xcb, 0x8b, 0x04,
                            0x25, 0x00, 0x00, 0x40, 0x00, 0x0f, 0x01, 0xca, 0xff, 0xc9,
                            0x75, 0xef, 0x8b, 0x1c, 0x25, 0x00, 0x00, 0x40, 0x00, 0xf4};
    for (Engine e : {Engine::Interp, Engine::Translate}) {
        BareMachine m;
        if (!m.cpu_.set_engine(e)) continue;
        if (m.cpu_.translator()) m.cpu_.translator()->set_translate_after(1);
        m.load(code);
        for (uint64_t t : {0x1000, 0x2000}) m.put64(t, m.get64(t) | PTE_US);
        m.put64(0x3010, kPt | PTE_P | PTE_RW | PTE_US);
        m.put64(kPt, kFrameA | PTE_P | PTE_RW | PTE_US);
        m.cpu_.state().cr4 |= CR4_SMAP;
        m.cpu_.state_changed();
        EXPECT_EQ(m.cpu_.run(0), StopReason::Owner) << engine_name(e);
        EXPECT_EQ(m.vector_taken(), VEC_PF) << engine_name(e);
        EXPECT_EQ(m.cpu_.state().cr2, 0x400000u) << engine_name(e);
        EXPECT_EQ(m.frame(0), 0x1u) << engine_name(e);  // P: a supervisor read
        EXPECT_EQ(m.frame(1), 0x10016u) << engine_name(e);
    }
}

// A link is keyed by RIP: one far JMP that reaches one offset in two code segments must
// run the code decoded for the segment it lands in. The loop far-jumps to offset 0x30000
// four times, with the selector at 4(%rbx) (first `first`) XORed with `toggle` after
// each; 0x30000 holds 48 ff c0 ff 29 (`inc %rax; ljmp *(%rcx)` in 64-bit mode,
// `dec %eax; inc %eax; ljmp *(%ecx)` in compatibility mode), 0x31000 holds 40 ff 29
// (`inc %eax; ljmp *(%ecx)` there). GDT: 0x18 32-bit code at base 0, 0x20 at base 0x1000.
// The count in RAX goes out on port 0x10.
//   mov $4,%r8d; 1: ljmp *(%rbx); 2: xorw $toggle,4(%rbx); dec %r8d; jnz 1b
//   out %eax,$0x10; hlt
void expect_far_jump_visits(uint8_t first, uint8_t toggle, uint32_t visits) {
    const uint8_t code[] = {0x41, 0xb8,   0x04, 0x00, 0x00, 0x00, 0xff, 0x2b, 0x66, 0x81, 0x73,
                            0x04, toggle, 0x00, 0x41, 0xff, 0xc8, 0x75, 0xf3, 0xe7, 0x10, 0xf4};
    const uint8_t there[] = {0x48, 0xff, 0xc0, 0xff, 0x29};
    const uint8_t other[] = {0x40, 0xff, 0x29};
    for (Engine e : {Engine::Interp, Engine::Translate}) {
        BareMachine m;
        if (!m.cpu_.set_engine(e)) continue;
        if (m.cpu_.translator()) m.cpu_.translator()->set_translate_after(1);
        m.load(code);
        m.load(there, 0x30000);
        m.load(other, 0x31000);
        m.put64(0x518, 0x00CF9A000000FFFFull);
        m.put64(0x520, 0x00CF9A001000FFFFull);
        m.put64(0x8000, 0x30000 | uint64_t{first} << 32);
        m.put64(0x8010, 0x10008 | 0x08ull << 32);
        CpuState& s = m.cpu_.state();
        s.gdtr.limit = 0x27;
        s.gpr[RBX] = 0x8000, s.gpr[RCX] = 0x8010;
        m.cpu_.state_changed();
        EXPECT_EQ(m.cpu_.run(0), StopReason::Owner) << engine_name(e);
        ASSERT_EQ(m.owner_.outs.size(), 1u) << engine_name(e);
        EXPECT_EQ(m.owner_.outs[0].value, visits) << engine_name(e);
    }
}

// CS 0x08 (64-bit) and 0x18 (32-bit) in turn: two 64-bit visits.
TEST(TlbTest, AFarJumpToTheSameOffsetInAnotherModeRunsThatModesCode) {
    expect_far_jump_visits(0x08, 0x10, 2);
}

// CS 0x18 (base 0: linear 0x30000) and 0x20 (base 0x1000: linear 0x31000) in turn: two
// visits to 0x31000.
TEST(TlbTest, AFarJumpToTheSameOffsetInASegmentWithAnotherBaseRunsThatCode) {
    expect_far_jump_visits(0x18, 0x38, 2);
}

// A paging structure outside RAM: the walk does not read it through MMIO but faults as
// not present, as KVM's walker does for a table in no memory slot. PD entry 2 (linear
// 0x400000) names a page table at 0x10000000, above the 4 MiB of RAM.
//   mov 0x400000,%eax; hlt
TEST(TlbTest, APageTableOutsideRamFaultsAsNotPresent) {
    const uint8_t code[] = {0x8b, 0x04, 0x25, 0x00, 0x00, 0x40, 0x00, 0xf4};
    for (Engine e : {Engine::Interp, Engine::Translate}) {
        BareMachine m;
        if (!m.cpu_.set_engine(e)) continue;
        m.load(code);
        m.put64(0x3010, 0x10000000 | PTE_P | PTE_RW);
        m.cpu_.state_changed();
        EXPECT_EQ(m.cpu_.run(0), StopReason::Owner) << engine_name(e);
        EXPECT_EQ(m.vector_taken(), VEC_PF) << engine_name(e);
        EXPECT_EQ(m.cpu_.state().cr2, 0x400000u) << engine_name(e);
        EXPECT_EQ(m.frame(0), 0x0u) << engine_name(e);  // not present, a supervisor read
        EXPECT_EQ(m.frame(1), BareMachine::kCode) << engine_name(e);
    }
}

}  // namespace
}  // namespace softkvm::cpu::test
