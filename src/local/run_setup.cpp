#include "local/run_setup.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "common/env.hpp"
#include "local/process.hpp"

namespace asya::local {
namespace {

// 32 random bytes from the kernel, as 64 hex digits.
Result<std::string> random_token() {
  unsigned char bytes[32];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return Error{fmt::format("cannot generate a token: getrandom: {}", std::strerror(errno))};
    got += static_cast<std::size_t>(n);
  }
  std::string out;
  for (unsigned char b : bytes) out += fmt::format("{:02x}", b);
  return out;
}

void set_variable(std::vector<std::string>& env, const std::string& name,
                  const std::string& value) {
  std::erase_if(env, [&](const std::string& e) { return e.rfind(name + "=", 0) == 0; });
  env.push_back(name + "=" + value);
}

}  // namespace

Result<int> claim_state_directory(const StatePaths& paths) {
  std::error_code ec;
  for (const auto& dir :
       {paths.root, paths.succeeded(), paths.failed(), paths.logs(), paths.run()}) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return Error{fmt::format("cannot create {}: {}", dir.string(), ec.message())};
  }
  int lock_fd = ::open(paths.lock_file().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (lock_fd >= 0) ::close(lock_fd);
    return Error{fmt::format(
        "another supervisor (pid {}) already runs on {}; stop it with `asya down` or use another "
        "--state-dir",
        running_supervisor(paths), paths.root.string())};
  }
  if (Status st = write_file_atomic(paths.pid_file(), fmt::format("{}\n", ::getpid())); !st) {
    ::close(lock_fd);
    return Error{st.message()};
  }
  return lock_fd;
}

Result<std::vector<std::string>> sidecar_base_environment(const SupervisorOptions& options,
                                                          std::vector<std::string> environment) {
  std::vector<std::string> env = std::move(environment);
  // The first entry of a name, as getenv sees it.
  auto value_of = [&env](std::string_view name) -> std::optional<std::string> {
    for (const auto& e : env)
      if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=')
        return e.substr(name.size() + 1);
    return std::nullopt;
  };
  if (options.transport == "sqlite")
    set_variable(env, "ASYA_SQLITE_PATH", options.paths.queues_db().string());
  if (!options.routes_file.empty()) {
    auto client_token = value_of("ASYA_GATEWAY_TOKEN");
    auto internal_token = value_of("ASYA_GATEWAY_INTERNAL_TOKEN");
    if (client_token && !client_token->empty() && (!internal_token || internal_token->empty())) {
      auto generated = random_token();
      if (!generated)
        return Error{fmt::format("ASYA_GATEWAY_INTERNAL_TOKEN: {}", generated.error().message)};
      set_variable(env, "ASYA_GATEWAY_INTERNAL_TOKEN", *generated);
    }
  }
  return env;
}

}  // namespace asya::local
