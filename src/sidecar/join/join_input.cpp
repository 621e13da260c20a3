#include "sidecar/join/join_input.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "payload/reference.hpp"

namespace asya::sidecar::join {
namespace {

std::string describe(const payload::Reference& reference) {
  return fmt::format("{} ({} bytes, sha256 {})", reference.url, reference.size_bytes,
                     reference.sha256);
}

// The error-end payload shape of a branch whose reference cannot be resolved (PROTOCOL §4a).
std::string unavailable_payload(std::string_view actor, std::string_view message,
                                std::string_view reference_raw) {
  std::string out = R"({"error":"payload_unavailable","details":{"message":)";
  out += envelope::json_string(message);
  out += R"(,"type":"payload_unavailable","traceback":"","reference":)";
  out.append(reference_raw);
  out += R"(},"actor":)";
  out += envelope::json_string(actor);
  out += R"(,"original_payload":)";
  out.append(reference_raw);
  out.push_back('}');
  return out;
}

// Where a streaming pass goes: to the sink, or only counted (the measuring pass).
struct Out {
  const wire::StreamedRequest::Sink* sink;
  std::uint64_t* size;
  Status put(std::string_view part) const {
    if (size) {
      *size += part.size();
      return Status::Ok();
    }
    return (*sink)(part);
  }
};

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

Status BranchReferences::check(JoinStore& store, const ClaimedGroup& group) {
  references_.clear();
  unavailable_.clear();
  sizes_.clear();
  Status st = store.read_branches(
      group.group, [&](std::size_t index, bool, std::string_view stored) -> Status {
        auto parsed = payload::parse_reference(stored);
        if (!parsed) return Status::Ok();
        references_.push_back(index);
        auto unavailable = [&](const std::string& message) {
          unavailable_[index] = unavailable_payload(
              actor_, fmt::format("join group {}, branch {}: {}", group.group, index, message),
              stored);
          return Status::Ok();
        };
        if (!*parsed) return unavailable(parsed->error().message);
        const payload::Reference& reference = **parsed;
        auto key = payload::key_in_store(reference, store_.url());
        if (!key) return unavailable(key.error().message);
        buffer_.clear();
        // Checked by its SHA-256, or by the store's verified mark (payload/file/verified_mark.hpp).
        auto checked = store_.read_checked(*key, reference.sha256, reference.size_bytes, buffer_);
        if (!checked) {
          const std::string& message = checked.error().message;
          if (!payload::object_unavailable(message))
            return Error{fmt::format("branch {}: payload {} cannot be read: {}", index,
                                     describe(reference), message)};
          return unavailable(
              fmt::format("payload {} cannot be read: {}", describe(reference), message));
        }
        if (!*checked)
          return unavailable(fmt::format(
              "payload {} does not match its reference: the object has {} bytes; it was changed or "
              "damaged in the store",
              describe(reference), buffer_.size()));
        sizes_[index] = reference.size_bytes;
        return Status::Ok();
      });
  release_buffer();
  if (!st) return st;
  checked_ = true;
  return Status::Ok();
}

std::vector<std::size_t> BranchReferences::failed(const ClaimedGroup& group) const {
  std::vector<std::size_t> out = group.failed;
  for (const auto& [index, payload] : unavailable_) out.push_back(index);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<bool> BranchReferences::write(std::size_t index, std::string_view stored,
                                     const wire::StreamedRequest::Sink& sink, std::uint64_t* size) {
  if (auto slot = unavailable_.find(index); slot != unavailable_.end()) {
    Status st = Out{&sink, size}.put(slot->second);
    if (!st) return st.error();
    return true;
  }
  auto resolved = sizes_.find(index);
  if (resolved == sizes_.end()) return false;  // not a reference when checked
  if (size) {
    *size += resolved->second;
    return true;
  }
  auto parsed = payload::parse_reference(stored);
  if (!parsed || !*parsed)
    return Error{
        fmt::format("branch {} of the join changed in the store while it was streamed", index)};
  const payload::Reference& reference = **parsed;
  auto key = payload::key_in_store(reference, store_.url());
  if (!key) return key.error();
  buffer_.clear();
  auto checked = store_.read_checked(*key, reference.sha256, reference.size_bytes, buffer_);
  if (!checked)
    return Error{fmt::format("branch {}: payload {} cannot be read: {}", index, describe(reference),
                             checked.error().message)};
  if (!*checked)
    return Error{fmt::format(
        "branch {}: payload {} changed in the store while the join input was streamed ({} bytes)",
        index, describe(reference), buffer_.size())};
  if (Status st = sink(buffer_); !st) return st.error();
  return true;
}

namespace {

// One pass of the join input (see write_join_input) to `out`.
Status stream(JoinStore& store, const ClaimedGroup& group, BranchReferences* references,
              const Out& out) {
  if (references && !references->checked())
    if (Status st = references->check(store, group); !st) return st;
  // Everything before the first branch, then after the last: small, built here.
  std::string text;
  text.reserve(group.head.size() + 256);
  text.append(group.head);
  text.append(",\"join\":{\"group\":");
  text += envelope::json_string(group.group);
  text += fmt::format(",\"count\":{},\"reason\":\"{}\",\"failed\":", group.count,
                      group.reason == DecidedBecause::kComplete ? "complete" : "timeout");
  append_indexes(text, references ? references->failed(group) : group.failed);
  text.append(",\"missing\":");
  append_indexes(text, group.missing);
  text.append("},\"payload\":[");
  if (Status st = out.put(text); !st) return st;
  text.clear();
  text.shrink_to_fit();
  std::size_t next = 0;
  // Missing slots before `index`: "null" each, comma-separated from what came before.
  auto nulls_until = [&](std::size_t index) -> Status {
    for (; next < index; ++next)
      if (Status st = out.put(next == 0 ? std::string_view("null") : std::string_view(",null"));
          !st)
        return st;
    return Status::Ok();
  };
  Status st =
      store.read_branches(group.group, [&](std::size_t index, bool, std::string_view payload) {
        if (Status gap = nulls_until(index); !gap) return gap;
        if (index > 0)
          if (Status comma = out.put(","); !comma) return comma;
        next = index + 1;
        if (references) {
          auto written = references->write(index, payload, *out.sink, out.size);
          if (!written) return Status(written.error());
          if (*written) return Status::Ok();
        }
        return out.put(payload);
      });
  if (references) references->release_buffer();
  if (!st) return st;
  if (Status gap = nulls_until(group.count); !gap) return gap;
  return out.put("]}");
}

}  // namespace

Status write_join_input(JoinStore& store, const ClaimedGroup& group,
                        const wire::StreamedRequest::Sink& sink, BranchReferences* references) {
  return stream(store, group, references, Out{&sink, nullptr});
}

Result<wire::StreamedRequest> join_input_request(JoinStore& store, const ClaimedGroup& group,
                                                 BranchReferences* references) {
  wire::StreamedRequest request;
  std::uint64_t size = 0;
  const wire::StreamedRequest::Sink none;
  Status measured = stream(store, group, references, Out{&none, &size});
  if (!measured) return measured.error();
  request.size = size;
  request.write_body = [&store, &group, references](const wire::StreamedRequest::Sink& sink) {
    return write_join_input(store, group, sink, references);
  };
  return request;
}

Result<std::string> build_join_input(JoinStore& store, const ClaimedGroup& group,
                                     BranchReferences* references) {
  std::string out;
  Status st = write_join_input(
      store, group,
      [&out](std::string_view part) {
        out.append(part);
        return Status::Ok();
      },
      references);
  if (!st) return st.error();
  return out;
}

}  // namespace asya::sidecar::join
