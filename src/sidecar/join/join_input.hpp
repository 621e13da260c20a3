// The envelope a join actor's runtime receives once a group is decided (PROTOCOL §4a), streamed
// from the store: the sidecar holds one branch at a time, never the group. Free of I/O apart
// from reading the store.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "envelope/envelope.hpp"
#include "envelope/fanout.hpp"
#include "sidecar/join/join_store.hpp"
#include "wire/runtime_client.hpp"

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

// Writes the full join input for the runtime to `sink`, in parts: head, then
//   "join": {"group","count","reason": "complete"|"timeout","failed":[...],"missing":[...]},
//   "payload": [branch 0, branch 1, ...]
// with each branch's payload as stored (the error-end payload shape for a failed one) and null
// for a missing one. The branches are read from the store one row at a time (read_branches), so
// only the current one is in memory. Returns the sink's first error, or the store's.
Status write_join_input(JoinStore& store, const ClaimedGroup& group,
                        const wire::StreamedRequest::Sink& sink);

// The join input as a request streamed to the runtime (wire::StreamedRequest): its size measured
// by a first pass of write_join_input that keeps nothing, its body written by a second pass while
// the request goes out. The store must outlive the request. The group is decided, so its rows do
// not change between the passes; if they did, the call fails (the size no longer matches) and the
// group is published again later.
Result<wire::StreamedRequest> join_input_request(JoinStore& store, const ClaimedGroup& group);

// The full join input in one string (O(group) memory): for a join whose runtime answered `[]`
// (the input itself then ends the pipeline, section 4) and for tests.
Result<std::string> build_join_input(JoinStore& store, const ClaimedGroup& group);

}  // namespace asya::sidecar::join
