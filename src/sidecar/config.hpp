// Sidecar configuration: every environment variable `asya-sidecar` reads, with the published
// design's names where one exists. load_config() validates everything up front so a bad value
// stops start-up with one line (ConfigError) naming the variable, the value and what is accepted.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include "common/env.hpp"
#include "common/otlp/export_settings.hpp"
#include "payload/settings.hpp"
#include "sidecar/join/join_config.hpp"

namespace asya::sidecar {

inline constexpr std::chrono::seconds kActorVisibility{30};
inline constexpr std::chrono::seconds kEndActorVisibility{10};

struct Config {
  std::string actor_name;            // ASYA_ACTOR_NAME (required)
  std::string transport = "sqlite";  // ASYA_TRANSPORT
  std::string socket_path;           // ASYA_SOCKET_PATH, or ASYA_SOCKET_DIR/asya-runtime.sock
  std::chrono::milliseconds runtime_timeout{std::chrono::minutes(5)};  // ASYA_RUNTIME_TIMEOUT
  std::chrono::milliseconds runtime_ready_timeout{
      std::chrono::minutes(5)};         // ASYA_RUNTIME_READY_TIMEOUT
  std::string happy_end = "happy-end";  // ASYA_ACTOR_HAPPY_END (actor name, without prefix)
  std::string error_end = "error-end";  // ASYA_ACTOR_ERROR_END
  bool is_end_actor = false;            // ASYA_IS_END_ACTOR (default: name is happy_end/error_end)
  std::string gateway_url;              // ASYA_GATEWAY_URL (empty: no reports)
  // ASYA_GATEWAY_INTERNAL_TOKEN: sent as `Authorization: Bearer <token>` on every report, as the
  // gateway requires on its sidecar endpoints when it has one (empty: no header).
  std::string gateway_internal_token;
  // ASYA_GATEWAY_CARRY_WAIT: how long an actor's `completed` report may wait for the next
  // cancellation check to carry it (PROTOCOL §7); zero: sent at once on its own.
  std::chrono::milliseconds gateway_carry_wait{50};
  std::string log_level = "info";  // ASYA_LOG_LEVEL
  std::string metrics_addr;        // ASYA_METRICS_ADDR (host:port or :port; empty: off)
  int concurrency = 1;             // ASYA_CONCURRENCY
  int max_deliveries = 5;          // ASYA_MAX_DELIVERIES
  int retry_max_attempts = 1;      // ASYA_RETRY_MAX_ATTEMPTS (1 = no retry)
  std::chrono::milliseconds retry_backoff{std::chrono::seconds(1)};       // ASYA_RETRY_BACKOFF
  std::chrono::milliseconds retry_backoff_max{std::chrono::seconds(60)};  // ASYA_RETRY_BACKOFF_MAX
  bool retry_on_processing_error = false;  // ASYA_RETRY_ON_PROCESSING_ERROR
  std::chrono::milliseconds shutdown_grace{std::chrono::seconds(30)};  // ASYA_SHUTDOWN_GRACE
  std::size_t max_message_bytes = 256u << 20;                          // ASYA_MAX_MESSAGE_BYTES
  // ASYA_PAYLOAD_FD: pass a payload that lives in a file to a runtime that declared payload-fd as
  // a file descriptor (PROTOCOL §3 "Payloads passed as a file").
  bool payload_fd = true;
  std::string queue_prefix = "asya-";                 // ASYA_QUEUE_PREFIX
  std::string result_store = "file://.asya/results";  // ASYA_RESULT_STORE
  // ASYA_VISIBILITY_TIMEOUT: how long a received message stays leased before the transport
  // delivers it again. A live sidecar extends the lease of a message in progress every third of
  // it (however long the runtime works), so it bounds how long the messages of a killed sidecar
  // stay invisible. Default kActorVisibility, kEndActorVisibility for end actors.
  std::chrono::milliseconds visibility_timeout{std::chrono::seconds(30)};
  join::JoinConfig join;  // ASYA_JOIN and its settings (sidecar/join/join_config.hpp)
  // Trace spans (docs/tracing.md): the collector from ASYA_OTLP_ENDPOINT / OTEL_* (nullopt: none),
  // and the resource and batching limits of every export (also to the gateway's /v1/traces).
  std::optional<otlp::ExportSettings> trace_collector;
  otlp::ExportSettings trace_process;
  // ASYA_PAYLOAD_STORE, ASYA_PAYLOAD_THRESHOLD, ...: large payloads by reference (off when the
  // store is unset; sidecar/payload_ref.hpp).
  payload::Settings payload;
  // ASYA_BATCH_MAX_SIZE (1-4096; 1 = no batching) and ASYA_BATCH_MAX_WAIT (<= the runtime
  // timeout): batching (sidecar/batcher.hpp). With a size above 1 the runtime must declare batch
  // support in its ready file (PROTOCOL §3).
  int batch_max_size = 1;
  std::chrono::milliseconds batch_max_wait{10};

  // Full queue names (prefix included).
  std::string input_queue() const { return queue_prefix + actor_name; }
  std::string happy_end_queue() const { return queue_prefix + happy_end; }
  std::string error_end_queue() const { return queue_prefix + error_end; }
  std::string queue_for(const std::string& actor) const { return queue_prefix + actor; }
  // In end mode: true for the error end (payload is an error envelope), false for the happy end.
  bool is_error_end() const { return actor_name == error_end; }
};

// Reads and validates every variable from `environment` (the binary: the process environment;
// `asya up`'s pre-flight: the environment it will give each sidecar). Throws asya::ConfigError
// with a one-line message.
Config load_config(const Environment& environment = Environment());

// The text printed by `asya-sidecar --help`: every variable with its default and meaning.
std::string help_text();

}  // namespace asya::sidecar
