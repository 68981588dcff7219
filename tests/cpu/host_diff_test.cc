// Differential test against the host's own silicon: each integer instruction below runs
// natively (in an executable page) and on the software CPU from the same registers and
// flags, over special and pseudo-random operands, and every architecturally defined
// result must match. Flags the SDM leaves undefined for an instruction are masked. MMX
// instructions run between MOVQ/MOVD from and to the GPRs (every lane form and the MMX
// side effects are compared in mmx_test.cc).
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cpuid.h>

#include <random>

#include "machine.h"

namespace softkvm::cpu::test {
namespace {

// Undefined-flag classes (SDM vol. 1 appendix A and each instruction's "Flags Affected").
constexpr uint32_t U_CF = FLAG_CF, U_PF = FLAG_PF, U_AF = FLAG_AF, U_ZF = FLAG_ZF, U_SF = FLAG_SF,
                   U_OF = FLAG_OF;
constexpr uint32_t U_SHIFT = 1u << 20;   // shift by CL: depends on the count
constexpr uint32_t U_ROT = 1u << 21;     // rotate by CL: OF undefined unless count 1
constexpr uint32_t U_SHIFTD = 1u << 22;  // SHLD/SHRD by CL
constexpr uint32_t U_DIV = 1u << 23;     // all flags undefined; skip inputs that fault
constexpr uint32_t U_BSZERO = 1u << 24;  // BSF/BSR: destination undefined for a zero source

struct Insn {
    const char* text;
    uint8_t bytes[16];
    uint8_t len;
    uint32_t undefined;
};

// Generated from GNU as encodings of the text in the first column.
const Insn kInsns[] = {
    {"add %cl, %al", {0x00, 0xc8}, 2, 0},
    {"adc %cl, %al", {0x10, 0xc8}, 2, 0},
    {"sub %cl, %al", {0x28, 0xc8}, 2, 0},
    {"sbb %cl, %al", {0x18, 0xc8}, 2, 0},
    {"cmp %cl, %al", {0x38, 0xc8}, 2, 0},
    {"and %cl, %al", {0x20, 0xc8}, 2, U_AF},
    {"or %cl, %al", {0x08, 0xc8}, 2, U_AF},
    {"xor %cl, %al", {0x30, 0xc8}, 2, U_AF},
    {"test %cl, %al", {0x84, 0xc8}, 2, U_AF},
    {"neg %al", {0xf6, 0xd8}, 2, 0},
    {"inc %al", {0xfe, 0xc0}, 2, 0},
    {"dec %al", {0xfe, 0xc8}, 2, 0},
    {"not %al", {0xf6, 0xd0}, 2, 0},
    {"shl %cl, %al", {0xd2, 0xe0}, 2, U_SHIFT},
    {"shl $1, %al", {0xd0, 0xe0}, 2, U_AF},
    {"shl $3, %al", {0xc0, 0xe0, 0x03}, 3, U_AF | U_OF},
    {"shr %cl, %al", {0xd2, 0xe8}, 2, U_SHIFT},
    {"shr $1, %al", {0xd0, 0xe8}, 2, U_AF},
    {"shr $3, %al", {0xc0, 0xe8, 0x03}, 3, U_AF | U_OF},
    {"sar %cl, %al", {0xd2, 0xf8}, 2, U_SHIFT},
    {"sar $1, %al", {0xd0, 0xf8}, 2, U_AF},
    {"sar $3, %al", {0xc0, 0xf8, 0x03}, 3, U_AF | U_OF},
    {"rol %cl, %al", {0xd2, 0xc0}, 2, U_ROT},
    {"rol $1, %al", {0xd0, 0xc0}, 2, 0},
    {"ror %cl, %al", {0xd2, 0xc8}, 2, U_ROT},
    {"ror $1, %al", {0xd0, 0xc8}, 2, 0},
    {"rcl %cl, %al", {0xd2, 0xd0}, 2, U_ROT},
    {"rcl $1, %al", {0xd0, 0xd0}, 2, 0},
    {"rcr %cl, %al", {0xd2, 0xd8}, 2, U_ROT},
    {"rcr $1, %al", {0xd0, 0xd8}, 2, 0},
    {"mul %cl", {0xf6, 0xe1}, 2, U_SF | U_ZF | U_AF | U_PF},
    {"imul %cl", {0xf6, 0xe9}, 2, U_SF | U_ZF | U_AF | U_PF},
    {"div %cl", {0xf6, 0xf1}, 2, U_DIV},
    {"idiv %cl", {0xf6, 0xf9}, 2, U_DIV},
    {"xchg %cl, %al", {0x86, 0xc8}, 2, 0},
    {"setb %al", {0x0f, 0x92, 0xc0}, 3, 0},
    {"add %cx, %ax", {0x66, 0x01, 0xc8}, 3, 0},
    {"adc %cx, %ax", {0x66, 0x11, 0xc8}, 3, 0},
    {"sub %cx, %ax", {0x66, 0x29, 0xc8}, 3, 0},
    {"sbb %cx, %ax", {0x66, 0x19, 0xc8}, 3, 0},
    {"cmp %cx, %ax", {0x66, 0x39, 0xc8}, 3, 0},
    {"and %cx, %ax", {0x66, 0x21, 0xc8}, 3, U_AF},
    {"or %cx, %ax", {0x66, 0x09, 0xc8}, 3, U_AF},
    {"xor %cx, %ax", {0x66, 0x31, 0xc8}, 3, U_AF},
    {"test %cx, %ax", {0x66, 0x85, 0xc8}, 3, U_AF},
    {"neg %ax", {0x66, 0xf7, 0xd8}, 3, 0},
    {"inc %ax", {0x66, 0xff, 0xc0}, 3, 0},
    {"dec %ax", {0x66, 0xff, 0xc8}, 3, 0},
    {"not %ax", {0x66, 0xf7, 0xd0}, 3, 0},
    {"shl %cl, %ax", {0x66, 0xd3, 0xe0}, 3, U_SHIFT},
    {"shl $1, %ax", {0x66, 0xd1, 0xe0}, 3, U_AF},
    {"shl $3, %ax", {0x66, 0xc1, 0xe0, 0x03}, 4, U_AF | U_OF},
    {"shr %cl, %ax", {0x66, 0xd3, 0xe8}, 3, U_SHIFT},
    {"shr $1, %ax", {0x66, 0xd1, 0xe8}, 3, U_AF},
    {"shr $3, %ax", {0x66, 0xc1, 0xe8, 0x03}, 4, U_AF | U_OF},
    {"sar %cl, %ax", {0x66, 0xd3, 0xf8}, 3, U_SHIFT},
    {"sar $1, %ax", {0x66, 0xd1, 0xf8}, 3, U_AF},
    {"sar $3, %ax", {0x66, 0xc1, 0xf8, 0x03}, 4, U_AF | U_OF},
    {"rol %cl, %ax", {0x66, 0xd3, 0xc0}, 3, U_ROT},
    {"rol $1, %ax", {0x66, 0xd1, 0xc0}, 3, 0},
    {"ror %cl, %ax", {0x66, 0xd3, 0xc8}, 3, U_ROT},
    {"ror $1, %ax", {0x66, 0xd1, 0xc8}, 3, 0},
    {"rcl %cl, %ax", {0x66, 0xd3, 0xd0}, 3, U_ROT},
    {"rcl $1, %ax", {0x66, 0xd1, 0xd0}, 3, 0},
    {"rcr %cl, %ax", {0x66, 0xd3, 0xd8}, 3, U_ROT},
    {"rcr $1, %ax", {0x66, 0xd1, 0xd8}, 3, 0},
    {"imul %cx, %ax", {0x66, 0x0f, 0xaf, 0xc1}, 4, U_SF | U_ZF | U_AF | U_PF},
    {"imul $-7, %cx, %ax", {0x66, 0x6b, 0xc1, 0xf9}, 4, U_SF | U_ZF | U_AF | U_PF},
    {"bsf %cx, %ax", {0x66, 0x0f, 0xbc, 0xc1}, 4, U_CF | U_PF | U_AF | U_SF | U_OF | U_BSZERO},
    {"bsr %cx, %ax", {0x66, 0x0f, 0xbd, 0xc1}, 4, U_CF | U_PF | U_AF | U_SF | U_OF | U_BSZERO},
    {"bt %cx, %ax", {0x66, 0x0f, 0xa3, 0xc8}, 4, U_PF | U_AF | U_ZF | U_SF | U_OF},
    {"bts %cx, %ax", {0x66, 0x0f, 0xab, 0xc8}, 4, U_PF | U_AF | U_ZF | U_SF | U_OF},
    {"btr %cx, %ax", {0x66, 0x0f, 0xb3, 0xc8}, 4, U_PF | U_AF | U_ZF | U_SF | U_OF},
    {"btc %cx, %ax", {0x66, 0x0f, 0xbb, 0xc8}, 4, U_PF | U_AF | U_ZF | U_SF | U_OF},
    {"shld %cl, %cx, %ax", {0x66, 0x0f, 0xa5, 0xc8}, 4, U_SHIFTD},
    {"shrd %cl, %cx, %ax", {0x66, 0x0f, 0xad, 0xc8}, 4, U_SHIFTD},
    {"cmovl %cx, %ax", {0x66, 0x0f, 0x4c, 0xc1}, 4, 0},
    {"xadd %cx, %ax", {0x66, 0x0f, 0xc1, 0xc8}, 4, 0},
    {"cmpxchg %cx, %ax", {0x66, 0x0f, 0xb1, 0xc8}, 4, 0},
    {"popcnt %cx, %ax", {0x66, 0xf3, 0x0f, 0xb8, 0xc1}, 5, 0},
    {"lzcnt %cx, %ax", {0x66, 0xf3, 0x0f, 0xbd, 0xc1}, 5, U_PF | U_AF | U_SF | U_OF},
    {"mul %cx", {0x66, 0xf7, 0xe1}, 3, U_SF | U_ZF | U_AF | U_PF},
    {"imul %cx", {0x66, 0xf7, 0xe9}, 3, U_SF | U_ZF | U_AF | U_PF},
    {"div %cx", {0x66, 0xf7, 0xf1}, 3, U_DIV},
    {"idiv %cx", {0x66, 0xf7, 0xf9}, 3, U_DIV},
    {"xchg %cx, %ax", {0x66, 0x91}, 2, 0},
    {"setb %al", {0x0f, 0x92, 0xc0}, 3, 0},
    {"add %ecx, %eax", {0x01, 0xc8}, 2, 0},
    {"adc %ecx, %eax", {0x11, 0xc8}, 2, 0},
    {"sub %ecx, %eax", {0x29, 0xc8}, 2, 0},
    {"sbb %ecx, %eax", {0x19, 0xc8}, 2, 0},
    {"cmp %ecx, %eax", {0x39, 0xc8}, 2, 0},
    {"and %ecx, %eax", {0x21, 0xc8}, 2, U_AF},
    {"or %ecx, %eax", {0x09, 0xc8}, 2, U_AF},
    {"xor %ecx, %eax", {0x31, 0xc8}, 2, U_AF},
    {"test %ecx, %eax", {0x85, 0xc8}, 2, U_AF},
    {"neg %eax", {0xf7, 0xd8}, 2, 0},
    {"inc %eax", {0xff, 0xc0}, 2, 0},
    {"dec %eax", {0xff, 0xc8}, 2, 0},
    {"not %eax", {0xf7, 0xd0}, 2, 0},
    {"shl %cl, %eax", {0xd3, 0xe0}, 2, U_SHIFT},
    {"shl $1, %eax", {0xd1, 0xe0}, 2, U_AF},
    {"shl $3, %eax", {0xc1, 0xe0, 0x03}, 3, U_AF | U_OF},
    {"shr %cl, %eax", {0xd3, 0xe8}, 2, U_SHIFT},
    {"shr $1, %eax", {0xd1, 0xe8}, 2, U_AF},
    {"shr $3, %eax", {0xc1, 0xe8, 0x03}, 3, U_AF | U_OF},
    {"sar %cl, %eax", {0xd3, 0xf8}, 2, U_SHIFT},
    {"sar $1, %eax", {0xd1, 0xf8}, 2, U_AF},
    {"sar $3, %eax", {0xc1, 0xf8, 0x03}, 3, U_AF | U_OF},
    {"rol %cl, %eax", {0xd3, 0xc0}, 2, U_ROT},
    {"rol $1, %eax", {0xd1, 0xc0}, 2, 0},
    {"ror %cl, %eax", {0xd3, 0xc8}, 2, U_ROT},
    {"ror $1, %eax", {0xd1, 0xc8}, 2, 0},
    {"rcl %cl, %eax", {0xd3, 0xd0}, 2, U_ROT},
    {"rcl $1, %eax", {0xd1, 0xd0}, 2, 0},
    {"rcr %cl, %eax", {0xd3, 0xd8}, 2, U_ROT},
    {"rcr $1, %eax", {0xd1, 0xd8}, 2, 0},
    {"imul %ecx, %eax", {0x0f, 0xaf, 0xc1}, 3, U_SF | U_ZF | U_AF | U_PF},
    {"imul $-7, %ecx, %eax", {0x6b, 0xc1, 0xf9}, 3, U_SF | U_ZF | U_AF | U_PF},
    {"bsf %ecx, %eax", {0x0f, 0xbc, 0xc1}, 3, U_CF | U_PF | U_AF | U_SF | U_OF | U_BSZERO},
    {"bsr %ecx, %eax", {0x0f, 0xbd, 0xc1}, 3, U_CF | U_PF | U_AF | U_SF | U_OF | U_BSZERO},
    {"bt %ecx, %eax", {0x0f, 0xa3, 0xc8}, 3, U_PF | U_AF | U_ZF | U_SF | U_OF},
    {"bts %ecx, %eax", {0x0f, 0xab, 0xc8}, 3, U_PF | U_AF | U_ZF | U_SF | U_OF},
    {"btr %ecx, %eax", {0x0f, 0xb3, 0xc8}, 3, U_PF | U_AF | U_ZF | U_SF | U_OF},
    {"btc %ecx, %eax", {0x0f, 0xbb, 0xc8}, 3, U_PF | U_AF | U_ZF | U_SF | U_OF},
    {"shld %cl, %ecx, %eax", {0x0f, 0xa5, 0xc8}, 3, U_SHIFTD},
    {"shrd %cl, %ecx, %eax", {0x0f, 0xad, 0xc8}, 3, U_SHIFTD},
    {"cmovl %ecx, %eax", {0x0f, 0x4c, 0xc1}, 3, 0},
    {"xadd %ecx, %eax", {0x0f, 0xc1, 0xc8}, 3, 0},
    {"cmpxchg %ecx, %eax", {0x0f, 0xb1, 0xc8}, 3, 0},
    {"popcnt %ecx, %eax", {0xf3, 0x0f, 0xb8, 0xc1}, 4, 0},
    {"lzcnt %ecx, %eax", {0xf3, 0x0f, 0xbd, 0xc1}, 4, U_PF | U_AF | U_SF | U_OF},
    {"mul %ecx", {0xf7, 0xe1}, 2, U_SF | U_ZF | U_AF | U_PF},
    {"imul %ecx", {0xf7, 0xe9}, 2, U_SF | U_ZF | U_AF | U_PF},
    {"div %ecx", {0xf7, 0xf1}, 2, U_DIV},
    {"idiv %ecx", {0xf7, 0xf9}, 2, U_DIV},
    {"xchg %ecx, %eax", {0x91}, 1, 0},
    {"setb %al", {0x0f, 0x92, 0xc0}, 3, 0},
    {"add %rcx, %rax", {0x48, 0x01, 0xc8}, 3, 0},
    {"adc %rcx, %rax", {0x48, 0x11, 0xc8}, 3, 0},
    {"sub %rcx, %rax", {0x48, 0x29, 0xc8}, 3, 0},
    {"sbb %rcx, %rax", {0x48, 0x19, 0xc8}, 3, 0},
    {"cmp %rcx, %rax", {0x48, 0x39, 0xc8}, 3, 0},
    {"and %rcx, %rax", {0x48, 0x21, 0xc8}, 3, U_AF},
    {"or %rcx, %rax", {0x48, 0x09, 0xc8}, 3, U_AF},
    {"xor %rcx, %rax", {0x48, 0x31, 0xc8}, 3, U_AF},
    {"test %rcx, %rax", {0x48, 0x85, 0xc8}, 3, U_AF},
    {"neg %rax", {0x48, 0xf7, 0xd8}, 3, 0},
    {"inc %rax", {0x48, 0xff, 0xc0}, 3, 0},
    {"dec %rax", {0x48, 0xff, 0xc8}, 3, 0},
    {"not %rax", {0x48, 0xf7, 0xd0}, 3, 0},
    {"shl %cl, %rax", {0x48, 0xd3, 0xe0}, 3, U_SHIFT},
    {"shl $1, %rax", {0x48, 0xd1, 0xe0}, 3, U_AF},
    {"shl $3, %rax", {0x48, 0xc1, 0xe0, 0x03}, 4, U_AF | U_OF},
    {"shr %cl, %rax", {0x48, 0xd3, 0xe8}, 3, U_SHIFT},
    {"shr $1, %rax", {0x48, 0xd1, 0xe8}, 3, U_AF},
    {"shr $3, %rax", {0x48, 0xc1, 0xe8, 0x03}, 4, U_AF | U_OF},
    {"sar %cl, %rax", {0x48, 0xd3, 0xf8}, 3, U_SHIFT},
    {"sar $1, %rax", {0x48, 0xd1, 0xf8}, 3, U_AF},
    {"sar $3, %rax", {0x48, 0xc1, 0xf8, 0x03}, 4, U_AF | U_OF},
    {"rol %cl, %rax", {0x48, 0xd3, 0xc0}, 3, U_ROT},
    {"rol $1, %rax", {0x48, 0xd1, 0xc0}, 3, 0},
    {"ror %cl, %rax", {0x48, 0xd3, 0xc8}, 3, U_ROT},
    {"ror $1, %rax", {0x48, 0xd1, 0xc8}, 3, 0},
    {"rcl %cl, %rax", {0x48, 0xd3, 0xd0}, 3, U_ROT},
    {"rcl $1, %rax", {0x48, 0xd1, 0xd0}, 3, 0},
    {"rcr %cl, %rax", {0x48, 0xd3, 0xd8}, 3, U_ROT},
    {"rcr $1, %rax", {0x48, 0xd1, 0xd8}, 3, 0},
    {"imul %rcx, %rax", {0x48, 0x0f, 0xaf, 0xc1}, 4, U_SF | U_ZF | U_AF | U_PF},
    {"imul $-7, %rcx, %rax", {0x48, 0x6b, 0xc1, 0xf9}, 4, U_SF | U_ZF | U_AF | U_PF},
    {"bsf %rcx, %rax", {0x48, 0x0f, 0xbc, 0xc1}, 4, U_CF | U_PF | U_AF | U_SF | U_OF | U_BSZERO},
    {"bsr %rcx, %rax", {0x48, 0x0f, 0xbd, 0xc1}, 4, U_CF | U_PF | U_AF | U_SF | U_OF | U_BSZERO},
    {"bt %rcx, %rax", {0x48, 0x0f, 0xa3, 0xc8}, 4, U_PF | U_AF | U_ZF | U_SF | U_OF},
    {"bts %rcx, %rax", {0x48, 0x0f, 0xab, 0xc8}, 4, U_PF | U_AF | U_ZF | U_SF | U_OF},
    {"btr %rcx, %rax", {0x48, 0x0f, 0xb3, 0xc8}, 4, U_PF | U_AF | U_ZF | U_SF | U_OF},
    {"btc %rcx, %rax", {0x48, 0x0f, 0xbb, 0xc8}, 4, U_PF | U_AF | U_ZF | U_SF | U_OF},
    {"shld %cl, %rcx, %rax", {0x48, 0x0f, 0xa5, 0xc8}, 4, U_SHIFTD},
    {"shrd %cl, %rcx, %rax", {0x48, 0x0f, 0xad, 0xc8}, 4, U_SHIFTD},
    {"cmovl %rcx, %rax", {0x48, 0x0f, 0x4c, 0xc1}, 4, 0},
    {"xadd %rcx, %rax", {0x48, 0x0f, 0xc1, 0xc8}, 4, 0},
    {"cmpxchg %rcx, %rax", {0x48, 0x0f, 0xb1, 0xc8}, 4, 0},
    {"popcnt %rcx, %rax", {0xf3, 0x48, 0x0f, 0xb8, 0xc1}, 5, 0},
    {"lzcnt %rcx, %rax", {0xf3, 0x48, 0x0f, 0xbd, 0xc1}, 5, U_PF | U_AF | U_SF | U_OF},
    {"mul %rcx", {0x48, 0xf7, 0xe1}, 3, U_SF | U_ZF | U_AF | U_PF},
    {"imul %rcx", {0x48, 0xf7, 0xe9}, 3, U_SF | U_ZF | U_AF | U_PF},
    {"div %rcx", {0x48, 0xf7, 0xf1}, 3, U_DIV},
    {"idiv %rcx", {0x48, 0xf7, 0xf9}, 3, U_DIV},
    {"xchg %rcx, %rax", {0x48, 0x91}, 2, 0},
    {"setb %al", {0x0f, 0x92, 0xc0}, 3, 0},
    {"add $0x7f, %eax", {0x83, 0xc0, 0x7f}, 3, 0},
    {"add $-3, %eax", {0x83, 0xc0, 0xfd}, 3, 0},
    {"adc $0x7f, %eax", {0x83, 0xd0, 0x7f}, 3, 0},
    {"adc $-3, %eax", {0x83, 0xd0, 0xfd}, 3, 0},
    {"sub $0x7f, %eax", {0x83, 0xe8, 0x7f}, 3, 0},
    {"sub $-3, %eax", {0x83, 0xe8, 0xfd}, 3, 0},
    {"sbb $0x7f, %eax", {0x83, 0xd8, 0x7f}, 3, 0},
    {"sbb $-3, %eax", {0x83, 0xd8, 0xfd}, 3, 0},
    {"cmp $0x7f, %eax", {0x83, 0xf8, 0x7f}, 3, 0},
    {"cmp $-3, %eax", {0x83, 0xf8, 0xfd}, 3, 0},
    {"and $0x5a, %eax", {0x83, 0xe0, 0x5a}, 3, U_AF},
    {"and $-0x80, %eax", {0x83, 0xe0, 0x80}, 3, U_AF},
    {"or $0x5a, %eax", {0x83, 0xc8, 0x5a}, 3, U_AF},
    {"or $-0x80, %eax", {0x83, 0xc8, 0x80}, 3, U_AF},
    {"xor $0x5a, %eax", {0x83, 0xf0, 0x5a}, 3, U_AF},
    {"xor $-0x80, %eax", {0x83, 0xf0, 0x80}, 3, U_AF},
    {"test $0x5a, %eax", {0xa9, 0x5a, 0x00, 0x00, 0x00}, 5, U_AF},
    {"test $-0x80, %eax", {0xa9, 0x80, 0xff, 0xff, 0xff}, 5, U_AF},
    {"mov $-5, %eax", {0xb8, 0xfb, 0xff, 0xff, 0xff}, 5, 0},
    {"add $0x7f, %rax", {0x48, 0x83, 0xc0, 0x7f}, 4, 0},
    {"add $-3, %rax", {0x48, 0x83, 0xc0, 0xfd}, 4, 0},
    {"adc $0x7f, %rax", {0x48, 0x83, 0xd0, 0x7f}, 4, 0},
    {"adc $-3, %rax", {0x48, 0x83, 0xd0, 0xfd}, 4, 0},
    {"sub $0x7f, %rax", {0x48, 0x83, 0xe8, 0x7f}, 4, 0},
    {"sub $-3, %rax", {0x48, 0x83, 0xe8, 0xfd}, 4, 0},
    {"sbb $0x7f, %rax", {0x48, 0x83, 0xd8, 0x7f}, 4, 0},
    {"sbb $-3, %rax", {0x48, 0x83, 0xd8, 0xfd}, 4, 0},
    {"cmp $0x7f, %rax", {0x48, 0x83, 0xf8, 0x7f}, 4, 0},
    {"cmp $-3, %rax", {0x48, 0x83, 0xf8, 0xfd}, 4, 0},
    {"and $0x5a, %rax", {0x48, 0x83, 0xe0, 0x5a}, 4, U_AF},
    {"and $-0x80, %rax", {0x48, 0x83, 0xe0, 0x80}, 4, U_AF},
    {"or $0x5a, %rax", {0x48, 0x83, 0xc8, 0x5a}, 4, U_AF},
    {"or $-0x80, %rax", {0x48, 0x83, 0xc8, 0x80}, 4, U_AF},
    {"xor $0x5a, %rax", {0x48, 0x83, 0xf0, 0x5a}, 4, U_AF},
    {"xor $-0x80, %rax", {0x48, 0x83, 0xf0, 0x80}, 4, U_AF},
    {"test $0x5a, %rax", {0x48, 0xa9, 0x5a, 0x00, 0x00, 0x00}, 6, U_AF},
    {"test $-0x80, %rax", {0x48, 0xa9, 0x80, 0xff, 0xff, 0xff}, 6, U_AF},
    {"mov $-5, %rax", {0x48, 0xc7, 0xc0, 0xfb, 0xff, 0xff, 0xff}, 7, 0},
    {"add $0x7f, %ax", {0x66, 0x83, 0xc0, 0x7f}, 4, 0},
    {"add $-3, %ax", {0x66, 0x83, 0xc0, 0xfd}, 4, 0},
    {"adc $0x7f, %ax", {0x66, 0x83, 0xd0, 0x7f}, 4, 0},
    {"adc $-3, %ax", {0x66, 0x83, 0xd0, 0xfd}, 4, 0},
    {"sub $0x7f, %ax", {0x66, 0x83, 0xe8, 0x7f}, 4, 0},
    {"sub $-3, %ax", {0x66, 0x83, 0xe8, 0xfd}, 4, 0},
    {"sbb $0x7f, %ax", {0x66, 0x83, 0xd8, 0x7f}, 4, 0},
    {"sbb $-3, %ax", {0x66, 0x83, 0xd8, 0xfd}, 4, 0},
    {"cmp $0x7f, %ax", {0x66, 0x83, 0xf8, 0x7f}, 4, 0},
    {"cmp $-3, %ax", {0x66, 0x83, 0xf8, 0xfd}, 4, 0},
    {"and $0x5a, %ax", {0x66, 0x83, 0xe0, 0x5a}, 4, U_AF},
    {"and $-0x80, %ax", {0x66, 0x83, 0xe0, 0x80}, 4, U_AF},
    {"or $0x5a, %ax", {0x66, 0x83, 0xc8, 0x5a}, 4, U_AF},
    {"or $-0x80, %ax", {0x66, 0x83, 0xc8, 0x80}, 4, U_AF},
    {"xor $0x5a, %ax", {0x66, 0x83, 0xf0, 0x5a}, 4, U_AF},
    {"xor $-0x80, %ax", {0x66, 0x83, 0xf0, 0x80}, 4, U_AF},
    {"test $0x5a, %ax", {0x66, 0xa9, 0x5a, 0x00}, 4, U_AF},
    {"test $-0x80, %ax", {0x66, 0xa9, 0x80, 0xff}, 4, U_AF},
    {"mov $-5, %ax", {0x66, 0xb8, 0xfb, 0xff}, 4, 0},
    {"add $0x7f, %al", {0x04, 0x7f}, 2, 0},
    {"add $-3, %al", {0x04, 0xfd}, 2, 0},
    {"adc $0x7f, %al", {0x14, 0x7f}, 2, 0},
    {"adc $-3, %al", {0x14, 0xfd}, 2, 0},
    {"sub $0x7f, %al", {0x2c, 0x7f}, 2, 0},
    {"sub $-3, %al", {0x2c, 0xfd}, 2, 0},
    {"sbb $0x7f, %al", {0x1c, 0x7f}, 2, 0},
    {"sbb $-3, %al", {0x1c, 0xfd}, 2, 0},
    {"cmp $0x7f, %al", {0x3c, 0x7f}, 2, 0},
    {"cmp $-3, %al", {0x3c, 0xfd}, 2, 0},
    {"and $0x5a, %al", {0x24, 0x5a}, 2, U_AF},
    {"and $-0x80, %al", {0x24, 0x80}, 2, U_AF},
    {"or $0x5a, %al", {0x0c, 0x5a}, 2, U_AF},
    {"or $-0x80, %al", {0x0c, 0x80}, 2, U_AF},
    {"xor $0x5a, %al", {0x34, 0x5a}, 2, U_AF},
    {"xor $-0x80, %al", {0x34, 0x80}, 2, U_AF},
    {"test $0x5a, %al", {0xa8, 0x5a}, 2, U_AF},
    {"test $-0x80, %al", {0xa8, 0x80}, 2, U_AF},
    {"mov $-5, %al", {0xb0, 0xfb}, 2, 0},
    {"mov %ecx, %eax", {0x89, 0xc8}, 2, 0},
    {"mov %rcx, %rax", {0x48, 0x89, 0xc8}, 3, 0},
    {"lea 3(%rcx,%rdx,2), %rax", {0x48, 0x8d, 0x44, 0x51, 0x03}, 5, 0},
    {"lea -1(%rcx), %eax", {0x8d, 0x41, 0xff}, 3, 0},
    {"movabs $0x123456789abcdef0, %rax",
     {0x48, 0xb8, 0xf0, 0xde, 0xbc, 0x9a, 0x78, 0x56, 0x34, 0x12},
     10,
     0},
    {"cbw", {0x66, 0x98}, 2, 0},
    {"cwde", {0x98}, 1, 0},
    {"cdqe", {0x48, 0x98}, 2, 0},
    {"cwd", {0x66, 0x99}, 2, 0},
    {"cdq", {0x99}, 1, 0},
    {"cqo", {0x48, 0x99}, 2, 0},
    {"bswap %eax", {0x0f, 0xc8}, 2, 0},
    {"bswap %rax", {0x48, 0x0f, 0xc8}, 3, 0},
    {"movzbl %cl, %eax", {0x0f, 0xb6, 0xc1}, 3, 0},
    {"movsbq %cl, %rax", {0x48, 0x0f, 0xbe, 0xc1}, 4, 0},
    {"movswl %cx, %eax", {0x0f, 0xbf, 0xc1}, 3, 0},
    {"movslq %ecx, %rax", {0x48, 0x63, 0xc1}, 3, 0},
    {"lea 7(%rcx,%rdx,4), %eax", {0x8d, 0x44, 0x91, 0x07}, 4, 0},
    {"sahf", {0x9e}, 1, 0},
    {"lahf", {0x9f}, 1, 0},
    {"cmc", {0xf5}, 1, 0},
    {"setnbe %al", {0x0f, 0x97, 0xc0}, 3, 0},
    {"setle %al", {0x0f, 0x9e, 0xc0}, 3, 0},
    {"setp %al", {0x0f, 0x9a, 0xc0}, 3, 0},
    {"seto %al", {0x0f, 0x90, 0xc0}, 3, 0},
    // MMX through the GPRs (all flags defined: MMX changes none).
    {"movq %rax,%mm0; movq %rcx,%mm1; paddsw %mm1,%mm0; movq %mm0,%rax",
     {0x48, 0x0f, 0x6e, 0xc0, 0x48, 0x0f, 0x6e, 0xc9, 0x0f, 0xed, 0xc1, 0x48, 0x0f, 0x7e, 0xc0},
     15,
     0},
    {"movq %rax,%mm0; movq %rcx,%mm1; psubusb %mm1,%mm0; movq %mm0,%rax",
     {0x48, 0x0f, 0x6e, 0xc0, 0x48, 0x0f, 0x6e, 0xc9, 0x0f, 0xd8, 0xc1, 0x48, 0x0f, 0x7e, 0xc0},
     15,
     0},
    {"movq %rax,%mm0; movq %rcx,%mm1; pmaddwd %mm1,%mm0; movq %mm0,%rax",
     {0x48, 0x0f, 0x6e, 0xc0, 0x48, 0x0f, 0x6e, 0xc9, 0x0f, 0xf5, 0xc1, 0x48, 0x0f, 0x7e, 0xc0},
     15,
     0},
    {"movq %rax,%mm0; movq %rcx,%mm1; pmulhuw %mm1,%mm0; movq %mm0,%rax",
     {0x48, 0x0f, 0x6e, 0xc0, 0x48, 0x0f, 0x6e, 0xc9, 0x0f, 0xe4, 0xc1, 0x48, 0x0f, 0x7e, 0xc0},
     15,
     0},
    {"movq %rax,%mm0; movq %rcx,%mm1; packsswb %mm1,%mm0; movq %mm0,%rax",
     {0x48, 0x0f, 0x6e, 0xc0, 0x48, 0x0f, 0x6e, 0xc9, 0x0f, 0x63, 0xc1, 0x48, 0x0f, 0x7e, 0xc0},
     15,
     0},
    {"movq %rax,%mm0; movq %rcx,%mm1; packuswb %mm1,%mm0; movq %mm0,%rax",
     {0x48, 0x0f, 0x6e, 0xc0, 0x48, 0x0f, 0x6e, 0xc9, 0x0f, 0x67, 0xc1, 0x48, 0x0f, 0x7e, 0xc0},
     15,
     0},
    {"movq %rax,%mm0; movq %rcx,%mm1; punpckhbw %mm1,%mm0; movq %mm0,%rax",
     {0x48, 0x0f, 0x6e, 0xc0, 0x48, 0x0f, 0x6e, 0xc9, 0x0f, 0x68, 0xc1, 0x48, 0x0f, 0x7e, 0xc0},
     15,
     0},
    {"movq %rax,%mm0; movq %rcx,%mm1; psraw %mm1,%mm0; movq %mm0,%rax",
     {0x48, 0x0f, 0x6e, 0xc0, 0x48, 0x0f, 0x6e, 0xc9, 0x0f, 0xe1, 0xc1, 0x48, 0x0f, 0x7e, 0xc0},
     15,
     0},
    {"movq %rax,%mm0; movq %rcx,%mm1; psrlq %mm1,%mm0; movq %mm0,%rax",
     {0x48, 0x0f, 0x6e, 0xc0, 0x48, 0x0f, 0x6e, 0xc9, 0x0f, 0xd3, 0xc1, 0x48, 0x0f, 0x7e, 0xc0},
     15,
     0},
    {"movq %rax,%mm0; movq %rcx,%mm1; pcmpgtb %mm1,%mm0; movq %mm0,%rax",
     {0x48, 0x0f, 0x6e, 0xc0, 0x48, 0x0f, 0x6e, 0xc9, 0x0f, 0x64, 0xc1, 0x48, 0x0f, 0x7e, 0xc0},
     15,
     0},
    {"movq %rax,%mm0; movq %rcx,%mm1; pavgb %mm1,%mm0; movq %mm0,%rax",
     {0x48, 0x0f, 0x6e, 0xc0, 0x48, 0x0f, 0x6e, 0xc9, 0x0f, 0xe0, 0xc1, 0x48, 0x0f, 0x7e, 0xc0},
     15,
     0},
    {"movq %rax,%mm0; movq %rcx,%mm1; psadbw %mm1,%mm0; movq %mm0,%rax",
     {0x48, 0x0f, 0x6e, 0xc0, 0x48, 0x0f, 0x6e, 0xc9, 0x0f, 0xf6, 0xc1, 0x48, 0x0f, 0x7e, 0xc0},
     15,
     0},
    {"movq %rax,%mm0; movq %rcx,%mm1; pmuludq %mm1,%mm0; movq %mm0,%rax",
     {0x48, 0x0f, 0x6e, 0xc0, 0x48, 0x0f, 0x6e, 0xc9, 0x0f, 0xf4, 0xc1, 0x48, 0x0f, 0x7e, 0xc0},
     15,
     0},
    {"movq %rax,%mm0; movq %rcx,%mm1; pminsw %mm1,%mm0; movq %mm0,%rax",
     {0x48, 0x0f, 0x6e, 0xc0, 0x48, 0x0f, 0x6e, 0xc9, 0x0f, 0xea, 0xc1, 0x48, 0x0f, 0x7e, 0xc0},
     15,
     0},
    {"movq %rcx,%mm1; pshufw $0x1b,%mm1,%mm0; movq %mm0,%rax",
     {0x48, 0x0f, 0x6e, 0xc9, 0x0f, 0x70, 0xc1, 0x1b, 0x48, 0x0f, 0x7e, 0xc0},
     12,
     0},
    {"movq %rcx,%mm1; pmovmskb %mm1,%eax", {0x48, 0x0f, 0x6e, 0xc9, 0x0f, 0xd7, 0xc1}, 7, 0},
    {"movq %rcx,%mm1; pextrw $2,%mm1,%eax", {0x48, 0x0f, 0x6e, 0xc9, 0x0f, 0xc5, 0xc1, 0x02}, 8, 0},
    {"movq %rax,%mm0; pinsrw $1,%ecx,%mm0; movq %mm0,%rax",
     {0x48, 0x0f, 0x6e, 0xc0, 0x0f, 0xc4, 0xc1, 0x01, 0x48, 0x0f, 0x7e, 0xc0},
     12,
     0},
    {"movd %ecx,%mm1; movd %mm1,%eax", {0x0f, 0x6e, 0xc9, 0x0f, 0x7e, 0xc8}, 6, 0},
    {"movq %rax,%mm0; psllw $3,%mm0; movq %mm0,%rax",
     {0x48, 0x0f, 0x6e, 0xc0, 0x0f, 0x71, 0xf0, 0x03, 0x48, 0x0f, 0x7e, 0xc0},
     12,
     0},
};

// Registers the instructions use: RAX, RCX, RDX, RBX, RSI (pointer in RDI).
struct Regs5 {
    uint64_t r[5];
    uint64_t flags;
};
constexpr uint8_t kRegOrder[5] = {RAX, RCX, RDX, RBX, RSI};

// Native runner: loads Regs5 from RDI, runs the instruction, stores the results.
class HostRunner {
  public:
    HostRunner() {
        page_ = static_cast<uint8_t*>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    }
    ~HostRunner() {
        if (page_ != MAP_FAILED) munmap(page_, 4096);
    }
    bool ok() const { return page_ != MAP_FAILED; }

