// The one HTTP client of Asya (libcurl underneath, kept out of this header, and for plain http://
// calls with no proxy a small HTTP/1.1 path of its own, plain_http.hpp). Every outgoing HTTP
// call goes through it: the operator's Kubernetes API requests and watches, `asya call`, the
// sidecar's gateway reports, the supervisor's readiness probe and metrics scrape, and the AWS
// APIs (SQS, S3).
//
// Contract, for every call:
// - Blocking: a call returns when the response is complete, or with an Error.
// - Thread-safe: one Client may be used by any number of threads at once. Each call borrows a
//   connection handle from the Client's pool and gives it back when it returns; the pool grows
//   to the largest number of concurrent calls and never shrinks until close(). A returned handle
//   keeps its connection open, so the next call to the same server reuses it (no new TCP or TLS
//   handshake): this is what the SQS transport's throughput depends on.
// - Any HTTP status, 4xx and 5xx included, is a Response. An Error means that no complete
//   response arrived; its message reads "<METHOD> <URL> failed: <reason> (<detail>)", in
//   libcurl's wording on both paths, e.g. "GET http://127.0.0.1:1/readyz failed: Couldn't
//   connect to server (Failed to connect to 127.0.0.1 port 1 after 0 ms: Connection refused)",
//   and the optional `why` out-parameter tells the kind of failure.
// - Requests: HTTP/1.1, http:// and https:// URLs only, no redirects followed, no `Expect:
//   100-continue` round trip, no signals (safe in threaded programs), connections close-on-exec
//   (a kept-alive connection does not leak into a forked program). Proxies: libcurl's
//   environment variables (http_proxy, https_proxy, no_proxy) apply unless
//   Request::bypass_proxy. No Unix sockets (no caller needs them).
// - libcurl, and OpenSSL with it, is initialised at the first call that needs it (https, a
//   proxy, TLS options), not when a Client is made: plain http:// calls do without it.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.hpp"

namespace asya::http {

// Header name and value pairs, in order; names are compared without regard to case.
using Headers = std::vector<std::pair<std::string, std::string>>;

struct Response {
  long status = 0;   // the HTTP status code
  std::string body;  // the whole body (perform), or only a non-2xx body (stream)
  Headers headers;   // as received, names in the server's case; of the last response only
  // The first header named `name` (any case), or "" when absent.
  std::string header(std::string_view name) const;
};

struct Request {
  // GET and HEAD send no body; POST, PUT and PATCH send `body` (Content-Length: 0 when empty);
  // any other method (DELETE) sends it when it is not empty.
  std::string method = "GET";
  std::string url;  // absolute: http(s)://host[:port]/path?query, already encoded
  // Sent as given (Content-Type, Authorization, ...). A body sent without a Content-Type header
  // goes out as application/x-www-form-urlencoded (libcurl's default).
  Headers headers;
  std::string_view body;  // not copied: must stay alive until the call returns
  // The whole exchange, connecting included; zero means no limit (a stream that may stay open).
  std::chrono::milliseconds timeout{30000};
  // Resolving and connecting (TCP and TLS handshakes) only; at most `timeout` when that is set.
  std::chrono::milliseconds connect_timeout{10000};
  // When set and it becomes true, the call gives up within about 100 ms (Failure::kCancelled).
  const std::atomic<bool>* cancel = nullptr;
  // With `cancel`: it ends only the wait for the answer. Once the answer's first bytes arrived,
  // the answer is read to its end (within `timeout`), so what the server did for the request (a
  // queue that leased messages to it) is not thrown away.
  bool cancel_waits_only = false;
  // Connect directly even when a proxy is set in the environment (probes of a loopback port).
  bool bypass_proxy = false;
};

// The scheme of a URL whose authority is a percent-encoded Unix socket path, e.g.
// http+unix://%2Frun%2Fasya%2Fgateway.sock/envelopes (the form of requests-unixsocket and Docker's
// clients): plain HTTP/1.1 over that socket, never through a proxy or libcurl. The server must run
// as this process's user (or root): its credentials (SO_PEERCRED) are checked at each connect,
// so a socket another user created at the path never receives a request or its token.
inline constexpr std::string_view kHttpUnixScheme = "http+unix://";
// `socket_path` as the start of an http+unix:// URL (no trailing slash).
std::string http_unix_url(std::string_view socket_path);

// Why a call got no response.
enum class Failure {
  kNone,         // a response arrived
  kConnect,      // the host could not be resolved or the connection was refused
  kTimeout,      // Request::connect_timeout or Request::timeout passed
  kTls,          // the TLS handshake failed, e.g. the server's certificate is not trusted
  kCancelled,    // Request::cancel became true
  kConnection,   // the connection broke or the server sent something that is not HTTP
  kInvalidInput  // a bad URL or TLS file, or libcurl could not be set up
};
// "connect", "timeout", "tls", ... for logs.
std::string_view label(Failure failure);

// TLS settings of a Client (all of its https:// calls). PEM text or PEM files; empty: unused.
struct TlsOptions {
  bool verify_peer = true;  // false: accept any certificate and host name (insecure)
  // The CAs trusted instead of the system store; ca_pem wins when both are set.
  std::string ca_file, ca_pem;
  std::string client_cert_file, client_cert_pem;  // a client certificate, and its key below
  std::string client_key_file, client_key_pem;
};

struct ClientOptions {
  TlsOptions tls;
};

// What a streaming callback tells the client after a line.
enum class StreamControl { kContinue, kStop };

class Client {
 public:
  Client();  // default options: verify TLS peers against the system store
  explicit Client(ClientOptions options);
  ~Client();  // requires that no call is running
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends `request` and waits for the whole response (see the contract above). On an Error,
  // `*why` (when given) gets its kind; on a response, Failure::kNone.
  Result<Response> perform(const Request& request, Failure* why = nullptr);

  // Like perform(), for a response that arrives over time (a Kubernetes watch, Server-Sent
  // Events). The body of a 2xx response is not collected: each line is passed to `on_line` as
  // soon as it has arrived, without its "\n" or "\r\n"; empty lines are passed too (they end an
  // SSE event), and an unterminated last line is not. The body of any other status is collected
  // into Response::body. Returns the response (its status and headers) when the server ends the
  // body, or as soon as `on_line` returns kStop (not an error). `on_line` runs on the calling
  // thread; an exception it throws ends the transfer and is rethrown from stream().
  Result<Response> stream(const Request& request,
                          const std::function<StreamControl(std::string_view line)>& on_line,
                          Failure* why = nullptr);

  // Closes the pooled connections; later calls open new ones. Requires that no call is running.
  void close();

 private:
  struct Pool;
  std::unique_ptr<Pool> pool_;
};

}  // namespace asya::http
