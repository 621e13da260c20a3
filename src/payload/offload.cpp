#include "payload/offload.hpp"

#include <fmt/format.h>

#include "envelope/envelope.hpp"
#include "payload/lifetime.hpp"

namespace asya::payload {

Result<Reference> store_payload(PayloadStore& store, std::string_view payload_json,
                                std::string_view envelope_id, bool write, std::string sha256) {
  Reference reference;
  reference.size_bytes = payload_json.size();
  if (write && sha256.empty()) {
    // Hashed while it is written where the store can (PayloadStore::put_object); held as soon as
    // the digest is known, before the object is visible.
    auto stored = store.put_object(payload_json, [&](std::string_view digest) -> Status {
      if (Status held = hold(store, digest, envelope_id); !held)
        return Error{fmt::format("cannot hold payload {}/{} for {}: {}", store.url(),
                                 object_key(digest), envelope_id, held.message())};
      return Status::Ok();
    });
    if (!stored)
      return Error{fmt::format("cannot store the payload of {} ({} bytes): {}", envelope_id,
                               payload_json.size(), stored.error().message)};
    reference.sha256 = std::move(*stored);
    reference.url = store.url() + "/" + object_key(reference.sha256);
    return reference;
  }
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
