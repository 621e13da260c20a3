#include "payload/offload.hpp"

#include <fmt/format.h>

#include "envelope/envelope.hpp"
#include "payload/lifetime.hpp"

namespace asya::payload {

namespace {

// Holds object `digest` for `envelope_id` and for the new message's hold token `token`.
Status hold_both(PayloadStore& store, std::string_view digest, std::string_view envelope_id,
                 std::string_view token) {
  Status held = hold(store, digest, envelope_id);
  if (held) held = hold_token(store, digest, token);
  if (!held)
    return Error{fmt::format("cannot hold payload {}/{} for {}: {}", store.url(),
                             object_key(digest), envelope_id, held.message())};
  return Status::Ok();
}

// Holds the object for `envelope_id` and `token` as soon as its digest is known, before it is
// visible.
BeforeVisible hold_for(PayloadStore& store, std::string_view envelope_id, std::string_view token) {
  return [&store, envelope_id, token](std::string_view digest) -> Status {
    return hold_both(store, digest, envelope_id, token);
  };
}

Result<Reference> stored_as(PayloadStore& store, Result<std::string> stored, std::size_t size_bytes,
                            std::string_view envelope_id, std::string token) {
  if (!stored)
    return Error{fmt::format("cannot store the payload of {} ({} bytes): {}", envelope_id,
                             size_bytes, stored.error().message)};
  Reference reference;
  reference.size_bytes = size_bytes;
  reference.sha256 = std::move(*stored);
  reference.url = store.url() + "/" + object_key(reference.sha256);
  reference.hold = std::move(token);
  return reference;
}

}  // namespace

Result<Reference> commit_payload(PayloadStore& store, PendingObject& object, std::size_t size_bytes,
                                 std::string_view envelope_id) {
  std::string token = new_hold_token();
  return stored_as(store, object.commit(hold_for(store, envelope_id, token)), size_bytes,
                   envelope_id, token);
}

Result<Reference> store_payload(PayloadStore& store, std::string_view payload_json,
                                std::string_view envelope_id, bool write, std::string sha256) {
  // Hashed while it is written where the store can (PayloadStore::put_object); held as soon as
  // the digest is known, before the object is visible. The reference is this message's: it gets
  // a hold token of its own, held too.
  std::string token = new_hold_token();
  if (write && sha256.empty())
    return stored_as(store, store.put_object(payload_json, hold_for(store, envelope_id, token)),
                     payload_json.size(), envelope_id, token);
  Reference reference;
  reference.size_bytes = payload_json.size();
  reference.sha256 = sha256.empty() ? sha256_hex(payload_json) : std::move(sha256);
  reference.url = store.url() + "/" + object_key(reference.sha256);
  reference.hold = std::move(token);
  if (Status held = hold_both(store, reference.sha256, envelope_id, reference.hold); !held)
    return held.error();
  if (write) {
    if (Status put = store.put(object_key(reference.sha256), payload_json); !put)
      return Error{fmt::format("cannot store the payload of {} ({} bytes): {}", envelope_id,
                               payload_json.size(), put.message())};
  }
  return reference;
}

Result<std::optional<std::string>> offload_envelope(PayloadStore& store,
                                                    std::size_t threshold_bytes,
                                                    std::string_view body) {
  auto parsed = envelope::parse(body);
  if (!parsed) return parsed.error();
  std::string_view payload = parsed->payload_raw;
  if (payload.size() <= threshold_bytes) return std::optional<std::string>();
  auto reference = store_payload(store, payload, parsed->id);
  if (!reference) return reference.error();
  const auto prefix = static_cast<std::size_t>(payload.data() - body.data());
  std::string out;
  std::string text = reference->json();
  out.reserve(body.size() - payload.size() + text.size());
  out.append(body.substr(0, prefix));
  out.append(text);
  out.append(body.substr(prefix + payload.size()));
  return std::optional<std::string>(std::move(out));
}

}  // namespace asya::payload
