#include <cerrno>

#include "accel/backends.h"

namespace softkvm::accel {
Result<std::unique_ptr<Accelerator>> create_kvm_accelerator() {
    return make_error("kvm accelerator: not implemented yet", ENOSYS);
}
}  // namespace softkvm::accel
