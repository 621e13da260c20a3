#include "local/supervisor.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "common/env.hpp"
#include "common/http/client.hpp"
#include "common/sidecar_exit_code.hpp"
#include "local/autoscaler.hpp"
#include "local/instance_id.hpp"
#include "local/output_collector.hpp"
#include "local/process.hpp"
#include "local/queue_stats_poller.hpp"
#include "local/replica_environment.hpp"
#include "local/status_document.hpp"
#include "transport/transport.hpp"

namespace asya::local {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kHappyEnd = "happy-end";
constexpr const char* kErrorEnd = "error-end";
constexpr auto kKillAfterExtra = 5s;  // beyond the graceful shutdown, before SIGKILL
constexpr auto kStatusEvery = 1s;
// Queue stats older than this (a broker that does not answer) are reported as stale; the
// poller's thread may wait much longer in one call, the control loop never does.
constexpr auto kStatsAnswerTimeout = 2s;
// The backoff of a crash caused by a full disk is capped at this, and the restart happens at
// once when free space reappears: freeing the disk should not wait for a 30 s backoff.
constexpr std::chrono::milliseconds kNoSpaceBackoff = 5s;
constexpr std::size_t kCrashOutputLines = 10;  // last lines of a crashed child's output kept

enum class Phase {
  kRunning,          // both processes up (or starting)
  kStoppingSidecar,  // scale-down/shutdown: SIGTERM sent to the sidecar, waiting for its drain
  kStoppingRuntime,  // the sidecar is gone, SIGTERM sent to the runtime
  kCrashed,          // one process died unexpectedly; stopping the other
};

struct Replica {
  int index = 0;
  pid_t sidecar = 0;
  pid_t runtime = 0;
  Phase phase = Phase::kRunning;
  Clock::time_point started;
  Clock::time_point deadline;  // of the current stopping phase; SIGKILL after it
  fs::path socket;
  int metrics_port = 0;
  double processed = 0;  // last scraped counters
  double errors = 0;
  std::string crash_reason;
  std::vector<std::string> crash_output;  // last lines the crashed process wrote
  bool timeout_restart = false;           // sidecar exit 3: restart at once, not a crash
  int sidecar_output = 0;                 // OutputCollector streams of the two processes (0: none)
  int runtime_output = 0;
};

struct ActorState {
  manifest::Actor spec;
  bool end_actor = false;
  std::unique_ptr<Autoscaler> autoscaler;
  std::vector<std::unique_ptr<Replica>> replicas;
  int desired = 0;
  Clock::time_point next_poll;
  transport::QueueStats stats;
  bool stats_ok = false;
  Clock::time_point stats_read_at;  // of `stats`; {}: never read
  std::string stats_error;          // why `stats` are not current (empty: they are)
  // Crash handling.
  int restarts = 0;       // every unexpected end of a pair since start-up
  int quick_crashes = 0;  // quick crashes in a row (the crash streak)
  bool crash_looping = false;
  Clock::time_point restart_at;
  std::string last_crash;
  std::vector<std::string> last_crash_output;
  std::chrono::system_clock::time_point last_crash_at;
  // A crash on a full disk: free bytes of the fullest watched file system then; the restart
  // comes as soon as more is free (or after kNoSpaceBackoff at the latest).
  bool waiting_for_space = false;
  std::uint64_t free_bytes_at_crash = 0;
  // Counters of replicas that are gone, plus the rate estimate.
  double retired_processed = 0;
  double retired_errors = 0;
  double last_total = 0;
  Clock::time_point last_total_at;
  double rate = 0;

  int live() const {
    return static_cast<int>(std::count_if(replicas.begin(), replicas.end(), [](const auto& r) {
      return r->phase == Phase::kRunning;
    }));
  }
  double processed() const {
    double total = retired_processed;
    for (const auto& r : replicas) total += r->processed;
    return total;
  }
  double errors() const {
    double total = retired_errors;
    for (const auto& r : replicas) total += r->errors;
    return total;
  }
};

// 32 random bytes from the kernel, as 64 hex digits.
Result<std::string> random_token() {
  unsigned char bytes[32];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error{fmt::format("cannot generate a token: getrandom: {}", strerror(errno))};
    got += static_cast<std::size_t>(n);
  }
  std::string out;
  for (unsigned char b : bytes) out += fmt::format("{:02x}", b);
  return out;
}

