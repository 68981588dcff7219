// Values the software CPU and its callers share beside the Cpu class (cpu.h): little-endian
// loads and stores, operand-size masks and sign extension, the C++ exceptions an
// instruction raises, why run() returned, and the kind of a memory access.
#pragma once
#include <cstdint>
#include <cstring>

namespace softkvm::cpu {

// Little-endian loads and stores of 1, 2, 4 or 8 bytes. A fixed-size memcpy per case
// compiles to one move; a variable-size one becomes a call or `rep movs`.
inline uint64_t load_le(const uint8_t* p, uint8_t size) {
    switch (size) {
        case 1:
            return *p;
        case 2: {
            uint16_t v;
            std::memcpy(&v, p, 2);
            return v;
        }
        case 4: {
            uint32_t v;
            std::memcpy(&v, p, 4);
            return v;
        }
        default: {
            uint64_t v;
            std::memcpy(&v, p, 8);
            return v;
        }
    }
}
inline void store_le(uint8_t* p, uint8_t size, uint64_t v) {
    switch (size) {
        case 1:
            *p = static_cast<uint8_t>(v);
            break;
        case 2: {
            const uint16_t x = static_cast<uint16_t>(v);
            std::memcpy(p, &x, 2);
            break;
        }
        case 4: {
            const uint32_t x = static_cast<uint32_t>(v);
            std::memcpy(p, &x, 4);
            break;
        }
        default:
            std::memcpy(p, &v, 8);
            break;
    }
}

inline constexpr uint64_t size_mask(uint8_t size) {
    return size >= 8 ? ~0ull : ((1ull << (size * 8)) - 1);
}
inline constexpr uint64_t sign_bit(uint8_t size) {
    return 1ull << (size * 8 - 1);
}
inline constexpr int64_t sign_extend(uint64_t v, uint8_t size) {
    return size >= 8 ? static_cast<int64_t>(v)
                     : static_cast<int64_t>(v << (64 - size * 8)) >> (64 - size * 8);
}

// A guest exception raised while executing an instruction (the only C++ exception the
// CPU uses; it never leaves cpu/).
struct GuestFault {
    uint8_t vector;
    bool has_error;
    uint32_t error;
};

// Thrown when the owner asked to stop before the instruction completes (a port or MMIO
// read whose value the VMM must supply): the instruction is re-executed on the next run,
// replaying the MMIO reads it had already completed (Cpu::phys_read).
struct StopBeforeRetire {};

enum class StopReason : uint8_t {
    Owner,      // the owner asked to stop (I/O exit, HLT)
    InsnLimit,  // the instruction limit was reached
    Shutdown,   // triple fault
    Emulation,  // an instruction or state softkvm cannot execute; see stop_detail()
    Halted,     // HLT with nothing that can wake the CPU (no interrupt, no deadline)
    Kicked,     // kick() asked run() to return (from a signal handler or another thread)
    Stalled,    // stall_limit() events delivered in a row without an instruction retiring
    Deadline,   // CpuOwner::deadline() asked run() to return
};

enum class Access : uint8_t { Read, Write, Exec };

}  // namespace softkvm::cpu
