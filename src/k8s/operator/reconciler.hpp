// One reconcile of an AsyncActor: what asya-operator does for every listed or watched object.
//
// reconcile() brings the cluster in line with one AsyncActor:
//   1. deletionTimestamp set: deletes the actor's ScaledObject and TriggerAuthentication (so KEDA
//      stops scaling before garbage collection removes the rest), then removes the finalizer;
//   2. adds finalizer asya.sh/finalizer when missing;
//   3. turns the object into the manifest model (src/manifest); a mistake gives
//      Ready=False reason InvalidSpec with the model's messages;
//   4. renders it with render_actor() (the code of `asya render`);
//   5. creates the queue on the transport (ensure_queue); failure gives TransportReady=False
//      and nothing is applied, so no sidecar starts on a missing queue;
//   6. server-side applies every object (field manager asya-operator, force) with an
//      ownerReference (controller, blockOwnerDeletion) to the AsyncActor, plus the shared
//      asya-runtime ConfigMap (not owned) when the runtime container has no command;
//   7. deletes what the spec no longer asks for and this actor owns: the ScaledObject and
//      TriggerAuthentication when scaling is disabled, the Deployment after a switch to a
//      StatefulSet and the reverse;
//   8. writes status (conditions Ready, TransportReady, ScalingReady, WorkloadReady with reasons,
//      observedGeneration, queue, replicas) through the status subresource, only when it changed
//      (an unchanged status is not written, so the operator's own writes do not loop).
#pragma once

#include <map>
#include <memory>
#include <string>

#include <boost/json/object.hpp>

#include "common/result.hpp"
#include "k8s/operator/kube_client.hpp"
#include "k8s/render.hpp"
#include "manifest/manifest.hpp"
#include "transport/transport.hpp"

namespace asya::k8s::op {

inline constexpr std::string_view kFinalizer = "asya.sh/finalizer";
inline constexpr std::string_view kFieldManager = "asya-operator";
inline constexpr std::string_view kGroupVersion = manifest::kApiVersion;

struct OperatorOptions {
  // Rendering settings; namespace_name is replaced by each actor's namespace.
  RenderOptions render;
  // Transport used to create queues. Empty: the actor's effective transport (rabbitmq or sqs).
  // "none": the operator creates no queue (TransportReady reason QueueNotManaged). Any other
  // registered name (e.g. sqlite, for tests) replaces the actor's transport for ensure_queue.
  std::string queue_transport;
  transport::Options transport_options;
};

enum class Outcome {
  kDone,   // the cluster matches the object, or only a change of the object can help
  kRetry,  // a transient failure (API or transport error): reconcile again after a backoff
};

struct ReconcileResult {
  Outcome outcome = Outcome::kDone;
  std::string summary;  // one line for the log
};

class Reconciler {
 public:
  Reconciler(const KubeClient& kube, OperatorOptions options);
  ~Reconciler();
  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;

  // Reconciles one AsyncActor object as returned by the API (list item or watch event object).
  // Blocking; not thread-safe (the controller calls it from one worker thread).
  ReconcileResult reconcile(const boost::json::object& actor);

 private:
  struct Conditions;
  ReconcileResult finalize(const boost::json::object& actor);
  Status ensure_queue(const std::string& transport_name, const std::string& queue);
  Status write_status(const boost::json::object& actor, const Conditions& conditions);

  const KubeClient& kube_;
  OperatorOptions options_;
  std::map<std::string, std::unique_ptr<transport::Transport>> transports_;
};

// The manifest model of an AsyncActor object (its metadata.name and spec). The error lists every
// problem as "field: message", separated by "; ".
Result<manifest::Actor> actor_from_object(const boost::json::object& object);

// API path of a namespaced object: /api/v1/namespaces/<ns>/<plural>/<name> for the core group,
// /apis/<group>/<version>/... otherwise (plural: the lower-case kind plus "s", which holds for
// every kind the operator touches).
std::string object_path(std::string_view api_version, std::string_view kind,
                        std::string_view namespace_name, std::string_view name);

}  // namespace asya::k8s::op
