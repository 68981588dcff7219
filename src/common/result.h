// A small value-or-error type for errors that cross layer boundaries (C++20 has no
// std::expected). Errors carry a message with context and an errno-style code.
#pragma once
#include <string>
#include <utility>
#include <variant>

namespace softkvm {

struct Error {
    int code = 0;         // errno value where one applies, else 0
    std::string message;  // one line, with context
};

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error e) : v_(std::move(e)) {}
    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() & { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    const T& value() const& { return std::get<0>(v_); }
    T* operator->() { return &value(); }
    T& operator*() { return value(); }
    const Error& error() const { return std::get<1>(v_); }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error e) : err_(std::move(e)), ok_(false) {}
    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const Error& error() const { return err_; }

private:
    Error err_;
    bool ok_ = true;
};

using Status = Result<void>;

inline Error make_error(std::string msg, int code = 0) { return Error{code, std::move(msg)}; }

}  // namespace softkvm
