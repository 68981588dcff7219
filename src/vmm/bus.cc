#include "vmm/bus.h"

#include <fmt/format.h>

#include <cerrno>

namespace softkvm::vmm {

Status Bus::add(uint64_t base, uint64_t len, std::shared_ptr<Device> dev) {
    if (len == 0 || base + len < base) return make_error("bad device range", EINVAL);
    for (const auto& [b, r] : ranges_)
        if (base < b + r.len && b < base + len)
            return make_error(fmt::format("{} at {:#x} overlaps {} at {:#x}", dev->name(), base,
                                          r.dev->name(), b),
                              EEXIST);
    ranges_.emplace(base, Range{len, std::move(dev)});
    return {};
}

const std::pair<const uint64_t, Bus::Range>* Bus::find(uint64_t addr) const {
    auto it = ranges_.upper_bound(addr);
    if (it == ranges_.begin()) return nullptr;
    --it;
    return addr - it->first < it->second.len ? &*it : nullptr;
}

bool Bus::read(uint64_t addr, uint8_t* data, uint8_t size) {
    const auto* r = find(addr);
    if (!r) return false;
    r->second.dev->read(addr - r->first, data, size);
    return true;
}

bool Bus::write(uint64_t addr, const uint8_t* data, uint8_t size) {
    const auto* r = find(addr);
    if (!r) return false;
    r->second.dev->write(addr - r->first, data, size);
    return true;
}

}  // namespace softkvm::vmm
