// The bare machine (bare_machine.h) as a GoogleTest fixture.
#pragma once
#include <gtest/gtest.h>

#include "bare_machine.h"

namespace softkvm::cpu::test {

class Machine : public ::testing::Test, public BareMachine {};

// Runs `code`, a guest that calls the function at linear 0x300000 (`mov $1,%eax; ret`)
// three times, points that 2 MiB page at physical 0 (where `mov $2,%eax; ret` is loaded at
// 0x100000), invalidates it with INVLPG and calls three times more, reporting the sum on
// port 0x10: on each engine the sum is 3 * 1 + 3 * 2 only if the INVLPG dropped the links
// and jump-cache entries into the old page.
template <size_t N>
void expect_calls_reach_remapped_page(const uint8_t (&code)[N]) {
    const uint8_t one[] = {0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3};  // mov $1,%eax; ret
    const uint8_t two[] = {0xb8, 0x02, 0x00, 0x00, 0x00, 0xc3};  // mov $2,%eax; ret
    for (Engine e : {Engine::Interp, Engine::Translate}) {
        BareMachine m;
        if (!m.cpu_.set_engine(e)) continue;
        if (m.cpu_.translator()) m.cpu_.translator()->set_translate_after(1);
        m.load(code);
        m.load(one, 0x300000);
        m.load(two, 0x100000);
        EXPECT_EQ(m.cpu_.run(0), StopReason::Owner);
        ASSERT_EQ(m.owner_.outs.size(), 1u) << engine_name(e);
        EXPECT_EQ(m.owner_.outs[0].value, 9u) << engine_name(e);
    }
}

}  // namespace softkvm::cpu::test
