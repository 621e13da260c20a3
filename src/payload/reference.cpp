#include "payload/reference.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <boost/json.hpp>

namespace asya::payload {

std::string Reference::json() const {
  // url and sha256 are made of URL-safe characters; escape anyway so the text is always JSON.
  // hold is checked hex when parsed and made of hex digits when minted (new_hold_token).
  if (hold.empty())
    return fmt::format(R"({{"{}":{{"url":{},"size":{},"sha256":"{}"}}}})", kReferenceKey,
                       boost::json::serialize(boost::json::value(url)), size_bytes, sha256);
  return fmt::format(R"({{"{}":{{"url":{},"size":{},"sha256":"{}","hold":{}}}}})", kReferenceKey,
                     boost::json::serialize(boost::json::value(url)), size_bytes, sha256,
                     boost::json::serialize(boost::json::value(hold)));
}

std::string Reference::describe() const {
  return fmt::format("{} ({} bytes, sha256 {})", url, size_bytes, sha256);
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  return digest_hex(digest, length);
}

std::string digest_hex(const unsigned char* digest, std::size_t length) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (std::size_t i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

std::string object_key(std::string_view sha256) {
  return "objects/" + std::string(sha256);
}

namespace {

bool is_lower_hex(std::string_view text, std::size_t digits) {
  if (text.size() != digits) return false;
  for (char c : text)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace

std::optional<Result<Reference>> parse_reference(std::string_view payload_raw) {
  if (payload_raw.size() > 4096 || payload_raw.find(kReferenceKey) == std::string_view::npos)
    return std::nullopt;
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(payload_raw, ec);
  if (ec || !value.is_object()) return std::nullopt;
  const boost::json::object& outer = value.get_object();
  if (outer.size() != 1 || !outer.contains(kReferenceKey)) return std::nullopt;
  auto fail = [&](std::string_view what) -> std::optional<Result<Reference>> {
    return Result<Reference>(Error{fmt::format("payload reference {}: {}", what, payload_raw)});
  };
  const boost::json::value& inner = outer.at(kReferenceKey);
  if (!inner.is_object()) return fail("\"asya-payload-ref\": expected an object");
  const boost::json::object& fields = inner.get_object();
  Reference reference;
  const boost::json::value* url = fields.if_contains("url");
  if (!url || !url->is_string() || url->get_string().empty())
    return fail("url: expected a non-empty string");
  reference.url = std::string(url->get_string());
  const boost::json::value* size = fields.if_contains("size");
  if (!size || !(size->is_uint64() || (size->is_int64() && size->get_int64() >= 0)))
    return fail("size: expected a non-negative integer");
  reference.size_bytes =
      size->is_uint64() ? size->get_uint64() : static_cast<std::uint64_t>(size->get_int64());
  // No runtime can be sent or answer more (a frame's 4-byte length prefix): a larger size is
  // not a payload, and a reader must not reserve memory for it.
  if (reference.size_bytes > kMaxReferencedBytes)
    return fail(fmt::format("size: {} exceeds the largest payload a frame can carry ({} bytes)",
                            reference.size_bytes, kMaxReferencedBytes));
  const boost::json::value* sha = fields.if_contains("sha256");
  if (!sha || !sha->is_string() || !is_lower_hex(sha->get_string(), 64))
    return fail("sha256: expected 64 lowercase hex digits");
  reference.sha256 = std::string(sha->get_string());
  if (const boost::json::value* hold = fields.if_contains("hold")) {
    if (!hold->is_string() || !is_lower_hex(hold->get_string(), kHoldTokenHexDigits))
      return fail(fmt::format("hold: expected {} lowercase hex digits", kHoldTokenHexDigits));
    reference.hold = std::string(hold->get_string());
  }
  return Result<Reference>(std::move(reference));
}

Result<std::string> key_in_store(const Reference& reference, std::string_view store_url) {
  std::string_view url = reference.url;
  if (!url.starts_with(store_url) || url.size() <= store_url.size() || url[store_url.size()] != '/')
    return Error{fmt::format(
        "payload reference {} is not in this sidecar's payload store {} (ASYA_PAYLOAD_STORE): "
        "every sidecar, the gateway and `asya send` of a deployment must share one store",
        reference.url, store_url)};
  std::string key(url.substr(store_url.size() + 1));
  if (key != object_key(reference.sha256))
    return Error{fmt::format("payload reference {}: key {} is not objects/<sha256> ({})",
                             reference.url, key, reference.sha256)};
  return key;
}

}  // namespace asya::payload
