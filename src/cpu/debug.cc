// Debug registers: DR7-enabled instruction and data breakpoints (SDM vol. 3 §17.2).
// While any breakpoint is enabled the run loop steps one instruction at a time, and while
// a data breakpoint is enabled every data access takes the TLB's slow path.
#include "cpu/cpu.h"
#include "cpu/msr_index.h"

namespace softkvm::cpu {
namespace {

bool enabled(uint64_t dr7, int n) {
    return (dr7 >> (2 * n)) & 3;
}
uint32_t rw_bits(uint64_t dr7, int n) {
    return (dr7 >> (16 + 4 * n)) & 3;
}
uint64_t length(uint64_t dr7, int n) {
    static constexpr uint64_t kLen[4] = {1, 2, 8, 4};  // LEN encodings 00, 01, 10, 11
    return kLen[(dr7 >> (18 + 4 * n)) & 3];
}

constexpr uint32_t kRwExec = 0, kRwWrite = 1, kRwReadWrite = 3;  // 2 = I/O (CR4.DE)

}  // namespace

void Cpu::write_dr7(uint64_t v) {
    s_.dr[7] = (v & ~0xD000ull & 0xFFFFFFFF) | msr::DR7_FIXED1;  // bits 12, 14, 15 are 0
    update_debug();
}

void Cpu::update_debug() {
    const uint64_t dr7 = s_.dr[7];
    const bool was_data = data_bp_;
    debug_active_ = false;
    data_bp_ = false;
    for (int n = 0; n < 4; ++n) {
        if (!enabled(dr7, n)) continue;
        const uint32_t rw = rw_bits(dr7, n);
        if (rw == 2) continue;  // I/O breakpoints are not in the model
        debug_active_ = true;
        if (rw != kRwExec) data_bp_ = true;
    }
    // Cached translations bypass the data-breakpoint check: drop them.
    if (data_bp_ && !was_data) flush_tlb();
}

uint32_t Cpu::code_breakpoints(uint64_t lin) const {
    const uint64_t dr7 = s_.dr[7];
    uint32_t hits = 0;
    for (int n = 0; n < 4; ++n)
        if (enabled(dr7, n) && rw_bits(dr7, n) == kRwExec && s_.dr[n] == lin) hits |= 1u << n;
    return hits;
}

void Cpu::check_data_breakpoints(uint64_t lin, uint8_t size, bool write) {
    const uint64_t dr7 = s_.dr[7];
    for (int n = 0; n < 4; ++n) {
        if (!enabled(dr7, n)) continue;
        const uint32_t rw = rw_bits(dr7, n);
        if (!(rw == kRwReadWrite || (rw == kRwWrite && write))) continue;
        const uint64_t len = length(dr7, n);
        const uint64_t start = s_.dr[n] & ~(len - 1);  // the breakpoint's aligned range
        if (lin < start + len && start < lin + size) db_hits_ |= 1u << n;
    }
}

}  // namespace softkvm::cpu
