#include "cli/installation.hpp"

#include <unistd.h>

#include <fstream>
#include <regex>
#include <system_error>

#include <fmt/format.h>

#include "cli/client.hpp"
#include "common/env.hpp"

#ifndef ASYA_SOURCE_DIR
#define ASYA_SOURCE_DIR ""
#endif

namespace asya::cli {

namespace fs = std::filesystem;

fs::path executable_dir() {
  std::error_code ec;
  auto self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : self.parent_path();
}

std::string find_sidecar() {
  if (auto env = env_get("ASYA_SIDECAR_BIN"); env && !env->empty()) {
    if (::access(env->c_str(), X_OK) != 0)
      fail(kExitUsage, fmt::format("ASYA_SIDECAR_BIN={} is not an executable file", *env));
    return fs::absolute(*env).string();
  }
  auto dir = executable_dir();
  for (auto candidate : {dir / "asya-sidecar", dir / ".." / "sidecar" / "asya-sidecar"}) {
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.lexically_normal().string();
  }
  fail(kExitUsage,
       fmt::format("cannot find asya-sidecar next to {} or in {}; build it (ninja asya-sidecar) "
                   "or set ASYA_SIDECAR_BIN",
                   (dir / "asya").string(), (dir / ".." / "sidecar").lexically_normal().string()));
}

std::string find_gateway() {
  if (auto env = env_get("ASYA_GATEWAY_BIN"); env && !env->empty()) {
    if (::access(env->c_str(), X_OK) != 0)
      fail(kExitUsage, fmt::format("ASYA_GATEWAY_BIN={} is not an executable file", *env));
    return fs::absolute(*env).string();
  }
  auto dir = executable_dir();
  for (auto candidate : {dir / "asya-gateway", dir / ".." / "gateway" / "asya-gateway"}) {
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.lexically_normal().string();
  }
  fail(kExitUsage,
       fmt::format("a routes file needs asya-gateway, but it is not next to {} or in {}; build it "
                   "(ninja asya-gateway), set ASYA_GATEWAY_BIN, or run without the gateway "
                   "(--no-gateway)",
                   (dir / "asya").string(), (dir / ".." / "gateway").lexically_normal().string()));
}

std::vector<std::string> find_python_runtime() {
  std::string python = env_string("ASYA_PYTHON", "python3");
  if (auto env = env_get("ASYA_PYTHON_RUNTIME"); env && !env->empty()) {
    if (!fs::is_regular_file(*env))
      fail(kExitUsage, fmt::format("ASYA_PYTHON_RUNTIME={} is not a file", *env));
    return {python, fs::absolute(*env).string()};
  }
  // Installed trees first (bin/../share/asya), so an installed asya never runs the runtime of the
  // source tree it was built from.
  auto dir = executable_dir();
  std::vector<fs::path> candidates{dir / "asya_runtime.py",
                                   dir / ".." / "share" / "asya" / "asya_runtime.py"};
  if (std::string(ASYA_SOURCE_DIR).size())
    candidates.push_back(fs::path(ASYA_SOURCE_DIR) / "runtimes" / "python" / "asya_runtime.py");
  for (const auto& c : candidates) {
    if (fs::is_regular_file(c)) return {python, c.lexically_normal().string()};
  }
  fail(kExitUsage,
       fmt::format("cannot find the Python runtime asya_runtime.py next to asya, in {} or in the "
                   "source tree; set ASYA_PYTHON_RUNTIME=/path/to/asya_runtime.py",
                   (dir / ".." / "share" / "asya").lexically_normal().string()));
}

std::optional<std::string> own_build_dir() {
  auto dir = (executable_dir() / ".." / "..").lexically_normal();
  std::error_code ec;
  if (fs::is_regular_file(dir / "CMakeCache.txt", ec)) return dir.string();
  return std::nullopt;
}

std::optional<std::string> python_runtime_version(const fs::path& runtime_file) {
  std::ifstream in(runtime_file);
  static const std::regex kVersionLine(R"re(^__version__\s*=\s*["']([^"']+)["'])re");
  std::string line;
  std::smatch match;
  while (std::getline(in, line)) {
    if (std::regex_search(line, match, kVersionLine)) return match[1].str();
  }
  return std::nullopt;
}

}  // namespace asya::cli
