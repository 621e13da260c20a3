// The list/watch loop of asya-operator and its work queue.
//
// One thread lists AsyncActors, then watches them from the list's resourceVersion (a stream of
// JSON lines, one event each). Every ADDED or MODIFIED object is cached and its key queued;
// DELETED drops it. The server closing the stream (timeoutSeconds) reconnects from the last seen
// resourceVersion; 410 Gone (the version expired) lists again; connection errors reconnect with
// exponential backoff (1 s doubling to 30 s). The calling thread reconciles queued keys one at a
// time with the latest cached object; a key queued again while waiting is reconciled once. A
// reconcile that asks for a retry is queued again after a backoff (1 s doubling to 5 min); every
// cached key is queued again each resync period.
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "k8s/operator/kube_client.hpp"
#include "k8s/operator/reconciler.hpp"

namespace asya::k8s::op {

struct ControllerOptions {
  std::string namespace_name;               // empty: every namespace
  std::chrono::seconds watch_timeout{300};  // timeoutSeconds of each watch request
  std::chrono::seconds resync_period{300};  // re-reconcile every actor this often (0: never)
};

class Controller {
 public:
  Controller(const KubeClient& kube, Reconciler& reconciler, ControllerOptions options);
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Runs until `stop` becomes true (checked at least every second), then returns after the
  // current reconcile finishes.
  void run(const std::atomic<bool>& stop);

 private:
  struct State;
  const KubeClient& kube_;
  Reconciler& reconciler_;
  ControllerOptions options_;
};

}  // namespace asya::k8s::op
