#include "accel/accel.h"

#include "accel/backends.h"

#include <cerrno>

namespace softkvm::accel {

std::vector<std::string> accelerator_names() {
    return {"emu", "kvm"};
}

Result<std::unique_ptr<Accelerator>> create_accelerator(const std::string& name) {
    if (name == "emu") return create_emu_accelerator();
    if (name == "kvm") return create_kvm_accelerator();
    return make_error("unknown accelerator '" + name + "' (choose emu or kvm)", EINVAL);
}

}  // namespace softkvm::accel