std::string now_text() {
  auto now = std::chrono::system_clock::now();
  return fmt::format("{:%H:%M:%S}", fmt::localtime(std::chrono::system_clock::to_time_t(now)));
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

// GET `path` from 127.0.0.1:port with short timeouts (the control loop waits for it): the
// response, or nullopt when unreachable or too slow.
std::optional<http::Response> http_get(int port, const char* path) {
  if (port <= 0) return std::nullopt;
  static http::Client client;  // thread-safe; one for every probe of this process
  http::Request request;
  request.url = fmt::format("http://127.0.0.1:{}{}", port, path);
  request.connect_timeout = 200ms;
  request.timeout = 500ms;
  request.bypass_proxy = true;
  auto response = client.perform(request);
  if (!response) return std::nullopt;
  return std::move(*response);
}

// GET /metrics from a sidecar; sums asya_actor_messages_processed_total by status. Returns
// nullopt when unreachable.
std::optional<std::pair<double, double>> scrape(int port) {
  auto got = http_get(port, "/metrics");
  if (!got) return std::nullopt;
  const std::string& response = got->body;
  double processed = 0, errors = 0;
  const std::string_view metric = "asya_actor_messages_processed_total{";
  std::size_t pos = 0;
  while ((pos = response.find(metric, pos)) != std::string::npos) {
    std::size_t end = response.find('\n', pos);
    std::string line = response.substr(pos, end == std::string::npos ? end : end - pos);
    pos += metric.size();
    std::size_t close = line.find('}');
    if (close == std::string::npos) continue;
    double value = std::atof(line.c_str() + close + 1);
    if (line.find("status=\"success\"") != std::string::npos) processed += value;
    if (line.find("status=\"error\"") != std::string::npos) processed += value, errors += value;
  }
  return std::make_pair(processed, errors);
}

class Supervisor {
 public:
  Supervisor(const std::vector<manifest::Actor>& actors, const SupervisorOptions& options)
      : options_(options) {
    for (const char* name : {kHappyEnd, kErrorEnd}) {
      if (!options.end_actors) break;
      auto state = std::make_unique<ActorState>();
      state->spec.name = name;
      state->end_actor = true;
      state->desired = 1;
      actors_.push_back(std::move(state));
    }
    for (const auto& actor : actors) {
      auto state = std::make_unique<ActorState>();
      state->spec = actor;
      state->autoscaler = std::make_unique<Autoscaler>(actor.scaling);
      state->desired = actor.scaling.enabled ? actor.scaling.min_replicas : actor.replicas;
      actors_.push_back(std::move(state));
    }
  }

  int run();

 private:
  bool start_up();
  void tick(Clock::time_point now);
  void autoscale(ActorState& actor, Clock::time_point now);
  void reconcile(ActorState& actor, Clock::time_point now);
  Status start_replica(ActorState& actor, Clock::time_point now);
  void stop_replica(ActorState& actor, Replica& replica, Clock::time_point now);
  void on_exit(pid_t pid, int status, Clock::time_point now);
  void record_crash(ActorState& actor, const Replica& replica, Clock::time_point now);
  // Free bytes of the fullest file system a replica of `actor` writes to (its run directory
  // and its logs).
  std::uint64_t free_bytes(const ActorState& actor) const;
  void watch_free_space(ActorState& actor, Clock::time_point now);
  // spawn() with stdout and stderr through a pipe of output_ (into spec.log_path); `stream`
  // receives the stream id.
  Result<pid_t> spawn_collected(ProcessSpec& spec, int& stream);
  void start_stats_poller();
  // The latest stats of `actor`'s queue into actor.stats; false when they are not current.
  bool update_stats(ActorState& actor);
  void advance_stopping(ActorState& actor, Clock::time_point now);
  void begin_shutdown(Clock::time_point now);
  void kill_everything();
  void refresh_status(Clock::time_point now);
  std::string status_json(Clock::time_point now) const;
  void render_view() const;
  void event(const std::string& text);
  bool gateway_enabled() const { return !options_.routes_file.empty(); }
  Status start_gateway();
  bool wait_gateway_ready();
  void gateway_tick(Clock::time_point now);
  bool all_gone() const;
  std::size_t user_actors() const {
    return static_cast<std::size_t>(
        std::count_if(actors_.begin(), actors_.end(), [](const auto& a) { return !a->end_actor; }));
  }
  fs::path socket_dir(const std::string& actor, int index) const;
  std::string queue(const std::string& actor) const { return prefix_ + actor; }

  SupervisorOptions options_;
  std::vector<std::unique_ptr<ActorState>> actors_;
  std::unique_ptr<transport::Transport> transport_;  // start-up only (ensure_queue)
  std::unique_ptr<QueueStatsPoller> stats_poller_;
  OutputCollector output_;
  std::string status_write_error_;  // the last failure to write status.json (empty: none)
  std::string prefix_ = "asya-";
  std::vector<std::string> base_env_;  // the supervisor's environment, for sidecars
  bool shutting_down_ = false;
  bool end_actors_stopping_ = false;
  bool ready_ = false;
  int lock_fd_ = -1;
  Clock::time_point next_status_;
  std::deque<std::string> events_;
  std::chrono::system_clock::time_point started_wall_ = std::chrono::system_clock::now();
  // The gateway process (0: not running).
  pid_t gateway_pid_ = 0;
  Clock::time_point gateway_started_;
  Clock::time_point gateway_restart_at_;
  Clock::time_point gateway_deadline_;  // SIGKILL after it, once stopping
  bool gateway_stopping_ = false;
  int gateway_quick_crashes_ = 0;
};

void Supervisor::event(const std::string& text) {
  std::string line = fmt::format("{} {}", now_text(), text);
  events_.push_back(line);
  while (events_.size() > 8) events_.pop_front();
  if (!options_.live_view) {
    std::fprintf(stderr, "asya: %s\n", text.c_str());
    std::fflush(stderr);
  }
}

fs::path Supervisor::socket_dir(const std::string& actor, int index) const {
  fs::path dir = options_.paths.run() / fmt::format("{}-{}", actor, index);
  // A Unix socket path has at most 107 bytes; deep temp dirs need a shorter home.
  if ((dir / "rt.sock").string().size() < 100) return dir;
  std::size_t hash = std::hash<std::string>{}(options_.paths.root.string());
  return fs::path("/tmp") / fmt::format("asya-{}-{:x}", ::getuid(), hash & 0xffffffffu) /
         fmt::format("{}-{}", actor, index);
}

// The options of this process's own transports: the project's queue database is passed
// explicitly (the sidecars and the gateway get it as ASYA_SQLITE_PATH in their environment).
transport::Options own_transport_options(const SupervisorOptions& options) {
  transport::Options transport_options;
  if (options.transport == "sqlite")
    transport_options.sqlite_path = options.paths.queues_db().string();
  return transport_options;
}

bool Supervisor::start_up() {
  const auto& paths = options_.paths;
  std::error_code ec;
  for (const auto& dir :
       {paths.root, paths.succeeded(), paths.failed(), paths.logs(), paths.run()}) {
    fs::create_directories(dir, ec);
    if (ec) {
      std::fprintf(stderr, "asya up: cannot create %s: %s\n", dir.c_str(), ec.message().c_str());
      return false;
    }
  }
  lock_fd_ = ::open(paths.lock_file().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0 || ::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    int pid = running_supervisor(paths);
    std::fprintf(stderr,
                 "asya up: another supervisor (pid %d) already runs on %s; stop it with `asya "
                 "down` or use another --state-dir\n",
                 pid, paths.root.c_str());
    return false;
  }
  if (Status st = write_file_atomic(paths.pid_file(), fmt::format("{}\n", ::getpid())); !st) {
    std::fprintf(stderr, "asya up: %s\n", st.message().c_str());
    return false;
  }

  for (const auto& actor : actors_) {
    if (actor->spec.isolation.network != manifest::RuntimeNetwork::kNone) continue;
    if (Status st = check_network_isolation(); !st) {
      std::fprintf(stderr, "asya up: %s:%d: actor %s: %s\n", actor->spec.file.c_str(),
                   actor->spec.line, actor->spec.name.c_str(), st.message().c_str());
      return false;
    }
    break;  // one check answers for every actor
  }
  if (auto prefix = env_get("ASYA_QUEUE_PREFIX")) prefix_ = *prefix;
  base_env_ = current_environment();
  if (options_.transport == "sqlite") {
    std::erase_if(base_env_,
                  [](const std::string& e) { return e.rfind("ASYA_SQLITE_PATH=", 0) == 0; });
    base_env_.push_back("ASYA_SQLITE_PATH=" + paths.queues_db().string());
  }
  if (gateway_enabled()) {
    // With a client token only, the sidecar endpoints (POST /envelopes*) would stay open to
    // anything on this host: protect them with a token of this run, known to the gateway and
    // every sidecar through base_env_ (never to runtimes).
    auto client_token = env_get("ASYA_GATEWAY_TOKEN");
    auto internal_token = env_get("ASYA_GATEWAY_INTERNAL_TOKEN");
    if (client_token && !client_token->empty() && (!internal_token || internal_token->empty())) {
      auto generated = random_token();
      if (!generated) {
        std::fprintf(stderr, "asya up: ASYA_GATEWAY_INTERNAL_TOKEN: %s\n",
                     generated.error().message.c_str());
        return false;
      }
      std::erase_if(base_env_, [](const std::string& e) {
        return e.rfind("ASYA_GATEWAY_INTERNAL_TOKEN=", 0) == 0;
      });
      base_env_.push_back("ASYA_GATEWAY_INTERNAL_TOKEN=" + *generated);
    }
  }
  try {
    transport_ = transport::make_transport(options_.transport, own_transport_options(options_));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "asya up: transport %s: %s\n", options_.transport.c_str(), e.what());
    return false;
  }
  for (const auto& actor : actors_) {
    if (Status st = transport_->ensure_queue(queue(actor->spec.name)); !st) {
      std::fprintf(stderr, "asya up: %s\n", st.message().c_str());
      return false;
    }
  }
  if (gateway_enabled()) {
    if (Status st = start_gateway(); !st) {
      std::fprintf(stderr, "asya up: %s\n", st.message().c_str());
      return false;
    }
    if (!wait_gateway_ready()) return false;
    event(fmt::format("gateway: {} serves the tools of {} (REST: POST {}/tools/call, MCP: {}/mcp)",
                      options_.gateway_url(), options_.routes_file, options_.gateway_url(),
                      options_.gateway_url()));
  }
  return true;
}

