// A minimal HTTP/1.1 server for the gateway. Boost.Beast stays inside server.cpp: handlers see
// only these plain types, so the REST and MCP code compiles without Beast.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace asya::gateway::http {

struct CaseInsensitiveLess {
  bool operator()(const std::string& a, const std::string& b) const;
};

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query as sent
  std::string path;    // target without the query, percent-decoding not applied
  std::map<std::string, std::string, CaseInsensitiveLess> headers;
  std::string body;
  // The header's value, or "" when absent.
  std::string header(const std::string& name) const;
};

// Writes the body of a streamed (chunked) response, e.g. Server-Sent Events.
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  // Sends `data` as one chunk right away. Returns false once the client is gone; the producer
  // should then stop.
  virtual boost::asio::awaitable<bool> write(std::string data) = 0;
};

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // Content-Type included by the caller
  std::string body;
  // When set, the headers are sent first and this producer writes the body in chunks; the
  // response ends when it returns.
  std::function<boost::asio::awaitable<void>(ResponseStream&)> stream;

  static Response json(int status, std::string body);
  // {"error": message} with the given status.
  static Response error(int status, const std::string& message);
};

using Handler = std::function<boost::asio::awaitable<Response>(Request)>;

// Limits that keep one client (or many) from taking the server down.
struct ServerOptions {
  // Request bodies larger than this get 413 with a JSON error (ASYA_GATEWAY_MAX_BODY_BYTES).
  std::size_t max_body_bytes = 16u << 20;
  // Request line plus headers larger than this get 431.
  std::size_t max_header_bytes = 64u << 10;
  // Open connections at most (ASYA_GATEWAY_MAX_CONNECTIONS); one more is answered 503 and closed.
  std::size_t max_connections = 1024;
  // A request's line and headers must arrive within this long (ASYA_GATEWAY_HEADER_TIMEOUT);
  // an idle keep-alive connection is closed after it too. Against slowloris.
  std::chrono::milliseconds header_timeout{std::chrono::seconds(10)};
  // A request's body must arrive within this long after its headers.
  std::chrono::milliseconds body_timeout{std::chrono::seconds(60)};
  // Not empty: also listen on this Unix socket (ASYA_GATEWAY_SOCKET), served exactly as TCP (the
  // same handler, limits and token checks). Created with mode 0600 (only the gateway's user and
  // root may connect); a socket file left by a dead process is replaced; a live listener there or
  // a file that is not a socket is an error. Removed when the Server is destroyed.
  std::string unix_socket;
};

// Listens on host:port (port 0 picks a free one), and on ServerOptions::unix_socket when set, and
// serves every connection with `handler`,
// keep-alive included. Malformed requests get 400, oversized headers 431, oversized bodies 413,
// a request whose headers do not arrive within header_timeout 408; each closes the connection.
// When accept fails (e.g. no file descriptors left) the server retries with a growing pause
// (10 ms up to 1 s) and logs the failure at most every 10 s with the count of repeats.
// Runs on the given io_context; stop() closes the listener and every open connection.
class Server {
 public:
  // Throws std::runtime_error (boost::system::system_error for TCP) when it cannot listen.
  Server(boost::asio::io_context& io, const std::string& host, std::uint16_t port, Handler handler,
         ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  std::uint16_t port() const;
  void start();
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace asya::gateway::http
