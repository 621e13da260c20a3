#include "cli/up_command.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <set>
#include <string_view>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include "cli/client.hpp"
#include "cli/installation.hpp"
#include "common/env.hpp"
#include "gateway/config/tools_config.hpp"
#include "local/instance_id.hpp"
#include "local/preflight.hpp"
#include "local/process.hpp"
#include "local/state.hpp"
#include "local/supervisor.hpp"
#include "manifest/manifest.hpp"
#include "sidecar/config.hpp"
#include "transport/transport.hpp"

namespace asya::cli {
namespace {

namespace fs = std::filesystem;

// Expands $(NAME) in the runtime's command and args (local.md): from the container's env, else
// the environment of asya up, where ASYA_BUILD_DIR defaults to the build tree asya runs from.
// Returns the problems, one per line, as `file:line: field: message`.
std::string expand_commands(std::vector<manifest::Actor>& actors) {
  std::string problems;
  const auto build_dir = own_build_dir();
  for (auto& actor : actors) {
    manifest::Container& c = actor.containers.at(actor.runtime_container);
    auto lookup = [&](std::string_view name) -> std::optional<std::string> {
      for (const auto& var : c.env)
        if (var.name == name && var.value_from_yaml.empty()) return var.value;
      if (auto value = env_get(std::string(name).c_str())) return *value;
      if (name == "ASYA_BUILD_DIR" && build_dir) return *build_dir;
      return std::nullopt;
    };
    const std::string field =
        fmt::format("spec.workload.template.spec.containers[{}]", actor.runtime_container);
    for (auto [list, key] : {std::pair{&c.command, "command"}, std::pair{&c.args, "args"}}) {
      for (std::size_t i = 0; i < list->size(); ++i) {
        auto expanded = local::expand_references((*list)[i], lookup);
        if (expanded) {
          (*list)[i] = *expanded;
        } else {
          problems += fmt::format("{}:{}: {}.{}[{}]: {}\n", actor.file, actor.line, field, key, i,
                                  expanded.error().message);
        }
      }
    }
  }
  return problems;
}

// The gateway's tools file: --routes, else a routes.yaml/routes.yml given as a path or lying
// directly in a given directory. Removes routes files from `paths` (they are not manifests).
std::string find_routes(const UpArgs& args, std::vector<std::string>& paths) {
  std::vector<std::string> found;
  std::vector<std::string> manifests;
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      manifests.push_back(p);
      for (const char* name : {"routes.yaml", "routes.yml"})
        if (fs::is_regular_file(fs::path(p) / name, ec))
          found.push_back((fs::path(p) / name).string());
    } else if (manifest::is_routes_file(p)) {
      found.push_back(p);
    } else {
      manifests.push_back(p);
    }
  }
  paths = manifests;
  if (paths.empty()) paths.push_back(".");
  if (args.no_gateway) return "";
  if (!args.routes.empty()) {
    if (!fs::is_regular_file(args.routes))
      fail(kExitUsage,
           fmt::format("--routes {}: no such file; give the gateway's routes.yaml", args.routes));
    return fs::absolute(args.routes).lexically_normal().string();
  }
  if (found.size() > 1) {
    std::string list;
    for (const auto& f : found) list += "\n  " + f;
    fail(kExitUsage, fmt::format("several routes files found; choose one with --routes FILE (or "
                                 "--no-gateway):{}",
                                 list));
  }
  return found.empty() ? "" : fs::absolute(found[0]).lexically_normal().string();
}

// Loads the tools (every mistake of routes.yaml is an error before anything starts) and warns
// about tools routed to actors that these manifests do not define.
void check_routes(const std::string& routes, const std::vector<manifest::Actor>& actors) {
  gateway::ToolsConfig tools;
  try {
    tools = gateway::load_tools(routes);
  } catch (const gateway::LoadError& e) {
    fail(kExitUsage,
         fmt::format("{}\nasya up: the gateway's routes file has a mistake; nothing was "
                     "started",
                     e.what()));
  }
  std::set<std::string> known;
  for (const auto& a : actors) known.insert(a.name);
  for (const auto& tool : tools.tools) {
    for (const auto& actor : tool.actors) {
      if (!known.count(actor))
        std::cerr << fmt::format(
            "asya up: warning: tool \"{}\" ({}) routes to actor \"{}\", which none of these "
            "manifests defines; its calls wait in queue {}{} until something consumes it\n",
            tool.name, tool.source, actor, env_string("ASYA_QUEUE_PREFIX", "asya-"), actor);
    }
  }
}

// The pre-flight checks (local/preflight.hpp), with the sidecar's own settings loader: prints
// every problem found and returns kExitUsage, or 0 when `asya up` may start.
int preflight(const std::vector<manifest::Actor>& actors, const local::SupervisorOptions& options) {
  local::PreflightOptions checks;
  checks.supervisor = options;
  checks.environment = local::current_environment();
  checks.check_sidecar_settings = [](const EnvironmentLookup& lookup) -> Status {
    try {
      sidecar::Config config = sidecar::load_config(Environment(lookup));
      transport::Options transport_options;
      transport_options.environment = lookup;
      transport::check_transport_settings(config.transport, transport_options);
    } catch (const ConfigError& e) {
      return Error{e.what()};
    }
    return Status::Ok();
  };
  const local::PreflightReport report = local::run_preflight(actors, checks);
  for (const auto& warning : report.warnings) std::cerr << "asya up: warning: " << warning << "\n";
  if (report.ok()) return 0;
  for (const auto& problem : report.problems) std::cerr << problem.str() << "\n";
  std::cerr << fmt::format("asya up: {} problem(s) found before start; nothing was started\n",
                           report.problems.size());
  return kExitUsage;
}

}  // namespace

