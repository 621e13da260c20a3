#include "local/preflight.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "local/process.hpp"
#include "local/replica_environment.hpp"
#include "local/run_setup.hpp"

namespace asya::local {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kCheckLinePrefix = R"({"asya_check":)";
constexpr std::size_t kOutputLinesShown = 10;

std::string_view name_of(std::string_view entry) {
  return entry.substr(0, entry.find('='));
}

// The first value of `name` in NAME=value `entries`, as getenv would see it.
std::optional<std::string> first_value(const std::vector<std::string>& entries,
                                       std::string_view name) {
  for (const auto& e : entries)
    if (name_of(e) == name) return e.substr(e.find('=') + 1);
  return std::nullopt;
}

// A lookup over NAME=value entries only (nothing from this process's environment).
EnvironmentLookup lookup_of(const std::vector<std::string>& entries) {
  std::map<std::string, std::string, std::less<>> values;
  for (const auto& e : entries) values.emplace(std::string(name_of(e)), e.substr(e.find('=') + 1));
  return environment_with(std::move(values),
                          [](std::string_view) -> std::optional<std::string> { return {}; });
}

std::string manifest_place(const manifest::Actor& actor) {
  return fmt::format("{}:{}: actor {}", actor.file, actor.line, actor.name);
}

// The last lines of `output`, indented, for a message.
std::string last_lines(const std::string& output, std::size_t count) {
  std::vector<std::string_view> lines;
  std::string_view rest = output;
  while (!rest.empty()) {
    auto end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    if (!line.empty() && !line.starts_with(kCheckLinePrefix)) lines.push_back(line);
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  std::string out;
  for (std::size_t i = lines.size() > count ? lines.size() - count : 0; i < lines.size(); ++i)
    out += fmt::format("\n    | {}", lines[i]);
  return out;
}

// One running `--check`.
struct HandlerCheck {
  const manifest::Actor* actor = nullptr;
  std::string handler;  // ASYA_HANDLER as the manifest gives it
  std::string working_dir;
  pid_t pid = 0;
  int read_fd = -1;
  std::string output;
  bool timed_out = false;
  int wait_status = 0;
};

std::string string_field(const boost::json::object& object, const char* key) {
  const auto* value = object.if_contains(key);
  return value && value->is_string() ? std::string(value->as_string()) : std::string();
}

// The Python modules in `dir` (name.py files and package folders), sorted, at most 12: what a
// typo in ASYA_HANDLER probably meant.
std::string modules_in(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const fs::path& path = entry.path();
    std::error_code entry_ec;
    if (entry.is_regular_file(entry_ec) && path.extension() == ".py" && path.stem() != "conftest")
      names.push_back(path.filename().string());
    else if (entry.is_directory(entry_ec) && fs::exists(path / "__init__.py", entry_ec))
      names.push_back(path.filename().string() + "/");
  }
  std::sort(names.begin(), names.end());
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < 12; ++i)
    out += (out.empty() ? "" : ", ") + names[i];
  if (names.size() > 12) out += ", ...";
  return out.empty() ? "none" : out;
}

