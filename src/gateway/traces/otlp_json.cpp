#include "gateway/traces/otlp_json.hpp"

#include <boost/json.hpp>

#include <cctype>
#include <charconv>
#include <cmath>
#include <unordered_map>

#include "common/json_text.hpp"

namespace asya::gateway::traces {

namespace json = boost::json;

namespace {

// Attributes placed at the top level of a span document, under these names.
constexpr std::pair<const char*, const char*> kAsyaFields[] = {
    {"asya.actor", "actor"},
    {"asya.replica", "replica"},
    {"asya.envelope_id", "envelope_id"},
    {"asya.job_id", "job_id"},
    {"asya.delivery_count", "delivery_count"},
    {"asya.payload_bytes", "payload_bytes"},
    {"asya.outcome", "outcome"},
    {"asya.queue_wait_ms", "queue_wait_ms"},
};

constexpr const char* kKinds[] = {"unspecified", "internal", "server",
                                  "client",      "producer", "consumer"};
constexpr const char* kStatusCodes[] = {"unset", "ok", "error"};

std::string short_text(const json::value& v) {
  std::string text = to_json_text(v);
  return text.size() > 80 ? text.substr(0, 77) + "..." : text;
}

// A hex id of `digits` digits, lowercased; "" when it is not one (or is all zeros, which OTLP
// defines as invalid).
std::string hex_id(const json::value* v, std::size_t digits) {
  if (!v || !v->is_string() || v->as_string().size() != digits) return "";
  std::string id(v->as_string());
  bool nonzero = false;
  for (auto& c : id) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return "";
    nonzero |= c != '0';
  }
  return nonzero ? id : "";
}

// A uint64/int64 field: a decimal string (the proto3 JSON mapping) or a JSON integer.
std::optional<std::int64_t> int64_field(const json::value* v) {
  if (!v) return std::nullopt;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64() && v->as_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
    return static_cast<std::int64_t>(v->as_uint64());
  if (v->is_string()) {
    const auto& s = v->as_string();
    std::int64_t out = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec == std::errc() && end == s.data() + s.size()) return out;
  }
  return std::nullopt;
}

// An enum given as its number or its name ("SPAN_KIND_SERVER", "STATUS_CODE_ERROR").
int enum_field(const json::value* v, const char* prefix, const char* const* names,
               std::size_t count) {
  if (!v) return 0;
  if (v->is_int64() && v->as_int64() >= 0 && v->as_int64() < static_cast<std::int64_t>(count))
    return static_cast<int>(v->as_int64());
  if (v->is_string()) {
    std::string name(v->as_string());
    for (std::size_t i = 0; i < count; ++i) {
      std::string expected = std::string(prefix) + names[i];
      for (auto& c : expected) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (name == expected) return static_cast<int>(i);
    }
  }
  return 0;
}

json::object attributes_object(const json::value* list) {
  json::object out;
  if (!list || !list->is_array()) return out;
  for (const auto& kv : list->as_array()) {
    if (!kv.is_object()) continue;
    const json::value* key = kv.as_object().if_contains("key");
    if (!key || !key->is_string()) continue;
    const json::value* value = kv.as_object().if_contains("value");
    out[key->as_string()] = value ? any_value_to_json(*value) : json::value(nullptr);
  }
  return out;
}

const json::array* array_member(const json::object& o, const char* name, const std::string& where,
                                std::string& error) {
  const json::value* v = o.if_contains(name);
  if (!v || v->is_null()) return nullptr;
  if (!v->is_array()) {
    error = where + name + " must be an array, got " + short_text(*v);
    return nullptr;
  }
  return &v->as_array();
}

std::string nanos_text(std::int64_t nanos) {
  return std::to_string(nanos);
}

void append_string(std::string& out, std::string_view text) {
  append_json_string(out, text);
}

// A span's attributes as a json::object of plain values (the gateway's own call span).
class ObjectAttributes {
 public:
  explicit ObjectAttributes(const json::object& object) : object_(object) {}
  // The value of `key` as JSON text, and the value itself in `plain` when it is a string; false
  // when the span has no such attribute.
  bool find(std::string_view key, std::string& text, std::string& plain) const {
    const json::value* v = object_.if_contains(json::string_view(key.data(), key.size()));
    if (!v) return false;
    text = to_json_text(*v);
    plain = v->is_string() ? std::string(v->as_string()) : text;
    return true;
  }
  void append_text(std::string& out) const { append_json_text(out, object_); }

 private:
  const json::object& object_;
};

