#include "local/sidecar_counters.hpp"

#include <fmt/format.h>

#include "common/prometheus_text.hpp"

namespace asya::local {

using namespace std::chrono_literals;

std::optional<http::Response> http_get_local(int port, const char* path) {
  if (port <= 0) return std::nullopt;
  static http::Client client;  // thread-safe; one for every probe of this process
  http::Request request;
  request.url = fmt::format("http://127.0.0.1:{}{}", port, path);
  request.connect_timeout = 200ms;
  request.timeout = 500ms;
  request.bypass_proxy = true;
  auto response = client.perform(request);
  if (!response) return std::nullopt;
  return std::move(*response);
}

SidecarCounters count_processed(std::string_view metrics_text) {
  SidecarCounters counters;
  for (const auto& sample : parse_prometheus_text(metrics_text)) {
    if (sample.name != "asya_actor_messages_processed_total") continue;
    auto status = sample.label("status");
    if (status == "success") {
      counters.processed += sample.value;
    } else if (status == "error") {
      counters.processed += sample.value;
      counters.errors += sample.value;
    }
  }
  return counters;
}

std::optional<SidecarCounters> read_sidecar_counters(int port) {
  auto got = http_get_local(port, "/metrics");
  if (!got || got->status != 200) return std::nullopt;
  return count_processed(got->body);
}

}  // namespace asya::local
