// The envelope a join actor's runtime receives once a group is decided (PROTOCOL §4a), built from
// the store without holding a branch twice. Free of I/O apart from reading the store.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "envelope/envelope.hpp"
#include "envelope/fanout.hpp"
#include "sidecar/join/join_store.hpp"

namespace asya::sidecar::join {

// The join input's envelope text up to (not including) its payload, without the closing brace:
// {"id": fanout_source_id(group), "parent_id": frame.parent_id?, "route": branch's route,
//  "headers": branch's headers with the innermost frame popped?, "deadline"?, unknown fields}.
// Stored with a group's first branch.
std::string join_head(const envelope::Envelope& branch,
                      const std::vector<envelope::FanoutFrame>& frames);

// The head completed with "payload": null and parsed: what the router decides with (its id,
// route, headers and deadline are the join input's; the payload stands for the branch list).
struct HeadEnvelope {
  std::string text;
  envelope::Envelope envelope;
};
Result<HeadEnvelope> parse_head(std::string_view head);

// The full join input for the runtime: head, then
//   "join": {"group","count","reason": "complete"|"timeout","failed":[...],"missing":[...]},
//   "payload": [branch 0, branch 1, ...]
// with each branch's payload as stored (the error-end payload shape for a failed one) and null
// for a missing one.
Result<std::string> build_join_input(JoinStore& store, const ClaimedGroup& group);

}  // namespace asya::sidecar::join
