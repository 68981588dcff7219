#include "vmm/serial_input.h"

#include <chrono>

namespace softkvm::vmm {

void SerialInput::set_kick(std::function<void()> kick) {
    std::lock_guard<std::mutex> lock(mu_);
    kick_ = std::move(kick);
}

void SerialInput::push(const char* data, size_t n) {
    std::function<void()> kick;
    {
        std::lock_guard<std::mutex> lock(mu_);
        queue_.append(data, n);
        kick = kick_;
    }
    kicked_ = true;
    cv_.notify_all();
    if (kick) kick();
}

void SerialInput::close() {
    closed_ = true;
    cv_.notify_all();
}

bool SerialInput::empty() {
    std::lock_guard<std::mutex> lock(mu_);
    return queue_.empty();
}

bool SerialInput::feed(Uart16550& uart) {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.empty()) return false;
    const size_t n = uart.receive(queue_.data(), queue_.size());
    queue_.erase(0, n);
    return n > 0;
}

void SerialInput::wait(const volatile sig_atomic_t* stop) {
    std::unique_lock<std::mutex> lock(mu_);
    // A signal handler cannot notify the condition variable: poll the stop flag.
    while (queue_.empty() && !closed_ && !(stop && *stop))
        cv_.wait_for(lock, std::chrono::milliseconds(50));
}

}  // namespace softkvm::vmm
