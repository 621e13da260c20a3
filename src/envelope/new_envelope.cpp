#include "envelope/new_envelope.hpp"

#include "common/actor_name.hpp"
#include "common/random_id.hpp"
#include "common/rfc3339.hpp"
#include "envelope/json_detail.hpp"

namespace asya::envelope {

Result<std::string> new_envelope(const NewEnvelope& spec) {
  using detail::append_json_string;
  const std::string id = spec.id.empty() ? new_uuid() : spec.id;
  if (id.size() > 256) {
    return Error{"id: expected at most 256 bytes, got " + std::to_string(id.size()) +
                 " bytes; use a shorter id"};
  }
  if (spec.actors.empty())
    return Error{"route.actors: expected at least one actor, got an empty route"};
  for (std::size_t i = 0; i < spec.actors.size(); ++i) {
    if (!valid_actor_name(spec.actors[i])) {
      return Error{"route.actors[" + std::to_string(i) + "]: \"" + spec.actors[i] +
                   "\" is not a valid actor name (" + kActorNameRule + ")"};
    }
  }
  for (const auto& [key, value] : spec.headers) {
    if (key.rfind("asya-", 0) == 0)
      return Error{"headers." + key + ": keys starting with asya- are reserved for the system"};
  }
  if (spec.payload_json.empty()) return Error{"payload: expected a JSON value, got nothing"};

  std::string out;
  out.reserve(spec.payload_json.size() + spec.route_metadata_json.size() + 256);
  out += "{\"id\":";
  append_json_string(out, id);
  out += ",\"route\":{\"actors\":[";
  for (std::size_t i = 0; i < spec.actors.size(); ++i) {
    if (i) out += ',';
    append_json_string(out, spec.actors[i]);
  }
  out += "],\"current\":0";
  if (!spec.route_metadata_json.empty()) out += ",\"metadata\":" + spec.route_metadata_json;
  out += '}';
  if (!spec.headers.empty() || spec.sent_at) {
    out += ",\"headers\":{";
    for (std::size_t i = 0; i < spec.headers.size(); ++i) {
      if (i) out += ',';
      append_json_string(out, spec.headers[i].first);
      out += ':';
      append_json_string(out, spec.headers[i].second);
    }
    if (spec.sent_at) {
      if (!spec.headers.empty()) out += ',';
      out += "\"asya-sent-at\":";
      append_json_string(out, format_rfc3339(*spec.sent_at, Rfc3339Precision::kMicroseconds));
    }
    out += '}';
  }
  if (spec.deadline) {
    out += ",\"deadline\":";
    append_json_string(out, format_rfc3339(*spec.deadline));
  }
  out += ",\"payload\":";
  out += spec.payload_json;
  out += '}';
  return out;
}

}  // namespace asya::envelope