int run_up(const UpArgs& args) {
  std::vector<std::string> paths = args.paths;
  if (paths.empty()) paths.push_back(".");
  const std::string routes = find_routes(args, paths);
  auto loaded = manifest::load_paths(paths);
  if (!loaded.ok()) {
    std::cerr << loaded.error_text();
    std::cerr << fmt::format("asya up: {} problem(s) in the manifests; nothing was started\n",
                             loaded.errors.size());
    return kExitUsage;
  }
  if (!args.transport.empty()) {
    for (auto& a : loaded.actors) a.transport = args.transport;
  }
  if (std::string problems = expand_commands(loaded.actors); !problems.empty()) {
    std::cerr << problems;
    std::cerr << "asya up: a runtime command cannot be resolved; nothing was started\n";
    return kExitUsage;
  }
  std::set<std::string> transports;
  for (const auto& a : loaded.actors) transports.insert(a.transport);
  if (transports.size() > 1) {
    std::string list;
    for (const auto& a : loaded.actors)
      list += fmt::format("\n  {} ({}:{}): {}", a.name, a.file, a.line, a.transport);
    fail(kExitUsage,
         fmt::format("the actors use different transports; one `asya up` runs one transport, so "
                     "give every actor the same spec.transport (or use --transport):{}",
                     list));
  }
  local::SupervisorOptions options;
  options.paths = local::StatePaths(local::resolve_state_dir(args.state_dir));
  options.transport = *transports.begin();
  options.end_actors = !args.no_end_actors;
  // Large payloads by reference, in the state directory unless ASYA_PAYLOAD_STORE says otherwise
  // (set empty: off). `asya send` finds the same default (send_command.cpp).
  options.payload_store =
      env_get("ASYA_PAYLOAD_STORE").value_or("file://" + options.paths.payloads().string());
  options.reload = args.reload;
  options.sidecar_binary = find_sidecar();
  if (!routes.empty()) {
    check_routes(routes, loaded.actors);
    options.routes_file = routes;
    options.gateway_binary = find_gateway();
    options.gateway_port = args.gateway_port == 0 ? local::free_local_port() : args.gateway_port;
    options.gateway_instance_id = local::new_instance_id();
  }
  bool needs_python = std::any_of(loaded.actors.begin(), loaded.actors.end(),
                                  [](const auto& a) { return a.runtime().command.empty(); });
  if (needs_python) options.python_runtime = find_python_runtime();
  if (int pid = local::running_supervisor(options.paths); pid != 0) {
    fail(kExitError, fmt::format("asya is already running on {} (pid {}); stop it with `asya down` "
                                 "or use another --state-dir",
                                 options.paths.root.string(), pid));
  }
  if (int code = preflight(loaded.actors, options); code != 0) return code;
  std::error_code ec;
  fs::create_directories(options.paths.logs(), ec);

  if (!args.detach) {
    const char* term = std::getenv("TERM");
    options.live_view = !args.plain && ::isatty(1) && term && std::string(term) != "dumb";
    return local::run_supervisor(loaded.actors, options);
  }

  int ready_pipe[2];
  if (::pipe(ready_pipe) != 0) fail(kExitError, "asya up --detach: pipe failed");
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) fail(kExitError, "asya up --detach: fork failed");
  if (pid == 0) {
    ::close(ready_pipe[0]);
    ::setsid();
    int null_fd = ::open("/dev/null", O_RDONLY);
    int log_fd =
        ::open(options.paths.supervisor_log().c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    if (log_fd >= 0) {
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
    }
    int write_end = ready_pipe[1];
    options.on_ready = [write_end] {
      char byte = 1;
      ssize_t ignored = ::write(write_end, &byte, 1);
      (void)ignored;
      ::close(write_end);
    };
    int code = local::run_supervisor(loaded.actors, options);
    std::fflush(nullptr);
    ::_exit(code);
  }
  ::close(ready_pipe[1]);
  char byte = 0;
  ssize_t n = ::read(ready_pipe[0], &byte, 1);
  ::close(ready_pipe[0]);
  if (n != 1) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::string log;
    local::read_file(options.paths.supervisor_log(), log);
    if (log.size() > 4000) log = log.substr(log.size() - 4000);
    std::cerr << log;
    fail(kExitError,
         fmt::format("asya up --detach: the supervisor {} before it was ready (log: {})",
                     local::describe_exit(status), options.paths.supervisor_log().string()));
  }
  std::cerr << fmt::format(
      "asya: running in the background (pid {}), {} actor(s), state in {}\n"
      "      `asya status` shows it, `asya down` stops it\n",
      pid, loaded.actors.size(), options.paths.root.string());
  if (!options.routes_file.empty()) {
    std::cerr << fmt::format("asya: gateway on {} (POST /tools/call, MCP at /mcp)\n",
                             options.gateway_url());
    std::cout << options.gateway_url() << "\n";
  }
  return 0;
}

}  // namespace asya::cli
