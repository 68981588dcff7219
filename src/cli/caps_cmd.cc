// softkvm caps: which accelerators and features this host offers.
#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "accel/accel.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"

namespace softkvm::cli {
namespace {

struct AccelFacts {
    std::string name;
    bool available = false;
    std::string detail;
    std::vector<accel::Capability> caps;
};

std::vector<AccelFacts> gather() {
    std::vector<AccelFacts> out;
    for (const std::string& name : accel::accelerator_names()) {
        AccelFacts f;
        f.name = name;
        auto a = accel::create_accelerator(name);
        if (a) {
            f.available = true;
            f.detail = "usable";
            f.caps = a.value()->capabilities();
        } else {
            f.detail = a.error().message;
        }
        out.push_back(std::move(f));
    }
    return out;
}

int caps(bool json) {
    const std::vector<AccelFacts> facts = gather();
    if (json) {
        nlohmann::json j = nlohmann::json::array();
        for (const AccelFacts& f : facts) {
            nlohmann::json features = nlohmann::json::array();
            for (const auto& c : f.caps)
                features.push_back(
                    {{"name", c.name}, {"available", c.available}, {"detail", c.detail}});
            j.push_back({{"accelerator", f.name},
                         {"available", f.available},
                         {"detail", f.detail},
                         {"features", features}});
        }
        std::printf("%s\n", j.dump(2).c_str());
        return kExitOk;
    }
    for (const AccelFacts& f : facts) {
        std::printf("%-4s %-3s %s\n", f.name.c_str(), f.available ? "yes" : "no", f.detail.c_str());
        for (const auto& c : f.caps)
            std::printf("     %-20s %-3s %s\n", c.name.c_str(), c.available ? "yes" : "no",
                        c.detail.c_str());
    }
    return kExitOk;
}

}  // namespace

void add_caps_command(CLI::App& root, int& status) {
    auto json = std::make_shared<bool>(false);
    CLI::App* app = root.add_subcommand("caps", "Show the accelerators and features this host has");
    app->add_flag("--json", *json, "Print JSON instead of a table");
    app->callback([json, &status] { status = caps(*json); });
}

}  // namespace softkvm::cli
