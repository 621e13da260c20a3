#include "local/supervisor.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <memory>
#include <optional>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "common/env.hpp"
#include "common/shutdown_signals.hpp"
#include "local/actor_state.hpp"
#include "local/gateway_process.hpp"
#include "local/handler_watcher.hpp"
#include "local/output_collector.hpp"
#include "local/queue_stats_poller.hpp"
#include "local/replica_launcher.hpp"
#include "local/replica_supervisor.hpp"
#include "local/run_setup.hpp"
#include "local/sidecar_counters.hpp"
#include "local/status_writer.hpp"
#include "local/terminal_view.hpp"

namespace asya::local {
namespace {

namespace fs = std::filesystem;
using Clock = SteadyClock;
using namespace std::chrono_literals;

constexpr const char* kHappyEnd = "happy-end";
constexpr const char* kErrorEnd = "error-end";
constexpr auto kStatusEvery = 1s;
// Queue stats older than this (a broker that does not answer) are reported as stale; the
// poller's thread may wait much longer in one call, the control loop never does.
constexpr auto kStatsAnswerTimeout = 2s;
// A status asked for by `asya status` (SIGUSR1) waits at most this long for queue counts read
// after the request; then it is written with what there is.
constexpr auto kFreshStatsWait = 2s;

std::string now_text() {
  auto now = std::chrono::system_clock::now();
  return fmt::format("{:%H:%M:%S}", fmt::localtime(std::chrono::system_clock::to_time_t(now)));
}

// The options of this process's own transports: the project's queue database is passed
// explicitly (the sidecars and the gateway get it as ASYA_SQLITE_PATH in their environment).
transport::Options own_transport_options(const SupervisorOptions& options) {
  transport::Options transport_options;
  if (options.transport == "sqlite")
    transport_options.sqlite_path = options.paths.queues_db().string();
  return transport_options;
}

RestartPolicy restart_policy(const SupervisorOptions& options) {
  return RestartPolicy{options.restart_backoff_initial, options.restart_backoff_max,
                       options.healthy_after, options.crash_loop_after};
}

// The value of ASYA_HANDLER in the runtime's env of `actor` (empty when none).
std::string handler_of(const manifest::Actor& actor) {
  for (const auto& var : actor.runtime().env)
    if (var.name == "ASYA_HANDLER") return var.value;
  return {};
}

// Wires the parts of `asya up`: start-up (state directory, lock, queues, gateway), then a control
// loop every 100 ms that reaps children, scales, restarts, reloads and writes the status.
class Supervisor {
 public:
  Supervisor(const std::vector<manifest::Actor>& actors, const SupervisorOptions& options)
      : options_(options),
        launcher_(options_, output_, prefix_, base_env_),
        replicas_(options_, launcher_, output_, [this](const std::string& e) { event(e); }),
        gateway_(options_, restart_policy(options_), [this](const std::string& e) { event(e); }),
        status_writer_(options_.paths.status_file()) {
    for (const char* name : {kHappyEnd, kErrorEnd}) {
      if (!options.end_actors) break;
      manifest::Actor spec;
      spec.name = name;
      auto state = std::make_unique<ActorState>(spec, true, restart_policy(options_));
      state->desired = 1;
      actors_.push_back(std::move(state));
    }
    for (const auto& actor : actors) {
      auto state = std::make_unique<ActorState>(actor, false, restart_policy(options_));
      state->autoscaler = std::make_unique<Autoscaler>(actor.scaling);
      state->desired = actor.scaling.enabled ? actor.scaling.min_replicas : actor.replicas;
      actors_.push_back(std::move(state));
    }
  }

  int run();

 private:
  bool start_up();
  Status watch_handlers();
  void tick(Clock::time_point now);
  void autoscale(ActorState& actor, Clock::time_point now);
  void start_stats_poller();
  // The latest stats of `actor`'s queue into actor.stats; false when they are not current.
  bool update_stats(ActorState& actor);
  void begin_shutdown(Clock::time_point now);
  void kill_everything();
  // Whether every queue's counts were read at or after `since` (a status `asya status` asked for).
  bool stats_read_since(Clock::time_point since) const;
  void refresh_status(Clock::time_point now);
  SupervisorSnapshot snapshot() const {
    return SupervisorSnapshot{options_, actors_,        events_,        prefix_,
                              ready_,   shutting_down_, gateway_.pid(), started_wall_};
  }
  void event(const std::string& text);
  bool all_gone() const;
  std::size_t user_actors() const {
    return static_cast<std::size_t>(
        std::count_if(actors_.begin(), actors_.end(), [](const auto& a) { return !a->end_actor; }));
  }
  std::string queue(const std::string& actor) const { return prefix_ + actor; }