// Appends to_json_text(any_value_to_json(*any_value)) ("null" for no value) to `out`, without
// building the plain value for a string or an integer (most attributes).
void append_any_value(std::string& out, const json::value* any_value) {
  if (!any_value) {
    out += "null";
    return;
  }
  if (const auto* o = any_value->if_object()) {
    if (const auto* s = o->if_contains("stringValue")) {
      if (s->is_string()) {
        append_json_string(out, s->as_string());
        return;
      }
    } else if (!o->contains("boolValue")) {
      if (auto n = int64_field(o->if_contains("intValue"))) {
        out += std::to_string(*n);
        return;
      }
    }
  }
  append_json_text(out, any_value_to_json(*any_value));
}

// A span's OTLP attribute list ([{"key": k, "value": AnyValue}, ...]) read in place from the
// request's DOM: the keys in the order they first appear, a repeated key keeping its last value
// (as the json::object the list used to be copied into did). Nothing is converted or copied
// until a document is written.
class DomAttributes {
 public:
  explicit DomAttributes(const json::value* list) {
    if (!list || !list->is_array()) return;
    items_.reserve(list->as_array().size());
    for (const auto& kv : list->as_array()) {
      if (!kv.is_object()) continue;
      const json::value* key = kv.as_object().if_contains("key");
      if (!key || !key->is_string()) continue;
      const json::value* value = kv.as_object().if_contains("value");
      if (auto* same = item(key->as_string())) {
        same->second = value;
        continue;
      }
      items_.emplace_back(key->as_string(), value);
      if (!index_.empty() || items_.size() == kIndexedFrom) {
        for (std::size_t i = index_.size(); i < items_.size(); ++i) index_[items_[i].first] = i;
      }
    }
  }
  bool find(std::string_view key, std::string& text, std::string& plain) const {
    const auto* found = const_cast<DomAttributes*>(this)->item(key);
    if (!found) return false;
    text.clear();
    append_any_value(text, found->second);
    const json::value* s = nullptr;
    if (found->second && found->second->is_object())
      s = found->second->as_object().if_contains("stringValue");
    if (s && s->is_string()) {
      plain = s->as_string();
    } else {
      json::value value = found->second ? any_value_to_json(*found->second) : json::value();
      plain = value.is_string() ? std::string(value.as_string()) : text;
    }
    return true;
  }
  void append_text(std::string& out) const {
    out += '{';
    for (std::size_t i = 0; i < items_.size(); ++i) {
      if (i) out += ',';
      append_json_string(out, items_[i].first);
      out += ':';
      append_any_value(out, items_[i].second);
    }
    out += '}';
  }

 private:
  // A span's few attributes are searched in order; a long list gets an index, so that a hostile
  // one costs linear time, not quadratic.
  static constexpr std::size_t kIndexedFrom = 16;

  std::pair<std::string_view, const json::value*>* item(std::string_view key) {
    if (!index_.empty()) {
      auto found = index_.find(key);
      return found == index_.end() ? nullptr : &items_[found->second];
    }
    for (auto& it : items_)
      if (it.first == key) return &it;
    return nullptr;
  }
  std::vector<std::pair<std::string_view, const json::value*>> items_;
  std::unordered_map<std::string_view, std::size_t> index_;
};

// The span the gateway keeps (ReceivedSpan: see the header), from its parts; one builder for
// exported spans (DomAttributes) and the gateway's own (ObjectAttributes). Writes the document's
// text in parts once, with no DOM per span (building, copying and freeing one was most of what a
// received span cost).
template <typename Attributes>
ReceivedSpan received_span(std::string trace_id, std::string span_id, std::string_view parent,
                           std::string_view name, int kind, std::int64_t start, std::int64_t end,
                           const Attributes& attributes, int status_code,
                           std::string_view status_message,
                           std::shared_ptr<const SpanResource> resource) {
  ReceivedSpan received;
  std::string& head = received.head;
  head.reserve(256);
  head += "{\"trace_id\":\"";
  head += trace_id;
  head += "\",\"span_id\":\"";
  head += span_id;
  head += "\",\"parent_span_id\":";
  append_string(head, parent);
  head += ",\"name\":";
  append_string(head, name);
  head += ",\"kind\":\"";
  head += kKinds[kind];
  head += "\",\"start_time_unix_nano\":\"";
  head += nanos_text(start);
  head += "\",\"end_time_unix_nano\":\"";
  head += nanos_text(end);
  head += "\",\"duration_ms\":";
  append_json_text(head, json::value(static_cast<double>(end - start) / 1e6));
  std::string text, plain;
  for (const auto& [attribute, field] : kAsyaFields) {
    if (!attributes.find(attribute, text, plain)) {
      const json::value* v = resource->attributes.if_contains(attribute);
      if (!v) continue;
      text = to_json_text(*v);
      plain = v->is_string() ? std::string(v->as_string()) : text;
    }
    std::string* id = std::string_view(field) == "job_id"        ? &received.job_id
                      : std::string_view(field) == "envelope_id" ? &received.envelope_id
                                                                 : nullptr;
    if (id) *id = plain;
    received.asya_fields.emplace_back(field, std::move(text));
    text.clear();
  }
  std::string& tail = received.tail;
  tail += ",\"status\":{\"code\":\"";
  tail += kStatusCodes[status_code];
  tail += "\",\"message\":";
  append_string(tail, status_message);
  tail += "},\"attributes\":";
  attributes.append_text(tail);
  tail += ",\"resource\":";
  received.trace_id = std::move(trace_id);
  received.span_id = std::move(span_id);
  received.start_unix_nano = start;
  received.resource = std::move(resource);
  return received;
}

