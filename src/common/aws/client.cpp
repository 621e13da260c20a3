#include "common/aws/client.hpp"

#include <thread>

#include "common/env.hpp"

namespace asya::aws {

Config Config::from_env(const char* endpoint_variable, std::string_view service_upper,
                        const Environment& environment) {
  Config config;
  std::string service_variable = "AWS_ENDPOINT_URL_" + std::string(service_upper);
  const char* source = endpoint_variable;
  config.endpoint = environment.string(endpoint_variable, "");
  if (config.endpoint.empty()) {
    source = service_variable.c_str();
    config.endpoint = environment.string(service_variable.c_str(), "");
  }
  if (config.endpoint.empty()) {
    source = "AWS_ENDPOINT_URL";
    config.endpoint = environment.string("AWS_ENDPOINT_URL", "");
  }
  while (config.endpoint.ends_with('/')) config.endpoint.pop_back();
  if (!config.endpoint.empty()) {
    auto url = Url::parse(config.endpoint);
    if (!url) throw ConfigError(std::string(source) + ": " + url.error().message);
  }

  config.region = environment.string("AWS_REGION", environment.string("AWS_DEFAULT_REGION", ""));
  if (config.region.empty()) {
    if (config.endpoint.empty()) {
      throw ConfigError(
          "AWS_REGION is not set: set AWS_REGION (or AWS_DEFAULT_REGION) to the region of the " +
          std::string(service_upper) + " resources, e.g. us-east-1");
    }
    config.region = "us-east-1";
  }

  config.credentials.access_key_id = environment.string("AWS_ACCESS_KEY_ID", "");
  config.credentials.secret_access_key = environment.string("AWS_SECRET_ACCESS_KEY", "");
  config.credentials.session_token = environment.string("AWS_SESSION_TOKEN", "");
  if (config.credentials.access_key_id.empty() || config.credentials.secret_access_key.empty()) {
    throw ConfigError(
        std::string("AWS credentials for ") + std::string(service_upper) +
        " are not set: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for "
        "temporary credentials)");
  }
  return config;
}

Client::Client(Config config, Scope scope) : config_(std::move(config)), scope_(std::move(scope)) {
  scope_.region = config_.region;
}

namespace {

bool retryable(const HttpResponse& response) {
  if (response.status == 500 || response.status == 502 || response.status == 503 ||
      response.status == 504)
    return true;
  if (response.status == 400 || response.status == 429) {
    return response.body.find("Throttl") != std::string::npos ||
           response.body.find("RequestLimitExceeded") != std::string::npos ||
           response.header("x-amzn-query-error").find("Throttl") != std::string::npos;
  }
  return false;
}

}  // namespace

Result<HttpResponse> Client::send(HttpRequest request, bool content_sha256_header, int attempts) {
  auto url = Url::parse(request.url);
  if (!url) return url.error();
  std::string payload_hash = sha256_hex(request.body);
  Headers base = request.headers;
  base.emplace_back("Host", url->host_header());
  if (content_sha256_header) base.emplace_back("X-Amz-Content-Sha256", payload_hash);

  Error last{""};
  for (int attempt = 1; attempt <= attempts; ++attempt) {
    if (attempt > 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100 << (attempt - 2)));
      if (request.cancel && request.cancel->load())
        return Error{request.method + " " + request.url + " failed: cancelled"};
    }
    Request to_sign;
    to_sign.method = request.method;
    to_sign.path = url->path;
    to_sign.query = url->query;
    to_sign.headers = base;
    to_sign.payload_sha256 = payload_hash;
    sign(to_sign, config_.credentials, scope_);
    request.headers = std::move(to_sign.headers);

    http::Failure why = http::Failure::kNone;
    auto response = http_.perform(request, &why);
    if (!response) {
      if (why == http::Failure::kCancelled) return response;
      last = response.error();
      continue;
    }
    if (attempt < attempts && retryable(*response)) {
      last = Error{request.method + " " + request.url + " answered " +
                   std::to_string(response->status) + ": " + response->body.substr(0, 300)};
      continue;
    }
    return response;
  }
  last.message += " (after " + std::to_string(attempts) + " attempts)";
  return last;
}

}  // namespace asya::aws
