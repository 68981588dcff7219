// Zydis-backed decoder producing DecodedInsn (docs/architecture.md "The software CPU").
#pragma once
#include <Zydis/Zydis.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "cpu/decoded_insn.h"
#include "cpu/state.h"

namespace softkvm::cpu {

class Decoder {
  public:
    Decoder();
    // Decodes one instruction from `bytes` (at most `avail` valid). Returns false when
    // the bytes are not a valid instruction in `mode` (the caller raises #UD); `out.len`
    // is then 0, or 15 if more bytes would be needed than are available.
    bool decode(Mode mode, const uint8_t* bytes, size_t avail, DecodedInsn& out) const;
    // Intel-syntax text of an instruction, for traces and error reports.
    std::string disassemble(Mode mode, const uint8_t* bytes, size_t avail, uint64_t rip) const;

  private:
    const ZydisDecoder& for_mode(Mode mode) const;
    ZydisDecoder dec64_, dec32_, dec16_;
};

}  // namespace softkvm::cpu
