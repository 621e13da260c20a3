// When a stored payload may be deleted (docs/protocol.md "Payload references", "Lifetime").
//
// Objects are content-addressed (objects/<sha256>), so one object may be shared by the hops of an
// envelope (pass-through), by fan-out children and by unrelated envelopes with equal payloads.
// The rule, chosen because it needs no counter that a crash could leave wrong:
//   - a hold holds/<id-hash>/<sha256> says "id may still refer to object sha256". Two kinds of id
//     write the same records:
//       * an envelope id: written durably before any envelope referring to the object is
//         published (sidecar output, gateway, `asya send`) and again whenever a sidecar receives
//         such an envelope (so a redelivery after a release holds the object again), then
//         rewritten while that input is processed (hold_renewer.hpp: copies of one envelope in
//         flight at once share the hold); released by the end actor (below);
//       * a hold token (new_hold_token(), carried in the reference's "hold"): one per published
//         message, written before that message is published, released by the sidecar that
//         consumed the message once it acked it (release_token). Copies of one envelope that
//         at-least-once delivery processed twice publish outputs under one envelope id but with
//         tokens of their own, so the end of one copy's lineage cannot expose the other copy's
//         output that still waits in a queue;
//   - a release released/<id-hash> is written by the end actor once the final envelope of id is
//     stored (with the payload resolved into the result), when the id holds anything, and for a
//     token by its message's consumer;
//   - sweep() also removes temporaries of puts cut short by a crash (tmp/) after `orphan_age`;
//   - sweep() deletes an object when every hold on it is older than the release of its id
//     and that release is older than `grace`, or when the object (or every hold on it) is older
//     than `orphan_age` (crashes between upload and publish, lineages whose end never came, a
//     consumer that died between its ack and its token's release, a send that failed: its
//     tokens are not released, since the message may have been queued all the same);
//   - sweep() removes a hold once it is done in that sense, whether or not its object lives on
//     (an object some envelope always refers to never dies; the done holds of everything that
//     referred to it would pile up), after listing the holds once more: a hold rewritten since
//     (same key, newer time) is kept.
// Two queue entries of one publish share its token: once one was consumed, the other is held by
// its envelope id only, and may find its object gone; the reader then finds the token's release
// and acknowledges the entry as a copy of a consumed message (sidecar/payload_ref.hpp).
// So an object is never deleted while an envelope referring to it is queued (its token is not
// released before it is consumed), delayed for retry or in flight, as long as `grace` exceeds the
// time a duplicate of a consumed message can still arrive (visibility timeout plus retry backoff)
// and `orphan_age` the longest time a message waits in a queue. sweep() looks
// the holds once more right before deleting; what remains is a window of
// milliseconds in which a new envelope with a byte-identical payload to an expired one is held
// and uploaded between that look and the delete (its next reader then gets payload_unavailable).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "payload/payload_store.hpp"

namespace asya::payload {

// Store keys of the lifetime records.
std::string hold_key(std::string_view sha256, std::string_view envelope_id);
std::string release_key(std::string_view envelope_id);

// Records durably that `envelope_id` (an envelope id or a hold token) refers to object `sha256`.
// Blocking.
Status hold(PayloadStore& store, std::string_view sha256, std::string_view envelope_id);

// Records that the message of hold token `token` refers to object `sha256` (a hold like hold()'s,
// written with PayloadStore::put_record: a machine crash may lose it, which leaves that message
// the guarantee of the holds by envelope id, written durably). Blocking.
Status hold_token(PayloadStore& store, std::string_view sha256, std::string_view token);

// A new hold token: kHoldTokenHexDigits lowercase hex digits of 128 random bits (OpenSSL's
// generator), so that no two published messages share one. Thread-safe.
std::string new_hold_token();

// Records that the message of hold token `token` was consumed (its consumer acked it): the holds
// of the token end like an envelope's after its release. Written with PayloadStore::put_record
// (a lost release leaves the hold to the orphan age) and without looking for a hold first (a
// token is only minted with one). Blocking.
Status release_token(PayloadStore& store, std::string_view token);

// Records durably that envelope `envelope_id` ended (its result is stored), when it holds any
// object (one listing otherwise, no write). Blocking.
Status release(PayloadStore& store, std::string_view envelope_id);

struct SweepPolicy {
  std::chrono::milliseconds grace{std::chrono::minutes(15)};     // ASYA_PAYLOAD_GRACE
  std::chrono::milliseconds orphan_age{std::chrono::hours(24)};  // ASYA_PAYLOAD_ORPHAN_AGE
};

struct SweepReport {
  std::size_t objects_deleted = 0;
  std::size_t objects_kept = 0;
  std::size_t records_deleted = 0;  // holds and releases no longer needed
};

// Deletes what the rule above allows, as of `now`. Safe to run in several processes at once
// (deletes are idempotent). An Error when the store cannot be listed; a failed delete is retried
// by the next sweep.
Result<SweepReport> sweep(PayloadStore& store, const SweepPolicy& policy,
                          std::chrono::system_clock::time_point now);

}  // namespace asya::payload
