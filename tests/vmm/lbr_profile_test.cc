// The host-side LBR profile's aggregation (softkvm profile --lbr) and System.map symbols.
#include <gtest/gtest.h>

#include "vmm/lbr_profile.h"
#include "vmm/symbols.h"

namespace softkvm::vmm {
namespace {

using Rec = accel::Vcpu::BranchRecord;

// main at 0x1000, work at 0x2000, leaf at 0x3000 (a System.map has no sizes).
SymbolTable three_functions() {
    auto t = SymbolTable::from_system_map(
        "0000000000001000 T main\n0000000000002000 t work\n0000000000003000 W leaf\n"
        "0000000000004000 D data\n");
    EXPECT_TRUE(t.ok());
    return t ? std::move(t).value() : SymbolTable{};
}

TEST(SystemMap, ReadsTextSymbolsOnly) {
    const SymbolTable t = three_functions();
    EXPECT_EQ(t.size(), 3u);
    EXPECT_EQ(t.describe(0x2010), "work+0x10");
    EXPECT_EQ(t.describe(0x3000), "leaf");
    // No size in a System.map: the last text symbol covers what follows it.
    EXPECT_EQ(t.describe(0x4008), "leaf+0x1008");
    EXPECT_EQ(t.describe(0xFFF), "");
}

TEST(SystemMap, RefusesOtherText) {
    EXPECT_FALSE(SymbolTable::from_system_map("").ok());
    EXPECT_FALSE(SymbolTable::from_system_map("#!/bin/sh\necho hi\n").ok());
    EXPECT_FALSE(SymbolTable::from_system_map("1000 T main\n1000 TT x\n").ok());
    EXPECT_FALSE(SymbolTable::from_system_map("12345678901234567 T toolong\n").ok());
    auto bad = SymbolTable::from_system_map("1000 T main\n\nzz T nothex\n");
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("line 3"), std::string::npos);
}

TEST(LbrProfile, CountsPairsMostFrequentFirst) {
    const SymbolTable syms = three_functions();
    LbrProfile p(100, syms);
    p.add_sample({{0x2010, 0x2000}, {0x1004, 0x2000}});
    p.add_sample({{0x2010, 0x2000}, {0x2020, 0x1008}});
    p.add_sample({});  // an empty stack is a sample without records
    EXPECT_EQ(p.samples(), 3u);
    EXPECT_EQ(p.records(), 4u);
    const auto pairs = p.pairs();
    ASSERT_EQ(pairs.size(), 3u);
    EXPECT_EQ(pairs[0].from, 0x2010u);
    EXPECT_EQ(pairs[0].count, 2u);
    // Ties in address order: 0x1004 before 0x2020.
    EXPECT_EQ(pairs[1].from, 0x1004u);
    EXPECT_EQ(pairs[2].from, 0x2020u);
}

TEST(LbrProfile, BuildsCallChainsFromCallsAndReturns) {
    const SymbolTable syms = three_functions();
    LbrProfile p(100, syms);
    // Oldest first: main calls work, work loops, work calls leaf (newest).
    p.add_sample({{0x2040, 0x3000}, {0x2030, 0x2010}, {0x1010, 0x2000}});
    // main calls work, work calls leaf, leaf returns into work.
    p.add_sample({{0x3008, 0x2044}, {0x2040, 0x3000}, {0x1010, 0x2000}});
    // A return to a function that is not the recorded caller restarts the chain there.
    p.add_sample({{0x3008, 0x1014}, {0x2040, 0x3000}});
    ASSERT_EQ(p.chains().size(), 3u);
    EXPECT_EQ(p.chains().at("main;work;leaf"), 1u);
    EXPECT_EQ(p.chains().at("main;work"), 1u);
    EXPECT_EQ(p.chains().at("main"), 1u);
}

TEST(LbrProfile, UnnamedAddressesAreHex) {
    const SymbolTable none;
    LbrProfile p(1, none);
    p.add_sample({{0x500, 0x600}});
    ASSERT_EQ(p.chains().size(), 1u);
    EXPECT_EQ(p.chains().begin()->first, "0x600");
}

}  // namespace
}  // namespace softkvm::vmm
