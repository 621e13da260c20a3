// The envelope a join actor's runtime receives once a group is decided (PROTOCOL §4a), streamed
// from the store: the sidecar holds one branch at a time, never the group. Free of I/O apart
// from reading the store.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "envelope/envelope.hpp"
#include "envelope/fanout.hpp"
#include "payload/payload_store.hpp"
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

// Branches whose payload is a payload reference (PROTOCOL §10, §4a), put back while the join input
// is streamed, so the join's handler gets the payloads themselves. check() reads each reference
// branch's object once (one at a time) and decides its slot: the object's bytes when it exists
// with the reference's size and SHA-256, else the error-end payload shape
//   {"error":"payload_unavailable","details":{"message","type","traceback","reference"},
//    "actor","original_payload": the reference}
// with that index counted in join.failed. The writing pass reads the object again and checks it
// once more; an object that changed in between fails the stream (the call fails, the group is
// published again later). At most one object is in memory at a time.
class BranchReferences {
 public:
  // `store`: the sidecar's payload store (ASYA_PAYLOAD_STORE); `actor`: the join actor's name.
  BranchReferences(payload::PayloadStore& store, std::string actor)
      : store_(store), actor_(std::move(actor)) {}

  // Reads every reference branch of `group` (see above). An Error when the join store or the
  // payload store could not be read (worth retrying); a missing or damaged object is not one.
  Status check(JoinStore& store, const ClaimedGroup& group);
  bool checked() const { return checked_; }

  // group.failed with the indexes whose object was unavailable, ascending.
  std::vector<std::size_t> failed(const ClaimedGroup& group) const;
  // The indexes whose stored payload was a reference (resolved or not), ascending.
  const std::vector<std::size_t>& references() const { return references_; }

  // Slot `index` whose stored payload is `stored`: when it is a reference, its object's bytes or
  // its payload_unavailable shape go to `sink` (or only their size is added to `*size` when
  // `size` is given) and true is returned; false when `stored` is not a reference (the caller
  // writes it as stored).
  Result<bool> write(std::size_t index, std::string_view stored,
                     const wire::StreamedRequest::Sink& sink, std::uint64_t* size);
  // Frees the object buffer.
  void release_buffer() { std::string().swap(buffer_); }

 private:
  payload::PayloadStore& store_;
  std::string actor_;
  bool checked_ = false;
  std::vector<std::size_t> references_;
  std::map<std::size_t, std::string> unavailable_;  // index -> its error payload
  std::map<std::size_t, std::uint64_t> sizes_;      // index -> resolved object size
  std::string buffer_;                              // the current branch's object
};

// Writes the full join input for the runtime to `sink`, in parts: head, then
//   "join": {"group","count","reason": "complete"|"timeout","failed":[...],"missing":[...]},
//   "payload": [branch 0, branch 1, ...]
// with each branch's payload as stored (the error-end payload shape for a failed one) and null
// for a missing one. The branches are read from the store one row at a time (read_branches), so
// only the current one is in memory. With `references` (a sidecar with a payload store), a branch
// whose payload is a reference is written as its object's bytes (BranchReferences; checked first
// when not yet). Returns the sink's first error, or the store's.
Status write_join_input(JoinStore& store, const ClaimedGroup& group,
                        const wire::StreamedRequest::Sink& sink,
                        BranchReferences* references = nullptr);

// The join input as a request streamed to the runtime (wire::StreamedRequest): its size measured
// by a first pass of write_join_input that keeps nothing, its body written by a second pass while
// the request goes out. The store must outlive the request. The group is decided, so its rows do
// not change between the passes; if they did, the call fails (the size no longer matches) and the
// group is published again later. `references`, when given, must outlive the request too.
Result<wire::StreamedRequest> join_input_request(JoinStore& store, const ClaimedGroup& group,
                                                 BranchReferences* references = nullptr);

// The full join input in one string (O(group) memory): for a join whose runtime answered `[]`
// (the input itself then ends the pipeline, section 4) and for tests.
Result<std::string> build_join_input(JoinStore& store, const ClaimedGroup& group,
                                     BranchReferences* references = nullptr);

}  // namespace asya::sidecar::join
