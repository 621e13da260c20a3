// `asya`: run pipelines on one machine and talk to them. docs/cli.md is the reference.
//
// Exit codes: 0 success; 1 the message ended in error-end (send --wait, results) or a command
// failed; 2 invalid usage or manifests; 3 not found / timed out / not running.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "cli/call_command.hpp"
#include "cli/render_command.hpp"
#include "common/env.hpp"
#include "common/json_text.hpp"
#include "common/log.hpp"
#include "envelope/envelope.hpp"
#include "gateway/config/tools_config.hpp"
#include "local/manifest/manifest.hpp"
#include "local/process.hpp"
#include "local/state.hpp"
#include "local/supervisor.hpp"
#include "sidecar/result_store.hpp"
#include "transport/transport.hpp"

#ifndef ASYA_VERSION
#define ASYA_VERSION "0.0.0"
#endif
#ifndef ASYA_SOURCE_DIR
#define ASYA_SOURCE_DIR ""
#endif

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace asya;
using Clock = std::chrono::steady_clock;

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNotFound = 3;
// `asya status` warns about a status.json older than this (it is rewritten every second).
constexpr double kStaleStatusSeconds = 5;

// Thrown to leave a command with a message (on stderr) and an exit code.
struct Exit {
  int code;
  std::string message;
};

[[noreturn]] void fail(int code, std::string message) {
  throw Exit{code, std::move(message)};
}

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
  auto dir = executable_dir();
  std::vector<fs::path> candidates{dir / "asya_runtime.py",
                                   dir / ".." / "share" / "asya" / "asya_runtime.py"};
  if (std::string(ASYA_SOURCE_DIR).size())
    candidates.push_back(fs::path(ASYA_SOURCE_DIR) / "runtimes" / "python" / "asya_runtime.py");
  for (const auto& c : candidates) {
    if (fs::is_regular_file(c)) return {python, c.lexically_normal().string()};
  }
  fail(kExitUsage,
       "cannot find the Python runtime asya_runtime.py next to asya or in the source tree; set "
       "ASYA_PYTHON_RUNTIME=/path/to/asya_runtime.py");
}

// Reads `value`, or the file after '@'.
std::string text_or_file(const std::string& value, const std::string& option) {
  if (value.empty() || value[0] != '@') return value;
  std::string text;
  if (!local::read_file(value.substr(1), text))
    fail(kExitUsage, fmt::format("{} {}: cannot read file {}", option, value, value.substr(1)));
  return text;
}

std::string new_id() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^
                      static_cast<std::uint64_t>(Clock::now().time_since_epoch().count()));
  std::uint64_t a = gen(), b = gen();
  std::string hex = fmt::format("{:016x}{:016x}", a, b);
  const char variant = "89ab"[a & 3];
  return fmt::format("{}-{}-4{}-{}{}-{}", hex.substr(0, 8), hex.substr(8, 4), hex.substr(13, 3),
                     variant, hex.substr(17, 3), hex.substr(20, 12));
}

// Everything a client command needs to reach the queues of a state dir.
struct Client {
  local::StatePaths paths;
  std::string transport_name = "sqlite";
  std::string prefix = "asya-";
  // The queues of the running supervisor's actors (from status.json): RabbitMQ cannot list
  // queues, so `asya queues` adds these to what the transport lists.
  std::vector<std::string> supervised_queues;
  // The actors of the running supervisor (from status.json); empty when none runs.
  std::vector<std::string> supervised_actors;
  std::unique_ptr<transport::Transport> transport;

  explicit Client(const std::string& state_flag) : paths(local::resolve_state_dir(state_flag)) {
    transport_name = env_string("ASYA_TRANSPORT", "sqlite");
    if (auto p = env_get("ASYA_QUEUE_PREFIX")) prefix = *p;
    // A running supervisor knows better.
    std::string text;
    if (local::read_file(paths.status_file(), text)) {
      boost::system::error_code ec;
      auto value = json::parse(text, ec);
      if (!ec && value.is_object()) {
        if (auto* t = value.as_object().if_contains("transport"); t && t->is_string())
          transport_name = std::string(t->as_string());
        if (auto* p = value.as_object().if_contains("queue_prefix"); p && p->is_string())
          prefix = std::string(p->as_string());
        if (auto* list = value.as_object().if_contains("actors"); list && list->is_array()) {
          for (const auto& a : list->as_array()) {
            const auto* name = a.is_object() ? a.as_object().if_contains("name") : nullptr;
            if (name && name->is_string()) supervised_actors.emplace_back(name->as_string());
            const auto* q = a.is_object() ? a.as_object().if_contains("queue") : nullptr;
            const auto* n = q && q->is_object() ? q->as_object().if_contains("name") : nullptr;
            if (n && n->is_string()) supervised_queues.emplace_back(n->as_string());
          }
        }
      }
    }
  }

