#include "common/otlp/otlp_json.hpp"

#include <fmt/format.h>

#include <cmath>

#include "common/log.hpp"

namespace asya::otlp {
namespace {

void append_string(std::string& out, std::string_view text) {
  out.push_back('"');
  out.append(log::json_escape(text));
  out.push_back('"');
}

void append_value(std::string& out, const AttributeValue& value) {
  if (const auto* text = std::get_if<std::string>(&value)) {
    out.append("{\"stringValue\":");
    append_string(out, *text);
  } else if (const auto* integer = std::get_if<std::int64_t>(&value)) {
    // int64 is a string in the protobuf JSON mapping.
    out.append(fmt::format("{{\"intValue\":\"{}\"", *integer));
  } else if (const auto* real = std::get_if<double>(&value)) {
    out.append("{\"doubleValue\":");
    if (std::isnan(*real))
      out.append("\"NaN\"");
    else if (std::isinf(*real))
      out.append(*real > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    else
      out.append(fmt::format("{}", *real));
  } else {
    out.append(std::get<bool>(value) ? "{\"boolValue\":true" : "{\"boolValue\":false");
  }
  out.push_back('}');
}

void append_attributes(std::string& out, const std::vector<Attribute>& attributes) {
  out.append("\"attributes\":[");
  for (std::size_t i = 0; i < attributes.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.append("{\"key\":");
    append_string(out, attributes[i].key);
    out.append(",\"value\":");
    append_value(out, attributes[i].value);
    out.push_back('}');
  }
  out.push_back(']');
}

void append_span(std::string& out, const Span& span) {
  out.append("{\"traceId\":\"");
  out.append(span.trace_id);
  out.append("\",\"spanId\":\"");
  out.append(span.span_id);
  out.push_back('"');
  if (!span.parent_span_id.empty()) {
    out.append(",\"parentSpanId\":\"");
    out.append(span.parent_span_id);
    out.push_back('"');
  }
  out.append(",\"name\":");
  append_string(out, span.name);
  out.append(fmt::format(",\"kind\":{},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\",",
                         static_cast<int>(span.kind), span.start_unix_nano, span.end_unix_nano));
  append_attributes(out, span.attributes);
  if (span.status != StatusCode::kUnset) {
    out.append(fmt::format(",\"status\":{{\"code\":{}", static_cast<int>(span.status)));
    if (!span.status_message.empty()) {
      out.append(",\"message\":");
      append_string(out, span.status_message);
    }
    out.push_back('}');
  }
  out.push_back('}');
}

}  // namespace

std::string export_request_json(const Resource& resource, const std::vector<Span>& spans) {
  std::string out;
  out.reserve(256 + spans.size() * 512);
  out.append("{\"resourceSpans\":[{\"resource\":{");
  append_attributes(out, resource.attributes);
  out.append("},\"scopeSpans\":[{\"scope\":{\"name\":");
  append_string(out, resource.scope_name);
  if (!resource.scope_version.empty()) {
    out.append(",\"version\":");
    append_string(out, resource.scope_version);
  }
  out.append("},\"spans\":[");
  for (std::size_t i = 0; i < spans.size(); ++i) {
    if (i > 0) out.push_back(',');
    append_span(out, spans[i]);
  }
  out.append("]}]}]}");
  return out;
}

}  // namespace asya::otlp