    void run(const Insn& in, Regs5& st) {
        // push rbx; mov (rdi),rax; mov 8(rdi),rcx; mov 16(rdi),rdx; mov 24(rdi),rbx;
        // mov 32(rdi),rsi; push 40(rdi); popfq
        static const uint8_t pre[] = {0x53, 0x48, 0x8b, 0x07, 0x48, 0x8b, 0x4f, 0x08,
                                      0x48, 0x8b, 0x57, 0x10, 0x48, 0x8b, 0x5f, 0x18,
                                      0x48, 0x8b, 0x77, 0x20, 0xff, 0x77, 0x28, 0x9d};
        // pushfq; pop 40(rdi); mov rax,(rdi); mov rcx,8(rdi); mov rdx,16(rdi);
        // mov rbx,24(rdi); mov rsi,32(rdi); pop rbx; then, after MMX, the x87 registers as
        // the process started (zeros, all empty: tests that compare x87 images natively
        // may run next in this process): emms; fninit; fldz x 8; fninit; ret
        static const uint8_t post[] = {0x9c, 0x8f, 0x47, 0x28, 0x48, 0x89, 0x07, 0x48, 0x89, 0x4f,
                                       0x08, 0x48, 0x89, 0x57, 0x10, 0x48, 0x89, 0x5f, 0x18, 0x48,
                                       0x89, 0x77, 0x20, 0x5b, 0x0f, 0x77, 0xdb, 0xe3, 0xd9, 0xee,
                                       0xd9, 0xee, 0xd9, 0xee, 0xd9, 0xee, 0xd9, 0xee, 0xd9, 0xee,
                                       0xd9, 0xee, 0xd9, 0xee, 0xdb, 0xe3, 0xc3};
        size_t n = 0;
        std::memcpy(page_ + n, pre, sizeof pre), n += sizeof pre;
        std::memcpy(page_ + n, in.bytes, in.len), n += in.len;
        std::memcpy(page_ + n, post, sizeof post);
        __builtin___clear_cache(reinterpret_cast<char*>(page_),
                                reinterpret_cast<char*>(page_ + 4096));
        reinterpret_cast<void (*)(Regs5*)>(page_)(&st);
    }

