// Internal to common/http: the client's own HTTP/1.1 path for plain http:// calls, so that a
// process which only talks plain HTTP (a sidecar exporting traces or reporting to the gateway)
// never initialises libcurl and, through it, OpenSSL (about 2.3 MB of resident pages). Client
// picks it per call (plain_target); https, a proxy from the environment, a user name in the URL
// or TLS options keep the call on libcurl. Same contract and error wording as client.hpp.
//
// Differences from libcurl that callers can see: none in the results; name resolution
// (getaddrinfo) is not bounded by Request::connect_timeout (it is by the resolver's own
// timeouts, /etc/resolv.conf), and no Accept-Encoding is sent (neither does libcurl by default).
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http/client.hpp"
#include "common/http/transfer.hpp"
#include "common/result.hpp"

namespace asya::http::detail {

// Where a plain call goes.
struct PlainTarget {
  std::string host;         // a name or an address, IPv6 without its brackets
  std::string port;         // "80" when the URL names none
  std::string host_header;  // the URL's authority, as the Host header
  std::string path;         // path and query, "/" when the URL has none; no fragment
  // An http+unix:// URL: the Unix socket to connect to (host and port are then unused and the Host
  // header is "localhost").
  std::string unix_socket;
};

// The target of `request` when the plain path can carry it: an http:// URL it can parse with no
// user name or password, and no proxy from the environment applies to its host (none of
// http_proxy, HTTP_PROXY, all_proxy, ALL_PROXY is set, or no_proxy/NO_PROXY names the host, or
// Request::bypass_proxy). Anything else (nullopt) goes to libcurl, which also words the error
// of a bad URL.
std::optional<PlainTarget> plain_target(const Request& request);
// The target of an http+unix:// URL, or an Error naming what is wrong with it (the socket path
// must be absolute and shorter than 108 bytes, the percent-encoding valid).
Result<PlainTarget> unix_target(const Request& request);

// Kept-alive connections by host and port, and the calls over them. Thread-safe; each call owns
// its connection while it runs. Sockets are non-blocking and close-on-exec.
class PlainConnections {
 public:
  PlainConnections() = default;
  ~PlainConnections();
  PlainConnections(const PlainConnections&) = delete;
  PlainConnections& operator=(const PlainConnections&) = delete;

  // One call (perform or stream, as `transfer` says), with the timeouts and cancel flag of
  // `request`. A kept connection that the server closed meanwhile is replaced once, when no
  // byte of the answer had arrived (as libcurl does). On an Error, `failure` tells its kind.
  Result<Response> call(const PlainTarget& target, const Request& request, Transfer& transfer,
                        Failure& failure);

  // Closes the idle connections.
  void close();

 private:
  struct Idle {
    std::string key;  // "host port"
    int fd;
  };
  int take(const std::string& key);
  void give_back(std::string key, int fd);

  std::mutex mutex_;
  std::vector<Idle> idle_;
};

}  // namespace asya::http::detail
