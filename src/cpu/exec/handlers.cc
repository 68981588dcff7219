// The handler table: every family registers its mnemonics once; the decoder looks
// instructions up here and anything unregistered raises #UD.
#include "cpu/exec/handlers.h"

namespace softkvm::cpu {

const HandlerTable& handler_table() {
    static const HandlerTable table = [] {
        HandlerTable t{};
        register_alu(t);
        register_shift(t);
        register_muldiv(t);
        register_move(t);
        register_bits(t);
        register_string(t);
        register_branch(t);
        register_system(t);
        register_atomic(t);
        register_legacy(t);
        register_fxsave(t);
        register_xsave(t);
        register_sse_fp_gpr(t);
        register_x87(t);
        return t;
    }();
    return table;
}

const HandlerTable& sse_handler_table() {
    static const HandlerTable table = [] {
        HandlerTable t{};
        register_sse(t);
        register_sse_fp(t);
        register_sse_int(t);
        return t;
    }();
    return table;
}

const HandlerTable& mmx_handler_table() {
    static const HandlerTable table = [] {
        HandlerTable t{};
        register_mmx(t);
        register_mmx_cvt(t);
        return t;
    }();
    return table;
}

}  // namespace softkvm::cpu