  transport::Transport& queues() {
    if (!transport) {
      if (transport_name == "sqlite") {
        std::error_code ec;
        fs::create_directories(paths.root, ec);
        ::setenv("ASYA_SQLITE_PATH", paths.queues_db().c_str(), 1);
      }
      try {
        transport::Options options;
        options.max_message_bytes = max_message_bytes();
        transport = transport::make_transport(transport_name, options);
      } catch (const std::exception& e) {
        fail(kExitUsage, fmt::format("transport {}: {}", transport_name, e.what()));
      }
    }
    return *transport;
  }

  // ASYA_MAX_MESSAGE_BYTES, as the sidecars and the gateway read it (default 256MiB).
  static std::size_t max_message_bytes() {
    return static_cast<std::size_t>(env_bytes("ASYA_MAX_MESSAGE_BYTES", 256u << 20));
  }
};

// ---------------------------------------------------------------------------------------- up

struct UpArgs {
  std::vector<std::string> paths;
  bool detach = false;
  bool plain = false;
  bool no_end_actors = false;
  std::string state_dir;
  std::string routes;
  bool no_gateway = false;
  int gateway_port = 8080;
  std::string transport;  // overrides spec.transport of every actor
};

// The build tree `asya` runs from (…/build when asya is …/build/src/cli/asya), if it is one.
std::optional<std::string> own_build_dir() {
  auto dir = (executable_dir() / ".." / "..").lexically_normal();
  std::error_code ec;
  if (fs::is_regular_file(dir / "CMakeCache.txt", ec)) return dir.string();
  return std::nullopt;
}

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

