// AsyncActor manifests (apiVersion asya.sh/v1alpha1, kind AsyncActor) as plain structs.
//
// This library only reads and validates manifests; it starts no process and knows nothing of
// queues, so `asya up` (src/local) and the Kubernetes renderer (src/k8s) share it; the mapping of
// an actor to its sidecar's environment is sidecar_environment.hpp. The reference of every field
// is docs/manifests.md.
//
// Loading never stops at the first mistake: every problem of every file is collected as a
// Diagnostic carrying the file, the line, the field path, the bad value and what is allowed.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/actor_name.hpp"

namespace asya::manifest {

inline constexpr std::string_view kApiVersion = "asya.sh/v1alpha1";
inline constexpr std::string_view kKind = "AsyncActor";
// Name of the runtime container when a pod template has several containers.
inline constexpr std::string_view kRuntimeContainerName = "asya-runtime";

// One problem found in a manifest. str() gives the user-facing line:
//   examples/x.yaml:7: spec.scaling.minReplicas: -1 is negative; use an integer >= 0
struct Diagnostic {
  std::string file;
  int line = 0;         // 1-based; 0 when the problem concerns the whole file
  std::string field;    // dotted path, e.g. spec.workload.template.spec.containers[0].env[2].name
  std::string message;  // names the bad value and what is allowed
  std::string str() const;
};

struct EnvVar {
  std::string name;
  std::string value;
  // Non-empty when the entry uses valueFrom (Kubernetes secrets/config maps): the YAML text of
  // the valueFrom mapping, kept for rendering. `asya up` cannot resolve it and refuses it.
  std::string value_from_yaml;
};

struct Container {
  std::string name;
  std::string image;
  std::vector<std::string> command;  // empty: the bundled Python runtime serves ASYA_HANDLER
  std::vector<std::string> args;
  std::vector<EnvVar> env;
  std::string working_dir;  // as written; relative paths are resolved by the consumer
  // YAML text of fields kept for Kubernetes only (resources, imagePullPolicy, volumeMounts,
  // ports, securityContext), as one flow-style mapping; empty when none.
  std::string kubernetes_extra_yaml;

