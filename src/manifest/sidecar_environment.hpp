// The environment of an actor's asya-sidecar, derived from its manifest: the ONE mapping that
// `asya up` (src/local) and `asya render` / asya-operator (src/k8s) both use, so a manifest
// configures its sidecars alike on one machine and on Kubernetes.
//
// What the manifest decides (timeouts, retries, spec.sidecar) is mapped here and only here; what
// the host decides (where the socket is, the metrics address, how the broker and the gateway
// token are reached) comes in SidecarEnvironmentOptions. The variables themselves are the
// sidecar's (docs/configuration.md, src/sidecar/config.cpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "manifest/manifest.hpp"

namespace asya::manifest {

// A value the kubelet reads from a Kubernetes Secret (a secretKeyRef). `asya up` has no Secrets:
// it passes plain values.
struct SecretKeyRef {
  std::string secret;     // name of the Secret
  std::string key;        // key inside it
  bool optional = false;  // true: without the Secret or the key, the variable is left unset
  bool operator==(const SecretKeyRef&) const = default;
};

// One variable: a plain value or a reference to a Secret.
struct EnvironmentVariable {
  std::string name;
  std::variant<std::string, SecretKeyRef> value;

  // The plain value; nullptr for a secret reference.
  const std::string* literal() const { return std::get_if<std::string>(&value); }
  const SecretKeyRef* secret() const { return std::get_if<SecretKeyRef>(&value); }
  bool operator==(const EnvironmentVariable&) const = default;
};

// Ordered: the order is the one rendered pods list their env in.
using Environment = std::vector<EnvironmentVariable>;

// The value of `name` in `environment`, if it is set (plain or secret).
const EnvironmentVariable* find_variable(const Environment& environment, std::string_view name);

// What the host decides for one sidecar.
struct SidecarEnvironmentOptions {
  // happy-end / error-end: ASYA_IS_END_ACTOR=true and ASYA_RESULT_STORE; the actor's timeouts,
  // retries, spec.sidecar and socket are not used (an end actor calls no runtime). The sidecar
  // picks its end-actor defaults from ASYA_IS_END_ACTOR (e.g. the shorter message lease,
  // ASYA_VISIBILITY_TIMEOUT 10s instead of 30s).
  bool end_actor = false;
  std::string result_store;  // end actors: ASYA_RESULT_STORE (file:///dir or s3://bucket/prefix)
  // ASYA_PAYLOAD_STORE of every sidecar (large payloads by reference); empty: not set (off).
  std::string payload_store;

  std::string transport;     // ASYA_TRANSPORT: sqlite | rabbitmq | sqs
  std::string queue_prefix;  // ASYA_QUEUE_PREFIX
  // The broker's connection settings, listed right after ASYA_QUEUE_PREFIX (Kubernetes: the
  // AMQP URL from a Secret, the SQS region, ...). `asya up` passes none: its sidecars inherit
  // them from its own environment.
  Environment transport_settings;

  // Where the runtime's socket is, for actors (exactly one is set): ASYA_SOCKET_PATH, the file
  // itself (`asya up`: one per replica), or ASYA_SOCKET_DIR, a directory holding the sidecar's
  // default file name asya-runtime.sock (Kubernetes: the emptyDir shared by the pod).
  std::string socket_path;
  std::string socket_dir;

  std::string metrics_addr;  // ASYA_METRICS_ADDR (":9090", "127.0.0.1:41234"); empty: not set
  // ASYA_LOG_LEVEL; unset: not in the list (`asya up`'s sidecars inherit the supervisor's).
  std::optional<std::string> log_level;

  // ASYA_GATEWAY_URL for progress and final reports; empty: no gateway, and no token either.
  std::string gateway_url;
  // ASYA_GATEWAY_INTERNAL_TOKEN, the bearer token of those reports, set with gateway_url only:
  // a secretKeyRef on Kubernetes, the supervisor's token with `asya up`; unset: no token.
  std::optional<std::variant<std::string, SecretKeyRef>> gateway_internal_token;

  // ASYA_JOIN_STORE of join actors whose manifest names no spec.join.store (Kubernetes: a URL or
  // a secretKeyRef from `asya render --join-store[-secret]`); unset: the variable is left out and
  // the sidecar uses its SQLite default (`asya up`'s sidecars may inherit it from the shell).
  std::optional<std::variant<std::string, SecretKeyRef>> join_store;
};

// The sidecar's environment for `actor` in this order:
//   ASYA_ACTOR_NAME, [ASYA_IS_END_ACTOR], ASYA_TRANSPORT, ASYA_QUEUE_PREFIX, transport_settings,
//   end actors: ASYA_RESULT_STORE; ASYA_PAYLOAD_STORE when set;
//   actors: ASYA_SOCKET_PATH or ASYA_SOCKET_DIR, ASYA_RUNTIME_TIMEOUT, ASYA_SHUTDOWN_GRACE;
//   ASYA_METRICS_ADDR, ASYA_LOG_LEVEL, ASYA_GATEWAY_URL, ASYA_GATEWAY_INTERNAL_TOKEN,
//   actors: ASYA_CONCURRENCY and ASYA_MAX_DELIVERIES when spec.sidecar sets them, and the retry
//   variables when spec.retry.maxAttempts > 1 (ASYA_RETRY_MAX_ATTEMPTS, ASYA_RETRY_BACKOFF,
//   ASYA_RETRY_BACKOFF_MAX, and ASYA_RETRY_ON_PROCESSING_ERROR=true when processing errors are
//   retried). Without retries nothing is set: the sidecar's defaults are exactly "one attempt,
//   processing errors not retried", and the backoffs mean nothing then. Last, with
//   spec.batching: ASYA_BATCH_MAX_SIZE and ASYA_BATCH_MAX_WAIT.
// Durations are written by asya::format_duration (common/env.hpp): "5m", "1m30s", "500ms".
// Empty optional settings are left out. Pure: reads nothing but its arguments.
Environment sidecar_environment(const Actor& actor, const SidecarEnvironmentOptions& options);

// What the manifest decides for the actor's runtime besides the container's own env: with
// spec.batching, ASYA_HANDLER_BATCH=true (the handler receives a list of payloads). Both
// `asya up` and `asya render` add it to the runtime container's environment. Pure.
Environment runtime_environment(const Actor& actor);

// Every variable sidecar_environment() may set from the manifest or the host, whatever the
// manifest says, except ASYA_LOG_LEVEL, ASYA_CONCURRENCY, ASYA_MAX_DELIVERIES and the transport
// settings (a host may give those to every sidecar). `asya up` drops inherited values of these
// names so its own environment cannot override or add to what the manifest decides (an
// ASYA_RETRY_MAX_ATTEMPTS in the shell does not switch retries on).
const std::vector<std::string_view>& sidecar_environment_owned_names();

}  // namespace asya::manifest
