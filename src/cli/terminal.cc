#include "cli/terminal.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

namespace softkvm::cli {

TerminalInput::TerminalInput(std::shared_ptr<vmm::SerialInput> input) : input_(std::move(input)) {
    // Both ends on a terminal: a person at it. (A test harness that captures the output
    // never gets raw mode, nor a halted guest that waits for keys.)
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO) || tcgetattr(STDIN_FILENO, &saved_) != 0)
        return;
    if (pipe(wake_) != 0) return;
    struct termios raw = saved_;
    raw.c_lflag &= ~(ICANON | ECHO | IEXTEN);  // ISIG stays: Ctrl-C stops softkvm
    raw.c_iflag &= ~(ICRNL | IXON | INLCR);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) != 0) {
        ::close(wake_[0]);
        ::close(wake_[1]);
        return;
    }
    active_ = true;
    thread_ = std::thread([this] { reader(); });
}

TerminalInput::~TerminalInput() {
    if (!active_) return;
    const char c = 0;
    (void)!::write(wake_[1], &c, 1);
    thread_.join();
    tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
    ::close(wake_[0]);
    ::close(wake_[1]);
}

void TerminalInput::reader() {
    for (;;) {
        struct pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {wake_[0], POLLIN, 0}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (fds[1].revents) break;  // the run is over
        if (!(fds[0].revents & (POLLIN | POLLHUP))) continue;
        char buf[256];
        const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // end of input
        input_->push(buf, static_cast<size_t>(n));
    }
    input_->close();
}

}  // namespace softkvm::cli
