// URLs as SigV4 signs them, and the HTTP types the AWS code uses (the one client of
// common/http, under the names the SQS transport and the S3 client know).
#pragma once

#include <string>
#include <string_view>

#include "common/http/client.hpp"
#include "common/result.hpp"

namespace asya::aws {

using Headers = http::Headers;

// An absolute http(s) URL split into the parts SigV4 signs.
struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;    // "sqs.us-east-1.amazonaws.com", "127.0.0.1", "[::1]"
  std::string port;    // empty when not given
  std::string path;    // "/" when empty, as given (already percent-encoded)
  std::string query;   // without '?'; may be empty

  // Parses "scheme://host[:port][/path][?query]"; fails naming the text for anything else.
  static Result<Url> parse(std::string_view text);
  // The Host header: host, plus ":port" unless it is the scheme's default.
  std::string host_header() const;
  // scheme://host[:port] (no path).
  std::string origin() const;
  // The whole URL again.
  std::string str() const;
};

// The AWS code's names for the one HTTP client (common/http/client.hpp): pooled, thread-safe,
// blocking; a cancelled request fails with http::Failure::kCancelled.
using HttpResponse = http::Response;
using HttpRequest = http::Request;
using HttpClient = http::Client;

}  // namespace asya::aws
