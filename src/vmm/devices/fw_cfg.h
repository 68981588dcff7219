// QEMU's firmware configuration device (fw_cfg) on its x86 I/O ports, as QEMU's
// docs/specs/fw_cfg.rst describes it: a 16-bit selector at 0x510 and a byte-wide data
// port at 0x511 that reads the selected item from its start. The DMA interface (0x514)
// is not offered: FW_CFG_ID says so (bit 1 clear) and every guest driver checks it.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/result.h"
#include "vmm/bus.h"

namespace softkvm::vmm {

namespace fwcfg {
// Keys (QEMU include/standard-headers/linux/qemu_fw_cfg.h and hw/nvram/fw_cfg.h).
inline constexpr uint16_t kSignature = 0x0000;  // "QEMU"
inline constexpr uint16_t kId = 0x0001;         // u32 LE feature bits
inline constexpr uint16_t kUuid = 0x0002;       // 16 bytes
inline constexpr uint16_t kRamSize = 0x0003;    // u64 LE, bytes
inline constexpr uint16_t kNbCpus = 0x0005;     // u16 LE, processors at start-up
inline constexpr uint16_t kMaxCpus = 0x000F;    // u16 LE
inline constexpr uint16_t kCmdlineAddr = 0x0013, kCmdlineSize = 0x0014, kCmdlineData = 0x0015;
inline constexpr uint16_t kFileDir = 0x0019;         // the file directory (big-endian)
inline constexpr uint16_t kFileFirst = 0x0020;       // keys of the files, in name order
inline constexpr uint16_t kWriteChannel = 0x4000;    // selector bit 14: ignored for reads
inline constexpr uint16_t kArchLocal = 0x8000;       // selector bit 15
inline constexpr uint32_t kIdTraditional = 1u << 0;  // FW_CFG_ID bit 0: ports 0x510/0x511
inline constexpr uint32_t kIdDma = 1u << 1;          // FW_CFG_ID bit 1: DMA at 0x514
inline constexpr size_t kFileNameMax = 56;           // FWCfgFile.name, with its NUL
inline constexpr size_t kFileEntrySize = 64;
inline constexpr uint32_t kE820Ram = 1;       // etc/e820 entry type
inline constexpr size_t kE820EntrySize = 20;  // u64 address, u64 length, u32 type
}  // namespace fwcfg

class FwCfg final : public Device {
  public:
    static constexpr uint16_t kPort = 0x510;  // selector; data at kPort + 1
    static constexpr uint64_t kPorts = 2;

    FwCfg();
    std::string name() const override { return "fw_cfg"; }
    void read(uint64_t offset, uint8_t* data, uint8_t size) override;
    void write(uint64_t offset, const uint8_t* data, uint8_t size) override;

    void set_item(uint16_t key, std::vector<uint8_t> bytes);
    void set_u16(uint16_t key, uint16_t v);
    void set_u32(uint16_t key, uint32_t v);
    void set_u64(uint16_t key, uint64_t v);
    // Adds a named file; keys follow the names' order, as in QEMU. EINVAL for a name of
    // 56 bytes or more, EEXIST for a second file of the same name.
    Status add_file(const std::string& name, std::vector<uint8_t> bytes);
    // The item under `key` (empty if none), for tests and the ACPI builder.
    const std::vector<uint8_t>& item(uint16_t key) const;

  private:
    void rebuild_directory();
    std::map<uint16_t, std::vector<uint8_t>> items_;
    std::map<std::string, std::vector<uint8_t>> files_;
    uint16_t selected_ = 0;
    size_t offset_ = 0;
};

// The items a softkvm machine offers (docs/machine.md): signature, ID, UUID (zero),
// RAM size, processors, and etc/e820 describing RAM as one region from 0.
struct FwCfgConfig {
    uint64_t ram = 0;
    uint16_t cpus = 1, max_cpus = 1;
};
void populate_fw_cfg(FwCfg& f, const FwCfgConfig& c);

}  // namespace softkvm::vmm
