// Block translation with xbyak (docs/translator.md has the choice of emitter).
#include "cpu/translate/translator.h"

#include "cpu/block.h"
#include "cpu/cpu.h"
#include "cpu/translate/code_cache.h"
#include "cpu/translate/forms.h"
#include "cpu/translate/jit_map.h"

#ifdef SOFTKVM_HAVE_TRANSLATOR
#include <cpuid.h>

#include "cpu/translate/emitter.h"
#else
namespace softkvm::cpu {
class BlockEmitter {};  // no emitter in this build
}  // namespace softkvm::cpu
#endif

namespace softkvm::cpu {

const char* engine_name(Engine e) {
    return e == Engine::Translate ? "translate" : "interp";
}

bool parse_engine(std::string_view text, Engine& out) {
    if (text == "interp") {
        out = Engine::Interp;
        return true;
    }
    if (text == "translate") {
        out = Engine::Translate;
        return true;
    }
    return false;
}

bool translator_available() {
#ifdef SOFTKVM_HAVE_TRANSLATOR
    return true;
#else
    return false;
#endif
}

namespace {
template <typename O, typename T>
int32_t offset_in(const O& object, const T& field) {
    return static_cast<int32_t>(reinterpret_cast<const char*>(&field) -
                                reinterpret_cast<const char*>(&object));
}
}  // namespace

Translator::Translator(Cpu& cpu, size_t cache_bytes)
    : cpu_(cpu),
      cache_(std::make_unique<CodeCache>(cache_bytes)),
      map_(JitMap::from_environment()) {
    set_bmi2(true);
    CpuLayout& l = layout_;
    l.rip = offset_in(cpu, cpu.s_.rip);
    l.next_rip = offset_in(cpu, cpu.next_rip_);
    l.rsp = offset_in(cpu, cpu.s_.gpr[RSP]);
    l.stop = offset_in(cpu, cpu.stop_flags_);
    l.gpr = offset_in(cpu, cpu.s_.gpr[0]);
    l.rflags = offset_in(cpu, cpu.s_.rflags);
    l.seg_base = offset_in(cpu, cpu.seg_base_[0]);
    l.last_seg = offset_in(cpu, cpu.last_seg_);
    l.align_check = offset_in(cpu, cpu.align_check_);
    l.cpl = offset_in(cpu, cpu.s_.cpl);
    l.mode = offset_in(cpu, cpu.s_.mode);
    l.tlb_read = offset_in(cpu, cpu.tlb_read_[0]);
    l.tlb_write = offset_in(cpu, cpu.tlb_write_[0]);
    l.links_gen = offset_in(cpu, cpu.link_gen_);
    l.direct_gen = offset_in(cpu, cpu.direct_gen_);
    l.icount = offset_in(cpu, cpu.icount_);
    l.idle = offset_in(cpu, cpu.idle_);
    l.deadline = offset_in(cpu, cpu.deadline_);
    l.run_limit = offset_in(cpu, cpu.run_limit_);
    l.kick = offset_in(cpu, cpu.kick_);
    l.chain_bound = offset_in(cpu, cpu.chain_bound_);
    l.halted = offset_in(cpu, cpu.halted_);
    l.nmi_pending = offset_in(cpu, cpu.nmi_pending_);
    l.debug_active = offset_in(cpu, cpu.debug_active_);
    l.resume_insn = offset_in(cpu, cpu.resume_insn_);
    l.pmu_active = offset_in(cpu, cpu.pmu_.active_);
    l.no_chain = offset_in(cpu, cpu.no_chain_);
    l.trace_jump_tag = offset_in(cpu, cpu.trace_jump_tag_);
    l.bus_lock_watch = offset_in(cpu, cpu.bus_lock_watch_);
    l.pending_db = offset_in(cpu, cpu.pending_db_);
    l.trace_left = offset_in(cpu, cpu.trace_left_);
    l.debugctl = offset_in(cpu, cpu.s_.debugctl);
    l.rep_room = offset_in(cpu, cpu.rep_room_);
    l.chained = offset_in(cpu, cpu.chained_);
    l.block_insns = offset_in(cpu, cpu.block_insns_);
    l.block_cpl = offset_in(cpu, cpu.block_cpl_);
    l.pmu_synced = offset_in(cpu, cpu.pmu_synced_);
    l.chained_blocks = offset_in(cpu, cpu.chained_blocks_);
    l.slow_paths = offset_in(cpu, cpu.slow_paths_);
    const Lbr& lbr = cpu.lbr_;
    l.lbr_trace_done = offset_in(cpu, lbr.trace_done_);
    l.lbr_bits = offset_in(cpu, lbr.sh_.bits);
    l.lbr_widx = offset_in(cpu, lbr.sh_.widx);
    l.lbr_tidx = offset_in(cpu, lbr.sh_.tidx);
    l.lbr_ring = offset_in(cpu, lbr.sh_.ring);
    l.ring_bits = static_cast<int32_t>(offsetof(TraceRing, slot) + offsetof(TraceSlot, bits));
    l.ring_rip = static_cast<int32_t>(offsetof(TraceRing, slot) + offsetof(TraceSlot, rip));
    l.ring_stamp = static_cast<int32_t>(offsetof(TraceRing, slot) + offsetof(TraceSlot, stamp));
    l.ring_tidx = static_cast<int32_t>(offsetof(TraceRing, slot) + offsetof(TraceSlot, tidx));
    l.ring_cpl = static_cast<int32_t>(offsetof(TraceRing, slot) + offsetof(TraceSlot, cpl));
    l.ring_kind = static_cast<int32_t>(offsetof(TraceRing, slot) + offsetof(TraceSlot, kind));
    l.ring_bstart = static_cast<int32_t>(offsetof(TraceRing, slot) + offsetof(TraceSlot, bstart));
    l.ring_bend = static_cast<int32_t>(offsetof(TraceRing, slot) + offsetof(TraceSlot, bend));
    l.ring_targets = static_cast<int32_t>(offsetof(TraceRing, targets));
    static_assert(sizeof(TraceRing) < (1u << 31) && sizeof(lbr.sh_.widx) == 4 &&
                  sizeof(lbr.sh_.tidx) == 4 && sizeof(TraceSlot) == 64 &&
                  sizeof(TraceSlot::tidx) == 4 && sizeof(TraceSlot::bend) == 4 &&
                  sizeof(TraceSlot::cpl) == 1 && sizeof(lbr.trace_done_) == 1);
    l.jump_cache = reinterpret_cast<uint64_t>(cpu.jump_cache_.data());
    l.load_fn = reinterpret_cast<uint64_t>(&Translator::load_for_code);
    static const Block probe;
    l.link_rip = offset_in(probe, probe.links[0].rip);
    l.link_trace_rip = offset_in(probe, probe.links[0].trace_rip);
    l.link_gen = offset_in(probe, probe.links[0].gen);
    l.link_block = offset_in(probe, probe.links[0].block);
    l.link_size = static_cast<int32_t>(sizeof(Block::Link));
    l.host_chain = offset_in(probe, probe.host_chain);
    l.host_fast = offset_in(probe, probe.host_fast);
    l.key = offset_in(probe, probe.key);
    l.exit_rip = offset_in(probe, probe.direct[0].rip);
    l.exit_trace_rip = offset_in(probe, probe.direct[0].trace_rip);
    l.exit_gen = offset_in(probe, probe.direct[0].gen);
    l.exit_to = offset_in(probe, probe.direct[0].to);
    l.exit_size = static_cast<int32_t>(sizeof(Block::DirectExit));
    l.host_rip = offset_in(probe, probe.host_rip);
#ifdef SOFTKVM_HAVE_TRANSLATOR
    emitter_ = std::make_unique<BlockEmitter>(layout_);
    // The successor search every chain exit calls, at the cache's front for good.
    if (uint8_t* at = cache_->ok() ? cache_->begin_write(BlockEmitter::kLookupStubCode) : nullptr) {
        try {
            cache_->end_write(emitter_->emit_lookup_stubs(at, BlockEmitter::kLookupStubCode));
            cache_->keep_front();
            stubs_ = true;
        } catch (const Xbyak::Error&) {
        }
    }
#endif
    // The generated TLB probe knows the entry layout and the tag bits.
    static_assert(sizeof(Cpu::TlbEntry) == 32 && Cpu::kTlbSize == 1024);
    static_assert(Cpu::kTlbValid == 1 && Cpu::kTlbUser == 2 && sizeof(cpu.align_check_) == 1);
    static_assert(offsetof(Cpu::TlbEntry, tag) == 0 && offsetof(Cpu::TlbEntry, addend) == 8);
    // ... and the jump cache's (the run loop's lookup, repeated in generated code).
    static_assert(sizeof(Cpu::JumpEntry) == 32 && Cpu::kJumpCacheSize == 4096);
    static_assert(offsetof(Cpu::JumpEntry, lin) == 0 && offsetof(Cpu::JumpEntry, gen) == 8 &&
                  offsetof(Cpu::JumpEntry, block) == 16 && offsetof(Cpu::JumpEntry, tag) == 24 &&
                  offsetof(Cpu::JumpEntry, trace_tag) == 28 &&
                  sizeof(Cpu::JumpEntry::trace_tag) == 2 && sizeof(cpu.trace_jump_tag_) == 2);
    static_assert(sizeof(cpu.kick_) == 1 && sizeof(cpu.pmu_synced_) == 8 &&
                  sizeof(cpu.stop_flags_) == 4 && sizeof(cpu.s_.mode) == 1);
}

void Translator::forget_chains() {
    for (auto& [key, block] : cpu_.blocks_) block->drop_translation();
    for (auto& block : cpu_.retired_blocks_) block->drop_translation();
    cpu_.new_block_gen();  // and no link or jump-cache entry found before leads there
}

Translator::~Translator() = default;

Translator::LoadResult Translator::load_for_code(Cpu* c, uint64_t lin, uint64_t size) {
    if (c->data_bp_ || (lin & 0xFFF) + size > 0x1000) return {0, kLoadHandler};
    struct Defer {  // also when the access faults
        Cpu* c;
        ~Defer() { c->defer_read_exit_ = false; }
    } defer{c};
    c->defer_read_exit_ = true;
    c->read_deferred_ = false;
    const uint64_t v = c->read_mem(lin, static_cast<uint8_t>(size));
    if (c->read_deferred_) {
        c->abandoned_ = true;
        return {0, kLoadAbandoned};
    }
    return {v, kLoadDone};
}

bool Translator::ok() const {
    return translator_available() && cache_->ok() && stubs_;
}

void Translator::reset() {
    cache_->clear();
    translated_ = 0;
    code_bytes_ = 0;
    native_ = true;
    set_bmi2(true);
}

Translator::Stats Translator::stats() const {
    return {translated_,          cache_->flushes(), cache_->used(),
            cpu_.chained_blocks_, code_bytes_,       cpu_.slow_paths_};
}

Translator::BlockFn Translator::code_for(Block& b) {
    if (b.host_code && b.host_epoch == cache_->epoch())
        return reinterpret_cast<BlockFn>(b.host_code);
    if (b.host_epoch == kUntranslatable) return nullptr;   // the interpreter runs it
    if (++b.host_runs < translate_after_) return nullptr;  // not hot yet
    return translate(b);
}

#ifdef SOFTKVM_HAVE_TRANSLATOR

namespace {

// Upper bounds of the generated code's size, in bytes: the longest form is a memory
// access with its TLB probe, flags and the handler call of its slow path.
constexpr size_t kFrameCode = 1536;  // two entries, chaining checks, exits (two after a Jcc)
constexpr size_t kPerInsnCode = 512;

// LAHF/SAHF in 64-bit mode (CPUID.80000001H:ECX[0]): native flag capture needs LAHF.
bool host_has_lahf() {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid(0x80000001u, &a, &b, &c, &d) && (c & 1);
}

// BMI2 (CPUID.(EAX=07H, ECX=0):EBX[8]): the TLB probe's RORX.
bool host_has_bmi2() {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b >> 8 & 1);
}

}  // namespace

