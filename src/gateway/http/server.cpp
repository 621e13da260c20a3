// The only translation unit that uses Boost.Beast (compiling it costs ~30 s and 800 MB).
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <strings.h>
#include <list>
#include <mutex>

#include "common/log.hpp"
#include "gateway/http/http.hpp"

namespace asya::gateway::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;

bool CaseInsensitiveLess::operator()(const std::string& a, const std::string& b) const {
  return ::strcasecmp(a.c_str(), b.c_str()) < 0;
}

std::string Request::header(const std::string& name) const {
  auto found = headers.find(name);
  return found == headers.end() ? std::string() : found->second;
}

Response Response::json(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json");
  r.body = std::move(body);
  return r;
}

Response Response::error(int status, const std::string& message) {
  return json(status, boost::json::serialize(boost::json::object{{"error", message}}));
}

namespace {

class ChunkWriter final : public ResponseStream {
 public:
  explicit ChunkWriter(beast::tcp_stream& stream) : stream_(stream) {}
  awaitable<bool> write(std::string data) override {
    if (broken_) co_return false;
    auto [ec, n] = co_await asio::async_write(stream_, bhttp::make_chunk(asio::buffer(data)),
                                              asio::as_tuple(use_awaitable));
    (void)n;
    if (ec) broken_ = true;
    co_return !broken_;
  }
  bool broken() const { return broken_; }

 private:
  beast::tcp_stream& stream_;
  bool broken_ = false;
};

}  // namespace

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  asio::io_context& io;
  tcp::acceptor acceptor;
  Handler handler;
  std::size_t max_body_bytes;
  std::mutex mutex;
  std::list<std::weak_ptr<beast::tcp_stream>> connections;
  bool stopped = false;

  Impl(asio::io_context& io_context, Handler h, std::size_t max_body)
      : io(io_context), acceptor(io_context), handler(std::move(h)), max_body_bytes(max_body) {}

  awaitable<void> accept_loop() {
    auto self = shared_from_this();
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(use_awaitable));
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        spdlog::warn("gateway: accept failed: {}", ec.message());
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
      {
        std::lock_guard lock(mutex);
        connections.remove_if([](const auto& weak) { return weak.expired(); });
        connections.push_back(stream);
      }
      asio::co_spawn(io, serve(stream), asio::detached);
    }
  }

  awaitable<void> serve(std::shared_ptr<beast::tcp_stream> stream) {
    auto self = shared_from_this();
    beast::flat_buffer buffer;
    for (;;) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.body_limit(max_body_bytes);
      parser.header_limit(64 * 1024);
      stream->expires_after(std::chrono::minutes(5));
      auto [ec, n] =
          co_await bhttp::async_read(*stream, buffer, parser, asio::as_tuple(use_awaitable));
      (void)n;
      if (ec == bhttp::error::body_limit) {
        Response r =
            Response::error(413, "request body larger than " + std::to_string(max_body_bytes) +
                                     " bytes (ASYA_GATEWAY_MAX_BODY_BYTES)");
        co_await write_plain(*stream, r, 11, false);
        break;
      }
      if (ec) break;  // closed, timed out or malformed: nothing to answer
      stream->expires_never();
      auto& message = parser.get();
      Request request;
      request.method = std::string(message.method_string());
      request.target = std::string(message.target());
      request.path = request.target.substr(0, request.target.find('?'));
      for (const auto& field : message) {
        std::string name(field.name_string());
        auto existing = request.headers.find(name);
        if (existing != request.headers.end()) {
          existing->second += ", " + std::string(field.value());
        } else {
          request.headers.emplace(std::move(name), std::string(field.value()));
        }
      }
      request.body = std::move(message.body());
      bool keep_alive = message.keep_alive();
      unsigned version = message.version();
      Response response;
      try {
        auto pending = handler(std::move(request));
        response = co_await std::move(pending);
      } catch (const std::exception& e) {
        spdlog::error("gateway: handler failed: {}", e.what());
        response = Response::error(500, std::string("internal error: ") + e.what());
      }
      bool ok = response.stream ? co_await write_stream(*stream, response, version)
                                : co_await write_plain(*stream, response, version, keep_alive);
      if (!ok || !keep_alive) break;
    }
    beast::error_code ignored;
    stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream->close();
  }

  static void copy_headers(bhttp::fields& fields, const Response& response) {
    for (const auto& [name, value] : response.headers) fields.insert(name, value);
  }

  awaitable<bool> write_plain(beast::tcp_stream& stream, const Response& response, unsigned version,
                              bool keep_alive) {
    bhttp::response<bhttp::string_body> out{static_cast<bhttp::status>(response.status), version};
    copy_headers(out.base(), response);
    out.set(bhttp::field::server, "asya-gateway");
    out.body() = response.body;
    out.keep_alive(keep_alive);
    out.prepare_payload();
    auto [ec, n] = co_await bhttp::async_write(stream, out, asio::as_tuple(use_awaitable));
    (void)n;
    co_return !ec;
  }

  awaitable<bool> write_stream(beast::tcp_stream& stream, const Response& response,
                               unsigned version) {
    bhttp::response<bhttp::empty_body> out{static_cast<bhttp::status>(response.status), version};
    copy_headers(out.base(), response);
    out.set(bhttp::field::server, "asya-gateway");
    out.set(bhttp::field::cache_control, "no-cache");
    out.chunked(true);
    bhttp::response_serializer<bhttp::empty_body> serializer{out};
    auto [ec, n] =
        co_await bhttp::async_write_header(stream, serializer, asio::as_tuple(use_awaitable));
    (void)n;
    if (ec) co_return false;
    ChunkWriter writer(stream);
    co_await response.stream(writer);
    if (writer.broken()) co_return false;
    auto [ec2, n2] =
        co_await asio::async_write(stream, bhttp::make_chunk_last(), asio::as_tuple(use_awaitable));
    (void)n2;
    co_return !ec2;
  }
};

Server::Server(asio::io_context& io, const std::string& host, std::uint16_t port, Handler handler,
               std::size_t max_body_bytes)
    : impl_(std::make_shared<Impl>(io, std::move(handler), max_body_bytes)) {
  tcp::endpoint endpoint(asio::ip::make_address(host), port);
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
  impl_->acceptor.bind(endpoint);
  impl_->acceptor.listen(asio::socket_base::max_listen_connections);
}

Server::~Server() {
  stop();
}

std::uint16_t Server::port() const {
  return impl_->acceptor.local_endpoint().port();
}

void Server::start() {
  asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
}

void Server::stop() {
  asio::post(impl_->io, [impl = impl_] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
    std::lock_guard lock(impl->mutex);
    for (auto& weak : impl->connections) {
      if (auto stream = weak.lock()) stream->socket().close(ignored);
    }
  });
}

}  // namespace asya::gateway::http
