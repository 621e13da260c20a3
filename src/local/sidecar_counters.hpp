// The supervisor's probes of its children over HTTP on 127.0.0.1: a short GET (gateway
// readiness) and the message counters of a sidecar, read from its /metrics as typed Prometheus
// samples (common/prometheus_text.hpp), never by matching text.
#pragma once

#include <optional>
#include <string_view>

#include "common/http/client.hpp"

namespace asya::local {

// GET `path` from 127.0.0.1:port with short timeouts (the control loop waits for it): the
// response, or nullopt when unreachable or too slow. Thread-safe.
std::optional<http::Response> http_get_local(int port, const char* path);

struct SidecarCounters {
  double processed = 0;  // messages finished: status "success" or "error"
  double errors = 0;     // of those, status "error"
};

// Sums asya_actor_messages_processed_total by its `status` label in a /metrics exposition; other
// metrics, other statuses (retry) and unreadable lines count nothing.
SidecarCounters count_processed(std::string_view metrics_text);

// The counters of the sidecar whose metrics server listens on `port`; nullopt when unreachable.
std::optional<SidecarCounters> read_sidecar_counters(int port);

}  // namespace asya::local