Status Supervisor::start_gateway() {
  ProcessSpec gw;
  gw.argv = {options_.gateway_binary};
  gw.env = base_env_;
  std::erase_if(gw.env, [](const std::string& e) {
    for (const char* key :
         {"ASYA_CONFIG_PATH=", "ASYA_GATEWAY_HOST=", "ASYA_GATEWAY_PORT=", "ASYA_GATEWAY_DB=",
          "ASYA_TRANSPORT=", "ASYA_QUEUE_PREFIX=", "ASYA_GATEWAY_INSTANCE_ID="}) {
      if (e.rfind(key, 0) == 0) return true;
    }
    return false;
  });
  gw.env.push_back("ASYA_CONFIG_PATH=" + options_.routes_file);
  gw.env.push_back("ASYA_GATEWAY_HOST=127.0.0.1");
  gw.env.push_back(fmt::format("ASYA_GATEWAY_PORT={}", options_.gateway_port));
  gw.env.push_back("ASYA_GATEWAY_DB=" + (options_.paths.root / "gateway.db").string());
  gw.env.push_back("ASYA_TRANSPORT=" + options_.transport);
  gw.env.push_back("ASYA_QUEUE_PREFIX=" + prefix_);
  gw.env.push_back("ASYA_GATEWAY_INSTANCE_ID=" + options_.gateway_instance_id);
  gw.working_dir = options_.paths.root.string();
  gw.log_path = (options_.paths.logs() / "gateway.log").string();
  auto pid = spawn(gw);
  if (!pid) return Error{fmt::format("gateway: {}", pid.error().message)};
  gateway_pid_ = *pid;
  gateway_started_ = Clock::now();
  return Status::Ok();
}

// Waits until the gateway answers GET /readyz with 200 (its job store and transport work), or
// reports why not: it exited (a mistake in routes.yaml, a busy port) or stayed unready.
bool Supervisor::wait_gateway_ready() {
  const auto deadline = Clock::now() + 30s;
  std::string last = "no answer";
  auto log_tail = [&] {
    std::string log;
    read_file(options_.paths.logs() / "gateway.log", log);
    if (log.size() > 3000) log = log.substr(log.size() - 3000);
    return log;
  };
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(gateway_pid_, &status, WNOHANG) == gateway_pid_) {
      gateway_pid_ = 0;
      std::fprintf(stderr,
                   "%sasya up: the gateway %s before it was ready (log: %s); a busy port? use "
                   "--gateway-port N (0: any free port) or --no-gateway\n",
                   log_tail().c_str(), describe_exit(status).c_str(),
                   (options_.paths.logs() / "gateway.log").c_str());
      return false;
    }
    if (auto got = http_get(options_.gateway_port, "/readyz")) {
      if (got->status == 200 && answered_by_instance(got->body, options_.gateway_instance_id))
        return true;
      last = got->status == 200 ? fmt::format(
                                      "port {} is answered by another process ({}), not "
                                      "by the gateway started here: the port is taken",
                                      options_.gateway_port, got->body)
                                : fmt::format("/readyz answered {}: {}", got->status, got->body);
    }
    std::this_thread::sleep_for(50ms);
  }
  std::fprintf(stderr, "%sasya up: the gateway on %s was not ready within 30s (%s; log: %s)\n",
               log_tail().c_str(), options_.gateway_url().c_str(), last.c_str(),
               (options_.paths.logs() / "gateway.log").c_str());
  ::kill(gateway_pid_, SIGKILL);
  ::waitpid(gateway_pid_, nullptr, 0);
  gateway_pid_ = 0;
  return false;
}

