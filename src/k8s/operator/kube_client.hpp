// A minimal Kubernetes API client for asya-operator: connection settings (in-cluster service
// account or kubeconfig), plain requests and watch streams over the one HTTP client
// (common/http/client.hpp).
//
// Only what the operator needs: JSON request bodies, bearer tokens, client certificates, custom
// CAs. No caching, no discovery. Every method is blocking; a KubeClient may be used from several
// threads at once (each request borrows a pooled connection, kept open for the next one).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "common/env.hpp"
#include "common/http/client.hpp"
#include "common/result.hpp"

namespace asya::k8s::op {

// Where and how to reach the API server.
struct KubeConfig {
  std::string server;      // base URL, e.g. https://10.96.0.1:443 (no trailing slash)
  std::string token;       // bearer token (static)
  std::string token_file;  // bearer token re-read on every request (rotated service account tokens)
  std::string ca_file;     // PEM file of the CA that signed the server's certificate
  std::string ca_data;     // PEM text (decoded certificate-authority-data)
  bool insecure_skip_tls_verify = false;
  std::string client_cert_file, client_cert_data;  // PEM; optional client certificate
  std::string client_key_file, client_key_data;    // PEM; its key
  std::string default_namespace;  // the context's namespace or the service account's; may be empty
  std::string source;             // for logs: "in-cluster" or "kubeconfig <path> (context x)"
};

// The in-cluster configuration: KUBERNETES_SERVICE_HOST/PORT, the token and CA under
// `service_account_dir` (normally /var/run/secrets/kubernetes.io/serviceaccount). Fails, naming
// what is missing, outside a pod. `lookup` reads the two variables (the process environment by
// default; tests inject theirs).
Result<KubeConfig> in_cluster_config(
    const std::string& service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount",
    const EnvironmentLookup& lookup = process_environment());

// The kubeconfig file at `path`, context `context` (empty: current-context). Supports cluster
// server, certificate-authority(-data), insecure-skip-tls-verify and user token, tokenFile,
// client-certificate(-data), client-key(-data). Relative file paths are relative to the
// kubeconfig's folder. Exec and auth-provider plugins are refused with a clear error.
Result<KubeConfig> kubeconfig_config(const std::string& path, const std::string& context = {});

// The configuration the operator uses: `kubeconfig_flag` when given, else $KUBECONFIG (its
// first path), else in-cluster when KUBERNETES_SERVICE_HOST is set, else ~/.kube/config.
Result<KubeConfig> load_config(const std::string& kubeconfig_flag, const std::string& context);

// status: the HTTP status code; body: the response body.
using HttpResponse = http::Response;

class KubeClient {
 public:
  explicit KubeClient(KubeConfig config);
  KubeClient(const KubeClient&) = delete;
  KubeClient& operator=(const KubeClient&) = delete;

  const KubeConfig& config() const { return config_; }

  // Sends `method` `path` (starting with /api or /apis, query included) with `body` of
  // `content_type` (no body when empty). Returns the response whatever its status; an Error
  // only when no response arrived (connection refused, TLS failure, timeout), naming the URL.
  Result<HttpResponse> request(std::string_view method, const std::string& path,
                               const std::string& body = {},
                               std::string_view content_type = "application/json") const;

  // GETs `path` (a watch URL) and calls `on_line` for every newline-terminated line of a 200
  // response while the server streams it. Returns when the server closes the stream, when
  // `on_line` returns false, or within about 100 ms after `stop` becomes true. The response
  // returned holds the status and, for a non-200 status, the body. `max_duration` bounds the
  // whole request (a watch the server never closes).
  Result<HttpResponse> stream(const std::string& path,
                              const std::function<bool(std::string_view line)>& on_line,
                              const std::atomic<bool>& stop,
                              std::chrono::seconds max_duration) const;

 private:
  KubeConfig config_;
  mutable http::Client http_;  // thread-safe; TLS settings from config_
};

// "METHOD path: <status> <reason>: <message of the Kubernetes Status body>" for an unexpected
// response.
std::string describe_failure(std::string_view method, const std::string& path,
                             const HttpResponse& response);

// Percent-encodes a query parameter value.
std::string url_encode(std::string_view value);

}  // namespace asya::k8s::op
