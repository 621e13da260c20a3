// A small blocking HTTP client on libcurl, for the AWS APIs (SQS, S3). Keeps libcurl out of
// every other header.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.hpp"

namespace asya::aws {

using Headers = std::vector<std::pair<std::string, std::string>>;

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

struct HttpResponse {
  long status = 0;
  std::string body;
  Headers headers;  // as received, names in the server's case
  // The first header named `name` (any case), or "" when absent.
  std::string header(std::string_view name) const;
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  Headers headers;
  std::string_view body;  // must stay alive during perform()
  std::chrono::milliseconds timeout{30000};
  // When set and it becomes true, perform() gives up within about 100 ms with an Error whose
  // message starts with "cancelled:".
  const std::atomic<bool>* cancel = nullptr;
};

// Blocking and thread-safe: every perform() takes a curl handle from a pool (created on demand,
// one per concurrently calling thread) so connections are kept alive between calls.
class HttpClient {
 public:
  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Any HTTP status is a response; an Error means no response (cannot connect, timeout,
  // cancelled), with the method, URL and libcurl's reason.
  Result<HttpResponse> perform(const HttpRequest& request);

  // Frees the pooled handles; later perform() calls create new ones.
  void close();

 private:
  struct Pool;
  std::unique_ptr<Pool> pool_;
};

}  // namespace asya::aws
