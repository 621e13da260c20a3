// Where and how spans are exported, from the environment: Asya's ASYA_OTLP_ENDPOINT and the
// standard OpenTelemetry variables that apply to an OTLP/HTTP span exporter.
//
//   ASYA_OTLP_ENDPOINT                   base URL of an OTLP/HTTP receiver (http://collector:4318);
//                                        "/v1/traces" is appended unless the path already ends so
//   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT   the full traces URL, used as given
//   OTEL_EXPORTER_OTLP_ENDPOINT          base URL, "v1/traces" appended (the specification's rule)
//   OTEL_EXPORTER_OTLP_[TRACES_]HEADERS  extra request headers, "k=v,k2=v2" (values %-encoded)
//   OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT  per export request, in milliseconds (default 10000)
//   OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL http/json (what is sent); http/protobuf is accepted and
//                                        JSON sent (OTLP/HTTP receivers take both); grpc refused
//   OTEL_SERVICE_NAME                    resource service.name (default: the program's name)
//   OTEL_RESOURCE_ATTRIBUTES             more resource attributes, "k=v,k2=v2"
//   OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none   export to no collector
//   OTEL_BSP_MAX_QUEUE_SIZE (2048), OTEL_BSP_MAX_EXPORT_BATCH_SIZE (512),
//   OTEL_BSP_SCHEDULE_DELAY (1000 ms)    the batching limits
//
// The first endpoint set, in the order listed, wins. Every error is a ConfigError naming the
// variable, its value and what is accepted.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/env.hpp"
#include "common/otlp/otlp_json.hpp"

namespace asya::otlp {

struct ExportSettings {
  std::string url;  // the full traces URL (…/v1/traces)
  // Sent with every export request, besides Content-Type (an http::Headers; spelled out so this
  // header stays free of the HTTP client's).
  std::vector<std::pair<std::string, std::string>> headers;
  Resource resource;  // service.name and the other resource attributes
  std::chrono::milliseconds timeout{10000};
  std::size_t max_queue_spans = 2048;              // spans waiting; beyond it new spans are dropped
  std::size_t max_batch_spans = 512;               // spans per request
  std::chrono::milliseconds schedule_delay{1000};  // a partial batch waits at most this long
};

// The settings for exporting to a collector, or nullopt when no endpoint is set or export is
// disabled. `service_name`: service.name unless OTEL_SERVICE_NAME is set ("asya-sidecar").
std::optional<ExportSettings> read_export_settings(const Environment& environment,
                                                   std::string_view service_name);

// The resource of this process: service.name (OTEL_SERVICE_NAME, else `service_name`) and
// OTEL_RESOURCE_ATTRIBUTES; also the batching limits, for an export to a receiver that is not
// configured by the OTEL_* endpoint variables (the gateway's /v1/traces). url and headers empty.
ExportSettings read_process_settings(const Environment& environment, std::string_view service_name);

// "k=v,k2=v2" with %-encoded values, as OTEL_EXPORTER_OTLP_HEADERS spells it. `variable` names
// the variable in the ConfigError a malformed entry throws.
std::vector<std::pair<std::string, std::string>> parse_key_values(std::string_view text,
                                                                  std::string_view variable);

}  // namespace asya::otlp
