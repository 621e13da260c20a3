// A minimal HTTP/1.1 server for the gateway. Boost.Beast stays inside server.cpp: handlers see
// only these plain types, so the REST and MCP code compiles without Beast.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

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

// Listens on host:port (port 0 picks a free one) and serves every connection with `handler`,
// keep-alive included. Request bodies larger than max_body_bytes get 413 with a JSON error.
// Runs on the given io_context; stop() closes the listener and every open connection.
class Server {
 public:
  Server(boost::asio::io_context& io, const std::string& host, std::uint16_t port, Handler handler,
         std::size_t max_body_bytes);
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
