// Bytes for the serial port's receiver that arrive on another thread (the terminal): the
// producer push()es them and kicks the vCPU; the run loop feeds them into the UART's
// receive FIFO as it has room, and, while the input is open, waits for more instead of
// ending the run when the guest halts with nothing else to wake it.
#pragma once
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <functional>
#include <mutex>
#include <string>

#include "vmm/devices/uart16550.h"

namespace softkvm::vmm {

class SerialInput {
  public:
    // `kick` makes a run in progress return soon (Vcpu::kick).
    void set_kick(std::function<void()> kick);
    // Producer side.
    void push(const char* data, size_t n);
    void close();
    // Run-loop side. Moves queued bytes into `uart`; true if any moved.
    bool feed(Uart16550& uart);
    // True (once) when a push() kicked the vCPU since the last call.
    bool take_kick() { return kicked_.exchange(false); }
    bool open() const { return !closed_; }
    bool empty();
    // Waits until bytes are queued, the input closes or `*stop` is non-zero (polled).
    void wait(const volatile sig_atomic_t* stop);

  private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::string queue_;
    std::function<void()> kick_;
    std::atomic<bool> kicked_{false};
    std::atomic<bool> closed_{false};
};

}  // namespace softkvm::vmm