// Restarts a crashed gateway with backoff; stops it once the end actors are gone.
void Supervisor::gateway_tick(Clock::time_point now) {
  if (!gateway_enabled()) return;
  if (!shutting_down_) {
    if (gateway_pid_ == 0 && now >= gateway_restart_at_) {
      if (Status st = start_gateway(); !st) {
        gateway_restart_at_ = now + options_.restart_backoff_max;
        event(fmt::format("gateway: cannot start: {}", st.message()));
      } else {
        event(fmt::format("gateway: restarted on {}", options_.gateway_url()));
      }
    }
    if (gateway_pid_ && gateway_quick_crashes_ > 0 &&
        now - gateway_started_ >= options_.healthy_after)
      gateway_quick_crashes_ = 0;
    return;
  }
  bool end_actors_gone =
      end_actors_stopping_ && std::all_of(actors_.begin(), actors_.end(),
                                          [](const auto& a) { return a->replicas.empty(); });
  if (gateway_pid_ && end_actors_gone && !gateway_stopping_) {
    gateway_stopping_ = true;
    gateway_deadline_ = now + kKillAfterExtra + 5s;
    ::kill(gateway_pid_, SIGTERM);
  }
  if (gateway_pid_ && gateway_stopping_ && now >= gateway_deadline_) ::kill(gateway_pid_, SIGKILL);
}

