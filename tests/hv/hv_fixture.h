// The fixture the hv layer's tests share: a VM with 2 MiB of RAM at guest-physical 0 and
// vCPUs started in the multiboot entry state (flat 32-bit protected mode, no paging).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>

#include "hv/vm.h"

namespace softkvm::hv::hvtest {

constexpr uint64_t kRam = 2 << 20;
constexpr uint64_t kCode = 0x10000;  // where load() puts a guest and vcpu32() starts it
constexpr uint64_t kStack = 0x8000;

// A flat 4 GiB segment: 32-bit (D/B set) or, with code64, a 64-bit code segment (L set).
inline abi::Segment flat(uint16_t sel, uint8_t type, bool code64 = false) {
    abi::Segment s;
    s.base = 0, s.limit = 0xFFFFFFFF, s.selector = sel, s.type = type, s.present = 1;
    s.s = 1, s.g = 1, s.db = code64 ? 0 : 1, s.l = code64 ? 1 : 0;
    return s;
}

class HvFixture : public ::testing::Test {
  protected:
    HvFixture() : ram_(static_cast<uint8_t*>(std::aligned_alloc(4096, kRam))) {
        std::memset(ram_, 0, kRam);
        EXPECT_TRUE(vm_.set_memory_region(0, 0, kRam, ram_).ok());
    }
    ~HvFixture() override { std::free(ram_); }

    // Creates vCPU `id` in flat 32-bit protected mode (CS 0x08, data 0x10, CR0 = PE|ET)
    // at `rip` with RSP = kStack.
    std::unique_ptr<Vcpu> vcpu32(uint64_t rip = kCode, uint32_t id = 0) {
        auto v = vm_.create_vcpu(id);
        EXPECT_TRUE(v.ok());
        auto vcpu = std::move(v).value();
        abi::SpecialRegs s = vcpu->get_sregs();
        s.cs = flat(0x08, 0xB);
        s.ds = s.es = s.fs = s.gs = s.ss = flat(0x10, 0x3);
        s.cr0 = 0x11;
        EXPECT_TRUE(vcpu->set_sregs(s).ok());
        abi::Regs r;
        r.rip = rip;
        r.rsp = kStack;
        vcpu->set_regs(r);
        return vcpu;
    }

    template <size_t N>
    void load(const uint8_t (&code)[N], uint64_t at = kCode) {
        std::memcpy(ram_ + at, code, N);
    }

    uint8_t* ram_;
    Vm vm_;
};

}  // namespace softkvm::hv::hvtest
