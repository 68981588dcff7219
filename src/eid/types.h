// Encryption-ID types and the numbers of the controller's contract
// (spec §1; docs/eid.md). A new type (tdx, s390 seid) is one table entry.
#pragma once
#include <cstdint>
#include <string_view>

namespace softkvm::eid {

enum class Type : uint8_t { Sev = 0, SevEs = 1 };
inline constexpr int kTypeCount = 2;

struct TypeInfo {
    Type type;
    std::string_view name;      // misc-controller name and the seed's file infix (§1.4)
    std::string_view cli_name;  // spelling of `softkvm run --confidential`
};

inline constexpr TypeInfo kTypes[kTypeCount] = {
    {Type::Sev, "sev", "sev"},
    {Type::SevEs, "sev_es", "sev-es"},
};

// "max": no limit (§1.3 default).
inline constexpr uint64_t kUnlimited = UINT64_MAX;

// Highest ASID softkvm accepts (softkvm choice: CPUID 0x8000001F ECX is 32 bits wide, real
// parts report 15 to 1006; the bitmaps are one byte per ASID, so this bounds them at 64 KiB).
inline constexpr uint32_t kMaxAsids = 65535;

// CPUID leaf with the SEV ASID range (§1.1): ECX = max_sev_asid, EDX = min_sev_asid;
// EAX bit 1 = SEV supported.
inline constexpr uint32_t kCpuidSevLeaf = 0x8000001F;
inline constexpr uint32_t kCpuidSevSupported = 1u << 1;

inline const TypeInfo& info(Type t) {
    return kTypes[static_cast<int>(t)];
}

// Looks a type up by its misc name ("sev", "sev_es") or CLI spelling ("sev-es").
inline bool parse_type(std::string_view s, Type& out) {
    for (const TypeInfo& t : kTypes)
        if (s == t.name || s == t.cli_name) return out = t.type, true;
    return false;
}

}  // namespace softkvm::eid