  private:
    uint8_t* page_;
};

class HostDiffTest : public Machine {
  protected:
    void emulate(const Insn& in, Regs5& st) {
        CpuState& s = cpu_.state();
        for (int k = 0; k < 5; ++k) s.gpr[kRegOrder[k]] = st.r[k];
        s.rflags = st.flags;
        s.rip = kCode;
        std::memcpy(ram_ + kCode, in.bytes, in.len);
        ram_[kCode + in.len] = 0xF4;  // hlt
        cpu_.host_wrote(kCode, in.len + 1);
        cpu_.run(0);
        for (int k = 0; k < 5; ++k) st.r[k] = s.gpr[kRegOrder[k]];
        st.flags = s.rflags;
    }
};

// Operand width in bits, from the AT&T text (the last register names it).
int operand_bits(const Insn& in) {
    std::string t = in.text;
    if (t == "cbw") return 16;
    if (t.find("%r") != std::string::npos) return 64;
    if (t.find("%e") != std::string::npos) return 32;
    if (t.find("%ax") != std::string::npos || t.find("%cx") != std::string::npos) return 16;
    return 8;
}

// Would the native division fault? (The emulator's #DE is checked apart.)
bool div_faults(const Insn& in, const Regs5& st) {
    const bool is_signed = std::strstr(in.text, "idiv") != nullptr;
    const int bits = operand_bits(in);
    const uint64_t mask = bits == 64 ? ~0ull : (1ull << bits) - 1;
    const uint64_t d = st.r[1] & mask;
    if (d == 0) return true;
    using u128 = unsigned __int128;
    using i128 = __int128;
    const u128 n = bits == 8 ? (st.r[0] & 0xFFFF)
                             : ((static_cast<u128>(st.r[2] & mask) << bits) | (st.r[0] & mask));
    if (!is_signed) return (n / d) >> bits != 0;
    const int nbits = 2 * bits;
    const i128 sn = static_cast<i128>(n << (128 - nbits)) >> (128 - nbits);
    const i128 sd = static_cast<i128>(static_cast<u128>(d) << (128 - bits)) >> (128 - bits);
    if (sd == -1) return true;  // avoid the host's own overflow trap on the minimum
    const i128 q = sn / sd;
    const i128 lim = static_cast<i128>(1) << (bits - 1);
    return q > lim - 1 || q < -lim;
}

// Flags to ignore for this instruction and input.
uint64_t ignored_flags(const Insn& in, const Regs5& st) {
    uint64_t ign = in.undefined & FLAGS_ARITH;
    const int bits = operand_bits(in);
    const unsigned count = (st.r[1] & 0xFF) & (bits == 64 ? 63 : 31);
    if (in.undefined & U_SHIFT) {
        if (count == 0) return 0;
        ign |= FLAG_AF;
        if (count != 1) ign |= FLAG_OF;
        if (count >= static_cast<unsigned>(bits)) ign |= FLAG_CF;  // 8/16-bit over-shifts
    }
    if ((in.undefined & U_ROT) && count != 1) ign |= FLAG_OF;
    if (in.undefined & U_SHIFTD) {
        if (count == 0) return 0;
        ign |= FLAG_AF;
        if (count != 1) ign |= FLAG_OF;
        if (count > static_cast<unsigned>(bits)) ign |= FLAGS_ARITH;
    }
    if (in.undefined & U_DIV) ign |= FLAGS_ARITH;
    return ign;
}

TEST_F(HostDiffTest, IntegerInstructionsMatchTheHostCpu) {
    HostRunner host;
    ASSERT_TRUE(host.ok());
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    __get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx);
    const bool host_lzcnt = ecx & (1u << 5);
    const uint64_t specials[] = {0,
                                 1,
                                 2,
                                 0x7F,
                                 0x80,
                                 0xFF,
                                 0x7FFF,
                                 0x8000,
                                 0xFFFF,
                                 0x7FFFFFFF,
                                 0x80000000,
                                 0xFFFFFFFF,
                                 0x7FFFFFFFFFFFFFFF,
                                 0x8000000000000000,
                                 ~0ull,
                                 31,
                                 32,
                                 63,
                                 64,
                                 65};
    std::mt19937_64 rng(12345);
    auto pick = [&](int k) -> uint64_t {
        switch (k % 4) {
            case 0:
                return specials[rng() % std::size(specials)];
            case 1:
                return rng() & 0xFF;
            default:
                return rng();
        }
    };
    int compared = 0;
    for (const Insn& in : kInsns) {
        if (!host_lzcnt && std::strstr(in.text, "lzcnt")) continue;
        for (int trial = 0; trial < 300; ++trial) {
            Regs5 start;
            for (int k = 0; k < 5; ++k) start.r[k] = pick(trial + k + static_cast<int>(rng() % 3));
            start.flags = FLAG_FIXED1 | (rng() & FLAGS_ARITH);
            if (in.undefined & U_DIV) {
                if (trial % 3 == 0) start.r[2] = 0;  // small dividends too
                if (div_faults(in, start)) continue;
            }
            Regs5 native = start, emu = start;
            host.run(in, native);
            emulate(in, emu);
            ASSERT_EQ(owner_.hlts, 1 + compared)
                << in.text << ": did not reach HLT (vector " << vector_taken() << ")";
            const uint64_t ign = ignored_flags(in, start);
            const int bits = operand_bits(in);
            const uint64_t src_mask = bits == 64 ? ~0ull : (1ull << bits) - 1;
            const bool zero_src = (in.undefined & U_BSZERO) && (start.r[1] & src_mask) == 0;
            // SHLD/SHRD of 16-bit operands by more than 16: the result is undefined.
            const bool over_shift =
                (in.undefined & U_SHIFTD) && (start.r[1] & 31) > 16 && bits == 16;
            for (int k = 0; k < 5; ++k) {
                if ((zero_src || over_shift) && k == 0) continue;
                EXPECT_EQ(native.r[k], emu.r[k])
                    << in.text << " reg " << k << std::hex << " from rax=" << start.r[0]
                    << " rcx=" << start.r[1] << " rdx=" << start.r[2] << " flags=" << start.flags;
            }
            EXPECT_EQ(native.flags & ~ign & FLAGS_ARITH, emu.flags & ~ign & FLAGS_ARITH)
                << in.text << std::hex << " rax=" << start.r[0] << " rcx=" << start.r[1]
                << " rdx=" << start.r[2] << " flags=" << start.flags;
            ++compared;
            if (HasFailure()) return;
        }
    }
    EXPECT_GT(compared, 40000);
}

TEST_F(HostDiffTest, DivisionByZeroRaisesDe) {
    for (const Insn& in : kInsns) {
        if (!(in.undefined & U_DIV)) continue;
        Regs5 st{{5, 0, 7, 0, 0}, FLAG_FIXED1};  // divisor RCX = 0
        owner_.outs.clear();
        emulate(in, st);
        EXPECT_EQ(vector_taken(), VEC_DE) << in.text;
    }
}

}  // namespace
}  // namespace softkvm::cpu::test
