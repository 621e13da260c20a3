#include "common/otlp/otlp_json.hpp"

#include <fmt/format.h>

#include <cmath>
#include <iterator>

namespace asya::otlp {
namespace {

// Writes `text` as a JSON string, escaping in place (no temporary string per value).
void append_string(std::string& out, std::string_view text) {
  out.push_back('"');
  std::size_t plain_from = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.substr(plain_from, i - plain_from));
    plain_from = i + 1;
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(c));
    }
  }
  out.append(text.substr(plain_from));
  out.push_back('"');
}

void append_value(std::string& out, const AttributeValue& value) {
  if (const auto* text = std::get_if<std::string>(&value)) {
    out.append("{\"stringValue\":");
    append_string(out, *text);
  } else if (const auto* integer = std::get_if<std::int64_t>(&value)) {
    // int64 is a string in the protobuf JSON mapping.
    fmt::format_to(std::back_inserter(out), "{{\"intValue\":\"{}\"", *integer);
  } else if (const auto* real = std::get_if<double>(&value)) {
    out.append("{\"doubleValue\":");
    if (std::isnan(*real))
      out.append("\"NaN\"");
    else if (std::isinf(*real))
      out.append(*real > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    else
      fmt::format_to(std::back_inserter(out), "{}", *real);
  } else {
    out.append(std::get<bool>(value) ? "{\"boolValue\":true" : "{\"boolValue\":false");
  }
  out.push_back('}');
}

void append_attribute_list(std::string& out, const std::vector<Attribute>& attributes,
                           bool& first) {
  for (const Attribute& attribute : attributes) {
    if (!first) out.push_back(',');
    first = false;
    out.append("{\"key\":");
    append_string(out, attribute.key);
    out.append(",\"value\":");
    append_value(out, attribute.value);
    out.push_back('}');
  }
}

void append_attributes(std::string& out, const std::vector<Attribute>& attributes,
                       const std::vector<Attribute>* shared = nullptr) {
  out.append("\"attributes\":[");
  bool first = true;
  if (shared) append_attribute_list(out, *shared, first);
  append_attribute_list(out, attributes, first);
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
  fmt::format_to(std::back_inserter(out),
                 ",\"kind\":{},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\",",
                 static_cast<int>(span.kind), span.start_unix_nano, span.end_unix_nano);
  append_attributes(out, span.attributes, span.shared_attributes.get());
  if (span.status != StatusCode::kUnset) {
    fmt::format_to(std::back_inserter(out), ",\"status\":{{\"code\":{}",
                   static_cast<int>(span.status));
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
