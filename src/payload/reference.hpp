// A payload reference (docs/protocol.md "Payload references"): the payload of an envelope whose
// real payload lives in the payload store. Its one shape, written only by sidecars, the gateway
// and `asya send`:
//   {"asya-payload-ref": {"url": "<store url>/objects/<sha256>", "size": N, "sha256": "<hex>"}}
// `size` is the byte length of the payload's JSON text and `sha256` the lowercase hex SHA-256 of
// those bytes; the object at `url` holds exactly those bytes. Handlers never see one: the
// receiving sidecar puts the real payload back before calling its runtime.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace asya::payload {

// The key of the payload member; a payload object with this single key is a reference.
inline constexpr std::string_view kReferenceKey = "asya-payload-ref";

// The largest `size` a reference may name: what a frame's 4-byte length prefix can carry
// (docs/protocol.md §3), so no runtime can be sent or answer a larger payload.
inline constexpr std::uint64_t kMaxReferencedBytes = 0xFFFFFFFFu;

struct Reference {
  std::string url;  // store url + "/" + key
  std::uint64_t size_bytes = 0;
  std::string sha256;  // 64 lowercase hex digits
  std::string hold;    // the message's hold token (kHoldTokenHexDigits lowercase hex), or empty

  // The reference as JSON text (the payload to splice into an envelope).
  std::string json() const;
  // "<url> (<size> bytes, sha256 <hex>)", for messages.
  std::string describe() const;
};

// The length of a hold token: 128 random bits in lowercase hex.
inline constexpr std::size_t kHoldTokenHexDigits = 32;

// Lowercase hex SHA-256 of `bytes` (OpenSSL; about 0.5 s per GB here).
std::string sha256_hex(std::string_view bytes);
// Lowercase hex of a digest's `length` bytes (sha256_hex's form, for a digest computed in parts).
std::string digest_hex(const unsigned char* digest, std::size_t length);

// The store key of a payload with digest `sha256`: "objects/<sha256>".
std::string object_key(std::string_view sha256);

// Whether `payload_raw` (an envelope's payload JSON text) is a reference:
//   nullopt          it is not (any payload that is not an object whose only key is
//                    "asya-payload-ref");
//   a Reference      it is, well-formed;
//   an Error         it is one, but malformed (names the field and what was expected; a size
//                    above kMaxReferencedBytes is malformed, and so is a "hold" that is not
//                    kHoldTokenHexDigits lowercase hex digits).
// Cheap for ordinary payloads: only texts under 4 KiB that contain the key are parsed.
std::optional<Result<Reference>> parse_reference(std::string_view payload_raw);

// The key of `reference` in the store of url `store_url` (reference.url without the store url
// and '/'); an Error naming both urls when the reference points into another store or its key is
// not objects/<its sha256>.
Result<std::string> key_in_store(const Reference& reference, std::string_view store_url);

}  // namespace asya::payload
