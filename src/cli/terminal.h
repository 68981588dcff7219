// The terminal as the guest's serial input (softkvm run on a terminal): standard input in
// raw mode (no line editing or echo: the guest echoes; Ctrl-C still stops softkvm), read
// on a thread into a vmm::SerialInput. The terminal's settings come back when this ends,
// however the run ended.
#pragma once
#include <termios.h>

#include <memory>
#include <thread>

#include "vmm/serial_input.h"

namespace softkvm::cli {

class TerminalInput {
  public:
    // Starts reading fd 0 into `input` when standard input and output are both a
    // terminal; otherwise does nothing.
    explicit TerminalInput(std::shared_ptr<vmm::SerialInput> input);
    ~TerminalInput();
    TerminalInput(const TerminalInput&) = delete;
    TerminalInput& operator=(const TerminalInput&) = delete;
    bool active() const { return active_; }

  private:
    void reader();

    std::shared_ptr<vmm::SerialInput> input_;
    struct termios saved_ = {};
    bool active_ = false;
    int wake_[2] = {-1, -1};
    std::thread thread_;
};

}  // namespace softkvm::cli