// The problem a finished check reports, if any.
std::optional<PreflightProblem> judge(const HandlerCheck& check, const std::string& runtime) {
  const std::string place = manifest_place(*check.actor);
  // The check's own line; the handler's module may print anything before it.
  std::optional<boost::json::object> result;
  std::string_view rest = check.output;
  while (!rest.empty()) {
    auto end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    if (line.starts_with(kCheckLinePrefix)) {
      boost::system::error_code ec;
      auto parsed = boost::json::parse(line, ec);
      if (!ec && parsed.is_object() && parsed.as_object().contains("asya_check") &&
          parsed.as_object().at("asya_check").is_object())
        result = parsed.as_object().at("asya_check").as_object();
    }
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  if (!result) {
    return PreflightProblem{
        place, fmt::format("the handler check `{} --check` (in {}) {} without an answer; its "
                           "output:{}",
                           runtime, check.working_dir, describe_exit(check.wait_status),
                           last_lines(check.output, kOutputLinesShown))};
  }
  const auto* ok = result->if_contains("ok");
  if (ok && ok->is_bool() && ok->as_bool()) return std::nullopt;
  std::string module = string_field(*result, "module");
  std::string file = string_field(*result, "file");
  std::string error = string_field(*result, "error");
  return PreflightProblem{
      place,
      fmt::format("its Python handler cannot be loaded: {}\n    module: {}\n    file found: {}\n"
                  "    working directory: {}{}{}",
                  error.empty() ? "(no reason given)" : error, module.empty() ? "-" : module,
                  file.empty() ? "none" : file, check.working_dir,
                  file.empty() ? " (its modules: " + modules_in(check.working_dir) + ")" : "",
                  last_lines(check.output, kOutputLinesShown).empty()
                      ? ""
                      : "\n    output:" + last_lines(check.output, kOutputLinesShown))};
}

// Starts the check of one actor; a problem when it cannot be started.
std::optional<PreflightProblem> start_check(HandlerCheck& check, const PreflightOptions& options) {
  const manifest::Actor& actor = *check.actor;
  const fs::path socket = options.supervisor.paths.run() / (actor.name + "-check") / "rt.sock";
  auto env = runtime_environment(actor, socket, options.environment);
  if (!env) return PreflightProblem{manifest_place(actor), env.error().message};
  check.handler = actor.runtime().env_value("ASYA_HANDLER").value_or("");
  check.working_dir = runtime_working_dir(actor).string();
  std::error_code ec;
  if (!fs::is_directory(check.working_dir, ec)) {
    return PreflightProblem{
        manifest_place(actor),
        fmt::format("the runtime's working directory {} does not exist; fix workingDir (relative "
                    "to the manifest's folder)",
                    check.working_dir)};
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return PreflightProblem{manifest_place(actor),
                            fmt::format("cannot check the handler: pipe: {}", strerror(errno))};
  ProcessSpec spec;
  spec.argv = options.supervisor.python_runtime;
  spec.argv.push_back("--check");
  spec.env = std::move(*env);
  spec.working_dir = check.working_dir;
  spec.output_fd = fds[1];
  auto pid = spawn(spec);
  ::close(fds[1]);
  if (!pid) {
    ::close(fds[0]);
    return PreflightProblem{manifest_place(actor),
                            fmt::format("cannot run the Python runtime to check the handler: {}; "
                                        "set ASYA_PYTHON to a Python 3 interpreter",
                                        pid.error().message)};
  }
  check.pid = *pid;
  check.read_fd = fds[0];
  return std::nullopt;
}

// Reads every check's output until each has closed it or `deadline` passes.
void collect_output(std::vector<HandlerCheck>& checks, Clock::time_point deadline) {
  while (true) {
    std::vector<pollfd> fds;
    std::vector<HandlerCheck*> owners;
    for (auto& c : checks) {
      if (c.read_fd < 0) continue;
      fds.push_back({c.read_fd, POLLIN, 0});
      owners.push_back(&c);
    }
    if (fds.empty()) return;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      for (auto* c : owners) c->timed_out = true;
      return;
    }
    int n =
        ::poll(fds.data(), fds.size(), static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (n < 0 && errno != EINTR) return;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      char buffer[4096];
      ssize_t got = ::read(fds[i].fd, buffer, sizeof buffer);
      if (got > 0) {
        // Bounded: a module that prints without end must not fill the memory.
        if (owners[i]->output.size() < (1u << 20))
          owners[i]->output.append(buffer, static_cast<std::size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(owners[i]->read_fd);
        owners[i]->read_fd = -1;
      }
    }
  }
}

}  // namespace

void check_sidecar_settings(const std::vector<manifest::Actor>& actors,
                            const PreflightOptions& options, PreflightReport& report) {
  if (!options.check_sidecar_settings) return;
  // What the supervisor's sidecars inherit (run_setup.hpp), from the given environment.
  auto inherited = sidecar_base_environment(options.supervisor, options.environment);
  if (!inherited) {
    report.problems.push_back({"the sidecars", inherited.error().message});
    return;
  }
  const std::vector<std::string>& base = *inherited;
  const std::string prefix =
      first_value(options.environment, "ASYA_QUEUE_PREFIX").value_or("asya-");
  // (actor, is an end actor); end actors are known by name only, as the supervisor runs them.
  std::vector<std::pair<manifest::Actor, bool>> checked;
  for (const auto& actor : actors) checked.emplace_back(actor, false);
  if (options.supervisor.end_actors) {
    for (const char* name : {"happy-end", "error-end"}) {
      manifest::Actor end;
      end.name = name;
      checked.emplace_back(std::move(end), true);
    }
  }
  // error -> the actors whose sidecar gives it, in order.
  std::vector<std::pair<std::string, std::vector<std::string>>> errors;
  for (const auto& [actor, end_actor] : checked) {
    ReplicaSidecar replica{end_actor,
                           options.supervisor.paths.run() / (actor.name + "-0") / "rt.sock", 0};
    auto env = replica_sidecar_environment(actor, replica, options.supervisor, prefix, base);
    std::string error;
    if (!env) {
      error = env.error().message;
    } else if (Status st = options.check_sidecar_settings(lookup_of(*env)); !st) {
      error = st.message();
    } else {
      continue;
    }
    auto same =
        std::find_if(errors.begin(), errors.end(), [&](const auto& e) { return e.first == error; });
    if (same == errors.end())
      errors.push_back({error, {actor.name}});
    else
      same->second.push_back(actor.name);
  }
  for (const auto& [error, names] : errors) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    std::string message = error;
    // Most sidecar settings come from the environment of `asya up` (docs/local.md).
    std::string variable(name_of(error));
    if (!variable.empty() && variable.find(' ') == std::string::npos &&
        first_value(options.environment, variable))
      message += fmt::format(
          " ({} is set in the environment of `asya up`, which every sidecar "
          "inherits)",
          variable);
    report.problems.push_back(
        {fmt::format("the sidecar{} of {}", names.size() > 1 ? "s" : "", list), message});
  }
}