json::value attribute_json(const otlp::AttributeValue& value) {
  if (const auto* text = std::get_if<std::string>(&value)) return json::string(*text);
  if (const auto* number = std::get_if<std::int64_t>(&value)) return *number;
  if (const auto* real = std::get_if<double>(&value)) {
    // As the encoder writes a double that is not finite, and the reader keeps it.
    if (std::isnan(*real)) return "NaN";
    if (std::isinf(*real)) return *real > 0 ? "Infinity" : "-Infinity";
    return *real;
  }
  return std::get<bool>(value);
}

void add_attributes(json::object& out, const std::vector<otlp::Attribute>& attributes) {
  for (const auto& attribute : attributes) out[attribute.key] = attribute_json(attribute.value);
}

}  // namespace

std::shared_ptr<const SpanResource> span_resource(const otlp::Resource& resource) {
  auto out = std::make_shared<SpanResource>();
  add_attributes(out->attributes, resource.attributes);
  out->text = to_json_text(out->attributes);
  return out;
}

ReceivedSpan received_span(const otlp::Span& span, std::shared_ptr<const SpanResource> resource) {
  json::object attributes;
  if (span.shared_attributes) add_attributes(attributes, *span.shared_attributes);
  add_attributes(attributes, span.attributes);
  const int status_code = static_cast<int>(span.status);
  return received_span(
      span.trace_id, span.span_id, span.parent_span_id, span.name, static_cast<int>(span.kind),
      static_cast<std::int64_t>(span.start_unix_nano),
      static_cast<std::int64_t>(span.end_unix_nano), ObjectAttributes(attributes), status_code,
      span.status == otlp::StatusCode::kError ? span.status_message : "", std::move(resource));
}

std::string ReceivedSpan::document_text(std::string_view placed_in) const {
  std::string out;
  out.reserve(head.size() + tail.size() + (resource ? resource->text.size() : 2) + 160);
  out += head;
  bool job_written = false;
  for (const auto& [field, value] : asya_fields) {
    const bool is_job = std::string_view(field) == "job_id";
    // The job's place among the Asya fields (kAsyaFields order): before delivery_count.
    if (!placed_in.empty() && !job_written && !is_job && std::string_view(field) != "actor" &&
        std::string_view(field) != "replica" && std::string_view(field) != "envelope_id") {
      out += ",\"job_id\":";
      append_string(out, placed_in);
      job_written = true;
    }
    out += ",\"";
    out += field;
    out += "\":";
    if (is_job && !placed_in.empty()) {
      append_string(out, placed_in);
      job_written = true;
    } else {
      out += value;
    }
  }
  if (!placed_in.empty() && !job_written) {
    out += ",\"job_id\":";
    append_string(out, placed_in);
  }
  out += tail;
  out += resource ? std::string_view(resource->text) : std::string_view("{}");
  out += '}';
  return out;
}

json::value any_value_to_json(const json::value& any_value) {
  if (!any_value.is_object()) return nullptr;
  const auto& o = any_value.as_object();
  if (const auto* s = o.if_contains("stringValue")) return *s;
  if (const auto* b = o.if_contains("boolValue")) return *b;
  if (const auto* i = o.if_contains("intValue")) {
    if (auto n = int64_field(i)) return *n;
    return *i;
  }
  if (const auto* d = o.if_contains("doubleValue")) {
    if (d->is_number()) return d->to_number<double>();
    return *d;  // "NaN", "Infinity" as the proto3 mapping spells them
  }
  if (const auto* bytes = o.if_contains("bytesValue")) return *bytes;
  if (const auto* a = o.if_contains("arrayValue"); a && a->is_object()) {
    json::array out;
    if (const auto* values = a->as_object().if_contains("values"); values && values->is_array())
      for (const auto& v : values->as_array()) out.push_back(any_value_to_json(v));
    return out;
  }
  if (const auto* kv = o.if_contains("kvlistValue"); kv && kv->is_object()) {
    return attributes_object(kv->as_object().if_contains("values"));
  }
  return nullptr;
}

