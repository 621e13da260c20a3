#include "cli/version_command.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/client.hpp"
#include "cli/installation.hpp"
#include "common/version.hpp"
#include "local/process.hpp"

namespace asya::cli {
namespace {

// The first line `binary --version` prints (its own version line), or why there is none.
Result<std::string> version_of_binary(const std::string& binary) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Error{fmt::format("pipe: {}", std::strerror(errno))};
  local::ProcessSpec spec;
  spec.argv = {binary, "--version"};
  spec.env = local::current_environment();
  spec.output_fd = fds[1];
  auto pid = local::spawn(spec);
  ::close(fds[1]);
  if (!pid) {
    ::close(fds[0]);
    return pid.error();
  }
  std::string output;
  char buffer[512];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    output.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
  }
  auto line = output.substr(0, output.find('\n'));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Error{fmt::format("`{} --version` {}: {}", binary, local::describe_exit(status), line)};
  return line;
}

// "<name> <version>  (<path>)" for a binary found by `find`, or "<name> not found: <why>".
bool print_binary(const char* name, std::string (*find)()) {
  try {
    auto path = find();
    auto line = version_of_binary(path);
    if (!line) {
      std::cout << name << " unknown: " << line.error().message << "\n";
      return false;
    }
    std::cout << *line << "  (" << path << ")\n";
    return true;
  } catch (const Exit& e) {
    std::cout << name << " not found: " << e.message << "\n";
    return false;
  }
}

}  // namespace

int run_version() {
  std::cout << "asya " << version() << "  (" << (executable_dir() / "asya").string() << ")\n";
  bool complete = print_binary("asya-sidecar", find_sidecar);
  complete = print_binary("asya-gateway", find_gateway) && complete;
  std::cout << "runtime protocol " << kRuntimeProtocolVersion << "\n";
  try {
    auto command = find_python_runtime();
    auto runtime_version = python_runtime_version(command.back());
    std::cout << "python runtime " << runtime_version.value_or("unknown") << "  (" << command.back()
              << ")\n";
    complete = complete && runtime_version.has_value();
  } catch (const Exit& e) {
    std::cout << "python runtime not found: " << e.message << "\n";
    complete = false;
  }
  return complete ? 0 : kExitNotFound;
}

}  // namespace asya::cli
