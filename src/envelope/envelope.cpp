#include "envelope/envelope.hpp"

#include <charconv>
#include <limits>

#include "envelope/json_detail.hpp"

namespace asya::envelope {
namespace {

using detail::describe;
using detail::PaddedText;
using detail::raw_value;
using detail::trim_right;
namespace ondemand = simdjson::ondemand;

constexpr std::size_t kMaxIdBytes = 256;
constexpr std::string_view kIdExpected = "expected a non-empty string of at most 256 bytes";
constexpr std::string_view kDeadlineExpected =
    "expected an RFC 3339 time such as \"2026-11-29T12:00:00Z\"";

enum KnownField : unsigned {
  kId = 1u << 0,
  kParentId = 1u << 1,
  kRoute = 1u << 2,
  kHeaders = 1u << 3,
  kDeadline = 1u << 4,
  kPayload = 1u << 5,
};

KnownField known_field(std::string_view key) {
  if (key == "id") return kId;
  if (key == "parent_id") return kParentId;
  if (key == "route") return kRoute;
  if (key == "headers") return kHeaders;
  if (key == "deadline") return kDeadline;
  if (key == "payload") return kPayload;
  return KnownField{};
}

// Parses the body's top-level object into `envelope`. Returns an Error with a precise message.
Status parse_into(std::string_view body, Envelope& envelope, const char* padded_copy) {
  PaddedText padded;
  ondemand::document document;
  if (auto status =
          detail::open_document(body, "body", ondemand::json_type::object,
                                "a JSON object (an envelope)", document, padded, padded_copy);
      !status) {
    return status;
  }
  auto not_json = [&](simdjson::error_code error) -> Status {
    return Error{detail::invalid_json_message("body", error, padded, &document)};
  };
  ondemand::object object;
  if (auto error = document.get_object().get(object)) return not_json(error);

  unsigned seen = 0;
  detail::KeySet unknown_keys;
  for (auto field_result : object) {
    ondemand::field field;
    if (auto error = std::move(field_result).get(field)) return not_json(error);
    std::string_view key_raw = detail::raw_key(field);
    std::string_view key;
    if (auto error = field.unescaped_key().get(key)) return not_json(error);
    ondemand::value& value = field.value();
    const KnownField known = known_field(key);
    if (known != KnownField{}) {
      if (seen & known) {
        return Error{std::string(key) + ": duplicate key (each field may appear only once)"};
      }
      seen |= known;
    }
    switch (known) {
      case kId:
      case kParentId:
      case kDeadline: {
        std::string_view name = key;
        ondemand::json_type value_type;
        if (auto error = value.type().get(value_type)) return not_json(error);
        std::string_view raw;
        std::string_view text;
        if (value_type == ondemand::json_type::string) {
          raw = trim_right(value.raw_json_token());
          if (auto error = value.get_string().get(text)) return not_json(error);
        } else if (auto error = raw_value(value, raw)) {
          return not_json(error);
        }
        const bool is_string = value_type == ondemand::json_type::string;
        if (known == kId) {
          if (!is_string || text.empty() || text.size() > kMaxIdBytes) {
            std::string got = is_string && text.size() > kMaxIdBytes
                                  ? "a string of " + std::to_string(text.size()) + " bytes"
                                  : describe(raw);
            return Error{std::string(name) + ": " + std::string(kIdExpected) + ", got " + got};
          }
          envelope.id.assign(text);
          envelope.id_raw = padded.map(raw);
        } else if (known == kParentId) {
          if (!is_string) {
            return Error{std::string(name) + ": expected a string, got " + describe(raw)};
          }
          envelope.parent_id.emplace(text);
          envelope.parent_id_raw = padded.map(raw);
        } else {
          if (!is_string || !parse_rfc3339(text).ok()) {
            return Error{std::string(name) + ": " + std::string(kDeadlineExpected) + ", got " +
                         describe(raw)};
          }
          envelope.deadline.emplace(text);
          envelope.deadline_raw = padded.map(raw);
        }
        break;
      }
      case kRoute: {
        detail::Route route;
        simdjson::error_code syntax_error;
        Status status =
            detail::parse_route(value, padded, detail::RouteContext{}, route, syntax_error);
        if (syntax_error) return not_json(syntax_error);
        if (!status.ok()) return status;
        envelope.actors = std::move(route.actors);
        envelope.current = route.current;
        envelope.route_raw = route.raw;
        envelope.route_metadata_raw = route.metadata_raw;
        break;
      }
      case kHeaders: {
        ondemand::json_type value_type;
        if (auto error = value.type().get(value_type)) return not_json(error);
        std::string_view raw;
        if (auto error = raw_value(value, raw)) return not_json(error);
        if (value_type != ondemand::json_type::object) {
          return Error{"headers: expected an object, got " + describe(raw)};
        }
        envelope.headers_raw = padded.map(raw);
        break;
      }
      case kPayload: {
        std::string_view raw;
        if (auto error = raw_value(value, raw)) return not_json(error);
        envelope.payload_raw = padded.map(raw);
        break;
      }
      default: {
        std::string_view raw;
        if (auto error = raw_value(value, raw)) return not_json(error);
        unknown_keys.add(key);
        envelope.unknown_fields.emplace_back(padded.map(key_raw), padded.map(raw));
      }
    }
  }
  // Anything after the closing brace (e.g. a second object) is not one JSON value.
  const char* trailing = nullptr;
  if (!document.current_location().get(trailing)) {
    return Error{"body is not valid JSON: unexpected content after the envelope object (at byte " +
                 std::to_string(padded.offset_of(trailing)) + ")"};
  }
  std::string_view duplicate;
  if (unknown_keys.find_duplicate(duplicate)) {
    return Error{std::string(duplicate) + ": duplicate key (each field may appear only once)"};
  }
  if (!(seen & kId)) return Error{"id: missing (" + std::string(kIdExpected) + ")"};
  if (!(seen & kRoute)) {
    return Error{
        "route: missing (expected an object {\"actors\": [...], \"current\": n} listing the "
        "actors that process the envelope)"};
  }
  if (!(seen & kPayload)) return Error{"payload: missing (expected any JSON value)"};
  return Status::Ok();
}

// Reads exactly `count` digits at text[at...] into `value`.
}  // namespace

std::string_view Envelope::current_actor() const {
  return route_done() ? std::string_view() : std::string_view(actors[current]);
}

Result<Envelope> parse(std::string_view body) {
  return parse(body, nullptr);
}

Result<Envelope> parse(std::string_view body, const char* padded_copy) {
  Envelope envelope;
  Status status = parse_into(body, envelope, padded_copy);
  detail::release_if_large();
  if (!status.ok()) return status.error();
  return envelope;
}

bool deadline_passed(const Envelope& envelope, std::chrono::system_clock::time_point now) {
  if (!envelope.deadline) return false;
  auto deadline = parse_rfc3339(*envelope.deadline);
  return deadline.ok() && *deadline <= now;
}

std::string json_string(std::string_view text) {
  std::string out;
  detail::append_json_string(out, text);
  return out;
}

bool valid_utf8(std::string_view text) {
  return simdjson::validate_utf8(text.data(), text.size());
}

}  // namespace asya::envelope
