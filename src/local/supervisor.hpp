// The `asya up` supervisor: runs the end actors and, per actor, replicas = sidecar + runtime
// process pairs, scales them with the Autoscaler from the transport's queue stats, restarts
// crashed pairs with exponential backoff, and stops everything in order on SIGTERM/SIGINT.
// docs/local.md describes the behaviour for users. The parts: run_setup (state directory,
// inherited environment), replica_launcher and replica_supervisor (replicas of an actor),
// managed_process (one child and the restart backoff), gateway_process, handler_watcher
// (--reload), sidecar_counters, status_writer and terminal_view.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "local/state.hpp"
#include "manifest/manifest.hpp"

namespace asya::local {

struct SupervisorOptions {
  StatePaths paths{".asya"};
  std::string sidecar_binary;               // absolute path of asya-sidecar
  std::vector<std::string> python_runtime;  // e.g. {"python3", "/abs/asya_runtime.py"}
  std::string transport = "sqlite";         // shared by every actor and the end actors
  bool live_view = false;                   // a redrawn table (TTY) instead of log lines
  // false: do not run happy-end/error-end (another host sharing the broker runs them).
  bool end_actors = true;
  // ASYA_PAYLOAD_STORE of every sidecar and the gateway (`asya up`: file://<state>/payloads unless
  // ASYA_PAYLOAD_STORE is set; empty: off).
  std::string payload_store;
  // The gateway: with a routes file, asya-gateway serves its tools on 127.0.0.1:gateway_port
  // (job store <state>/gateway.db, log <state>/logs/gateway.log) and every sidecar gets
  // ASYA_GATEWAY_URL. It starts before any sidecar and stops after the end actors.
  std::string routes_file;     // absolute; empty: no gateway
  std::string gateway_binary;  // absolute path of asya-gateway
  int gateway_port = 0;        // a concrete port (the caller picks a free one)
  // Given to the gateway as ASYA_GATEWAY_INSTANCE_ID; its readiness answer must carry it, so an
  // answer from another process on the port is not taken for it (local/instance_id.hpp).
  std::string gateway_instance_id;
  std::string gateway_url() const { return "http://127.0.0.1:" + std::to_string(gateway_port); }
  // The gateway also listens on <state>/gateway.sock (its ASYA_GATEWAY_SOCKET), and the sidecars
  // reach it there (ASYA_GATEWAY_URL=unix:...): a request over a Unix socket costs both sides less
  // CPU than over loopback TCP. Empty when the path is too long for a Unix socket (107 bytes):
  // the sidecars then use gateway_url().
  std::string gateway_socket() const {
    std::string path = (paths.root / "gateway.sock").string();
    return path.size() < 108 ? path : std::string();
  }
  std::string sidecar_gateway_url() const {
    const std::string socket = gateway_socket();
    return socket.empty() ? gateway_url() : "unix:" + socket;
  }
  std::chrono::milliseconds restart_backoff_initial{std::chrono::milliseconds(500)};
  std::chrono::milliseconds restart_backoff_max{std::chrono::seconds(30)};
  // A pair that dies before running this long counts as a quick crash; this many quick crashes
  // in a row mark the actor crash-looping (restarts continue, at the capped backoff).
  std::chrono::milliseconds healthy_after{std::chrono::seconds(10)};
  int crash_loop_after = 3;
  // `asya up --reload`: when a Python file an actor's handler is imported from changes, its
  // replicas drain and are replaced by new ones (handler_watcher.hpp says what counts).
  bool reload = false;
  // Called once, when the end actors and every actor's initial replicas have been started
  // (`asya up --detach` returns then).
  std::function<void()> on_ready;
};

// Runs until SIGTERM or SIGINT (the caller must not have other threads handling them), then
// stops every replica gracefully: each sidecar drains (in-flight messages finish or return to
// the queue), then its runtime is stopped; the end actors stop last. A second signal stops at
// once (SIGKILL). Returns the process exit code: 0 after a clean stop, 1 when start-up failed
// (the reason is printed on stderr).
int run_supervisor(const std::vector<manifest::Actor>& actors, const SupervisorOptions& options);

// A TCP port on 127.0.0.1 that was free a moment ago (0 when none could be found).
int free_local_port();

}  // namespace asya::local
