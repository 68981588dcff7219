// The bare machine (bare_machine.h) as a GoogleTest fixture.
#pragma once
#include <gtest/gtest.h>

#include "bare_machine.h"

namespace softkvm::cpu::test {

class Machine : public ::testing::Test, public BareMachine {};

}  // namespace softkvm::cpu::test
