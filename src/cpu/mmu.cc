// Guest memory access: segmentation base, 4-level paging with permission checks and
// accessed/dirty updates, the software TLB, and physical RAM/MMIO dispatch.
#include <algorithm>
#include <cstring>

#include "cpu/block.h"
#include "cpu/cpu.h"
#include "cpu/msr_index.h"

namespace softkvm::cpu {

void Cpu::add_ram(uint64_t gpa, uint64_t size, uint8_t* host) {
    ram_.push_back({gpa, size, host});
    if (gpa == 0 && code_pages_->size() != (size >> 12)) code_pages_->assign(size >> 12, 0);
    flush_tlb();
}

uint8_t* Cpu::host_page(uint64_t gpa) {
    for (const Ram& r : ram_)
        if (gpa - r.gpa < r.size) return r.host + (gpa - r.gpa);
    return nullptr;
}

void Cpu::flush_tlb() {
    lbr_.drain_trace();  // (its walk resolves RIPs through these translations)
    for (size_t i = 0; i < kTlbSize; ++i) {
        tlb_read_[i].tag = ~0ull;
        tlb_write_[i].tag = ~0ull;
        tlb_exec_[i].tag = ~0ull;
    }
    write_tlb_pages_ = 0;
    tlb_2m_regions_.fill(0);
    tlb_1g_regions_ = 0;
    tlb_has_global_ = false;
    nonglobal_fill_count_ = 0;
    new_block_gen();  // chained block links were resolved through old translations
}

void Cpu::flush_tlb_nonglobal() {
    lbr_.drain_trace();
    if (!tlb_has_global_) return flush_tlb();  // (no link leads into a global page either)
    if (nonglobal_fill_count_ <= kMaxNonGlobalFills) {
        // Every valid non-global entry was filled since the last flush: it is in the list
        // (an entry listed and since refilled with a global translation stays).
        for (size_t k = 0; k < nonglobal_fill_count_; ++k)
            if (!(nonglobal_fills_[k]->phys_bits & kTlbGlobal)) nonglobal_fills_[k]->tag = ~0ull;
    } else {
        for (TlbEntry* table : {tlb_read_, tlb_write_, tlb_exec_})
            for (size_t i = 0; i < kTlbSize; ++i)
                if (!(table[i].phys_bits & kTlbGlobal)) table[i].tag = ~0ull;
    }
    nonglobal_fill_count_ = 0;
    // (write_tlb_pages_ and the large-page regions stay: they may name more than is left.)
    for (LockType& e : lock_types_) e.page = ~0ull;  // memory types are looked up again
    resume_.block = nullptr;
    if (nonglobal_gen_ == block_gen_) {
        if (nonglobal_overflow_) {
            new_block_gen();
        } else {
            // No generation is 0. The direct exits' slots are in no list: all go.
            for (uint64_t* gen : nonglobal_links_) *gen = 0;
            ++direct_gen_;
        }
    }
    nonglobal_links_.clear();
    nonglobal_overflow_ = false;
}

void Cpu::note_nonglobal_link(uint64_t* gen) {
    if (nonglobal_gen_ != block_gen_) {
        nonglobal_links_.clear();
        nonglobal_overflow_ = false;
        nonglobal_gen_ = block_gen_;
    }
    if (nonglobal_links_.size() < kMaxNonGlobalLinks)
        nonglobal_links_.push_back(gen);
    else
        nonglobal_overflow_ = true;
}

bool Cpu::global_code(uint64_t lin, const Block& b) const {
    const TlbEntry& t = tlb_exec_[(lin >> 12) & (kTlbSize - 1)];
    if (t.tag != tlb_tag(lin, user_access()) || !(t.phys_bits & kTlbGlobal) || b.insns.empty())
        return false;
    const DecodedInsn& last = b.insns.back();
    return (lin & 0xFFF) + last.block_off + last.len <= 0x1000;
}

void Cpu::fill_tlb(TlbEntry& t, uint64_t lin, bool user, uint8_t* host, uint64_t phys) {
    // A supervisor access to a user page that SMAP let through because RFLAGS.AC is set
    // is not cached: AC changes (CLAC, POPF, IRET, SYSCALL's mask) without a TLB flush,
    // and the TLB's tag does not hold it. Such accesses (copies to and from user memory
    // between STAC and CLAC) walk the page tables each time.
    if (walk_bits_ & kTlbNoFill) return;
    t.tag = tlb_tag(lin, user);
    t.addend = reinterpret_cast<uint64_t>(host) - (lin & ~0xFFFull);
    t.phys_bits = (phys & ~0xFFFull) | walk_bits_;
    if (walk_bits_ & kTlbGlobal) {
        tlb_has_global_ = true;
    } else if (nonglobal_fill_count_ <= kMaxNonGlobalFills) {
        if (nonglobal_fill_count_ < kMaxNonGlobalFills)
            nonglobal_fills_[nonglobal_fill_count_] = &t;
        ++nonglobal_fill_count_;  // one past the list: it overflowed
    }
    if (walk_bits_ & kTlb2M) {
        const uint64_t region = (lin >> 21) % kLarge2MBits;
        tlb_2m_regions_[region / 64] |= uint64_t{1} << (region % 64);
    }
    if (walk_bits_ & kTlb1G) tlb_1g_regions_ |= uint64_t{1} << ((lin >> 30) % 64);
}

bool Cpu::code_lin_any(uint64_t first, uint64_t count) const {
    if (code_lin_gen_ != block_gen_) return false;
    const size_t words = kCodeLinBits / 64;
    const uint64_t n = std::min<uint64_t>(count / 64, words);
    for (uint64_t k = 0; k < n; ++k)
        if (code_lin_[(first / 64 + k) % words]) return true;
    return false;
}

bool Cpu::invlpg_large(uint64_t lin, unsigned shift, uint64_t bit) {
    const uint64_t large = lin >> shift;
    for (TlbEntry* table : {tlb_read_, tlb_write_, tlb_exec_})
        for (size_t i = 0; i < kTlbSize; ++i)
            if ((table[i].phys_bits & bit) && (table[i].tag >> shift) == large)
                table[i].tag = ~0ull;
    for (LockType& e : lock_types_)
        if ((e.page >> (shift - 12)) == large) e.page = ~0ull;
    const uint64_t first = large << (shift - 12);
    return code_lin_any(first, uint64_t{1} << (shift - 12)) || code_lin_has(first - 1);
}

void Cpu::invlpg(uint64_t lin) {
    // The LBR trace's walk resolves RIPs through these translations (Lbr::set_resolver):
    // what it holds is walked first where the page may hold code, or be part of a large page.
    {
        const uint64_t region = (lin >> 21) % kLarge2MBits;
        if (code_lin_has(lin >> 12) || code_lin_has((lin >> 12) - 1) ||
            ((tlb_2m_regions_[region / 64] >> (region % 64)) & 1) ||
            ((tlb_1g_regions_ >> ((lin >> 30) % 64)) & 1))
            lbr_.drain_trace();
    }
    size_t i = (lin >> 12) & (kTlbSize - 1);
    uint64_t page = lin & ~0xFFFull;
    for (TlbEntry* t : {&tlb_read_[i], &tlb_write_[i], &tlb_exec_[i]})
        if ((t->tag & ~0xFFFull) == page) t->tag = ~0ull;
    // Links and jump-cache entries hold linear-to-block translations: they go only when
    // one of them may lead into this page (Linux invalidates data pages far more often).
    // (A block may run on from the page before into this one.)
    bool code = code_lin_has(lin >> 12) || code_lin_has((lin >> 12) - 1);
    // The address may be in a large page: INVLPG invalidates the translations of the whole
    // page (SDM vol. 3A §4.10.4.1), which the TLB holds as entries for its 4 KiB parts.
    // Only where some entry came from a large page since the last flush: a link into a
    // large page was made through such an entry.
    const uint64_t region = (lin >> 21) % kLarge2MBits;
    if ((tlb_2m_regions_[region / 64] >> (region % 64)) & 1) code |= invlpg_large(lin, 21, kTlb2M);
    if ((tlb_1g_regions_ >> ((lin >> 30) % 64)) & 1) code |= invlpg_large(lin, 30, kTlb1G);
    if (code) new_block_gen();
    resume_.block = nullptr;  // a block that stopped part-way starts afresh
    LockType& e = lock_types_[(lin >> 12) & (kLockTypes - 1)];
    if (e.page == (lin >> 12)) e.page = ~0ull;  // its memory type is looked up again
}

void Cpu::note_code_lin(uint64_t lin) {
    if (code_lin_gen_ != block_gen_) {
        code_lin_.fill(0);
        code_lin_gen_ = block_gen_;
    }
    const uint64_t page = lin >> 12;
    code_lin_[(page / 64) % (kCodeLinBits / 64)] |= uint64_t{1} << (page % 64);
}

// Walks the 4-level page tables (SDM vol. 3 §4.5). Returns the physical address or raises
// #PF with the architectural error code and CR2.
uint64_t Cpu::walk(uint64_t lin, Access acc, bool user) {
    const bool write = acc == Access::Write;
    const bool exec = acc == Access::Exec;
    const bool nxe = s_.efer & msr::EFER_NXE;
    uint32_t err = (write ? PFERR_W : 0) | (user ? PFERR_U : 0) | (exec && nxe ? PFERR_I : 0);
    auto pf = [&](uint32_t e) -> uint64_t {
        s_.cr2 = lin;
        throw GuestFault{VEC_PF, true, e};
    };
    if (s_.mode == Mode::Long64) {
        int64_t canon = static_cast<int64_t>(lin << 16) >> 16;
        // Non-canonical: #SS(0) for stack references, #GP(0) otherwise (SDM vol. 3 §6.15).
        if (static_cast<uint64_t>(canon) != lin)
            throw GuestFault{acc != Access::Exec && last_seg_ == SS ? VEC_SS : VEC_GP, true, 0};
    }
    if (!(s_.efer & msr::EFER_LMA))
        unsupported("paging without long mode (legacy 2/3-level paging)");

    // Reserved bits: physical address bits above MAXPHYADDR (46 in the CPU model) and NX
    // when EFER.NXE is clear.
    const uint64_t rsvd_addr = 0x000FC00000000000ull;
    const uint64_t rsvd_nx = nxe ? 0 : PTE_NX;

    uint64_t table = s_.cr3 & PTE_ADDR_MASK;
    bool allow_write = true, allow_user = true, allow_exec = true;
    uint64_t entry_addrs[4];
    uint64_t entries[4];
    int levels = 0;
    uint64_t phys = 0, bits = 0;
    for (int level = 3; level >= 0; --level) {
        uint64_t idx = (lin >> (12 + 9 * level)) & 0x1FF;
        uint64_t ea = table + idx * 8;
        // A paging structure outside RAM: a not-present fault, as KVM's walker injects
        // when a table's frame is in no memory slot, instead of walking through MMIO.
        const uint8_t* h = host_page(ea);
        if (!h || host_page(ea + 7) != h + 7) return pf(err);
        uint64_t e = load_le(h, 8);
        entry_addrs[levels] = ea;
        entries[levels] = e;
        ++levels;
        if (!(e & PTE_P)) return pf(err);
        bool large = level > 0 && level < 3 && (e & PTE_PS);
        uint64_t rsvd = rsvd_addr | rsvd_nx;
        if (level == 3) rsvd |= PTE_PS;
        if (large) rsvd |= level == 2 ? 0x3FFFE000ull : 0x1FE000ull;  // PAT at bit 12 allowed
        if (e & rsvd) return pf(err | PFERR_P | PFERR_RSVD);
        allow_write &= (e & PTE_RW) != 0;
        allow_user &= (e & PTE_US) != 0;
        allow_exec &= !(nxe && (e & PTE_NX));
        if (level == 0 || large) {
            uint64_t page_mask = (1ull << (12 + 9 * level)) - 1;
            phys = (e & PTE_ADDR_MASK & ~page_mask) | (lin & page_mask);
            bits = (level == 1   ? kTlb2M
                    : level == 2 ? kTlb1G
                                 : 0) |
                   ((s_.cr4 & CR4_PGE) && (e & PTE_G) ? kTlbGlobal : 0);
            break;
        }
        table = e & PTE_ADDR_MASK;
    }
    // Permission checks (SDM §4.6).
    if (user && !allow_user) return pf(err | PFERR_P);
    if (write && !allow_write && (user || (s_.cr0 & CR0_WP))) return pf(err | PFERR_P);
    if (exec && !allow_exec) return pf(err | PFERR_P);
    if (!user && allow_user) {
        if (exec && (s_.cr4 & CR4_SMEP)) return pf(err | PFERR_P);
        if (!exec && (s_.cr4 & CR4_SMAP)) {
            if (!(s_.rflags & FLAG_AC)) return pf(err | PFERR_P);
            bits |= kTlbNoFill;  // allowed by AC alone: CLAC must not find it cached
        }
    }
    // Accessed bits on every level, dirty on the leaf for writes.
    for (int k = 0; k < levels; ++k) {
        uint64_t want = entries[k] | PTE_A;
        if (k == levels - 1 && write) want |= PTE_D;
        if (want == entries[k]) continue;
        // A locked update (SDM §4.8).
        check_paging_lock(k == 0 ? s_.cr3 : entries[k - 1], entry_addrs[k]);
        phys_write(entry_addrs[k], 8, want);
    }
    walk_bits_ = bits;
    return phys;
}

uint64_t Cpu::translate(uint64_t lin, Access acc, bool user) {
    if (!(s_.cr0 & CR0_PG)) {
        walk_bits_ = 0;
        return s_.mode == Mode::Long64 ? lin : (lin & 0xFFFFFFFFull);
    }
    return walk(lin, acc, user);
}

uint64_t Cpu::phys_read(uint64_t gpa, uint8_t size) {
    if (uint8_t* h = host_page(gpa); h && host_page(gpa + size - 1) == h + size - 1) {
        return load_le(h, size);
    }
    return mmio_read(gpa, size);
}

uint64_t Cpu::mmio_read(uint64_t gpa, uint8_t size) {
    uint64_t v = 0;
    if (!mmio_read_or_exit(gpa, size, v)) throw StopBeforeRetire{};
    return v;
}

bool Cpu::mmio_read_or_exit(uint64_t gpa, uint8_t size, uint64_t& v) {
    stop_flags_ |= kStopMmio;
    if (mmio_replay_ < mmio_reads_.size()) {
        const MmioAccess& r = mmio_reads_[mmio_replay_];
        if (r.gpa == gpa && r.size == size) {
            ++mmio_replay_;
            v = r.value;
            return true;
        }
        // The re-execution took another path (its state was changed from outside): the
        // rest of the log no longer describes it.
        mmio_reads_.resize(mmio_replay_);
    }
    v = 0;
    if (owner_.mmio_read(gpa, size, v) == Action::Exit) {
        read_exit_ = true;
        return false;
    }
    v &= size_mask(size);
    mmio_reads_.push_back({gpa, v, size});
    ++mmio_replay_;
    return true;
}

void Cpu::phys_write(uint64_t gpa, uint8_t size, uint64_t v) {
    if (uint8_t* h = host_page(gpa); h && host_page(gpa + size - 1) == h + size - 1) {
        uint64_t page = gpa >> 12;
        if (page < code_pages_->size() && (*code_pages_)[page]) code_written(page);
        uint64_t last = (gpa + size - 1) >> 12;
        if (last != page && last < code_pages_->size() && (*code_pages_)[last]) code_written(last);
        written_pages_ |= 1ull << (page & 63) | 1ull << (last & 63);
        store_le(h, size, v);
        return;
    }
    stop_flags_ |= kStopMmio;
    mmio_writes_.push_back({gpa, v & size_mask(size), size});
}

// Hands the queued MMIO writes to the owner in order. True when the owner asked to stop
// on one of them; the writes after it stay queued for the next run().
bool Cpu::deliver_mmio_writes() {
    bool stop = false;
    while (!stop && mmio_write_next_ < mmio_writes_.size()) {
        const MmioAccess& w = mmio_writes_[mmio_write_next_++];
        stop = owner_.mmio_write(w.gpa, w.size, w.value) == Action::Exit;
    }
    if (mmio_write_next_ == mmio_writes_.size()) {
        mmio_writes_.clear();
        mmio_write_next_ = 0;
    }
    return stop;
}

bool Cpu::finish_mmio() {
    stop_flags_ &= ~kStopMmio;
    drop_mmio_log();
    return deliver_mmio_writes();
}

bool Cpu::mmio_stays_in_block() {
    if (stop_flags_ != kStopMmio) return false;
    if (finish_mmio()) {
        stop_flags_ |= kStopOwner;
        return false;
    }
    // Its writes may have set an earlier deadline (an in-kernel timer): the block ends.
    return !irq_requested_ && !(stop_flags_ & kStopDeadline);
}

uint64_t Cpu::read_slow(uint64_t lin, uint8_t size, Access acc, bool user) {
    if (data_bp_ && acc != Access::Exec) check_data_breakpoints(lin, size, false);
    uint64_t off = lin & 0xFFF;
    if (off + size > 0x1000) {  // crosses a page: split into bytes
        uint64_t v = 0;
        for (uint8_t k = 0; k < size; ++k) v |= read_slow(lin + k, 1, acc, user) << (8 * k);
        return v;
    }
    // The TLB slot is computed before translate(): GCC 12 with the sanitizers otherwise
    // reports a false maybe-uninitialized `lin` through the inlined page-crossing recursion.
    const uint64_t slot = (lin >> 12) & (kTlbSize - 1);
    uint64_t phys = translate(lin, acc, user);
    uint8_t* h = host_page(phys & ~0xFFFull);
    if (h && !(data_bp_ && acc != Access::Exec) &&
        host_page((phys & ~0xFFFull) + 0xFFF) == h + 0xFFF) {
        fill_tlb((acc == Access::Exec ? tlb_exec_ : tlb_read_)[slot], lin, user, h, phys);
        return load_le(h + off, size);
    }
    if (defer_read_exit_ && !h) {  // translated code's load: no unwinding for an exit
        uint64_t v = 0;
        if (!mmio_read_or_exit(phys, size, v)) read_deferred_ = true;
        return v;
    }
    return phys_read(phys, size);
}

void Cpu::write_slow(uint64_t lin, uint8_t size, uint64_t v, bool user) {
    if (data_bp_) check_data_breakpoints(lin, size, true);
    uint64_t off = lin & 0xFFF;
    if (off + size > 0x1000) {
        // Translate both pages before writing anything, so a #PF on the second page
        // leaves memory unchanged.
        uint8_t first = static_cast<uint8_t>(0x1000 - off);
        translate(lin, Access::Write, user);
        translate(lin + first, Access::Write, user);
        for (uint8_t k = 0; k < size; ++k) write_slow(lin + k, 1, (v >> (8 * k)) & 0xFF, user);
        return;
    }
    uint64_t phys = translate(lin, Access::Write, user);
    uint64_t page = phys >> 12;
    uint8_t* h = host_page(phys & ~0xFFFull);
    bool code = page < code_pages_->size() && (*code_pages_)[page];
    if (h && !code && !data_bp_ && host_page((phys & ~0xFFFull) + 0xFFF) == h + 0xFFF) {
        fill_tlb(tlb_write_[(lin >> 12) & (kTlbSize - 1)], lin, user, h, phys);
        write_tlb_pages_ |= 1ull << (page & 63);
        written_pages_ |= 1ull << (page & 63);
        store_le(h + off, size, v);
        return;
    }
    phys_write(phys, size, v);
}

uint8_t* Cpu::tlb_host(uint64_t lin, Access acc) const {
    // The slot, tag and offset first, as read_slow computes its slot (GCC 12 with the
    // sanitizers otherwise reports a false maybe-uninitialized `lin`).
    const size_t slot = (lin >> 12) & (kTlbSize - 1);
    const uint64_t tag = tlb_tag(lin, user_access());
    if (align_check_) return nullptr;
    const TlbEntry* table = acc == Access::Write ? tlb_write_ : tlb_read_;
    return table[slot].tag == tag ? table[slot].at(lin) : nullptr;
}

uint64_t Cpu::read_sys(uint64_t lin, uint8_t size) {
    last_seg_ = DS;
    return read_slow(lin, size, Access::Read, false);
}

void Cpu::write_sys(uint64_t lin, uint8_t size, uint64_t v) {
    write_slow(lin, size, v, false);
}

void Cpu::read_bytes(uint64_t lin, void* dst, size_t n, Access acc, bool supervisor) {
    auto* out = static_cast<uint8_t*>(dst);
    bool user = supervisor ? false : user_access();
    for (size_t k = 0; k < n; ++k) out[k] = static_cast<uint8_t>(read_slow(lin + k, 1, acc, user));
}

void Cpu::host_wrote(uint64_t gpa, uint64_t len) {
    if (len == 0) return;
    for (uint64_t p = gpa >> 12; p <= (gpa + len - 1) >> 12; ++p) {
        if (p < code_pages_->size()) (*code_pages_)[p] = 0;
        invalidate_code_page(p);
    }
}

// A store hit a page holding decoded code: drop its blocks (self-modifying code) and let
// write-TLB entries to it be installed again.
void Cpu::code_written(uint64_t page) {
    (*code_pages_)[page] = 0;
    invalidate_code_page(page);
    owner_.code_page_written(page);
}

void Cpu::drop_write_tlb(uint64_t page) {
    if (!(write_tlb_pages_ & (1ull << (page & 63)))) return;  // no entry can hold it
    for (TlbEntry& t : tlb_write_)
        if (t.phys() == (page << 12)) t.tag = ~0ull;
}

}  // namespace softkvm::cpu
