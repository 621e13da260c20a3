// AWS settings from the standard environment variables, and a client that signs (SigV4) and
// sends requests with bounded retries. Used by the SQS transport and the S3 result store.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/aws/http.hpp"
#include "common/aws/sigv4.hpp"
#include "common/env.hpp"
#include "common/result.hpp"

namespace asya::aws {

struct Config {
  Credentials credentials;
  std::string region;
  // Custom endpoint (moto, LocalStack, MinIO, a VPC endpoint), e.g. "http://127.0.0.1:5000";
  // empty means the public AWS endpoint of the service in `region`.
  std::string endpoint;

  // Reads, in order of precedence:
  //   endpoint: `endpoint_variable` (ASYA_SQS_ENDPOINT / ASYA_S3_ENDPOINT), then
  //             AWS_ENDPOINT_URL_<SERVICE> (AWS_ENDPOINT_URL_SQS / _S3), then AWS_ENDPOINT_URL;
  //   region:   AWS_REGION, then AWS_DEFAULT_REGION; "us-east-1" when unset and a custom
  //             endpoint is set;
  //   credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (optional).
  // from `environment` (the process environment by default). Throws ConfigError naming the
  // missing or invalid variable (no credentials, no region for the public endpoint, an endpoint
  // that is not an http(s) URL).
  static Config from_env(const char* endpoint_variable, std::string_view service_upper,
                         const Environment& environment = Environment());
};

// Sends signed requests for one service. Thread-safe; blocking.
class Client {
 public:
  // `scope.region` is taken from config.region.
  Client(Config config, Scope scope);

  const Config& config() const { return config_; }

  // Signs and performs `request` (request.url absolute). The Host header and, when
  // `content_sha256_header` is set (S3), X-Amz-Content-Sha256 are added. Retries up to
  // `attempts` times, with 100 ms, 200 ms, ... between attempts, when there was no response or
  // the response was 500, 502, 503, 504 or a throttling error; a cancelled request is never
  // retried. Any other status is returned as the response.
  Result<HttpResponse> send(HttpRequest request, bool content_sha256_header = false,
                            int attempts = 3);

  void close() { http_.close(); }

 private:
  Config config_;
  Scope scope_;
  HttpClient http_;
};

}  // namespace asya::aws