  SupervisorOptions options_;
  std::string prefix_ = "asya-";
  std::vector<std::string> base_env_;  // the supervisor's environment, for sidecars
  OutputCollector output_;
  ReplicaLauncher launcher_;
  ReplicaSupervisor replicas_;
  GatewayProcess gateway_;
  StatusWriter status_writer_;
  std::unique_ptr<HandlerWatcher> watcher_;  // with --reload
  std::vector<std::unique_ptr<ActorState>> actors_;
  std::unique_ptr<transport::Transport> transport_;  // start-up only (ensure_queue)
  std::unique_ptr<QueueStatsPoller> stats_poller_;
  bool shutting_down_ = false;
  bool end_actors_stopping_ = false;
  bool ready_ = false;
  int lock_fd_ = -1;
  Clock::time_point next_status_;
  // When `asya status` asked for a fresh status (SIGUSR1) not written yet; {}: none pending.
  Clock::time_point status_requested_;
  std::deque<std::string> events_;
  std::chrono::system_clock::time_point started_wall_ = std::chrono::system_clock::now();
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
bool Supervisor::start_up() {
  auto lock = claim_state_directory(options_.paths);
  if (!lock) {
    std::fprintf(stderr, "asya up: %s\n", lock.error().message.c_str());
    return false;
  }
  lock_fd_ = *lock;
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
  auto base_env = sidecar_base_environment(options_);
  if (!base_env) {
    std::fprintf(stderr, "asya up: %s\n", base_env.error().message.c_str());
    return false;
  }
  base_env_ = std::move(*base_env);
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
  if (gateway_.enabled()) {
    if (Status st = gateway_.start(base_env_, prefix_); !st) {
      std::fprintf(stderr, "asya up: %s\n", st.message().c_str());
      return false;
    }
    if (!gateway_.wait_ready()) return false;
    event(fmt::format("gateway: {} serves the tools of {} (REST: POST {}/tools/call, MCP: {}/mcp)",
                      options_.gateway_url(), options_.routes_file, options_.gateway_url(),
                      options_.gateway_url()));
  }
  if (options_.reload) {
    if (Status st = watch_handlers(); !st) {
      std::fprintf(stderr, "asya up: %s\n", st.message().c_str());
      return false;
    }
  }
  return true;
}

Status Supervisor::watch_handlers() {
  watcher_ = std::make_unique<HandlerWatcher>();
  for (const auto& actor : actors_) {
    if (actor->end_actor) continue;
    std::string handler = handler_of(actor->spec);
    if (handler.empty()) continue;  // not a Python handler: nothing to watch
    fs::path folder = runtime_working_dir(actor->spec);
    if (Status st = watcher_->watch(actor->spec.name, handler, folder); !st) return st;
    event(fmt::format("reload: watching {} for changes of {} ({})", folder.string(),
                      actor->spec.name, handler));
  }
  return Status::Ok();
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

bool Supervisor::stats_read_since(Clock::time_point since) const {
  if (!stats_poller_) return true;
  return std::all_of(actors_.begin(), actors_.end(), [&](const auto& actor) {
    auto sample = stats_poller_->latest(queue(actor->spec.name));
    return !sample.error.empty() || sample.read_at >= since;  // an error will not improve soon
  });
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

void Supervisor::begin_shutdown(Clock::time_point now) {
  if (shutting_down_) return;
  shutting_down_ = true;
  event("stopping: draining every replica (Ctrl-C again to stop at once)");
  for (auto& actor : actors_) {
    if (actor->end_actor) continue;
    actor->desired = 0;
    for (auto& r : actor->replicas) r->begin_stop(actor->spec.timeout.graceful_shutdown, now);
  }
}

void Supervisor::kill_everything() {
  gateway_.kill_now();
  for (auto& actor : actors_) {
    for (auto& r : actor->replicas) {
      r->sidecar.kill_now();
      r->runtime.kill_now();
    }
  }
}

bool Supervisor::all_gone() const {
  return gateway_.pid() == 0 && std::all_of(actors_.begin(), actors_.end(),
                                            [](const auto& a) { return a->replicas.empty(); });
}

void Supervisor::tick(Clock::time_point now) {
  for (auto& actor : actors_) replicas_.advance_stopping(*actor, now);
  if (!shutting_down_) {
    if (watcher_)
      for (const auto& change : watcher_->poll(now))
        for (auto& actor : actors_)
          if (actor->spec.name == change.actor) replicas_.reload(*actor, change.file, now);
    for (auto& actor : actors_) {
      autoscale(*actor, now);
      replicas_.watch_free_space(*actor, now);
      replicas_.reconcile(*actor, now);
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
        for (auto& r : actor->replicas) r->begin_stop(actor->spec.timeout.graceful_shutdown, now);
      }
    }
  }
  bool end_actors_gone =
      end_actors_stopping_ && std::all_of(actors_.begin(), actors_.end(),
                                          [](const auto& a) { return a->replicas.empty(); });
  gateway_.tick(now, shutting_down_, end_actors_gone);
  // A status `asya status` asked for is written as soon as every queue was read after the
  // request (or after kFreshStatsWait with what there is). Meanwhile the periodic write waits:
  // the command takes the first status written after its request, and one written now would
  // carry counts read before it (a queue still showing messages `asya send --wait` saw done).
  const bool pending = status_requested_ != Clock::time_point{};
  const bool requested = pending && (stats_read_since(status_requested_) ||
                                     now >= status_requested_ + kFreshStatsWait);
  if (requested || (!pending && now >= next_status_)) {
    next_status_ = now + kStatusEvery;
    status_requested_ = {};
    refresh_status(now);
  }
}

void Supervisor::refresh_status(Clock::time_point now) {
  for (auto& actor : actors_) {
    for (auto& r : actor->replicas) {
      if (!r->running()) continue;
      if (auto counters = read_sidecar_counters(r->metrics_port)) {
        r->processed = counters->processed;
        r->errors = counters->errors;
      }
    }
    if (!actor->spec.scaling.enabled || actor->end_actor || shutting_down_) {
      update_stats(*actor);
    } else if (stats_poller_) {
      // An autoscaled actor's counts are taken by autoscale() at its polling interval; the status
      // shows the poller's newest read (after a SIGUSR1, one made after the request). Its error
      // stays autoscale()'s to report, once per outage.
      auto sample = stats_poller_->latest(queue(actor->spec.name));
      if (sample.ok() && sample.read_at > actor->stats_read_at) {
        actor->stats = sample.stats;
        actor->stats_read_at = sample.read_at;
        actor->stats_ok = true;
      }
    }
    actor->update_rate(now);
  }
  std::string problem = status_writer_.write(make_status_document(snapshot(), now));
  if (!problem.empty()) event(problem);
  if (options_.live_view) {
    std::string view = render_terminal_view(snapshot());
    std::fwrite(view.data(), 1, view.size(), stdout);
    std::fflush(stdout);
  }
}

// The signals the control loop takes (SignalSet::wait_for); blocked in every thread. SIGCHLD only
// wakes the loop early to reap an exited child.
SignalSet supervisor_signals() {
  return SignalSet{SIGTERM, SIGINT, SIGCHLD, SIGHUP, SIGUSR1};
}

int Supervisor::run() {
  const SignalSet signals = supervisor_signals();
  if (!start_up()) return 1;
  // From here on only the poller's own transport talks to the broker.
  transport_->close();
  transport_.reset();
  start_stats_poller();
  event(fmt::format("started: {} actors from manifests, transport {}, state {}", user_actors(),
                    options_.transport, options_.paths.root.string()));
  int signals_seen = 0;
  while (true) {
    int sig = signals.wait_for(100ms);
    auto now = Clock::now();
    if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
      ++signals_seen;
      if (signals_seen == 1) {
        begin_shutdown(now);
      } else {
        event("second signal: killing every process now");
        kill_everything();
      }
    } else if (sig == SIGUSR1 && status_requested_ == Clock::time_point{}) {
      // `asya status` wants counts newer than its start (cli/status_command.cpp).
      status_requested_ = now;
      stats_poller_->refresh_now();
    }
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      if (gateway_.on_exit(pid, status, shutting_down_, now)) continue;
      for (auto& actor : actors_)
        if (replicas_.on_exit(*actor, pid, status, now)) break;
    }
    tick(now);
    if (shutting_down_ && all_gone()) break;
  }
  refresh_status(Clock::now());
  stats_poller_->stop(1s);
  event("stopped: every replica drained and exited");
  if (options_.live_view) std::fprintf(stderr, "asya: stopped: every replica drained and exited\n");
  std::error_code ec;
  fs::remove(options_.paths.pid_file(), ec);
  fs::remove(options_.paths.status_file(), ec);
  ::close(lock_fd_);
  return 0;
}

}  // namespace

int run_supervisor(const std::vector<manifest::Actor>& actors, const SupervisorOptions& options) {
  // Before any thread exists (the Supervisor's OutputCollector starts one): a thread that does
  // not block them would take SIGTERM or SIGUSR1 with their default action, ending the process.
  supervisor_signals().block();
  ::signal(SIGPIPE, SIG_IGN);
  Supervisor supervisor(actors, options);
  return supervisor.run();
}

int free_local_port() {
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

}  // namespace asya::local
