#include "common/otlp/export_settings.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "common/percent_decode.hpp"
#include "common/version.hpp"

namespace asya::otlp {
namespace {

std::string trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  return std::string(text);
}

// The first of `names` that is set and not empty, with its name.
std::optional<std::pair<std::string, std::string>> first_set(
    const Environment& environment, std::initializer_list<const char*> names) {
  for (const char* name : names)
    if (auto value = environment.get(name); value && !value->empty())
      return std::make_pair(std::string(name), *value);
  return std::nullopt;
}

std::string checked_url(const std::string& variable, const std::string& value) {
  if (!value.starts_with("http://") && !value.starts_with("https://"))
    throw ConfigError(fmt::format(
        "{}=\"{}\" is not an http(s) URL: use the address of an OTLP/HTTP receiver, e.g. "
        "http://otel-collector:4318",
        variable, value));
  return value;
}

// The traces URL from the endpoint variables; nullopt when none is set.
std::optional<std::string> traces_url(const Environment& environment) {
  if (auto asya = first_set(environment, {"ASYA_OTLP_ENDPOINT"})) {
    std::string url = checked_url(asya->first, asya->second);
    while (url.ends_with('/')) url.pop_back();
    return url.ends_with("/v1/traces") ? url : url + "/v1/traces";
  }
  if (auto traces = first_set(environment, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"}))
    return checked_url(traces->first, traces->second);
  if (auto base = first_set(environment, {"OTEL_EXPORTER_OTLP_ENDPOINT"})) {
    std::string url = checked_url(base->first, base->second);
    return url + (url.ends_with('/') ? "v1/traces" : "/v1/traces");
  }
  return std::nullopt;
}

std::size_t positive(const Environment& environment, const char* name, std::size_t fallback) {
  return static_cast<std::size_t>(
      environment.integer(name, static_cast<std::int64_t>(fallback), 1, 1'000'000));
}

}  // namespace

std::vector<std::pair<std::string, std::string>> parse_key_values(std::string_view text,
                                                                  std::string_view variable) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!text.empty()) {
    auto comma = text.find(',');
    std::string_view entry = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (trim(entry).empty()) continue;
    auto equals = entry.find('=');
    std::string key = trim(entry.substr(0, equals));
    std::optional<std::string> value;
    if (equals != std::string_view::npos) value = percent_decode(trim(entry.substr(equals + 1)));
    if (equals == std::string_view::npos || key.empty() || !value)
      throw ConfigError(
          fmt::format("{}: entry \"{}\" is not key=value: use comma-separated key=value pairs with "
                      "%-encoded values, e.g. api-key=secret,team=a%20b",
                      variable, trim(entry)));
    out.emplace_back(std::move(key), std::move(*value));
  }
  return out;
}

ExportSettings read_process_settings(const Environment& environment,
                                     std::string_view service_name) {
  ExportSettings settings;
  std::string name(service_name);
  if (auto set = first_set(environment, {"OTEL_SERVICE_NAME"})) name = set->second;
  settings.resource.attributes.push_back({"service.name", name});
  if (auto extra = first_set(environment, {"OTEL_RESOURCE_ATTRIBUTES"})) {
    for (auto& [key, value] : parse_key_values(extra->second, extra->first))
      if (key != "service.name") settings.resource.attributes.push_back({key, value});
  }
  settings.resource.attributes.push_back({"service.version", std::string(version())});
  settings.resource.scope_version = std::string(version());
  settings.max_queue_spans =
      positive(environment, "OTEL_BSP_MAX_QUEUE_SIZE", settings.max_queue_spans);
  settings.max_batch_spans =
      std::min(settings.max_queue_spans,
               positive(environment, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", settings.max_batch_spans));
  settings.schedule_delay = std::chrono::milliseconds(environment.integer(
      "OTEL_BSP_SCHEDULE_DELAY", settings.schedule_delay.count(), 1, 3'600'000));
  return settings;
}

std::optional<ExportSettings> read_export_settings(const Environment& environment,
                                                   std::string_view service_name) {
  if (environment.boolean("OTEL_SDK_DISABLED", false)) return std::nullopt;
  if (auto exporter = first_set(environment, {"OTEL_TRACES_EXPORTER"})) {
    if (exporter->second == "none") return std::nullopt;
    if (exporter->second != "otlp")
      throw ConfigError(fmt::format(
          "OTEL_TRACES_EXPORTER=\"{}\" is not supported: use otlp (the default) or none",
          exporter->second));
  }
  auto url = traces_url(environment);
  if (!url) return std::nullopt;
  ExportSettings settings = read_process_settings(environment, service_name);
  settings.url = std::move(*url);
  if (auto protocol = first_set(
          environment, {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"})) {
    if (protocol->second != "http/json" && protocol->second != "http/protobuf")
      throw ConfigError(fmt::format(
          "{}=\"{}\" is not supported: Asya exports OTLP over HTTP with JSON; use http/json "
          "(http/protobuf is accepted too: every OTLP/HTTP receiver takes JSON)",
          protocol->first, protocol->second));
  }
  if (auto headers = first_set(
          environment, {"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"})) {
    for (auto& [key, value] : parse_key_values(headers->second, headers->first))
      settings.headers.emplace_back(std::move(key), std::move(value));
  }
  if (auto timeout = first_set(environment,
                               {"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"}))
    settings.timeout =
        std::chrono::milliseconds(environment.integer(timeout->first.c_str(), 10000, 1, 600'000));
  return settings;
}

}  // namespace asya::otlp
