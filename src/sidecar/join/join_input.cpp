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

Status write_join_input(JoinStore& store, const ClaimedGroup& group,
                        const wire::StreamedRequest::Sink& sink) {
  // Everything before the first branch, then after the last: small, built here.
  std::string text;
  text.reserve(group.head.size() + 256);
  text.append(group.head);
  text.append(",\"join\":{\"group\":");
  text += envelope::json_string(group.group);
  text += fmt::format(",\"count\":{},\"reason\":\"{}\",\"failed\":", group.count,
                      group.reason == DecidedBecause::kComplete ? "complete" : "timeout");
  append_indexes(text, group.failed);
  text.append(",\"missing\":");
  append_indexes(text, group.missing);
  text.append("},\"payload\":[");
  if (Status st = sink(text); !st) return st;
  text.clear();
  text.shrink_to_fit();
  std::size_t next = 0;
  // Missing slots before `index`: "null" each, comma-separated from what came before.
  auto nulls_until = [&](std::size_t index) -> Status {
    for (; next < index; ++next)
      if (Status st = sink(next == 0 ? std::string_view("null") : std::string_view(",null")); !st)
        return st;
    return Status::Ok();
  };
  Status st =
      store.read_branches(group.group, [&](std::size_t index, bool, std::string_view payload) {
        if (Status gap = nulls_until(index); !gap) return gap;
        if (index > 0)
          if (Status comma = sink(","); !comma) return comma;
        next = index + 1;
        return sink(payload);
      });
  if (!st) return st;
  if (Status gap = nulls_until(group.count); !gap) return gap;
  return sink("]}");
}

Result<wire::StreamedRequest> join_input_request(JoinStore& store, const ClaimedGroup& group) {
  wire::StreamedRequest request;
  std::uint64_t size = 0;
  Status measured = write_join_input(store, group, [&size](std::string_view part) {
    size += part.size();
    return Status::Ok();
  });
  if (!measured) return measured.error();
  request.size = size;
  request.write_body = [&store, &group](const wire::StreamedRequest::Sink& sink) {
    return write_join_input(store, group, sink);
  };
  return request;
}

Result<std::string> build_join_input(JoinStore& store, const ClaimedGroup& group) {
  std::string out;
  Status st = write_join_input(store, group, [&out](std::string_view part) {
    out.append(part);
    return Status::Ok();
  });
  if (!st) return st.error();
  return out;
}

}  // namespace asya::sidecar::join
