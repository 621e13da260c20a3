// Fan-out groups (PROTOCOL §4a): the ids a fan-out gives its children and the group data it stamps
// on them in the reserved header "asya-fanout", which a join actor's sidecar reads to collect the
// branches again. Nothing here parses a payload; other headers are copied byte for byte.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "envelope/build.hpp"
#include "envelope/envelope.hpp"

namespace asya::envelope {

inline constexpr std::string_view kFanoutHeader = "asya-fanout";
// PROTOCOL §1: an id is at most this many bytes.
inline constexpr std::size_t kMaxIdBytes = 256;

// One level of fan-out. The header holds a JSON array of frames, outermost first; a fan-out pushes
// one, the join that collects it pops it.
struct FanoutFrame {
  std::string group;  // fanout_group_id() of the envelope that fanned out
  std::size_t index = 0;
  std::size_t count = 0;
  // The parent_id of the envelope that fanned out (the join's output carries it), when it had one.
  std::optional<std::string> parent_id;
  // The branch failed (its payload is the error-end payload shape); it travels on to the join
  // without calling any runtime on the way (PROTOCOL §4a).
  bool failed = false;

  // The frame as JSON: {"group","index","count","parent_id"?,"failed"?}.
  std::string json() const;
};

// The group id of a fan-out of envelope `id` at route position `hop`: "<id>@<hop>". The same
// input at the same hop always gives the same group (a redelivered fan-out re-sends the same
// branches); the envelope that fanned out is fanout_source_id(group).
std::string fanout_group_id(std::string_view id, std::size_t hop);
std::string fanout_source_id(std::string_view group);

// The id of output `index` of envelope `id` fanned out at `hop`: `id` for index 0 (the lineage
// continues), "<id>-<index>" at hop 0 and "<id>-<hop>-<index>" at later hops, so a lineage that
// fans out more than once (or a branch that fans out again) never repeats an id. When that would
// be longer than kMaxIdBytes it becomes the first 200 bytes of `id` + "-h" + 16 hex digits of a
// hash of the full id.
std::string fanout_child_id(std::string_view id, std::size_t hop, std::size_t index);

// The frames of the headers object `headers_raw` (empty: no headers), outermost first; an empty
// vector when the header is absent. The error names what is malformed (e.g. "asya-fanout[1]:
// index 7 is not below count 5").
Result<std::vector<FanoutFrame>> fanout_frames(std::string_view headers_raw);

// `headers_raw` with the "asya-fanout" header set to `frames` (removed when `frames` is empty);
// every other member copied byte for byte. Returns an object text ("{}" at least) unless
// `frames` is empty and no other member is left, then "".
std::string with_fanout_frames(std::string_view headers_raw,
                               const std::vector<FanoutFrame>& frames);

// Cheap test before fanout_frames(): false when `headers_raw` cannot hold the header.
inline bool may_carry_fanout(std::string_view headers_raw) {
  return headers_raw.find(kFanoutHeader) != std::string_view::npos;
}

// The headers of output `index` of a fan-out of `count` outputs of `in`: `item_headers` (in's
// headers when empty) with the frame {fanout_group_id(in.id, in.current), index, count,
// in.parent_id} pushed onto "asya-fanout".
std::string fanout_child_headers(const Envelope& in, std::string_view item_headers,
                                 std::size_t index, std::size_t count);

// `in`'s route as JSON with current + 1 (actors and metadata kept).
std::string route_advanced(const Envelope& in);

// PROTOCOL §4a, a branch that fails: when `in` carries fan-out frames and its route continues
// after the current actor, the error does not go to error-end but on along the route towards the
// join: in's id, parent_id, deadline and unknown fields, route.current + 1, headers with the error
// appended to asya-error-chain and the innermost frame marked "failed", and the error-end payload
// {"error","details","actor","original_payload"}. nullopt when `in` is not such a branch.
std::optional<std::string> build_failed_branch(const Envelope& in, std::string_view actor,
                                               const ErrorInfo& error);

// A failed branch (innermost frame "failed") reaching an actor that is not a join: passed on
// unchanged with route.current + 1, without calling the runtime.
std::string pass_failed_branch(const Envelope& in);

}  // namespace asya::envelope
