// Where the other parts of Asya are, seen from the running `asya`: asya-sidecar and asya-gateway
// next to it (an installed bin/) or in the build tree (../sidecar/, ../gateway/), the Python
// runtime in ../share/asya/ (installed) or the source tree. An environment variable overrides
// each (ASYA_SIDECAR_BIN, ASYA_GATEWAY_BIN, ASYA_PYTHON_RUNTIME). Used by `asya up` and
// `asya version`; docs/install.md describes the installed layout.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace asya::cli {

// The directory of the running asya binary (/proc/self/exe; the current directory if unknown).
std::filesystem::path executable_dir();

// The asya-sidecar to start; fail(kExitUsage) naming where it looked when there is none.
std::string find_sidecar();

// The asya-gateway to start; fail(kExitUsage) naming where it looked when there is none.
std::string find_gateway();

// The command that runs the Python runtime: {$ASYA_PYTHON or "python3", "/abs/asya_runtime.py"};
// fail(kExitUsage) naming where it looked when the file is nowhere.
std::vector<std::string> find_python_runtime();

// The build tree asya runs from (…/build when asya is …/build/src/cli/asya), if it is one.
std::optional<std::string> own_build_dir();

// The `__version__ = "X"` of a Python runtime file, read as text (nothing is imported or run);
// nullopt when the file has none.
std::optional<std::string> python_runtime_version(const std::filesystem::path& runtime_file);

}  // namespace asya::cli