Status Supervisor::start_replica(ActorState& actor, Clock::time_point now) {
  auto replica = std::make_unique<Replica>();
  // The lowest index not in use, so logs and sockets are reused after restarts.
  for (int i = 0;; ++i) {
    bool used = std::any_of(actor.replicas.begin(), actor.replicas.end(),
                            [&](const auto& r) { return r->index == i; });
    if (!used) {
      replica->index = i;
      break;
    }
  }
  const std::string& name = actor.spec.name;
  fs::path logs = options_.paths.actor_logs(name);
  std::error_code ec;
  fs::create_directories(logs, ec);
  fs::path run_dir = socket_dir(name, replica->index);
  fs::create_directories(run_dir, ec);
  replica->socket = run_dir / "rt.sock";
  fs::remove(replica->socket, ec);
  fs::remove(run_dir / "runtime-ready", ec);
  replica->metrics_port = free_port();
  replica->started = now;

  if (!actor.end_actor) {
    const manifest::Container& c = actor.spec.runtime();
    ProcessSpec rt;
    rt.argv = c.command.empty() ? options_.python_runtime : c.command;
    rt.argv.insert(rt.argv.end(), c.args.begin(), c.args.end());
    // The runtime gets only what the handler needs: basics, the manifest's env and its socket.
    for (const char* keep : {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER"}) {
      if (const char* value = std::getenv(keep))
        rt.env.push_back(fmt::format("{}={}", keep, value));
    }
    for (const auto& var : c.env) {
      if (!var.value_from_yaml.empty()) {
        return Error{fmt::format(
            "{}: env {} uses valueFrom, which only Kubernetes resolves; give a value for asya up",
            name, var.name)};
      }
      // The supervisor owns the socket's place: the sidecar is told the same one below.
      if (var.name == "ASYA_SOCKET_PATH" || var.name == "ASYA_SOCKET_DIR" ||
          var.name == "ASYA_SOCKET_NAME")
        continue;
      rt.env.push_back(var.name + "=" + var.value);
    }
    // Both forms, naming one file: runtimes that read ASYA_SOCKET_PATH (the bundled one) and the
    // published runtime, which reads ASYA_SOCKET_DIR/ASYA_SOCKET_NAME and writes runtime-ready
    // into ASYA_SOCKET_DIR, where the supervisor looks for it.
    rt.env.push_back("ASYA_SOCKET_PATH=" + replica->socket.string());
    rt.env.push_back("ASYA_SOCKET_DIR=" + replica->socket.parent_path().string());
    rt.env.push_back("ASYA_SOCKET_NAME=" + replica->socket.filename().string());
    fs::path manifest_dir = fs::absolute(actor.spec.file).parent_path();
    fs::path work = c.working_dir.empty() ? manifest_dir : manifest_dir / c.working_dir;
    rt.working_dir = work.lexically_normal().string();
    rt.log_path = (logs / fmt::format("{}.runtime.log", replica->index)).string();
    rt.isolate_network = actor.spec.isolation.network == manifest::RuntimeNetwork::kNone;
    auto pid = spawn_collected(rt, replica->runtime_output);
    if (!pid) {
      output_.release(replica->runtime_output);
      return Error{fmt::format("{}: runtime: {}", name, pid.error().message)};
    }
    replica->runtime = *pid;
  }

  ProcessSpec sc;
  sc.argv = {options_.sidecar_binary};
  // The manifest -> sidecar mapping shared with `asya render` (manifest/sidecar_environment.hpp).
  ReplicaSidecar host{actor.end_actor, replica->socket, replica->metrics_port};
  auto sidecar_env = replica_sidecar_environment(actor.spec, host, options_, prefix_, base_env_);
  if (!sidecar_env) {
    if (replica->runtime) {
      ::kill(replica->runtime, SIGKILL);
      ::waitpid(replica->runtime, nullptr, 0);
    }
    output_.release(replica->runtime_output);
    return Error{fmt::format("{}: sidecar: {}", name, sidecar_env.error().message)};
  }
  sc.env = std::move(*sidecar_env);
  sc.working_dir = options_.paths.root.string();
  sc.log_path = (logs / fmt::format("{}.sidecar.log", replica->index)).string();
  auto pid = spawn_collected(sc, replica->sidecar_output);
  if (!pid) {
    if (replica->runtime) {
      ::kill(replica->runtime, SIGKILL);
      ::waitpid(replica->runtime, nullptr, 0);
    }
    output_.release(replica->runtime_output);
    output_.release(replica->sidecar_output);
    return Error{fmt::format("{}: sidecar: {}", name, pid.error().message)};
  }
  replica->sidecar = *pid;
  actor.replicas.push_back(std::move(replica));
  return Status::Ok();
}

void Supervisor::stop_replica(ActorState& actor, Replica& replica, Clock::time_point now) {
  if (replica.phase != Phase::kRunning) return;
  replica.phase = Phase::kStoppingSidecar;
  replica.deadline = now + actor.spec.timeout.graceful_shutdown + kKillAfterExtra;
  if (replica.sidecar) {
    ::kill(replica.sidecar, SIGTERM);
  } else {
    replica.phase = Phase::kStoppingRuntime;
    replica.deadline = now + kKillAfterExtra;
    if (replica.runtime) ::kill(replica.runtime, SIGTERM);
  }
}

void Supervisor::on_exit(pid_t pid, int status, Clock::time_point now) {
  if (pid == gateway_pid_ && pid != 0) {
    gateway_pid_ = 0;
    if (shutting_down_) return;
    bool quick = now - gateway_started_ < options_.healthy_after;
    gateway_quick_crashes_ = quick ? gateway_quick_crashes_ + 1 : 1;
    auto backoff = options_.restart_backoff_initial;
    for (int i = 1; i < gateway_quick_crashes_ && backoff < options_.restart_backoff_max; ++i)
      backoff *= 2;
    backoff = std::min(backoff, options_.restart_backoff_max);
    gateway_restart_at_ = now + backoff;
    event(fmt::format(
        "gateway: {} (see {}); restart in {}", describe_exit(status),
        (options_.paths.logs() / "gateway.log").string(),
        format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(backoff))));
    return;
  }
  for (auto& actor : actors_) {
    for (auto& r : actor->replicas) {
      bool is_sidecar = r->sidecar == pid;
      if (!is_sidecar && r->runtime != pid) continue;
      if (is_sidecar)
        r->sidecar = 0;
      else
        r->runtime = 0;
      const std::string& name = actor->spec.name;
      if (r->phase == Phase::kRunning) {
        // Unexpected: a crash, or the sidecar giving up on a stuck runtime.
        if (is_sidecar && WIFEXITED(status) &&
            sidecar_exit_from_code(WEXITSTATUS(status)) == SidecarExit::kRuntimeTimeout) {
          r->timeout_restart = true;
          event(fmt::format("{}: replica {} hit the processing timeout; restarting the pair", name,
                            r->index));
        } else {
          // Its last words come through the pipe even when its log file could not take them.
          auto tail = output_.tail(is_sidecar ? r->sidecar_output : r->runtime_output,
                                   kCrashOutputLines, 300ms);
          r->crash_output = std::move(tail.lines);
          r->crash_reason = fmt::format(
              "{} {} (see {}{})", is_sidecar ? "sidecar" : "runtime", describe_exit(status),
              (options_.paths.actor_logs(name) /
               fmt::format("{}.{}.log", r->index, is_sidecar ? "sidecar" : "runtime"))
                  .string(),
              tail.log_error.empty() ? "" : "; " + tail.log_error);
        }
        actor->restarts++;
        r->phase = Phase::kCrashed;
        r->deadline = now + kKillAfterExtra;
        pid_t other = is_sidecar ? r->runtime : r->sidecar;
        if (other) ::kill(other, SIGTERM);
        if (!r->timeout_restart) record_crash(*actor, *r, now);
      } else if (r->phase == Phase::kStoppingSidecar && is_sidecar) {
        r->phase = Phase::kStoppingRuntime;
        r->deadline = now + kKillAfterExtra;
        if (r->runtime) ::kill(r->runtime, SIGTERM);
      }
      return;
    }
  }
}

// Counts a crash of `replica` (just detected) and sets when the actor may start a replacement:
// 0.5 s, doubled per quick crash in a row, capped; the replacement waits for it even while the
// crashed pair is still being stopped.
void Supervisor::record_crash(ActorState& actor, const Replica& r, Clock::time_point now) {
  bool quick = now - r.started < options_.healthy_after;
  actor.quick_crashes = quick ? actor.quick_crashes + 1 : 1;
  auto backoff = options_.restart_backoff_initial;
  for (int i = 1; i < actor.quick_crashes && backoff < options_.restart_backoff_max; ++i)
    backoff *= 2;
  backoff = std::min(backoff, options_.restart_backoff_max);
  // A full disk (the runtime cannot write runtime-ready, a log, ...): retry soon, and at once
  // when space is freed (watch_free_space), instead of after the whole backoff.
  std::uint64_t free_now = free_bytes(actor);
  bool no_space = free_now < 64 * 1024 ||
                  std::any_of(r.crash_output.begin(), r.crash_output.end(), [](const auto& line) {
                    return line.find("No space left on device") != std::string::npos;
                  });
  actor.waiting_for_space = no_space;
  actor.free_bytes_at_crash = free_now;
  if (no_space) backoff = std::min(backoff, kNoSpaceBackoff);
  actor.restart_at = no_space ? now + backoff : std::max(actor.restart_at, now + backoff);
  actor.last_crash = r.crash_reason;
  actor.last_crash_output = r.crash_output;
  actor.last_crash_at = std::chrono::system_clock::now();
  if (actor.quick_crashes >= options_.crash_loop_after && !actor.crash_looping) {
    actor.crash_looping = true;
    event(fmt::format(
        "{}: CRASH-LOOPING: {} quick crashes in a row; last: {}; restarting with backoff up to {}",
        actor.spec.name, actor.quick_crashes, r.crash_reason,
        format_duration(options_.restart_backoff_max)));
  } else {
    event(fmt::format(
        "{}: replica {} crashed: {}; restart in {}", actor.spec.name, r.index, r.crash_reason,
        format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(backoff))));
  }
}