void check_gateway_port(const PreflightOptions& options, PreflightReport& report) {
  const int port = options.supervisor.gateway_port;
  if (options.supervisor.routes_file.empty() || port <= 0) return;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;  // cannot tell; the gateway's own start will say
  // As the gateway binds: a port held only by connections in TIME_WAIT is free for it.
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  int error = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) error = errno;
  ::close(fd);
  if (error == 0) return;
  report.problems.push_back(
      {"the gateway",
       fmt::format("port {} on 127.0.0.1 is not available ({}): another process (another `asya "
                   "up`?) listens there. Use --gateway-port 0 for any free port, --gateway-port N "
                   "for another one, or --no-gateway",
                   port, strerror(error))});
}

void check_python_handlers(const std::vector<manifest::Actor>& actors,
                           const PreflightOptions& options, PreflightReport& report) {
  if (options.supervisor.python_runtime.empty()) return;
  std::string runtime;
  for (const auto& part : options.supervisor.python_runtime)
    runtime += (runtime.empty() ? "" : " ") + part;
  std::vector<HandlerCheck> checks;
  for (const auto& actor : actors) {
    if (!actor.runtime().command.empty()) continue;  // not the bundled Python runtime
    HandlerCheck check;
    check.actor = &actor;
    checks.push_back(std::move(check));
  }
  for (auto& check : checks) {
    if (auto problem = start_check(check, options)) report.problems.push_back(std::move(*problem));
  }
  collect_output(checks, Clock::now() + options.import_timeout);
  for (auto& check : checks) {
    if (check.pid == 0) continue;
    if (check.timed_out) {
      ::kill(-check.pid, SIGKILL);  // its own process group (spawn)
      ::kill(check.pid, SIGKILL);
      ::close(check.read_fd);
      check.read_fd = -1;
    }
    while (::waitpid(check.pid, &check.wait_status, 0) < 0 && errno == EINTR) {
    }
    if (check.timed_out) {
      report.warnings.push_back(fmt::format(
          "{}: importing handler {} took longer than {}; not checked, starting anyway",
          manifest_place(*check.actor), check.handler, format_duration(options.import_timeout)));
      continue;
    }
    if (auto problem = judge(check, runtime)) report.problems.push_back(std::move(*problem));
  }
}

PreflightReport run_preflight(const std::vector<manifest::Actor>& actors,
                              const PreflightOptions& options) {
  PreflightReport report;
  check_sidecar_settings(actors, options, report);
  check_gateway_port(options, report);
  check_python_handlers(actors, options, report);
  return report;
}

}  // namespace asya::local
