// What the gateway can honestly tell about the actors of its routes (GET /actors, the dashboard's
// actors table): each actor's queue counts from the transport (ready, in flight, delayed), and,
// when an `asya up` supervisor runs the actors (ASYA_GATEWAY_STATUS_FILE, its status.json), their
// replicas ready/desired, processed and error counts and rate. On Kubernetes the replica columns
// are unknown here (null): `kubectl get deploy` and the sidecars' /metrics have them.
//
// A sample of every actor is taken every `interval` and the last `samples` are kept in memory
// (the sparklines: about ten minutes by default). Sampling runs on the service's io_context;
// transport and file reads hop to its blocking pool.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace asya::gateway {

class Service;

struct ActorMonitorOptions {
  std::chrono::milliseconds interval{std::chrono::seconds(5)};
  std::size_t samples = 120;
  std::string status_file;  // ASYA_GATEWAY_STATUS_FILE ("" none)
};

class ActorMonitor {
 public:
  ActorMonitor(Service& service, ActorMonitorOptions options);
  // Stops the sampling loop (it ends at its next wake-up; it owns nothing of this object).
  ~ActorMonitor();
  ActorMonitor(const ActorMonitor&) = delete;
  ActorMonitor& operator=(const ActorMonitor&) = delete;

  // Starts sampling on the service's io_context. Call once.
  void start();

  // The GET /actors body: {"interval_ms", "sources": {"queues", "replicas"}, "actors": [{name,
  // end_actor, queue: {ready, in_flight, delayed} | null, queue_error?, replicas: {ready,
  // desired} | null, processed, errors, rate (null when unknown), state, history: [{t, ready,
  // in_flight, processed?, errors?}]}]}. Takes a sample first when none is recent.
  boost::asio::awaitable<boost::json::object> snapshot();

  struct State;  // internal (actor_monitor.cpp), shared with the sampling loop

 private:
  std::shared_ptr<State> state_;
};

}  // namespace asya::gateway