void Supervisor::advance_stopping(ActorState& actor, Clock::time_point now) {
  for (auto it = actor.replicas.begin(); it != actor.replicas.end();) {
    Replica& r = **it;
    if (r.phase != Phase::kRunning && now >= r.deadline) {
      if (r.sidecar) ::kill(r.sidecar, SIGKILL);
      if (r.runtime) ::kill(r.runtime, SIGKILL);
    }
    if (r.phase != Phase::kRunning && r.sidecar == 0 && r.runtime == 0) {
      output_.release(r.sidecar_output);
      output_.release(r.runtime_output);
      actor.retired_processed += r.processed;
      actor.retired_errors += r.errors;
      it = actor.replicas.erase(it);
    } else {
      ++it;
    }
  }
  // A replica that has run long enough clears the crash-loop state.
  if (actor.quick_crashes > 0) {
    for (const auto& r : actor.replicas) {
      if (r->phase == Phase::kRunning && now - r->started >= options_.healthy_after) {
        if (actor.crash_looping)
          event(fmt::format("{}: recovered from crash loop", actor.spec.name));
        actor.quick_crashes = 0;
        actor.crash_looping = false;
        break;
      }
    }
  }
}

void Supervisor::autoscale(ActorState& actor, Clock::time_point now) {
  if (actor.end_actor || !actor.spec.scaling.enabled || now < actor.next_poll) return;
  actor.next_poll = now + actor.spec.scaling.polling_interval;
  std::string before = actor.stats_error;
  if (!update_stats(actor)) {
    // Keep the replicas as they are until the queue can be read again.
    // Said once per outage (the message of a waiting call changes every time).
    if (before.empty() && !actor.stats_error.empty())
      event(fmt::format("{}: cannot read queue stats: {}; keeping {} replica(s) until it can",
                        actor.spec.name, actor.stats_error, actor.desired));
    return;
  }
  if (!before.empty()) event(fmt::format("{}: queue stats readable again", actor.spec.name));
  const transport::QueueStats& stats = actor.stats;
  // The count decided before, as the HPA reads spec.replicas: a replica that crashed and waits
  // for its restart is still wanted, and the rate limits count from what was decided.
  int desired = actor.autoscaler->desired(actor.desired, stats.ready + stats.in_flight, now);
  if (desired != actor.desired) {
    event(fmt::format("{}: scaling {} -> {} ({} ready, {} in flight)", actor.spec.name,
                      actor.desired, desired, stats.ready, stats.in_flight));
    actor.desired = desired;
  }
}

bool Supervisor::update_stats(ActorState& actor) {
  if (!stats_poller_) return false;
  auto sample = stats_poller_->latest(queue(actor.spec.name));
  if (sample.read_at != Clock::time_point{}) {
    actor.stats = sample.stats;
    actor.stats_read_at = sample.read_at;
    actor.stats_ok = true;
  }
  actor.stats_error = sample.error;  // empty before the first read: not an error yet
  return sample.ok();
}

void Supervisor::start_stats_poller() {
  std::vector<QueueStatsPoller::Queue> queues;
  for (const auto& actor : actors_) {
    std::chrono::milliseconds interval = kStatusEvery;
    if (!actor->end_actor && actor->spec.scaling.enabled)
      interval = std::min(interval, actor->spec.scaling.polling_interval);
    queues.push_back({queue(actor->spec.name), interval});
  }
  std::string name = options_.transport;
  stats_poller_ = std::make_unique<QueueStatsPoller>(
      [name, transport_options = own_transport_options(options_)] {
        return transport::make_transport(name, transport_options);
      },
      std::move(queues), kStatsAnswerTimeout);
  stats_poller_->start();
}

Result<pid_t> Supervisor::spawn_collected(ProcessSpec& spec, int& stream) {
  auto pipe = output_.open(spec.log_path);
  if (!pipe) return pipe.error();
  stream = pipe->id;
  spec.output_fd = pipe->write_fd;
  auto pid = spawn(spec);
  ::close(pipe->write_fd);
  spec.output_fd = -1;
  return pid;
}

std::uint64_t Supervisor::free_bytes(const ActorState& actor) const {
  std::uint64_t least = UINT64_MAX;
  for (const fs::path& dir :
       {options_.paths.actor_logs(actor.spec.name), socket_dir(actor.spec.name, 0).parent_path()}) {
    struct statvfs info {};
    if (::statvfs(dir.c_str(), &info) == 0)
      least = std::min<std::uint64_t>(least, std::uint64_t{info.f_bavail} * info.f_frsize);
  }
  return least;
}

void Supervisor::watch_free_space(ActorState& actor, Clock::time_point now) {
  if (!actor.waiting_for_space || now >= actor.restart_at) return;
  // Checked once per tick (100 ms) while a full disk holds the actor back: two statvfs calls.
  if (free_bytes(actor) > actor.free_bytes_at_crash + 16 * 1024) {
    actor.waiting_for_space = false;
    actor.restart_at = now;
    event(fmt::format("{}: disk space is available again; restarting now", actor.spec.name));
  }
}

