#include "sidecar/join/join_input.hpp"

#include <fmt/format.h>

namespace asya::sidecar::join {
namespace {

void append_indexes(std::string& out, const std::vector<std::size_t>& indexes) {
  out.push_back('[');
  for (std::size_t i = 0; i < indexes.size(); ++i) {
    if (i > 0) out.push_back(',');
    out += std::to_string(indexes[i]);
  }
  out.push_back(']');
}

}  // namespace

std::string join_head(const envelope::Envelope& branch,
                      const std::vector<envelope::FanoutFrame>& frames) {
  const envelope::FanoutFrame& frame = frames.back();
  std::string out = "{\"id\":";
  out += envelope::json_string(envelope::fanout_source_id(frame.group));
  if (frame.parent_id) {
    out += ",\"parent_id\":";
    out += envelope::json_string(*frame.parent_id);
  }
  out += ",\"route\":";
  out.append(branch.route_raw);
  std::vector<envelope::FanoutFrame> outer(frames.begin(), frames.end() - 1);
  const std::string headers = envelope::with_fanout_frames(branch.headers_raw, outer);
  if (!headers.empty()) {
    out += ",\"headers\":";
    out += headers;
  }
  if (!branch.deadline_raw.empty()) {
    out += ",\"deadline\":";
    out.append(branch.deadline_raw);
  }
  for (const auto& [key, value] : branch.unknown_fields) {
    if (key == "\"join\"") continue;  // the join input's own member
    out.push_back(',');
    out.append(key);
    out.push_back(':');
    out.append(value);
  }
  return out;
}

Result<HeadEnvelope> parse_head(std::string_view head) {
  HeadEnvelope h;
  h.text.reserve(head.size() + 20);
  h.text.append(head);
  h.text.append(",\"payload\":null}");
  auto parsed = envelope::parse(h.text);
  if (!parsed) return Error{"stored join head is not an envelope: " + parsed.error().message};
  h.envelope = std::move(*parsed);
  return h;
}

Result<std::string> build_join_input(JoinStore& store, const ClaimedGroup& group) {
  std::string out;
  out.reserve(group.head.size() + 256);
  out.append(group.head);
  out.append(",\"join\":{\"group\":");
  out += envelope::json_string(group.group);
  out += fmt::format(",\"count\":{},\"reason\":\"{}\",\"failed\":", group.count,
                     group.reason == DecidedBecause::kComplete ? "complete" : "timeout");
  append_indexes(out, group.failed);
  out.append(",\"missing\":");
  append_indexes(out, group.missing);
  out.append("},\"payload\":[");
  std::size_t next = 0;
  Status st = store.read_branches(group.group, [&](std::size_t index, bool, std::string_view p) {
    for (; next < index; ++next) out.append(next == 0 ? "null" : ",null");
    if (index > 0) out.push_back(',');
    out.append(p);
    next = index + 1;
    return Status::Ok();
  });
  if (!st) return st.error();
  for (; next < group.count; ++next) out.append(next == 0 ? "null" : ",null");
  out.append("]}");
  return out;
}

}  // namespace asya::sidecar::join
