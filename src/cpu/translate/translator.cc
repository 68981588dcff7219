// Block translation with xbyak (docs/translator.md has the choice of emitter).
#include "cpu/translate/translator.h"

#include "cpu/block.h"
#include "cpu/cpu.h"
#include "cpu/translate/code_cache.h"

#ifdef SOFTKVM_HAVE_TRANSLATOR
#include <xbyak/xbyak.h>
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
template <typename T>
int32_t offset_in(const Cpu& cpu, const T& field) {
    return static_cast<int32_t>(reinterpret_cast<const char*>(&field) -
                                reinterpret_cast<const char*>(&cpu));
}
}  // namespace

Translator::Translator(Cpu& cpu, size_t cache_bytes)
    : cpu_(cpu), cache_(std::make_unique<CodeCache>(cache_bytes)) {
    off_rip_ = offset_in(cpu, cpu.s_.rip);
    off_next_rip_ = offset_in(cpu, cpu.next_rip_);
    off_rsp_ = offset_in(cpu, cpu.s_.gpr[RSP]);
    off_stop_ = offset_in(cpu, cpu.stop_flags_);
}

Translator::~Translator() = default;

bool Translator::ok() const {
    return translator_available() && cache_->ok();
}

Translator::Stats Translator::stats() const {
    return {translated_, cache_->flushes(), cache_->used()};
}

Translator::BlockFn Translator::code_for(Block& b) {
    if (b.host_code && b.host_epoch == cache_->epoch())
        return reinterpret_cast<BlockFn>(b.host_code);
    return translate(b);
}

#ifdef SOFTKVM_HAVE_TRANSLATOR

namespace {

// Upper bounds of the generated code's size, in bytes.
constexpr size_t kFrameCode = 64;
constexpr size_t kPerInsnCode = 96;

// The frame code_cache.h describes: three callee-saved registers hold the CPU and the
// two run-loop variables across handler calls.
class BlockEmitter : public Xbyak::CodeGenerator {
  public:
    BlockEmitter(size_t size, uint8_t* at) : Xbyak::CodeGenerator(size, at) {}

    void emit(const Block& b, int32_t off_rip, int32_t off_next, int32_t off_rsp,
              int32_t off_stop) {
        using namespace Xbyak::util;
        Xbyak::Label exit;
        push(rbx);
        push(r12);
        push(r13);
        mov(rbx, rdi);
        mov(r12, rsi);
        mov(r13, rdx);
        const size_t n = b.insns.size();
        for (size_t k = 0; k < n; ++k) {
            const DecodedInsn& in = b.insns[k];
            // The interpreter's step: next RIP, RSP for a fault's restore, the handler,
            // RIP := next RIP, one more instruction done, leave on a stop flag.
            mov(rax, qword[rbx + off_rip]);
            mov(rcx, qword[rbx + off_rsp]);
            add(rax, in.len);
            mov(qword[r13], rcx);
            mov(qword[rbx + off_next], rax);
            mov(rdi, rbx);
            mov(rsi, reinterpret_cast<uint64_t>(&in));
            mov(rax, reinterpret_cast<uint64_t>(in.fn));
            call(rax);
            mov(rax, qword[rbx + off_next]);
            mov(qword[rbx + off_rip], rax);
            mov(qword[r12], static_cast<uint32_t>(k + 1));
            cmp(dword[rbx + off_stop], 0);
            jne(exit, T_NEAR);
        }
        L(exit);
        pop(r13);
        pop(r12);
        pop(rbx);
        ret();
    }
};

}  // namespace

Translator::BlockFn Translator::translate(Block& b) {
    const size_t need = kFrameCode + kPerInsnCode * b.insns.size();
    uint8_t* at = cache_->begin_write(need);
    if (!at) return nullptr;
    size_t used = 0;
    try {
        BlockEmitter e(need, at);
        e.emit(b, off_rip_, off_next_rip_, off_rsp_, off_stop_);
        used = e.getSize();
    } catch (const Xbyak::Error&) {
        used = 0;  // bounded above; nothing of it runs
    }
    if (!cache_->end_write(used) || used == 0) return nullptr;
    b.host_code = at;
    b.host_epoch = cache_->epoch();
    ++translated_;
    return reinterpret_cast<BlockFn>(at);
}

#else

Translator::BlockFn Translator::translate(Block&) {
    return nullptr;
}

#endif

}  // namespace softkvm::cpu