void Translator::set_bmi2(bool on) {
    static const bool host = host_has_bmi2();
    bmi2_ = on && host;
}

Translator::BlockFn Translator::translate(Block& b) {
    // Each chain exit (two after a last Jcc) may hold its LBR recording.
    const size_t need =
        kFrameCode + 2 * BlockEmitter::kLbrRecordCode + kPerInsnCode * b.insns.size();
    const uint64_t epoch = cache_->epoch();
    uint8_t* at = cache_->begin_write(need);
    if (cache_->epoch() != epoch) forget_chains();
    if (!at) return nullptr;
    size_t used = 0;
    const uint8_t* chain = nullptr;
    const uint8_t* fast = nullptr;
    try {
        static const bool lahf = host_has_lahf();
        emitter_->start(at, need, lahf && native_);
        emitter_->set_start_rip(b.host_rip);
        emitter_->set_bmi2(bmi2_);
        emitter_->emit(b);
        used = emitter_->getSize();
        chain = emitter_->chain_entry();
        fast = emitter_->chain_fast();
    } catch (const Xbyak::Error&) {
        used = 0;  // bounded above; nothing of it runs
    }
    if (used == 0) {
        b.host_code = b.host_chain = b.host_fast = nullptr;
        b.host_epoch = kUntranslatable;  // not tried again: the interpreter runs it
        return nullptr;
    }
    cache_->end_write(used);
    b.host_code = const_cast<uint8_t*>(cache_->exec_address(at));
    b.host_chain = const_cast<uint8_t*>(cache_->exec_address(chain));
    b.host_fast = const_cast<uint8_t*>(cache_->exec_address(fast));
    b.host_epoch = cache_->epoch();
    ++translated_;
    code_bytes_ += used;
    if (map_) map_->record(b, b.host_code, used, cpu_.s_.rip, b.host_epoch, cache_.get());
    return reinterpret_cast<BlockFn>(b.host_code);
}

#else

Translator::BlockFn Translator::translate(Block&) {
    return nullptr;
}

void Translator::set_bmi2(bool) {}

#endif

}  // namespace softkvm::cpu
