// The translating engine (docs/translator.md): a decoded Block becomes host x86-64 code
// that runs the block's instructions on the interpreter's own state. This first step
// calls each instruction's interpreter handler from the generated code, so it covers
// every instruction the interpreter does; frequent register forms (MOV, ALU) run as host
// instructions writing the same state the handlers write.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "cpu/translate/layout.h"

namespace softkvm::cpu {

class Cpu;
struct Block;
class CodeCache;
class BlockEmitter;
class JitMap;

// How the software CPU executes decoded blocks.
enum class Engine : uint8_t {
    Interp,     // the interpreter's loop over handlers (the reference)
    Translate,  // generated host code (x86-64 hosts built with the translator)
};
const char* engine_name(Engine e);
bool parse_engine(std::string_view text, Engine& out);
// Whether this build on this host can translate (built for x86-64 with the emitter).
bool translator_available();

class Translator {
  public:
    // Generated code for a block: runs its instructions from the first, as the
    // interpreter's loop does, storing in *done how many completed and in *rsp_before
    // RSP before the running one (the run loop's variables, read when an instruction
    // faults). Returns after the last one, or after the first that set a stop flag.
    using BlockFn = void (*)(Cpu* cpu, size_t* done, uint64_t* rsp_before);

    static constexpr size_t kDefaultCacheBytes = 32u << 20;
    explicit Translator(Cpu& cpu, size_t cache_bytes = kDefaultCacheBytes);
    ~Translator();
    Translator(const Translator&) = delete;
    Translator& operator=(const Translator&) = delete;

    bool ok() const;
    // Forgets every translation and the statistics, as if newly made (Cpu::reset()).
    void reset();
    // Native code for frequent instruction forms (on by default); off, every instruction
    // calls its handler. Applies to blocks translated afterwards.
    void set_native(bool on) { native_ = on; }
    // BMI2 (RORX in the software-TLB probe) where the host has it (the default); off, the
    // probe's form without it (tests keep both tried). Applies to blocks translated
    // afterwards.
    void set_bmi2(bool on);
    // Blocks are translated when they start their `runs`-th time (the interpreter runs
    // them before: code that runs once costs no translation). 1, the default: at the
    // first run (what differential tests and the fuzz target compare); VMs take kHotRuns.
    // kHotRuns: the Linux boot's CPU time was lowest at 8 among 4, 8, 16 and 32 (fewer
    // translations and code-cache flushes than at 4; at 16 and 32 the interpreter's
    // extra runs cost more than the translations they save: docs/translator.md).
    static constexpr uint32_t kDefaultTranslateAfter = 1;
    static constexpr uint32_t kHotRuns = 8;
    void set_translate_after(uint32_t runs) { translate_after_ = runs; }
    // The block's code, translating it first if needed; null when it cannot be translated
    // or is not yet hot.
    BlockFn code_for(Block& b);

    // The load of a native MOV r, m whose TLB probe missed, called from its code: the
    // handler's read_mem (a fault throws as from the handler), except that an MMIO read
    // the owner must answer first abandons the instruction (status kLoadAbandoned,
    // Cpu::abandoned_ set for the run loop) without unwinding. A page-crossing access or
    // data breakpoints: kLoadHandler (the instruction's handler runs instead).
    static constexpr uint64_t kLoadDone = 0, kLoadAbandoned = 1, kLoadHandler = 2;
    struct LoadResult {
        uint64_t value, status;  // returned in RAX, RDX (System V psABI §3.2.3)
    };
    static LoadResult load_for_code(Cpu* cpu, uint64_t lin, uint64_t size);

    struct Stats {
        uint64_t blocks_translated = 0;
        uint64_t cache_flushes = 0;
        uint64_t cache_bytes_used = 0;
        uint64_t chained_blocks = 0;  // blocks entered from another block's code
        uint64_t code_bytes = 0;      // host code written for blocks, over every flush
        // Native instructions that took their handler's path (defer_handler): a
        // software-TLB probe's miss, a non-canonical branch target.
        uint64_t slow_paths = 0;
    };
    Stats stats() const;
    // Where the generated code finds the CPU's fields (offsets from the Cpu object).
    const CpuLayout& layout() const { return layout_; }

  private:
    // Block::host_epoch of a block whose translation failed (never a cache epoch).
    static constexpr uint64_t kUntranslatable = ~0ull;
    BlockFn translate(Block& b);
    // The code cache was emptied: no block may continue into a translation made before.
    void forget_chains();
    Cpu& cpu_;
    std::unique_ptr<CodeCache> cache_;
    std::unique_ptr<BlockEmitter> emitter_;  // reused for every block
    std::shared_ptr<JitMap> map_;            // SOFTKVM_JIT_MAP (jit_map.h), else null
    uint64_t translated_ = 0;
    uint64_t code_bytes_ = 0;  // Stats::code_bytes
    CpuLayout layout_{};       // where generated code finds the fields it touches
    bool stubs_ =
        false;  // the shared lookup code is in the cache (BlockEmitter::emit_lookup_stubs)
    bool native_ = true;  // frequent forms as host instructions (else: handler calls only)
    bool bmi2_ = false;   // set_bmi2 (in the constructor: whether the host has BMI2)
    uint32_t translate_after_ = kDefaultTranslateAfter;
};

}  // namespace softkvm::cpu
