#include "vmm/devices/fw_cfg.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

namespace softkvm::vmm {
namespace {

void put_le(std::vector<uint8_t>& out, uint64_t v, int bytes) {
    for (int k = 0; k < bytes; ++k) out.push_back(static_cast<uint8_t>(v >> (8 * k)));
}
void put_be(std::vector<uint8_t>& out, uint64_t v, int bytes) {
    for (int k = bytes - 1; k >= 0; --k) out.push_back(static_cast<uint8_t>(v >> (8 * k)));
}

}  // namespace

FwCfg::FwCfg() {
    set_item(fwcfg::kSignature, {'Q', 'E', 'M', 'U'});
    set_u32(fwcfg::kId, fwcfg::kIdTraditional);
    rebuild_directory();
}

void FwCfg::read(uint64_t offset, uint8_t* data, uint8_t size) {
    // Only a byte read of the data port is decoded (fw_cfg.rst: 8-bit on an I/O port).
    if (offset != 1 || size != 1) {
        std::memset(data, 0xFF, size);
        return;
    }
    const std::vector<uint8_t>& it = item(static_cast<uint16_t>(selected_ & ~fwcfg::kWriteChannel));
    data[0] = offset_ < it.size() ? it[offset_] : 0;  // past the end: 0x00
    if (offset_ < it.size()) ++offset_;
}

void FwCfg::write(uint64_t offset, const uint8_t* data, uint8_t size) {
    // A 16-bit write of the selector selects an item and rewinds it; writes to the data
    // port are ignored (QEMU 2.4 and later).
    if (offset == 0 && size == 2) {
        selected_ = static_cast<uint16_t>(data[0] | (data[1] << 8));
        offset_ = 0;
    }
}

void FwCfg::set_item(uint16_t key, std::vector<uint8_t> bytes) {
    items_[key] = std::move(bytes);
}

void FwCfg::set_u16(uint16_t key, uint16_t v) {
    std::vector<uint8_t> b;
    put_le(b, v, 2);
    set_item(key, std::move(b));
}
void FwCfg::set_u32(uint16_t key, uint32_t v) {
    std::vector<uint8_t> b;
    put_le(b, v, 4);
    set_item(key, std::move(b));
}
void FwCfg::set_u64(uint16_t key, uint64_t v) {
    std::vector<uint8_t> b;
    put_le(b, v, 8);
    set_item(key, std::move(b));
}

Status FwCfg::add_file(const std::string& name, std::vector<uint8_t> bytes) {
    if (name.empty() || name.size() >= fwcfg::kFileNameMax)
        return make_error(fmt::format("fw_cfg file name '{}' must have 1 to {} bytes", name,
                                      fwcfg::kFileNameMax - 1),
                          EINVAL);
    if (files_.count(name)) return make_error(fmt::format("fw_cfg file '{}' exists", name), EEXIST);
    files_[name] = std::move(bytes);
    rebuild_directory();
    return {};
}

const std::vector<uint8_t>& FwCfg::item(uint16_t key) const {
    static const std::vector<uint8_t> kNone;
    auto it = items_.find(key);
    return it == items_.end() ? kNone : it->second;
}

void FwCfg::rebuild_directory() {
    for (auto it = items_.lower_bound(fwcfg::kFileFirst);
         it != items_.end() && it->first < fwcfg::kWriteChannel;)
        it = items_.erase(it);
    std::vector<uint8_t> dir;
    put_be(dir, files_.size(), 4);
    uint16_t key = fwcfg::kFileFirst;
    for (const auto& [name, bytes] : files_) {  // std::map: in name (strcmp) order
        put_be(dir, bytes.size(), 4);
        put_be(dir, key, 2);
        put_be(dir, 0, 2);
        const size_t at = dir.size();
        dir.resize(at + fwcfg::kFileNameMax, 0);
        std::memcpy(&dir[at], name.data(), name.size());
        items_[key++] = bytes;
    }
    items_[fwcfg::kFileDir] = std::move(dir);
}

void populate_fw_cfg(FwCfg& f, const FwCfgConfig& c) {
    f.set_item(fwcfg::kUuid, std::vector<uint8_t>(16, 0));
    f.set_u64(fwcfg::kRamSize, c.ram);
    f.set_u16(fwcfg::kNbCpus, c.cpus);
    f.set_u16(fwcfg::kMaxCpus, c.max_cpus);
    std::vector<uint8_t> e820;
    put_le(e820, 0, 8);
    put_le(e820, c.ram, 8);
    put_le(e820, fwcfg::kE820Ram, 4);
    (void)f.add_file("etc/e820", std::move(e820));  // a fixed, valid name
}

}  // namespace softkvm::vmm
