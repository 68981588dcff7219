#include <cerrno>

#include "accel/backends.h"

namespace softkvm::accel {
Result<std::unique_ptr<Accelerator>> create_emu_accelerator() {
    return make_error("emu accelerator: not implemented yet", ENOSYS);
}
}  // namespace softkvm::accel