Result<ParsedExport> parse_export_request(std::string_view body) {
  boost::system::error_code ec;
  // The request's DOM lives only while it is read: one arena for it, freed at once, instead of an
  // allocation and a free per node. The arena is not shared (storage_ptr to a local), so the DOM's
  // destructor frees nothing node by node; nothing may keep a json::value copied from the DOM
  // (such a copy keeps its storage): every kept value is copied into std::strings or into
  // containers of the default storage (SpanResource::attributes), which copy on assignment.
  json::monotonic_resource arena;
  json::value root = json::parse(body, ec, &arena);
  if (ec) return Error{"body is not valid JSON: " + ec.message()};
  if (!root.is_object())
    return Error{"body must be an ExportTraceServiceRequest object, got " + short_text(root)};
  ParsedExport out;
  std::string error;
  const json::array* resources = array_member(root.as_object(), "resourceSpans", "", error);
  if (!error.empty()) return Error{error};
  if (!resources) return out;
  for (std::size_t r = 0; r < resources->size(); ++r) {
    std::string rwhere = "resourceSpans[" + std::to_string(r) + "]";
    const json::value& resource_spans = (*resources)[r];
    if (!resource_spans.is_object()) return Error{rwhere + " must be an object"};
    auto resource = std::make_shared<SpanResource>();
    if (const auto* res = resource_spans.as_object().if_contains("resource");
        res && res->is_object())
      resource->attributes = attributes_object(res->as_object().if_contains("attributes"));
    resource->text = to_json_text(resource->attributes);
    const json::array* scopes =
        array_member(resource_spans.as_object(), "scopeSpans", rwhere + ".", error);
    if (!error.empty()) return Error{error};
    if (!scopes) continue;
    for (std::size_t s = 0; s < scopes->size(); ++s) {
      std::string swhere = rwhere + ".scopeSpans[" + std::to_string(s) + "]";
      if (!(*scopes)[s].is_object()) return Error{swhere + " must be an object"};
      const json::array* spans =
          array_member((*scopes)[s].as_object(), "spans", swhere + ".", error);
      if (!error.empty()) return Error{error};
      if (!spans) continue;
      for (std::size_t i = 0; i < spans->size(); ++i) {
        std::string where = swhere + ".spans[" + std::to_string(i) + "]";
        auto reject = [&](const std::string& why) { out.rejected.push_back({where + ": " + why}); };
        if (!(*spans)[i].is_object()) {
          reject("must be an object");
          continue;
        }
        const json::object& span = (*spans)[i].as_object();
        std::string trace_id = hex_id(span.if_contains("traceId"), 32);
        if (trace_id.empty()) {
          reject("traceId must be 32 hex digits, not all zero, got " +
                 (span.contains("traceId") ? short_text(span.at("traceId")) : "nothing"));
          continue;
        }
        std::string span_id = hex_id(span.if_contains("spanId"), 16);
        if (span_id.empty()) {
          reject("spanId must be 16 hex digits, not all zero, got " +
                 (span.contains("spanId") ? short_text(span.at("spanId")) : "nothing"));
          continue;
        }
        auto start = int64_field(span.if_contains("startTimeUnixNano"));
        auto end = int64_field(span.if_contains("endTimeUnixNano"));
        if (!start || *start <= 0) {
          reject("startTimeUnixNano must be nanoseconds since the epoch (a decimal string)");
          continue;
        }
        if (!end || *end < *start) {
          reject("endTimeUnixNano must be nanoseconds since the epoch, not before the start");
          continue;
        }
        std::string parent;
        if (const auto* p = span.if_contains("parentSpanId");
            p && p->is_string() && !p->as_string().empty()) {
          parent = hex_id(p, 16);
          if (parent.empty()) {
            reject("parentSpanId must be 16 hex digits or empty, got " + short_text(*p));
            continue;
          }
        }
        int status_code = 0;
        std::string status_message;
        if (const auto* st = span.if_contains("status"); st && st->is_object()) {
          status_code =
              enum_field(st->as_object().if_contains("code"), "STATUS_CODE_", kStatusCodes, 3);
          if (const auto* m = st->as_object().if_contains("message"); m && m->is_string())
            status_message = m->as_string();
        }
        const auto* name = span.if_contains("name");
        ReceivedSpan received = received_span(
            std::move(trace_id), std::move(span_id), parent,
            name && name->is_string() ? std::string_view(name->as_string()) : std::string_view(),
            enum_field(span.if_contains("kind"), "SPAN_KIND_", kKinds, 6), *start, *end,
            DomAttributes(span.if_contains("attributes")), status_code, status_message, resource);
        out.spans.push_back(std::move(received));
      }
    }
  }
  return out;
}

}  // namespace asya::gateway::traces
