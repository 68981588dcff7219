// --cpu-model and --lbr-fmt (spec §2.2: QEMU's lbr-fmt property under KVM's rule: 0 hides
// guest LBR, any other value must equal the host's format; on emu the model is the host).
#include "cli/cpu_options.h"

#include <cstdio>

#include "accel/accel.h"
#include "cli/exit_codes.h"

namespace softkvm::cli {

void add_cpu_options(CLI::App& app, std::string& model, int& lbr_fmt) {
    std::string names;
    for (const auto& m : accel::emu_cpu_models()) names += (names.empty() ? "" : ", ") + m.name;
    app.add_option("--cpu-model", model,
                   "CPU model (emu): " + names + "; the first is the default");
    app.add_option("--lbr-fmt", lbr_fmt,
                   "Guest LBR format: 0 hides guest LBR, otherwise the model's format");
}

int check_cpu_options(const std::string& accel, const std::string& model, int lbr_fmt,
                      const char* command) {
    if (lbr_fmt < -1 || lbr_fmt > 63) {
        std::fprintf(stderr, "softkvm %s: --lbr-fmt %d: a format is 0-63\n", command, lbr_fmt);
        return kExitUsage;
    }
    if (accel != "emu") return kExitOk;
    const auto models = accel::emu_cpu_models();
    const accel::CpuModelInfo* found = model.empty() ? &models.front() : nullptr;
    std::string names;
    for (const auto& m : models) {
        names += (names.empty() ? "" : ", ") + m.name;
        if (m.name == model) found = &m;
    }
    if (!found) {
        std::fprintf(stderr, "softkvm %s: --cpu-model %s: unknown model (known: %s)\n", command,
                     model.c_str(), names.c_str());
        return kExitUsage;
    }
    if (lbr_fmt > 0 && lbr_fmt != found->lbr_format) {
        std::fprintf(stderr,
                     "softkvm %s: --lbr-fmt %d does not match the %s model's LBR format %d "
                     "(0 hides guest LBR)\n",
                     command, lbr_fmt, found->name.c_str(), found->lbr_format);
        return kExitUsage;
    }
    return kExitOk;
}

}  // namespace softkvm::cli
