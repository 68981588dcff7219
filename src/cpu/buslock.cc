// The bus-lock detector (docs/architecture.md "The software CPU"; spec §3, §4; Intel SDM vol. 3
// §9.1.2.3, §9.1.4): a locked read-modify-write (LOCK prefix, XCHG with memory, the
// implicitly locked descriptor accessed-bit and page-table A/D updates) is a bus lock when
// its access crosses a 64-byte cache line or the memory's effective type is not WB.
//
// Cost when off: one test per executed block (Block::has_lock and bus_lock_watch_). When
// on, blocks holding locked instructions run through run_watched(), which computes the
// locked operand's address before the instruction and checks it after it retires.
#include "common/cpu_features.h"
#include "cpu/cpu.h"
#include "cpu/msr_index.h"

namespace softkvm::cpu {
namespace {

constexpr uint64_t kLineSize = 64;

bool splits_line(uint64_t addr, uint8_t size) {
    return (addr & (kLineSize - 1)) + size > kLineSize;
}

}  // namespace

bool Cpu::cpuid_has(uint32_t leaf, uint32_t subleaf, uint8_t reg, uint8_t bit) {
    CpuidRegs r;
    cpuid(leaf, subleaf, r);
    const uint32_t regs[4] = {r.eax, r.ebx, r.ecx, r.edx};
    return (regs[reg & 3] >> bit) & 1;
}

bool Cpu::bus_lock_detect_exposed() {
    const features::CpuidBit& b = features::kBusLockDetect;
    return cpuid_has(b.leaf, b.subleaf, static_cast<uint8_t>(b.reg), b.bit);
}

uint64_t Cpu::debugctl_bus_lock_bits() {
    return bus_lock_detect_exposed() ? msr::DEBUGCTL_BUS_LOCK_DETECT : 0;
}

// DR6 as KVM keeps it (spec §3): the volatile bits are B0-B3, BD, BS, BT and, when the
// guest's CPUID has BUS_LOCK_DETECT, BLD; everything else reads as its fixed value.
uint64_t Cpu::dr6_value(uint64_t v) {
    const uint64_t bld = bus_lock_detect_exposed() ? msr::DR6_BLD : 0;
    return (v & (msr::DR6_WRITABLE | bld)) | (msr::DR6_FIXED1 & ~bld);
}

void Cpu::set_bus_lock_reports(bool on) {
    bus_lock_reports_ = on;
    update_bus_lock_watch();
}

void Cpu::update_bus_lock_watch() {
    bus_lock_watch_ = bus_lock_reports_ || (s_.debugctl & msr::DEBUGCTL_BUS_LOCK_DETECT);
}

void Cpu::debug_trap(uint64_t bits) {
    uint64_t dr6 = (s_.dr[6] & ~0xFull) | (bits & ~msr::DR6_BLD);
    if (bits & msr::DR6_BLD) dr6 &= ~msr::DR6_BLD;  // active-low: delivery clears it
    s_.dr[6] = dr6;
    raise_debug_trap();
}

void Cpu::run_watched(const DecodedInsn* in, size_t n, size_t& done, uint64_t& rsp_before) {
    while (done < n) {
        const DecodedInsn& d = in[done];
        next_rip_ = s_.rip + d.len;
        rsp_before = s_.gpr[RSP];
        uint64_t lin = 0;
        uint8_t size = 0;
        if (d.lockable_mem) {
            for (uint8_t k = 0; k < d.nops; ++k) {
                if (d.op[k].kind == OpKind::Mem) {
                    lin = linear(d.op[k]);
                    size = d.op[k].size;
                    break;
                }
            }
        }
        d.fn(*this, d);
        if (size) check_locked_access(lin, size);
        s_.rip = next_rip_;
        ++done;  // retired (Cpu::run's loop)
        if (stop_flags_ && !mmio_stays_in_block()) break;
    }
}

MemType Cpu::lock_memory_type(uint64_t lin, bool user) {
    // The instruction has just accessed `lin`: the translation exists and the accessed
    // bits are set, so this walk neither faults nor writes.
    const uint64_t phys = translate(lin, Access::Read, user);
    if (!host_page(phys)) return MemType::UC;
    return memory_type(lin);
}

void Cpu::note_bus_lock(bool split) {
    if (!(stop_flags_ & kStopBusLock)) {
        bus_lock_ = {s_.rip, split ? BusLockKind::Split : BusLockKind::NotWriteBack, s_.cpl};
        stop_flags_ |= kStopBusLock;
    } else if (split) {
        bus_lock_.kind = BusLockKind::Split;  // one report per instruction; split wins
    }
}

void Cpu::check_locked_access(uint64_t lin, uint8_t size) {
    if (splits_line(lin, size)) return note_bus_lock(true);
    // The memory type of a page is cached until the next TLB flush (which bumps
    // block_gen_; so do CR0, CR3, CR4, PAT and MTRR writes) or an INVLPG of the page.
    LockType& e = lock_types_[(lin >> 12) & (kLockTypes - 1)];
    if (e.page != (lin >> 12) || e.gen != block_gen_)
        e = {lin >> 12, block_gen_, lock_memory_type(lin, user_access())};
    if (e.type != MemType::WB) note_bus_lock(false);
}

void Cpu::check_implicit_lock(uint64_t lin, uint8_t size) {
    if (!bus_lock_watch_) return;
    const bool split = splits_line(lin, size);
    if (split || lock_memory_type(lin, false) != MemType::WB) note_bus_lock(split);
}

void Cpu::check_paging_lock(uint64_t parent, uint64_t entry_addr) {
    if (!bus_lock_watch_) return;
    // Paging structures are accessed with the PAT entry that the PCD and PWT bits of
    // CR3 or of the entry that maps them select (SDM vol. 3 §4.9.2); entries are
    // 8-byte aligned, so an A/D update never splits a line.
    const uint8_t index =
        static_cast<uint8_t>(((parent & PTE_PCD) ? 2 : 0) | ((parent & PTE_PWT) ? 1 : 0));
    if (mtrr_pat_type(index, entry_addr) != MemType::WB) note_bus_lock(false);
}

bool Cpu::bus_lock_retired() {
    stop_flags_ &= ~kStopBusLock;
    if (bus_lock_reports_ && owner_.bus_lock(bus_lock_) == Action::Exit) bus_lock_exit_ = true;
    return bus_lock_.cpl > 0 && (s_.debugctl & msr::DEBUGCTL_BUS_LOCK_DETECT);
}

}  // namespace softkvm::cpu