  // The value of env var `name`, if the container sets it.
  std::optional<std::string> env_value(std::string_view name) const;
};

// KEDA-style scaling (docs/local.md explains the rules).
struct Scaling {
  bool enabled = true;
  int min_replicas = 0;
  int max_replicas = 10;
  int queue_length = 5;             // target messages (ready + in flight) per replica
  int activation_queue_length = 0;  // scale from zero only when messages > this
  std::chrono::milliseconds polling_interval{std::chrono::seconds(10)};
  std::chrono::milliseconds cooldown_period{std::chrono::seconds(60)};
};

struct Timeouts {
  std::chrono::milliseconds processing{std::chrono::seconds(300)};        // per message
  std::chrono::milliseconds graceful_shutdown{std::chrono::seconds(30)};  // drain on stop
};

// spec.retry: retries of one hop, carried out by the sidecar.
struct Retry {
  int max_attempts = 1;  // 1 = no retry
  std::chrono::milliseconds backoff{std::chrono::seconds(1)};
  std::chrono::milliseconds backoff_max{std::chrono::minutes(1)};
  // Failures retried: "runtime_timeout" (always, when max_attempts > 1) and optionally
  // "processing_error" (the handler raised; only for idempotent handlers).
  std::vector<std::string> retry_on{"runtime_timeout"};
  bool retries_processing_errors() const;
};

// spec.sidecar: settings of this actor's sidecars; unset fields keep the sidecar's defaults
// (docs/configuration.md).
struct SidecarSettings {
  std::optional<int> concurrency;     // ASYA_CONCURRENCY: messages processed at once, 1-1024
  std::optional<int> max_deliveries;  // ASYA_MAX_DELIVERIES: poison-message limit, 1-1000000
};

// spec.batching: the sidecar gathers up to max_size envelopes (waiting at most max_wait after
// the first, never when nothing more is ready) and calls a batch handler once with all of them
// (docs/protocol.md §3, README "Batch handlers").
struct Batching {
  int max_size = 1;                        // maxSize: 1-4096 (ASYA_BATCH_MAX_SIZE)
  std::chrono::milliseconds max_wait{10};  // maxWait: <= timeout.processing
  bool operator==(const Batching&) const = default;
};
inline constexpr int kMaxBatchSize = 4096;

// spec.isolation: what the runtime process may reach (docs/manifests.md).
enum class RuntimeNetwork {
  kDefault,  // the host's network (asya up) or the pod's, unrestricted (Kubernetes)
  kNone,     // asya up: own network namespace with only loopback; Kubernetes: a NetworkPolicy
             // limiting the pod's egress to the broker, the gateway and DNS
};

struct Isolation {
  RuntimeNetwork network = RuntimeNetwork::kDefault;  // spec.isolation.network: default | none
};

struct Actor {
  std::string name;                  // metadata.name: the actor and its queue asya-<name>
  std::string file;                  // manifest file it came from
  int line = 0;                      // line of the document's first key
  std::string transport = "sqlite";  // sqlite | rabbitmq | sqs
  int replicas = 1;                  // spec.replicas: used when scaling.enabled is false
  Scaling scaling;
  Timeouts timeout;
  Retry retry;
  SidecarSettings sidecar;
  std::optional<Batching> batching;  // spec.batching; unset: one envelope per runtime call
  Isolation isolation;
  std::string handler_mode = "payload";  // payload | envelope (ASYA_HANDLER_MODE of the runtime)
  // spec.workload.kind: Deployment | StatefulSet. Kubernetes only; `asya up` ignores it.
  std::string workload_kind = "Deployment";
  std::vector<Container> containers;  // the pod template's containers
  std::size_t runtime_container = 0;  // index into containers
  // YAML text of spec.workload.template.spec fields other than containers (volumes,
  // nodeSelector, ...), for Kubernetes only; empty when none.
  std::string pod_extra_yaml;
  // YAML text of spec.workload.template.metadata (labels, annotations), one flow-style mapping
  // with quoted scalars kept quoted; for Kubernetes only; empty when none.
  std::string pod_metadata_yaml;

  const Container& runtime() const { return containers.at(runtime_container); }
};

struct LoadResult {
  std::vector<Actor> actors;       // in file order; files in sorted path order
  std::vector<Diagnostic> errors;  // empty when everything is valid
  bool ok() const { return errors.empty(); }
  // All diagnostics, one per line.
  std::string error_text() const;
};

// Loads every AsyncActor from `paths`: files and directories (their *.yaml and *.yml files,
// recursively, in sorted order). Skipped: files named routes.yaml / routes.yml (gateway tools,
// see is_routes_file), documents of another Kubernetes kind (a directory may hold other objects)
// and documents with neither apiVersion nor kind that are not shaped like a resource (no
// metadata/spec). A document of apiVersion asya.sh/... with another kind than AsyncActor is an
// error (a typo'd kind must not silently drop an actor). Reports, besides field mistakes:
// unreadable paths, YAML syntax errors, a directory or file without any AsyncActor, duplicate
// actor names across all paths.
LoadResult load_paths(const std::vector<std::string>& paths);

// Loads the AsyncActors of one YAML text (one or more `---` documents); `file` names it in
// diagnostics. Duplicate names within the text are reported.
LoadResult load_text(std::string_view text, const std::string& file);

// True for [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters (common/actor_name.hpp).
using asya::valid_actor_name;

// True for a file named routes.yaml or routes.yml (the gateway's tools, not a manifest).
bool is_routes_file(std::string_view path);

// True for [A-Za-z_][A-Za-z0-9_]*.
bool valid_env_name(std::string_view name);

}  // namespace asya::manifest