void Supervisor::reconcile(ActorState& actor, Clock::time_point now) {
  int live = actor.live();
  // The replacement of a crashed pair waits for the backoff (record_crash), not for the crashed
  // pair to be gone: a sidecar whose runtime never became ready can take until its SIGKILL.
  if (live < actor.desired && now >= actor.restart_at) {
    for (int i = live; i < actor.desired; ++i) {
      if (Status st = start_replica(actor, now); !st) {
        actor.last_crash = st.message();
        actor.last_crash_output.clear();
        actor.last_crash_at = std::chrono::system_clock::now();
        actor.quick_crashes++;
        actor.restart_at = now + options_.restart_backoff_max;
        event(fmt::format("{}: cannot start a replica: {}; retrying in {}", actor.spec.name,
                          st.message(), format_duration(options_.restart_backoff_max)));
        if (!actor.crash_looping && actor.quick_crashes >= options_.crash_loop_after) {
          actor.crash_looping = true;
          event(fmt::format("{}: CRASH-LOOPING: cannot start", actor.spec.name));
        }
        break;
      }
    }
  } else if (live > actor.desired) {
    // Stop the newest replicas; each drains before it exits.
    int excess = live - actor.desired;
    for (auto it = actor.replicas.rbegin(); it != actor.replicas.rend() && excess > 0; ++it) {
      if ((*it)->phase == Phase::kRunning) {
        stop_replica(actor, **it, now);
        --excess;
      }
    }
  }
}

void Supervisor::begin_shutdown(Clock::time_point now) {
  if (shutting_down_) return;
  shutting_down_ = true;
  event("stopping: draining every replica (Ctrl-C again to stop at once)");
  for (auto& actor : actors_) {
    if (actor->end_actor) continue;
    actor->desired = 0;
    for (auto& r : actor->replicas) stop_replica(*actor, *r, now);
  }
}

void Supervisor::kill_everything() {
  if (gateway_pid_) ::kill(gateway_pid_, SIGKILL);
  for (auto& actor : actors_) {
    for (auto& r : actor->replicas) {
      if (r->sidecar) ::kill(r->sidecar, SIGKILL);
      if (r->runtime) ::kill(r->runtime, SIGKILL);
    }
  }
}

bool Supervisor::all_gone() const {
  return gateway_pid_ == 0 && std::all_of(actors_.begin(), actors_.end(),
                                          [](const auto& a) { return a->replicas.empty(); });
}

void Supervisor::tick(Clock::time_point now) {
  for (auto& actor : actors_) advance_stopping(*actor, now);
  if (!shutting_down_) {
    for (auto& actor : actors_) {
      autoscale(*actor, now);
      watch_free_space(*actor, now);
      reconcile(*actor, now);
    }
    if (!ready_) {
      // status.json first, so whoever waits for readiness (asya up --detach) can read it.
      ready_ = true;
      refresh_status(now);
      next_status_ = now + kStatusEvery;
      if (options_.on_ready) options_.on_ready();
    }
  } else if (!end_actors_stopping_) {
    bool actors_gone = std::all_of(actors_.begin(), actors_.end(), [](const auto& a) {
      return a->end_actor || a->replicas.empty();
    });
    if (actors_gone) {
      // Every output of the actors is durable in the end queues; now stop the end actors.
      end_actors_stopping_ = true;
      for (auto& actor : actors_) {
        if (!actor->end_actor) continue;
        actor->desired = 0;
        for (auto& r : actor->replicas) stop_replica(*actor, *r, now);
      }
    }
  }
  gateway_tick(now);
  if (now >= next_status_) {
    next_status_ = now + kStatusEvery;
    refresh_status(now);
  }
}

void Supervisor::refresh_status(Clock::time_point now) {
  for (auto& actor : actors_) {
    for (auto& r : actor->replicas) {
      if (r->phase != Phase::kRunning) continue;
      if (auto counters = scrape(r->metrics_port)) {
        r->processed = counters->first;
        r->errors = counters->second;
      }
    }
    if (!actor->spec.scaling.enabled || actor->end_actor || shutting_down_) update_stats(*actor);
    double total = actor->processed();
    if (actor->last_total_at != Clock::time_point{}) {
      double seconds = std::chrono::duration<double>(now - actor->last_total_at).count();
      if (seconds > 0) {
        double instant = std::max(0.0, total - actor->last_total) / seconds;
        actor->rate = 0.5 * actor->rate + 0.5 * instant;
      }
    }
    actor->last_total = total;
    actor->last_total_at = now;
  }
  Status written = write_file_atomic(options_.paths.status_file(), status_json(now));
  // Said once per cause (and once when it works again): `asya status` shows the file's age.
  if (!written && written.message() != status_write_error_) {
    event(
        fmt::format("cannot write status.json ({}); `asya status` shows the last written "
                    "state and how old it is",
                    written.message()));
  } else if (written && !status_write_error_.empty()) {
    event("status.json is written again");
  }
  status_write_error_ = written.message();
  if (options_.live_view) render_view();
}