int cmd_up(const UpArgs& args) {
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
  options.sidecar_binary = find_sidecar();
  if (!routes.empty()) {
    check_routes(routes, loaded.actors);
    options.routes_file = routes;
    options.gateway_binary = find_gateway();
    options.gateway_port = args.gateway_port == 0 ? local::free_local_port() : args.gateway_port;
  }
  bool needs_python = std::any_of(loaded.actors.begin(), loaded.actors.end(),
                                  [](const auto& a) { return a.runtime().command.empty(); });
  if (needs_python) options.python_runtime = find_python_runtime();
  if (int pid = local::running_supervisor(options.paths); pid != 0) {
    fail(kExitError, fmt::format("asya is already running on {} (pid {}); stop it with `asya down` "
                                 "or use another --state-dir",
                                 options.paths.root.string(), pid));
  }
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

// -------------------------------------------------------------------------------------- down

int cmd_down(const std::string& state_dir, double timeout_seconds) {
  local::StatePaths paths(local::resolve_state_dir(state_dir));
  int pid = local::running_supervisor(paths);
  if (pid == 0) {
    std::cerr << fmt::format("asya: not running on {}; nothing to stop\n", paths.root.string());
    return 0;
  }
  if (pid < 0)
    fail(kExitError, fmt::format("asya down: the supervisor of {} holds its lock but "
                                 "its pid file is unreadable: {}",
                                 paths.root.string(), paths.pid_file().string()));
  if (::kill(pid, SIGTERM) != 0)
    fail(kExitError, fmt::format("asya down: cannot signal pid {}: {}", pid, std::strerror(errno)));
  std::cerr << fmt::format("asya: stopping (pid {}); replicas drain first\n", pid);
  auto deadline =
      Clock::now() + std::chrono::milliseconds(static_cast<long>(timeout_seconds * 1000));
  while (Clock::now() < deadline) {
    if (local::running_supervisor(paths) == 0) {
      std::cerr << "asya: stopped\n";
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  fail(kExitError, fmt::format("asya down: pid {} still runs after {}s; run `asya down` again to "
                               "stop it at once (second signal), see {}",
                               pid, timeout_seconds, paths.supervisor_log().string()));
}

// -------------------------------------------------------------------------------------- send

struct SendArgs {
  std::string actor;
  std::string route;
  std::string payload;
  std::string envelope;
  std::vector<std::string> headers;
  std::string deadline;
  std::string id;
  bool id_given = false;  // --id was on the command line (possibly empty)
  bool wait = false;
  bool force = false;  // send even to actors the running supervisor does not run
  double timeout = 60;
  std::string state_dir;
};

// With a supervisor running on the state dir, every actor the message is routed to must be one
// of its actors (unless --force): a typo would otherwise queue the message where nothing ever
// consumes it. Without a supervisor nothing is known, and the message waits for one.
void check_known_actors(const Client& client, const std::vector<std::string>& actors) {
  if (client.supervised_actors.empty() || local::running_supervisor(client.paths) == 0) return;
  std::vector<std::string> known;
  for (const auto& a : client.supervised_actors) {
    if (a != "happy-end" && a != "error-end") known.push_back(a);
  }
  for (const auto& actor : actors) {
    if (std::find(known.begin(), known.end(), actor) != known.end()) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    fail(kExitUsage,
         fmt::format("unknown actor \"{}\": the `asya up` running on {} runs {}; check the name, "
                     "or add --force to queue the message for an actor that runs elsewhere "
                     "(e.g. another host sharing the broker)",
                     actor, client.paths.root.string(),
                     list.empty() ? std::string("no actors") : "only " + list));
  }
}

// Where a finished envelope is: ("succeeded"|"failed", file) or nullopt.
std::optional<std::pair<std::string, fs::path>> find_result(const local::StatePaths& paths,
                                                            const std::string& id) {
  std::string name = sidecar::result_file_name(id);
  for (auto [status, dir] :
       {std::pair{"succeeded", paths.succeeded()}, std::pair{"failed", paths.failed()}}) {
    std::error_code ec;
    if (fs::exists(dir / name, ec)) return std::make_pair(std::string(status), dir / name);
  }
  return std::nullopt;
}

std::string decode_name(std::string name) {
  std::string out;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '%' && i + 2 < name.size()) {
      out += static_cast<char>(std::stoi(name.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += name[i];
    }
  }
  return out;
}

struct StoredResult {
  std::string id;
  std::string status;
  fs::path file;
  fs::file_time_type when;
};

std::vector<StoredResult> list_results(const local::StatePaths& paths) {
  std::vector<StoredResult> out;
  for (auto [status, dir] :
       {std::pair{"succeeded", paths.succeeded()}, std::pair{"failed", paths.failed()}}) {
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (name.empty() || name[0] == '.' || name.size() < 6 ||
          name.substr(name.size() - 5) != ".json")
        continue;
      out.push_back({decode_name(name.substr(0, name.size() - 5)), status, it->path(),
                     it->last_write_time(ec)});
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.when < b.when; });
  return out;
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

int cmd_send(const SendArgs& args) {
  Client client(args.state_dir);
  std::string body;
  std::string id;
  std::vector<std::string> actors;
  if (!args.envelope.empty()) {
    if (!args.actor.empty() || !args.route.empty() || !args.payload.empty() ||
        !args.headers.empty() || !args.deadline.empty() || args.id_given)
      fail(kExitUsage,
           "--envelope is a complete envelope; do not combine it with ACTOR, --route, "
           "--payload, --header, --deadline or --id");
    body = text_or_file(args.envelope, "--envelope");
    auto parsed = envelope::parse(body);
    if (!parsed)
      fail(kExitUsage,
           fmt::format("--envelope is not a valid envelope: {}", parsed.error().message));
    if (parsed->route_done())
      fail(kExitUsage, "--envelope: its route is already done (route.current == number of actors)");
    id = parsed->id;
    actors.assign(parsed->actors.begin() + static_cast<long>(parsed->current),
                  parsed->actors.end());
  } else {
    if (args.actor.empty() == args.route.empty())
      fail(kExitUsage, "give either ACTOR or --route a,b,c (the actors in order)");
    if (!args.actor.empty()) {
      actors.push_back(args.actor);
    } else {
      std::string rest = args.route;
      while (true) {
        auto comma = rest.find(',');
        actors.push_back(rest.substr(0, comma));
        if (comma == std::string::npos) break;
        rest = rest.substr(comma + 1);
      }
    }
    for (const auto& a : actors) {
      if (a == "happy-end" || a == "error-end")
        fail(kExitUsage, fmt::format("\"{}\" is an end actor; routes list only your actors (the "
                                     "end actors are added by the sidecars)",
                                     a));
      if (!envelope::valid_actor_name(a))
        fail(kExitUsage,
             fmt::format("\"{}\" is not a valid actor name; use lowercase letters, digits and "
                         "'-' (e.g. --route split,score,collect)",
                         a));
    }
    if (args.payload.empty())
      fail(kExitUsage, "--payload is required: a JSON value ('{\"text\": \"hi\"}') or @file.json");
    std::string payload = text_or_file(args.payload, "--payload");
    boost::system::error_code ec;
    json::parse(payload, ec);
    if (ec)
      fail(kExitUsage,
           fmt::format("--payload is not valid JSON ({}): {}; quote strings, e.g. '\"hello\"'",
                       ec.message(),
                       payload.size() > 200 ? payload.substr(0, 200) + "..." : payload));
    if (args.id_given && args.id.empty())
      fail(kExitUsage,
           "--id is empty; give a non-empty envelope id, or leave --id out for a random UUID");
    id = args.id_given ? args.id : new_id();
    json::object headers;
    for (const auto& h : args.headers) {
      auto eq = h.find('=');
      if (eq == std::string::npos || eq == 0)
        fail(kExitUsage, fmt::format("--header {}: use key=value", h));
      std::string key = h.substr(0, eq);
      if (key.rfind("asya-", 0) == 0)
        fail(kExitUsage, fmt::format("--header {}: keys starting with asya- are reserved", h));
      headers[key] = h.substr(eq + 1);
    }
    json::array route_actors;
    for (const auto& a : actors) route_actors.push_back(json::string(a));
    body = "{\"id\":" + envelope::json_string(id) +
           ",\"route\":{\"actors\":" + to_json_text(route_actors) + ",\"current\":0}";
    if (!headers.empty()) body += ",\"headers\":" + to_json_text(headers);
    if (!args.deadline.empty()) {
      auto in = parse_duration(args.deadline);
      if (!in) fail(kExitUsage, fmt::format("--deadline {}", in.error().message));
      body += ",\"deadline\":\"" +
              envelope::format_rfc3339(std::chrono::system_clock::now() + *in) + "\"";
    }
    body += ",\"payload\":" + payload + "}";
    if (auto parsed = envelope::parse(body); !parsed)
      fail(kExitUsage, fmt::format("the envelope would be invalid: {}", parsed.error().message));
  }

  if (!args.force) check_known_actors(client, actors);
  if (std::size_t limit = Client::max_message_bytes(); body.size() > limit) {
    fail(kExitUsage,
         fmt::format("the message is {} bytes, more than the {} bytes ASYA_MAX_MESSAGE_BYTES "
                     "allows ({}); send a smaller payload (large data by reference, e.g. an "
                     "object store URL), or raise ASYA_MAX_MESSAGE_BYTES here and for every "
                     "sidecar and gateway that handles it",
                     body.size(), limit,
                     env_get("ASYA_MAX_MESSAGE_BYTES")
                         ? "ASYA_MAX_MESSAGE_BYTES=" + *env_get("ASYA_MAX_MESSAGE_BYTES")
                         : std::string("the default, 256MiB")));
  }

  auto& queues = client.queues();
  std::string queue = client.prefix + actors.front();
  if (Status st = queues.ensure_queue(queue); !st) fail(kExitError, st.message());
  if (Status st = queues.send(queue, body); !st) fail(kExitError, st.message());
  if (!args.wait) {
    std::cout << id << "\n";
    return 0;
  }

  if (local::running_supervisor(client.paths) == 0)
    std::cerr << fmt::format("asya: no `asya up` runs on {}; {} waits in queue {} until one does\n",
                             client.paths.root.string(), id, queue);
  // Wait for the envelope's own result, then until the route's queues are quiet, so fan-out
  // children (ids <id>-N...) have finished too.
  auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long>(args.timeout * 1000));
  std::vector<std::string> watched;
  for (const auto& a : actors) watched.push_back(client.prefix + a);
  watched.push_back(client.prefix + "happy-end");
  watched.push_back(client.prefix + "error-end");
  bool root_done = false;
  int quiet_rounds = 0;
  bool settled = false;
  while (Clock::now() < deadline) {
    if (!root_done) root_done = find_result(client.paths, id).has_value();
    if (root_done) {
      bool quiet = true;
      for (const auto& q : watched) {
        auto s = queues.stats(q);
        if (s && (s->ready + s->in_flight + s->delayed) > 0) {
          quiet = false;
          break;
        }
      }
      quiet_rounds = quiet ? quiet_rounds + 1 : 0;
      if (quiet_rounds >= 2) {
        settled = true;
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!root_done) {
    fail(kExitNotFound,
         fmt::format("timed out after {}s waiting for {} to finish; it may still be queued or "
                     "running: see `asya status` and `asya results {}` later",
                     args.timeout, id, id));
  }
  if (!settled)
    std::cerr << fmt::format(
        "asya: {} finished but the queues of its route stayed busy for {}s; "
        "printing the results found so far\n",
        id, args.timeout);
  bool any_failed = false;
  for (const auto& r : list_results(client.paths)) {
    if (r.id != id && r.id.rfind(id + "-", 0) != 0) continue;
    std::string text;
    if (!local::read_file(r.file, text)) continue;
    std::cout << trimmed(text) << "\n";
    if (r.status == "failed") any_failed = true;
  }
  return any_failed ? kExitError : 0;
}

// ----------------------------------------------------------------------------------- results

int cmd_results(const std::string& state_dir, const std::string& id, bool as_json) {
  local::StatePaths paths(local::resolve_state_dir(state_dir));
  if (!id.empty()) {
    auto found = find_result(paths, id);
    if (!found)
      fail(kExitNotFound, fmt::format("no result for {} in {} (yet); `asya results` lists the "
                                      "finished ids",
                                      id, paths.results().string()));
    std::string text;
    if (!local::read_file(found->second, text))
      fail(kExitError, fmt::format("cannot read {}", found->second.string()));
    std::cout << trimmed(text) << "\n";
    return found->first == "failed" ? kExitError : 0;
  }
  auto results = list_results(paths);
  if (as_json) {
    json::array list;
    for (const auto& r : results)
      list.push_back(json::object{{"id", r.id}, {"status", r.status}, {"file", r.file.string()}});
    std::cout << to_json_text(list) << "\n";
    return 0;
  }
  if (results.empty()) std::cerr << fmt::format("no results in {}\n", paths.results().string());
  for (const auto& r : results) std::cout << fmt::format("{:<40} {}\n", r.id, r.status);
  return 0;
}

// ------------------------------------------------------------------------------------ queues

int cmd_queues(const std::string& state_dir, bool as_json) {
  Client client(state_dir);
  auto& queues = client.queues();
  auto names = queues.list_queues();
  if (!names) fail(kExitError, names.error().message);
  names->insert(names->end(), client.supervised_queues.begin(), client.supervised_queues.end());
  std::sort(names->begin(), names->end());
  names->erase(std::unique(names->begin(), names->end()), names->end());
  json::array list;
  if (!as_json)
    std::cout << fmt::format("{:<32} {:>8} {:>10} {:>8}\n", "QUEUE", "READY", "IN-FLIGHT",
                             "DELAYED");
  for (const auto& name : *names) {
    auto s = queues.stats(name);
    if (!s) fail(kExitError, s.error().message);
    if (as_json)
      list.push_back(json::object{{"queue", name},
                                  {"ready", s->ready},
                                  {"in_flight", s->in_flight},
                                  {"delayed", s->delayed}});
    else
      std::cout << fmt::format("{:<32} {:>8} {:>10} {:>8}\n", name, s->ready, s->in_flight,
                               s->delayed);
  }
  if (as_json) std::cout << to_json_text(list) << "\n";
  return 0;
}

// ------------------------------------------------------------------------------------ status

// A JSON log line (the sidecar's and the Python runtime's format) as "level: msg"; any other
// line as it is.
std::string readable_log_line(std::string_view line) {
  boost::system::error_code ec;
  auto value = json::parse(line, ec);
  if (ec || !value.is_object()) return std::string(line);
  const auto& o = value.as_object();
  const auto* msg = o.if_contains("msg");
  if (!msg || !msg->is_string()) return std::string(line);
  const auto* level = o.if_contains("level");
  std::string prefix = level && level->is_string() ? std::string(level->as_string()) + ": " : "";
  return prefix + std::string(msg->as_string());
}

int cmd_status(const std::string& state_dir, bool as_json) {
  local::StatePaths paths(local::resolve_state_dir(state_dir));
  int pid = local::running_supervisor(paths);
  std::string text;
  if (pid == 0 || !local::read_file(paths.status_file(), text)) {
    if (as_json) std::cout << "{\"running\":false}\n";
    std::cerr << fmt::format("asya: not running on {}; start it with `asya up`\n",
                             paths.root.string());
    return kExitNotFound;
  }
  boost::system::error_code ec;
  auto value = json::parse(text, ec);
  if (ec || !value.is_object()) fail(kExitError, "status.json is unreadable: " + ec.message());
  auto& root = value.as_object();
  root["running"] = true;
  // How old the data is: the supervisor rewrites status.json every second; older data means it
  // cannot write it (a full disk) or is blocked.
  double age = -1;
  if (auto* updated = root.if_contains("updated"); updated && updated->is_number()) {
    auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    age = std::max(0.0, static_cast<double>(now_ms - updated->to_number<std::int64_t>()) / 1000);
    root["age_seconds"] = std::round(age * 10) / 10;
  }
  const bool stale = age > kStaleStatusSeconds;
  root["stale"] = stale;
  if (stale)
    std::cerr << fmt::format(
        "asya: warning: this status was written {:.0f}s ago (the supervisor rewrites it every "
        "second): it cannot write {} (full disk?) or is blocked; see {}\n",
        age, paths.status_file().string(), paths.supervisor_log().string());
  if (as_json) {
    std::cout << to_json_text(root) << "\n";
    return 0;
  }
  std::cout << fmt::format("asya: running (pid {}), transport {}, state {}, as of {:.1f}s ago\n",
                           pid, std::string(root["transport"].as_string()), paths.root.string(),
                           std::max(age, 0.0));
  if (auto* gw = root.if_contains("gateway"); gw && gw->is_object())
    std::cout << fmt::format("gateway: {} ({})\n", std::string(gw->at("url").as_string()),
                             gw->at("running").as_bool() ? "running" : "restarting");
  std::cout << "\n";
  std::cout << fmt::format("{:<24} {:>9} {:>7} {:>9} {:>10} {:>7} {:>8}  {}\n", "ACTOR", "REPLICAS",
                           "QUEUE", "IN-FLIGHT", "PROCESSED", "ERRORS", "RATE/s", "STATE");
  for (const auto& a : root["actors"].as_array()) {
    const auto& o = a.as_object();
    const auto& r = o.at("replicas").as_object();
    const auto& q = o.at("queue").as_object();
    std::cout << fmt::format(
        "{:<24} {:>9} {:>7} {:>9} {:>10} {:>7} {:>8}  {}\n", std::string(o.at("name").as_string()),
        fmt::format("{}/{}", to_json_text(r.at("ready")), to_json_text(r.at("desired"))),
        to_json_text(q.at("ready")), to_json_text(q.at("in_flight")),
        to_json_text(o.at("processed")), to_json_text(o.at("errors")),
        fmt::format("{:.1f}", o.at("rate").to_number<double>()),
        std::string(o.at("state").as_string()));
    const auto* streak = o.if_contains("crash_streak");
    bool crashing = o.at("state").as_string() == "crash-looping" ||
                    (streak && streak->is_int64() && streak->as_int64() > 0);
    if (crashing) {
      std::cout << "    last crash: " << std::string(o.at("last_crash").as_string()) << "\n";
      if (const auto* lines = o.if_contains("last_crash_output"); lines && lines->is_array())
        for (const auto& line : lines->as_array())
          if (line.is_string())
            std::cout << "      | " << readable_log_line(line.as_string()) << "\n";
    }
    if (const auto* error = q.if_contains("stats_error"); error && error->is_string())
      std::cout << "    queue counts not current: " << std::string(error->as_string()) << "\n";
  }
  return 0;
}

// -------------------------------------------------------------------------------------- logs

int cmd_logs(const std::string& state_dir, const std::string& actor, int lines, bool follow) {
  local::StatePaths paths(local::resolve_state_dir(state_dir));
  std::vector<fs::path> files;
  std::error_code ec;
  if (actor.empty()) {
    files.push_back(paths.supervisor_log());
  } else {
    auto dir = paths.actor_logs(actor);
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
      files.push_back(it->path());
    // `asya logs gateway`: the gateway's log (unless an actor is named gateway).
    if (files.empty() && actor == "gateway" && fs::is_regular_file(paths.logs() / "gateway.log"))
      files.push_back(paths.logs() / "gateway.log");
    if (files.empty()) {
      std::string known;
      for (fs::directory_iterator it(paths.logs(), ec), end; !ec && it != end; it.increment(ec))
        if (it->is_directory()) known += " " + it->path().filename().string();
      fail(kExitNotFound, fmt::format("no logs for actor \"{}\" in {}; actors with logs:{}", actor,
                                      paths.logs().string(), known.empty() ? " (none)" : known));
    }
    std::sort(files.begin(), files.end());
  }
  // Bytes printed (or skipped by -n) per file: -f continues from there, so nothing appended
  // while the files were being printed is lost.
  std::map<fs::path, std::uintmax_t> sizes;
  for (const auto& f : files) {
    std::string text;
    if (!local::read_file(f, text)) {
      if (actor.empty())
        fail(kExitNotFound,
             fmt::format("no supervisor log {}: it is written by `asya up --detach` (in the "
                         "foreground the supervisor prints to the terminal); `asya logs ACTOR` "
                         "shows an actor's processes",
                         f.string()));
      std::cerr << fmt::format("asya logs: cannot read {}\n", f.string());
      continue;
    }
    sizes[f] = text.size();
    if (files.size() > 1) std::cout << "==> " << f.string() << " <==\n";
    if (lines > 0) {
      // Keep the last `lines` lines.
      std::size_t pos = text.size();
      if (pos > 0 && text[pos - 1] == '\n') --pos;
      for (int seen = 0; seen < lines && pos != std::string::npos && pos > 0; ++seen)
        pos = text.rfind('\n', pos - 1);
      text = (pos == std::string::npos || pos == 0) ? text : text.substr(pos + 1);
    }
    std::cout << text;
    if (!text.empty() && text.back() != '\n') std::cout << "\n";
  }
  if (!follow) return 0;
  // Print what is appended from now on (new replicas' files included) until interrupted.
  const bool fixed_files = actor.empty() || files.front() == paths.logs() / "gateway.log";
  auto scan = [&] {
    std::error_code ec;
    std::vector<fs::path> now;
    if (fixed_files) {
      now = files;
    } else {
      for (fs::directory_iterator it(paths.actor_logs(actor), ec), end; !ec && it != end;
           it.increment(ec))
        now.push_back(it->path());
    }
    return now;
  };
  std::cout.flush();
  while (true) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    for (const auto& f : scan()) {
      std::error_code ec;
      auto size = fs::file_size(f, ec);
      if (ec) continue;
      auto& seen = sizes[f];
      if (size < seen) seen = 0;  // truncated
      if (size == seen) continue;
      std::ifstream in(f, std::ios::binary);
      in.seekg(static_cast<std::streamoff>(seen));
      std::string chunk(size - seen, '\0');
      in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      chunk.resize(static_cast<std::size_t>(in.gcount()));
      seen += chunk.size();
      std::cout << chunk << std::flush;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Log lines (a transport warns while its broker is unreachable) are JSON on stderr, like every
  // Asya process's; stdout carries only a command's output. Level: ASYA_LOG_LEVEL, default warn.
  try {
    asya::log::init("cli", asya::env_string("ASYA_LOG_LEVEL", "warn"));
  } catch (const asya::ConfigError& e) {
    std::cerr << "asya: " << e.what() << "\n";
    return kExitUsage;
  }
  CLI::App app{
      "asya: run async actor pipelines on this machine and talk to them.\n"
      "State (queues, results, logs) lives in --state-dir, $ASYA_STATE_DIR or ./.asya."};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every command");

  auto state_option = [](CLI::App* cmd, std::string& target) {
    cmd->add_option("--state-dir", target,
                    "State directory (default: $ASYA_STATE_DIR, else ./.asya)");
  };
  // Global options may also come before the command (`asya --state-dir DIR down`); given after
  // it, the command's own wins.
  std::string global_state;
  state_option(&app, global_state);

  UpArgs up;
  auto* up_cmd = app.add_subcommand(
      "up",
      "Start the actors of the given manifests (files or directories; default: the current "
      "directory) with their end actors, and scale them on their queues. Ctrl-C stops "
      "gracefully.");
  up_cmd->add_option("paths", up.paths, "Manifest files or directories");
  up_cmd->add_flag("-d,--detach", up.detach,
                   "Run in the background; logs in <state>/logs, stop with `asya down`");
  up_cmd->add_flag("--plain", up.plain, "Plain log lines even on a terminal");
  up_cmd->add_flag("--no-end-actors", up.no_end_actors,
                   "Do not run happy-end/error-end (another host sharing the broker runs them)");
  up_cmd->add_option("--routes", up.routes,
                     "Gateway tools file (default: a routes.yaml among PATHs or in a PATH "
                     "directory); starts asya-gateway");
  up_cmd->add_flag("--no-gateway", up.no_gateway,
                   "Do not start the gateway even with a routes.yaml");
  up_cmd
      ->add_option("--gateway-port", up.gateway_port,
                   "Port of the gateway on 127.0.0.1 (default 8080; 0: any free port)")
      ->check(CLI::Range(0, 65535));
  up_cmd
      ->add_option("--transport", up.transport,
                   "Run every actor on this transport instead of its spec.transport (broker "
                   "settings from the environment, e.g. ASYA_RABBITMQ_URL)")
      ->check(CLI::IsMember({"sqlite", "rabbitmq", "sqs"}));
  state_option(up_cmd, up.state_dir);

  std::string down_state;
  double down_timeout = 120;
  auto* down_cmd = app.add_subcommand("down",
                                      "Stop a supervisor started with `asya up --detach` "
                                      "(replicas drain first)");
  down_cmd->add_option("--timeout", down_timeout, "Seconds to wait for the stop (default 120)");
  state_option(down_cmd, down_state);

  SendArgs send;
  auto* send_cmd = app.add_subcommand(
      "send",
      "Send a message to an actor or along a route. Prints its id, or with --wait the "
      "final envelope(s) as JSON (exit 0 happy-end, 1 error-end, 3 timeout).");
  send_cmd->add_option("actor", send.actor, "The actor to send to (or use --route)");
  send_cmd->add_option("-r,--route", send.route, "Actors in order, comma-separated: a,b,c");
  send_cmd->add_option("-p,--payload", send.payload, "The payload: JSON text, or @file.json");
  send_cmd->add_option("--envelope", send.envelope,
                       "A complete envelope (JSON or @file), sent as is to its current actor");
  send_cmd->add_option("-H,--header", send.headers, "A header key=value (repeatable)");
  send_cmd->add_option("--deadline", send.deadline, "Give up after this long: 30s, 5m");
  auto* send_id = send_cmd->add_option("--id", send.id, "Envelope id (default: a random UUID)");
  send_cmd->add_flag("-w,--wait", send.wait, "Wait for the final result and print it");
  send_cmd->add_option("--timeout", send.timeout, "Seconds to wait with --wait (default 60)");
  send_cmd->add_flag("--force", send.force,
                     "Send even to an actor the running `asya up` does not run (its queue is "
                     "consumed elsewhere, e.g. by another host sharing the broker)");
  state_option(send_cmd, send.state_dir);

  std::string results_state, results_id;
  bool results_json = false;
  auto* results_cmd = app.add_subcommand(
      "results",
      "Print the stored final envelope of ID (exit 1 when it ended in error-end), or "
      "list finished ids");
  results_cmd->add_option("id", results_id, "Envelope id");
  results_cmd->add_flag("--json", results_json, "List as JSON");
  state_option(results_cmd, results_state);

  std::string queues_state;
  bool queues_json = false;
  auto* queues_cmd =
      app.add_subcommand("queues", "Ready, in-flight and delayed messages per queue");
  queues_cmd->add_flag("--json", queues_json, "Print JSON");
  state_option(queues_cmd, queues_state);

  std::string status_state;
  bool status_json = false;
  auto* status_cmd = app.add_subcommand(
      "status", "Actors of the running supervisor: replicas, queue, processed, errors, rate");
  status_cmd->add_flag("--json", status_json, "Print JSON");
  state_option(status_cmd, status_state);

  std::string logs_state, logs_actor;
  int logs_lines = 0;
  auto* logs_cmd = app.add_subcommand(
      "logs",
      "Print the logs of an actor's processes (sidecars and runtimes), or without ACTOR "
      "the supervisor's log");
  logs_cmd->add_option("actor", logs_actor, "Actor name");
  logs_cmd->add_option("-n,--lines", logs_lines, "Only the last N lines of each file");
  bool logs_follow = false;
  logs_cmd->add_flag("-f,--follow", logs_follow, "Keep printing new lines (Ctrl-C stops)");
  state_option(logs_cmd, logs_state);

  asya::cli::add_render_command(app);
  asya::cli::add_call_command(app);

  auto* version_cmd = app.add_subcommand("version", "Print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }
  for (std::string* state : {&up.state_dir, &down_state, &send.state_dir, &results_state,
                             &queues_state, &status_state, &logs_state}) {
    if (state->empty()) *state = global_state;
  }
  try {
    if (*up_cmd) return cmd_up(up);
    if (*down_cmd) return cmd_down(down_state, down_timeout);
    if (*send_cmd) {
      send.id_given = send_id->count() > 0;
      return cmd_send(send);
    }
    if (*results_cmd) return cmd_results(results_state, results_id, results_json);
    if (*queues_cmd) return cmd_queues(queues_state, queues_json);
    if (*status_cmd) return cmd_status(status_state, status_json);
    if (*logs_cmd) return cmd_logs(logs_state, logs_actor, logs_lines, logs_follow);
    if (*version_cmd) {
      std::cout << "asya " << ASYA_VERSION << "\n";
      return 0;
    }
  } catch (const Exit& e) {
    std::cerr << "asya: " << e.message << "\n";
    return e.code;
  } catch (const ConfigError& e) {
    std::cerr << "asya: " << e.what() << "\n";
    return kExitUsage;
  }
  return 0;
}
