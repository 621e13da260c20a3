#include "manifest/sidecar_environment.hpp"

#include <algorithm>

#include "common/env.hpp"

namespace asya::manifest {

const EnvironmentVariable* find_variable(const Environment& environment, std::string_view name) {
  auto it = std::find_if(environment.begin(), environment.end(),
                         [&](const EnvironmentVariable& v) { return v.name == name; });
  return it == environment.end() ? nullptr : &*it;
}

Environment sidecar_environment(const Actor& actor, const SidecarEnvironmentOptions& options) {
  Environment out;
  auto set = [&](std::string_view name, std::string value) {
    out.push_back({std::string(name), std::move(value)});
  };
  set("ASYA_ACTOR_NAME", actor.name);
  if (options.end_actor) set("ASYA_IS_END_ACTOR", "true");
  set("ASYA_TRANSPORT", options.transport);
  set("ASYA_QUEUE_PREFIX", options.queue_prefix);
  out.insert(out.end(), options.transport_settings.begin(), options.transport_settings.end());
  if (options.end_actor) {
    if (!options.result_store.empty()) set("ASYA_RESULT_STORE", options.result_store);
  }
  if (!options.payload_store.empty()) set("ASYA_PAYLOAD_STORE", options.payload_store);
  if (!options.end_actor) {
    if (!options.socket_path.empty()) set("ASYA_SOCKET_PATH", options.socket_path);
    if (!options.socket_dir.empty()) set("ASYA_SOCKET_DIR", options.socket_dir);
    set("ASYA_RUNTIME_TIMEOUT", format_duration(actor.timeout.processing));
    set("ASYA_SHUTDOWN_GRACE", format_duration(actor.timeout.graceful_shutdown));
  }
  if (!options.metrics_addr.empty()) set("ASYA_METRICS_ADDR", options.metrics_addr);
  if (options.log_level) set("ASYA_LOG_LEVEL", *options.log_level);
  if (!options.gateway_url.empty()) {
    set("ASYA_GATEWAY_URL", options.gateway_url);
    if (options.gateway_internal_token) {
      out.push_back({"ASYA_GATEWAY_INTERNAL_TOKEN", *options.gateway_internal_token});
    }
  }
  if (options.end_actor) return out;
  if (actor.sidecar.concurrency) {
    set("ASYA_CONCURRENCY", std::to_string(*actor.sidecar.concurrency));
  }
  if (actor.sidecar.max_deliveries) {
    set("ASYA_MAX_DELIVERIES", std::to_string(*actor.sidecar.max_deliveries));
  }
  if (actor.retry.max_attempts > 1) {
    set("ASYA_RETRY_MAX_ATTEMPTS", std::to_string(actor.retry.max_attempts));
    set("ASYA_RETRY_BACKOFF", format_duration(actor.retry.backoff));
    set("ASYA_RETRY_BACKOFF_MAX", format_duration(actor.retry.backoff_max));
    if (actor.retry.retries_processing_errors()) set("ASYA_RETRY_ON_PROCESSING_ERROR", "true");
  }
  if (actor.join) {
    set("ASYA_JOIN", "true");
    set("ASYA_JOIN_TIMEOUT", format_duration(actor.join->timeout));
    set("ASYA_JOIN_ON_TIMEOUT", actor.join->on_timeout);
    if (!actor.join->store.empty())
      set("ASYA_JOIN_STORE", actor.join->store);
    else if (options.join_store)
      out.push_back({"ASYA_JOIN_STORE", *options.join_store});
  }
  if (actor.batching) {
    set("ASYA_BATCH_MAX_SIZE", std::to_string(actor.batching->max_size));
    set("ASYA_BATCH_MAX_WAIT", format_duration(actor.batching->max_wait));
  }
  return out;
}

Environment runtime_environment(const Actor& actor) {
  Environment out;
  if (actor.batching) out.push_back({"ASYA_HANDLER_BATCH", std::string("true")});
  return out;
}

const std::vector<std::string_view>& sidecar_environment_owned_names() {
  static const std::vector<std::string_view> kNames{"ASYA_ACTOR_NAME",
                                                    "ASYA_IS_END_ACTOR",
                                                    "ASYA_TRANSPORT",
                                                    "ASYA_QUEUE_PREFIX",
                                                    "ASYA_RESULT_STORE",
                                                    "ASYA_PAYLOAD_STORE",
                                                    "ASYA_SOCKET_PATH",
                                                    "ASYA_SOCKET_DIR",
                                                    "ASYA_SOCKET_NAME",
                                                    "ASYA_RUNTIME_TIMEOUT",
                                                    "ASYA_SHUTDOWN_GRACE",
                                                    "ASYA_METRICS_ADDR",
                                                    "ASYA_GATEWAY_URL",
                                                    "ASYA_GATEWAY_INTERNAL_TOKEN",
                                                    "ASYA_RETRY_MAX_ATTEMPTS",
                                                    "ASYA_RETRY_BACKOFF",
                                                    "ASYA_RETRY_BACKOFF_MAX",
                                                    "ASYA_RETRY_ON_PROCESSING_ERROR",
                                                    "ASYA_JOIN",
                                                    "ASYA_JOIN_TIMEOUT",
                                                    "ASYA_JOIN_ON_TIMEOUT",
                                                    "ASYA_BATCH_MAX_SIZE",
                                                    "ASYA_BATCH_MAX_WAIT"};
  return kNames;
}

}  // namespace asya::manifest
