#include "payload/offload.hpp"

#include <fmt/format.h>

#include "envelope/envelope.hpp"
#include "payload/lifetime.hpp"

namespace asya::payload {

namespace {

// Holds the object for `envelope_id` as soon as its digest is known, before it is visible.
BeforeVisible hold_for(PayloadStore& store, std::string_view envelope_id) {
  return [&store, envelope_id](std::string_view digest) -> Status {
    if (Status held = hold(store, digest, envelope_id); !held)
      return Error{fmt::format("cannot hold payload {}/{} for {}: {}", store.url(),
                               object_key(digest), envelope_id, held.message())};
    return Status::Ok();
  };
}

Result<Reference> stored_as(PayloadStore& store, Result<std::string> stored, std::size_t size_bytes,
                            std::string_view envelope_id) {
  if (!stored)
    return Error{fmt::format("cannot store the payload of {} ({} bytes): {}", envelope_id,
                             size_bytes, stored.error().message)};
  Reference reference;
  reference.size_bytes = size_bytes;
  reference.sha256 = std::move(*stored);
  reference.url = store.url() + "/" + object_key(reference.sha256);
  return reference;
}

}  // namespace

Result<Reference> commit_payload(PayloadStore& store, PendingObject& object, std::size_t size_bytes,
                                 std::string_view envelope_id) {
  return stored_as(store, object.commit(hold_for(store, envelope_id)), size_bytes, envelope_id);
}

Result<Reference> store_payload(PayloadStore& store, std::string_view payload_json,
                                std::string_view envelope_id, bool write, std::string sha256) {
  // Hashed while it is written where the store can (PayloadStore::put_object); held as soon as
  // the digest is known, before the object is visible.
  if (write && sha256.empty())
    return stored_as(store, store.put_object(payload_json, hold_for(store, envelope_id)),
                     payload_json.size(), envelope_id);
  Reference reference;
  reference.size_bytes = payload_json.size();
  reference.sha256 = sha256.empty() ? sha256_hex(payload_json) : std::move(sha256);
  reference.url = store.url() + "/" + object_key(reference.sha256);
  if (Status held = hold(store, reference.sha256, envelope_id); !held)
    return Error{fmt::format("cannot hold payload {} for {}: {}", reference.url, envelope_id,
                             held.message())};
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
