#include "envelope/replay.hpp"

#include <string>
#include <vector>

#include "envelope/json_detail.hpp"

namespace asya::envelope {
namespace {

namespace ondemand = simdjson::ondemand;
using detail::PaddedText;

constexpr std::string_view kAttemptHeader = "asya-attempt";
constexpr std::string_view kReplaysHeader = "asya-replays";

// payload.error, payload.actor, payload.details.{type,message} and the raw original_payload.
void read_error_payload(std::string_view payload_raw, FailedEnvelope& out) {
  PaddedText padded;
  ondemand::document document;
  if (detail::iterate(payload_raw, document, padded)) return;
  ondemand::object object;
  if (document.get_object().get(object)) return;
  for (auto field_result : object) {
    ondemand::field field;
    if (std::move(field_result).get(field)) return;
    std::string_view key;
    if (field.unescaped_key().get(key)) return;
    ondemand::value& value = field.value();
    std::string_view text;
    if (key == "error") {
      if (!value.get_string().get(text)) out.error.assign(text);
    } else if (key == "actor") {
      if (!value.get_string().get(text)) out.failed_actor.assign(text);
    } else if (key == "original_payload") {
      std::string_view raw;
      if (!detail::raw_value(value, raw)) out.original_payload_raw = padded.map(raw);
    } else if (key == "details") {
      ondemand::object details;
      if (value.get_object().get(details)) continue;
      for (auto detail_result : details) {
        ondemand::field d;
        if (std::move(detail_result).get(d)) return;
        std::string_view name;
        if (d.unescaped_key().get(name)) return;
        if (name == "type" && !d.value().get_string().get(text)) out.error_type.assign(text);
        if (name == "message" && !d.value().get_string().get(text)) out.error_message.assign(text);
      }
    }
  }
}

// The headers without asya-attempt and asya-replays, plus asya-replays = previous + 1.
std::string replay_headers(std::string_view headers_raw, int& replays) {
  std::string out = "{";
  int previous = 0;
  if (!headers_raw.empty()) {
    PaddedText padded;
    ondemand::document document;
    ondemand::object object;
    if (!detail::iterate(headers_raw, document, padded) && !document.get_object().get(object)) {
      for (auto field_result : object) {
        ondemand::field field;
        if (std::move(field_result).get(field)) break;
        std::string_view key_raw = detail::raw_key(field);
        std::string_view key;
        if (field.unescaped_key().get(key)) break;
        std::string_view raw;
        if (detail::raw_value(field.value(), raw)) break;
        raw = padded.map(raw);
        if (key == kAttemptHeader) continue;
        if (key == kReplaysHeader) {
          if (detail::is_json_integer(raw) && raw[0] != '-' && raw.size() <= 6)
            previous = std::stoi(std::string(raw));
          continue;
        }
        if (out.size() > 1) out.push_back(',');
        out.append(padded.map(key_raw));
        out.push_back(':');
        out.append(raw);
      }
    }
    detail::release_if_large();
  }
  replays = previous + 1;
  if (out.size() > 1) out.push_back(',');
  out.append("\"asya-replays\":" + std::to_string(replays) + "}");
  return out;
}

std::string route_text(const std::vector<std::string>& actors) {
  std::string text;
  for (const auto& a : actors) text += (text.empty() ? "" : " -> ") + a;
  return text;
}

}  // namespace

Result<FailedEnvelope> read_failed(std::string_view stored) {
  auto parsed = parse(stored);
  if (!parsed) return Error{"not an envelope: " + parsed.error().message};
  FailedEnvelope out;
  out.envelope = std::move(*parsed);
  read_error_payload(out.envelope.payload_raw, out);
  const Envelope& e = out.envelope;
  if (out.failed_actor.empty() && e.current < e.actors.size())
    out.failed_actor = e.actors[e.current];
  return out;
}

Result<Replay> build_replay(const FailedEnvelope& failed, const ReplayOptions& options) {
  const Envelope& in = failed.envelope;
  if (failed.original_payload_raw.empty()) {
    return Error{"envelope " + in.id + " cannot be replayed: its stored payload has no " +
                 "original_payload (error " + (failed.error.empty() ? "unknown" : failed.error) +
                 "; error-end stored a body that was not an envelope, kept in payload.raw)"};
  }
  // The failing actor's place in the route.
  std::size_t failed_at = in.current;
  if (failed_at >= in.actors.size() || in.actors[failed_at] != failed.failed_actor) {
    failed_at = in.actors.size();
    for (std::size_t i = 0; i < in.actors.size(); ++i)
      if (in.actors[i] == failed.failed_actor) failed_at = i;
  }
  const std::string& wanted = options.from_actor.empty() ? failed.failed_actor : options.from_actor;
  // The occurrence nearest before (or at) the failed one, else the first after it.
  constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::size_t before = kNone, after = kNone;
  for (std::size_t i = 0; i < in.actors.size(); ++i) {
    if (in.actors[i] != wanted) continue;
    if (i <= failed_at)
      before = i;
    else if (after == kNone)
      after = i;
  }
  const std::size_t start = before != kNone ? before : after;
  if (start == kNone) {
    return Error{"actor \"" + wanted + "\" is not in the route of envelope " + in.id + " (" +
                 route_text(in.actors) + ")" +
                 (options.from_actor.empty() ? "" : "; --from takes one of these actors")};
  }
  Replay out;
  out.actor = in.actors[start];
  out.current = start;
  std::string headers = replay_headers(in.headers_raw, out.replays);

  std::string body = "{\"id\":";
  body.append(in.id_raw);
  if (!in.parent_id_raw.empty()) {
    body.append(",\"parent_id\":");
    body.append(in.parent_id_raw);
  }
  body.append(",\"route\":{\"actors\":[");
  for (std::size_t i = 0; i < in.actors.size(); ++i) {
    if (i) body.push_back(',');
    detail::append_json_string(body, in.actors[i]);
  }
  body.append("],\"current\":" + std::to_string(start));
  if (!in.route_metadata_raw.empty()) {
    body.append(",\"metadata\":");
    body.append(in.route_metadata_raw);
  }
  body.append("},\"headers\":");
  body.append(headers);
  if (options.deadline) {
    body.append(",\"deadline\":");
    detail::append_json_string(body, format_rfc3339(*options.deadline));
  }
  for (const auto& [key, value] : in.unknown_fields) {
    body.push_back(',');
    body.append(key);
    body.push_back(':');
    body.append(value);
  }
  body.append(",\"payload\":");
  body.append(failed.original_payload_raw);
  body.push_back('}');
  out.body = std::move(body);
  return out;
}

}  // namespace asya::envelope