std::string Supervisor::status_json(Clock::time_point now) const {
  StatusDocument doc;
  doc.pid = ::getpid();
  doc.state_dir = options_.paths.root.string();
  doc.transport = options_.transport;
  doc.queue_prefix = prefix_;
  doc.ready = ready_;
  if (gateway_enabled())
    doc.gateway = StatusGateway{options_.gateway_url(), options_.routes_file, gateway_pid_,
                                gateway_pid_ != 0};
  doc.stopping = shutting_down_;
  doc.started =
      std::chrono::duration_cast<std::chrono::seconds>(started_wall_.time_since_epoch()).count();
  doc.updated = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  for (const auto& actor : actors_) {
    StatusActor a;
    a.name = actor->spec.name;
    a.end_actor = actor->end_actor;
    int ready = 0;
    for (const auto& r : actor->replicas) {
      if (r->phase != Phase::kRunning || !r->sidecar) continue;
      std::error_code ec;
      if (actor->end_actor || fs::exists(r->socket.parent_path() / "runtime-ready", ec)) ++ready;
    }
    for (const auto& r : actor->replicas)
      a.processes.push_back({r->index, r->sidecar, r->runtime, r->phase == Phase::kRunning});
    a.replicas = {ready, actor->live(), static_cast<int>(actor->replicas.size()) - actor->live(),
                  actor->desired};
    if (!actor->end_actor) {
      const auto& s = actor->spec.scaling;
      a.scaling = StatusScaling{s.enabled, s.min_replicas, s.max_replicas, s.queue_length};
    }
    a.queue.name = prefix_ + actor->spec.name;
    a.queue.ready = actor->stats.ready;
    a.queue.in_flight = actor->stats.in_flight;
    a.queue.delayed = actor->stats.delayed;
    // How old the counts are, and why they are not current (a broker that does not answer).
    if (actor->stats_read_at != Clock::time_point{})
      a.queue.age_seconds =
          std::round(std::chrono::duration<double>(now - actor->stats_read_at).count() * 10) / 10;
    a.queue.stats_error = actor->stats_error;
    a.processed = static_cast<std::uint64_t>(actor->processed());
    a.errors = static_cast<std::uint64_t>(actor->errors());
    a.rate = std::round(actor->rate * 10) / 10;
    a.state = ActorActivity::kRunning;
    if (actor->crash_looping)
      a.state = ActorActivity::kCrashLooping;
    else if (shutting_down_)
      a.state = ActorActivity::kStopping;
    else if (actor->live() == 0 && actor->desired == 0)
      a.state = ActorActivity::kIdle;
    else if (actor->live() < actor->desired)
      a.state = ActorActivity::kStarting;
    a.restarts = actor->restarts;
    a.crash_streak = actor->quick_crashes;
    a.last_crash = actor->last_crash;
    a.last_crash_output.assign(actor->last_crash_output.begin(), actor->last_crash_output.end());
    if (!actor->last_crash.empty())
      a.last_crash_at =
          std::chrono::duration_cast<std::chrono::seconds>(actor->last_crash_at.time_since_epoch())
              .count();
    doc.actors.push_back(std::move(a));
  }
  doc.events.assign(events_.begin(), events_.end());
  return doc.to_text();
}

void Supervisor::render_view() const {
  std::string out = "\x1b[H\x1b[2J";
  out += fmt::format("asya up: {} actors, transport {}, state {}   (Ctrl-C stops)\n", user_actors(),
                     options_.transport, options_.paths.root.string());
  if (gateway_enabled())
    out += fmt::format("gateway: {} {}\n", options_.gateway_url(),
                       gateway_pid_ ? "(POST /tools/call, MCP /mcp)" : "(restarting)");
  out += "\n";
  out += fmt::format("{:<24} {:>9} {:>7} {:>9} {:>10} {:>7} {:>8}  {}\n", "ACTOR", "REPLICAS",
                     "QUEUE", "IN-FLIGHT", "PROCESSED", "ERRORS", "RATE/s", "STATE");
  for (const auto& actor : actors_) {
    int ready = 0;
    for (const auto& r : actor->replicas) {
      std::error_code ec;
      if (r->phase == Phase::kRunning && r->sidecar &&
          (actor->end_actor || fs::exists(r->socket.parent_path() / "runtime-ready", ec)))
        ++ready;
    }
    std::string state = actor->crash_looping                        ? "CRASH-LOOPING"
                        : shutting_down_                            ? "stopping"
                        : actor->live() == 0 && actor->desired == 0 ? "idle"
                                                                    : "running";
    out += fmt::format("{:<24} {:>9} {:>7} {:>9} {:>10} {:>7} {:>8.1f}  {}\n", actor->spec.name,
                       fmt::format("{}/{}", ready, actor->desired), actor->stats.ready,
                       actor->stats.in_flight, static_cast<std::uint64_t>(actor->processed()),
                       static_cast<std::uint64_t>(actor->errors()), actor->rate, state);
  }
  out += "\nrecent events:\n";
  for (const auto& e : events_) out += "  " + e + "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

int Supervisor::run() {
  sigset_t signals;
  sigemptyset(&signals);
  for (int sig : {SIGTERM, SIGINT, SIGCHLD, SIGHUP}) sigaddset(&signals, sig);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  if (!start_up()) return 1;
  // From here on only the poller's own transport talks to the broker.
  transport_->close();
  transport_.reset();
  start_stats_poller();
  event(fmt::format("started: {} actors from manifests, transport {}, state {}", user_actors(),
                    options_.transport, options_.paths.root.string()));
  int signals_seen = 0;
  while (true) {
    timespec wait{0, 100'000'000};
    siginfo_t info;
    int sig = sigtimedwait(&signals, &info, &wait);
    auto now = Clock::now();
    if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
      ++signals_seen;
      if (signals_seen == 1) {
        begin_shutdown(now);
      } else {
        event("second signal: killing every process now");
        kill_everything();
      }
    }
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) on_exit(pid, status, now);
    tick(now);
    if (shutting_down_ && all_gone()) break;
  }
  refresh_status(Clock::now());
  stats_poller_->stop(1s);
  event("stopped: every replica drained and exited");
  if (options_.live_view) {
    render_view();
    std::fprintf(stderr, "asya: stopped: every replica drained and exited\n");
  }
  std::error_code ec;
  fs::remove(options_.paths.pid_file(), ec);
  fs::remove(options_.paths.status_file(), ec);
  ::close(lock_fd_);
  return 0;
}

}  // namespace

int run_supervisor(const std::vector<manifest::Actor>& actors, const SupervisorOptions& options) {
  Supervisor supervisor(actors, options);
  return supervisor.run();
}

int free_local_port() {
  return free_port();
}

}  // namespace asya::local
