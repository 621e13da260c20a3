// AWS Signature Version 4 (header-based): the canonical request, the string to sign and the
// Authorization header, as specified in the AWS General Reference ("Create a signed AWS API
// request") and checked against AWS's published SigV4 test suite (sigv4_test.cpp, testdata/).
//
// The caller builds a Request with every header it will send (Host included, exactly as it goes
// on the wire); sign() adds X-Amz-Date, X-Amz-Security-Token (temporary credentials) and
// Authorization, signing every header present. Pure functions, thread-safe.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace asya::aws {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty for long-term credentials
};

struct Request {
  std::string method;  // "GET", "POST", ...
  // The path as sent on the wire (already percent-encoded, "/" when empty), without the query.
  // It must be normalised (no "." or ".." segments, no "//"): the signer does not rewrite it.
  std::string path = "/";
  std::string query;  // raw query string without '?', as sent ("b=2&a=1"); may be empty
  std::vector<std::pair<std::string, std::string>> headers;  // names in any case
  std::string payload_sha256;  // hex SHA-256 of the body; empty means "hash of empty body"
};

struct Scope {
  std::string region;   // "us-east-1"
  std::string service;  // "sqs", "s3", "service" (test suite)
  // S3 signs the path exactly as sent; every other service URI-encodes each path segment again
  // ("%20" is signed as "%2520").
  bool double_encode_path = true;
};

// 20150830T123600Z for a point in time (UTC).
std::string amz_date(std::chrono::system_clock::time_point when);

// Lower-case hex SHA-256 / HMAC-SHA256 helpers.
std::string sha256_hex(std::string_view data);
std::string hmac_sha256(std::string_view key, std::string_view data);  // raw 32 bytes
std::string hex(std::string_view bytes);

// RFC 3986 percent-encoding of everything but A-Z a-z 0-9 - _ . ~ (and '/' when keep_slash).
std::string uri_encode(std::string_view text, bool keep_slash);

// The steps of the algorithm, exposed for the test vectors. `request.headers` must already hold
// X-Amz-Date (and X-Amz-Security-Token) when these are called directly.
std::string canonical_request(const Request& request, const Scope& scope);
std::string signed_headers(const Request& request);  // "host;x-amz-date"
std::string string_to_sign(std::string_view amz_date, const Scope& scope,
                           std::string_view canonical_request);
std::string signature(std::string_view secret_access_key, std::string_view amz_date,
                      const Scope& scope, std::string_view string_to_sign);
std::string authorization(const Credentials& credentials, std::string_view amz_date,
                          const Scope& scope, const Request& request);

// Adds X-Amz-Date (`when`), X-Amz-Security-Token when credentials carry a session token, and
// Authorization to request.headers (replacing earlier ones of those names).
void sign(Request& request, const Credentials& credentials, const Scope& scope,
          std::chrono::system_clock::time_point when = std::chrono::system_clock::now());

}  // namespace asya::aws
