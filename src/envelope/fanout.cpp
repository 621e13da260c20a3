#include "envelope/fanout.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdint>
#include <cstdio>
#include <utility>

#include "envelope/json_detail.hpp"

namespace asya::envelope {
namespace {

namespace json = boost::json;
namespace ondemand = simdjson::ondemand;

using Member = std::pair<std::string_view, std::string_view>;  // key JSON text, value JSON text

// The members of the headers object, leaving out "asya-fanout" (whose value text goes to
// `fanout`). Views point into `headers_raw`.
Status split(std::string_view headers_raw, std::vector<Member>& kept, std::string_view& fanout) {
  kept.clear();
  fanout = {};
  if (headers_raw.empty()) return Status::Ok();
  detail::PaddedText padded;
  ondemand::document document;
  ondemand::object object;
  if (detail::iterate(headers_raw, document, padded) || document.get_object().get(object))
    return Error{"headers: not a JSON object"};
  for (auto field_result : object) {
    ondemand::field field;
    if (std::move(field_result).get(field)) return Error{"headers: not valid JSON"};
    std::string_view key_raw = detail::raw_key(field);
    std::string_view key;
    if (field.unescaped_key().get(key)) return Error{"headers: not valid JSON"};
    std::string_view raw;
    if (detail::raw_value(field.value(), raw)) return Error{"headers: not valid JSON"};
    if (key == kFanoutHeader)
      fanout = padded.map(raw);
    else
      kept.emplace_back(padded.map(key_raw), padded.map(raw));
  }
  return Status::Ok();
}

std::uint64_t fnv1a64(std::string_view data) {
  std::uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : data) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

Result<std::size_t> size_field(const json::object& frame, std::string_view key, std::size_t i) {
  const json::value* v = frame.if_contains(key);
  if (v == nullptr || !v->is_int64() || v->as_int64() < 0)
    return Error{fmt::format("{}[{}].{}: expected a non-negative integer", kFanoutHeader, i, key)};
  return static_cast<std::size_t>(v->as_int64());
}

}  // namespace

std::string FanoutFrame::json() const {
  std::string out = "{\"group\":";
  detail::append_json_string(out, group);
  out += fmt::format(",\"index\":{},\"count\":{}", index, count);
  if (parent_id) {
    out += ",\"parent_id\":";
    detail::append_json_string(out, *parent_id);
  }
  if (failed) out += ",\"failed\":true";
  out.push_back('}');
  return out;
}

std::string fanout_group_id(std::string_view id, std::size_t hop) {
  return fmt::format("{}@{}", id, hop);
}

std::string fanout_source_id(std::string_view group) {
  auto at = group.rfind('@');
  return std::string(at == std::string_view::npos ? group : group.substr(0, at));
}

std::string fanout_child_id(std::string_view id, std::size_t hop, std::size_t index) {
  if (index == 0) return std::string(id);
  std::string child =
      hop == 0 ? fmt::format("{}-{}", id, index) : fmt::format("{}-{}-{}", id, hop, index);
  if (child.size() <= kMaxIdBytes) return child;
  // Too long for PROTOCOL §1: keep a readable prefix and make it unique with a hash of the whole.
  char hash[17];
  std::snprintf(hash, sizeof(hash), "%016llx", static_cast<unsigned long long>(fnv1a64(child)));
  std::string_view prefix = id.substr(0, 200);
  // Do not cut a UTF-8 sequence: drop continuation bytes at the cut.
  while (!prefix.empty() && prefix.size() < id.size() &&
         (static_cast<unsigned char>(id[prefix.size()]) & 0xC0) == 0x80)
    prefix.remove_suffix(1);
  return fmt::format("{}-h{}", prefix, hash);
}

Result<std::vector<FanoutFrame>> fanout_frames(std::string_view headers_raw) {
  std::vector<FanoutFrame> frames;
  std::vector<Member> kept;
  std::string_view raw;
  Status st = split(headers_raw, kept, raw);
  detail::release_if_large();
  if (!st) return st.error();
  if (raw.empty()) return frames;
  boost::system::error_code ec;
  json::value value = json::parse(raw, ec);
  if (ec || !value.is_array())
    return Error{fmt::format("{}: expected an array of fan-out frames", kFanoutHeader)};
  std::size_t i = 0;
  for (const json::value& item : value.as_array()) {
    if (!item.is_object())
      return Error{fmt::format("{}[{}]: expected an object", kFanoutHeader, i)};
    const json::object& o = item.as_object();
    FanoutFrame frame;
    const json::value* group = o.if_contains("group");
    if (group == nullptr || !group->is_string() || group->as_string().empty())
      return Error{fmt::format("{}[{}].group: expected a non-empty string", kFanoutHeader, i)};
    frame.group = std::string(group->as_string());
    auto index = size_field(o, "index", i);
    if (!index) return index.error();
    auto count = size_field(o, "count", i);
    if (!count) return count.error();
    frame.index = *index;
    frame.count = *count;
    if (frame.index >= frame.count)
      return Error{fmt::format("{}[{}]: index {} is not below count {}", kFanoutHeader, i,
                               frame.index, frame.count)};
    if (const json::value* p = o.if_contains("parent_id"); p && p->is_string())
      frame.parent_id = std::string(p->as_string());
    if (const json::value* f = o.if_contains("failed"); f && f->is_bool())
      frame.failed = f->as_bool();
    frames.push_back(std::move(frame));
    ++i;
  }
  return frames;
}

std::string with_fanout_frames(std::string_view headers_raw,
                               const std::vector<FanoutFrame>& frames) {
  std::vector<Member> kept;
  std::string_view old;
  if (!split(headers_raw, kept, old)) kept.clear();
  detail::release_if_large();
  if (frames.empty() && kept.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [key, value] : kept) {
    if (!first) out.push_back(',');
    first = false;
    out.append(key);
    out.push_back(':');
    out.append(value);
  }
  if (!frames.empty()) {
    if (!first) out.push_back(',');
    out += fmt::format("\"{}\":[", kFanoutHeader);
    for (std::size_t i = 0; i < frames.size(); ++i) {
      if (i > 0) out.push_back(',');
      out += frames[i].json();
    }
    out.push_back(']');
  }
  out.push_back('}');
  return out;
}

std::string fanout_child_headers(const Envelope& in, std::string_view item_headers,
                                 std::size_t index, std::size_t count) {
  std::string_view headers = item_headers.empty() ? in.headers_raw : item_headers;
  std::vector<FanoutFrame> frames;
  if (may_carry_fanout(headers)) {
    // Malformed frames (only a hand-made envelope has them) are replaced: the new fan-out's own
    // frame is what its join needs.
    if (auto read = fanout_frames(headers)) frames = std::move(*read);
  }
  FanoutFrame frame;
  frame.group = fanout_group_id(in.id, in.current);
  frame.index = index;
  frame.count = count;
  frame.parent_id = in.parent_id;
  frames.push_back(std::move(frame));
  return with_fanout_frames(headers, frames);
}

std::string route_advanced(const Envelope& in) {
  std::string out = "{\"actors\":[";
  for (std::size_t i = 0; i < in.actors.size(); ++i) {
    if (i > 0) out.push_back(',');
    detail::append_json_string(out, in.actors[i]);
  }
  out += fmt::format("],\"current\":{}", std::min(in.current + 1, in.actors.size()));
  if (!in.route_metadata_raw.empty()) {
    out += ",\"metadata\":";
    out.append(in.route_metadata_raw);
  }
  out.push_back('}');
  return out;
}

std::optional<std::string> build_failed_branch(const Envelope& in, std::string_view actor,
                                               const ErrorInfo& error) {
  if (!may_carry_fanout(in.headers_raw) || in.current + 1 >= in.actors.size()) return std::nullopt;
  auto frames = fanout_frames(in.headers_raw);
  if (!frames || frames->empty()) return std::nullopt;
  frames->back().failed = true;
  const std::string headers = with_fanout_frames(in.headers_raw, *frames);
  const std::string route = route_advanced(in);
  Envelope moved = in;
  moved.headers_raw = headers;
  moved.route_raw = route;
  return build_error(moved, actor, error);
}

std::string pass_failed_branch(const Envelope& in) {
  const std::string route = route_advanced(in);
  ResponseItem item;
  item.payload_raw = in.payload_raw;
  item.route_raw = route;
  item.headers_raw = in.headers_raw;
  Envelope same = in;
  same.current = 0;  // output 0 keeps in's id and parent_id whatever the hop
  return build_output(same, 0, item);
}

}  // namespace asya::envelope
