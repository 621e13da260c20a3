// Putting a large payload in the store and its reference in the envelope: used by the sidecar
// for outputs (sidecar/payload_ref.hpp) and by the gateway and `asya send` for new envelopes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "payload/payload_store.hpp"
#include "payload/reference.hpp"

namespace asya::payload {

// Holds objects/<sha256 of payload_json> for `envelope_id` and for a new hold token
// (payload/lifetime.hpp), then, when `write`, stores the payload there durably; returns its
// reference, which carries that token (Reference::hold): use it for one published message. The
// holds are durable before the object is visible, so a sweep keeps the object from then on.
// `sha256`: the payload's digest when the caller has it, else empty: a payload to write is then
// hashed while it is written (PayloadStore::put_object; the hold is written as soon as the digest
// is known). Blocking; an Error names the envelope, size and cause.
Result<Reference> store_payload(PayloadStore& store, std::string_view payload_json,
                                std::string_view envelope_id, bool write = true,
                                std::string sha256 = {});

// store_payload for a payload whose object was begun ahead (PayloadStore::begin_object) from
// `size_bytes` bytes: holds it for `envelope_id` and a new hold token once its digest is known and
// makes it visible (PendingObject::commit); returns its reference. Errors as store_payload.
Result<Reference> commit_payload(PayloadStore& store, PendingObject& object, std::size_t size_bytes,
                                 std::string_view envelope_id);

// For a new envelope `body` (PROTOCOL §1): when its payload is larger than `threshold_bytes`, the
// payload is stored (store_payload) and the body is returned with the reference in its place,
// every other byte unchanged; nullopt when the payload is small enough. An Error when the body is
// not an envelope or the store failed.
Result<std::optional<std::string>> offload_envelope(PayloadStore& store,
                                                    std::size_t threshold_bytes,
                                                    std::string_view body);

}  // namespace asya::payload
