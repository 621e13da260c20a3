// The only translation unit that uses Boost.Beast (compiling it costs ~30 s and 800 MB).
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <list>
#include <mutex>
#include <stdexcept>

#include "common/log.hpp"
#include "envelope/envelope.hpp"
#include "gateway/http/http.hpp"

namespace asya::gateway::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using local_stream = asio::local::stream_protocol;
// A connection on the Unix socket (ServerOptions::unix_socket), served by the same code as TCP.
using unix_stream = beast::basic_stream<local_stream>;
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
  // A message may quote what the client sent (a query parameter, a cursor) or a database's error
  // about it: bytes that are not UTF-8 are replaced, so the answer is always valid JSON.
  return json(status, "{\"error\":" + envelope::json_string(message) + "}");
}

namespace {

template <class Stream>
class ChunkWriter final : public ResponseStream {
 public:
  explicit ChunkWriter(Stream& stream) : stream_(stream) {}
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
  Stream& stream_;
  bool broken_ = false;
};

}  // namespace

// Logs a repeated failure once, then at most once per interval with the number of repeats, so a
// failure that repeats thousands of times a second cannot fill the disk with identical lines.
class RepeatedWarning {
 public:
  explicit RepeatedWarning(std::chrono::seconds interval) : interval_(interval) {}
  void log(const std::string& what) {
    auto now = std::chrono::steady_clock::now();
    if (logged_once_ && now - last_logged_ < interval_) {
      ++suppressed_;
      return;
    }
    if (suppressed_ > 0) {
      spdlog::warn("{} (and {} more times in the last {} s)", what, suppressed_,
                   std::chrono::duration_cast<std::chrono::seconds>(now - last_logged_).count());
    } else {
      spdlog::warn("{}", what);
    }
    logged_once_ = true;
    last_logged_ = now;
    suppressed_ = 0;
  }

 private:
  std::chrono::seconds interval_;
  bool logged_once_ = false;
  std::chrono::steady_clock::time_point last_logged_{};
  std::uint64_t suppressed_ = 0;
};

// The reason phrase and JSON error for a request Beast could not parse, or status 0 when the
// error is not about the request's form (closed, reset, timed out).
std::pair<int, std::string> parse_failure(const beast::error_code& ec, std::size_t header_limit) {
  if (ec == bhttp::error::header_limit) {
    return {431, "request line and headers larger than " + std::to_string(header_limit) + " bytes"};
  }
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
      ec == bhttp::error::need_more || ec == bhttp::error::body_limit)
    return {0, ""};
  if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category()) {
    return {400, "malformed HTTP request: " + ec.message()};
  }
  return {0, ""};
}

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  asio::io_context& io;
  tcp::acceptor acceptor;
  local_stream::acceptor unix_acceptor;
  Handler handler;
  ServerOptions options;
  std::mutex mutex;
  std::list<std::weak_ptr<beast::tcp_stream>> connections;
  std::list<std::weak_ptr<unix_stream>> unix_connections;
  ino_t unix_inode = 0;              // of the socket file this server created (removed at stop)
  std::size_t open_connections = 0;  // only touched on the io thread
  RepeatedWarning accept_warning{std::chrono::seconds(10)};
  RepeatedWarning full_warning{std::chrono::seconds(10)};

  Impl(asio::io_context& io_context, Handler h, ServerOptions server_options)
      : io(io_context),
        acceptor(io_context),
        unix_acceptor(io_context),
        handler(std::move(h)),
        options(std::move(server_options)) {}

  template <class Acceptor>
  awaitable<void> accept_loop(Acceptor& acceptor) {
    auto self = shared_from_this();
    auto pause = std::chrono::milliseconds(0);
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(use_awaitable));
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        // EMFILE and friends: the connection stays in the backlog, so retrying at once only
        // burns CPU. Back off until a descriptor is free again.
        pause =
            std::clamp(pause * 2, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
        accept_warning.log("gateway: accept failed: " + ec.message() + "; retrying in " +
                           std::to_string(pause.count()) + " ms");
        asio::steady_timer timer(io, pause);
        co_await timer.async_wait(asio::as_tuple(use_awaitable));
        continue;
      }
      pause = std::chrono::milliseconds(0);
      if (open_connections >= options.max_connections) {
        refuse_full(socket);
        continue;
      }
      auto stream = std::make_shared<beast::basic_stream<typename Acceptor::protocol_type>>(
          std::move(socket));
      {
        std::lock_guard lock(mutex);
        auto& list = connections_of(*stream);
        list.remove_if([](const auto& weak) { return weak.expired(); });
        list.push_back(stream);
      }
      ++open_connections;
      asio::co_spawn(io, serve(stream), asio::detached);
    }
  }

  std::list<std::weak_ptr<beast::tcp_stream>>& connections_of(beast::tcp_stream& stream) {
    beast::error_code ignored;
    stream.socket().set_option(tcp::no_delay(true), ignored);
    return connections;
  }
  std::list<std::weak_ptr<unix_stream>>& connections_of(unix_stream&) { return unix_connections; }

  // Answers 503 without waiting for the client (one non-blocking write) and closes.
  template <class Socket>
  void refuse_full(Socket& socket) {
    full_warning.log(
        "gateway: " + std::to_string(open_connections) +
        " connections open (ASYA_GATEWAY_MAX_CONNECTIONS); refusing new ones with 503");
    std::string body = boost::json::serialize(boost::json::object{
        {"error", "too many open connections (" + std::to_string(options.max_connections) +
                      ", ASYA_GATEWAY_MAX_CONNECTIONS); retry later"}});
    std::string response =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    beast::error_code ignored;
    socket.non_blocking(true, ignored);
    socket.write_some(asio::buffer(response), ignored);
    socket.shutdown(Socket::shutdown_send, ignored);
    // Closing with unread request bytes would send a reset that may destroy the 503 on its way.
    char drain[16384];
    while (socket.available(ignored) > 0 && !ignored)
      socket.read_some(asio::buffer(drain), ignored);
    socket.close(ignored);
  }

  template <class Stream>
  awaitable<void> serve(std::shared_ptr<Stream> stream) {
    auto self = shared_from_this();
    struct Count {
      std::size_t& open;
      ~Count() { --open; }
    } count{open_connections};
    beast::flat_buffer buffer;
    for (;;) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.body_limit(options.max_body_bytes);
      parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
      // Our own timer rather than the stream's expiry, which would close the socket before the
      // 408 could be sent.
      auto timed_out = std::make_shared<bool>(false);
      asio::steady_timer header_deadline(io, options.header_timeout);
      header_deadline.async_wait([timed_out, weak = std::weak_ptr(stream)](beast::error_code e) {
        if (e) return;
        *timed_out = true;
        if (auto s = weak.lock()) {
          beast::error_code ignored;
          s->socket().cancel(ignored);
        }
      });
      auto [ec, n] =
          co_await bhttp::async_read_header(*stream, buffer, parser, asio::as_tuple(use_awaitable));
      (void)n;
      header_deadline.cancel();
      if (*timed_out && ec) ec = beast::error::timeout;
      if (!ec && !parser.is_done()) {
        stream->expires_after(options.body_timeout);
        auto [body_ec, body_n] =
            co_await bhttp::async_read(*stream, buffer, parser, asio::as_tuple(use_awaitable));
        (void)body_n;
        ec = body_ec;
      }
      if (ec == bhttp::error::body_limit) {
        Response r = Response::error(413, "request body larger than " +
                                              std::to_string(options.max_body_bytes) +
                                              " bytes (ASYA_GATEWAY_MAX_BODY_BYTES)");
        co_await answer_and_close(*stream, r);
        break;
      }
      if (ec == beast::error::timeout && *timed_out && (buffer.size() > 0 || parser.got_some())) {
        // Part of a request arrived, the rest not in time (slowloris); an idle keep-alive
        // connection is closed without a word.
        Response r = Response::error(408, "request headers not received within " +
                                              std::to_string(options.header_timeout.count()) +
                                              " ms (ASYA_GATEWAY_HEADER_TIMEOUT)");
        co_await answer_and_close(*stream, r);
        break;
      }
      if (ec) {
        auto [status, message] = parse_failure(ec, options.max_header_bytes);
        if (status != 0) {
          Response r = Response::error(status, message);
          co_await answer_and_close(*stream, r);
        }
        break;  // closed, reset or timed out: nothing to answer
      }
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
    stream->socket().shutdown(Stream::socket_type::shutdown_both, ignored);
    stream->close();
  }

  // Sends an error answer with `Connection: close`, giving a client that does not read 5 s.
  // Then reads what the client still sends for up to 2 s (at most 1 MiB): closing with unread
  // bytes would send a reset that can destroy the answer before the client reads it.
  template <class Stream>
  awaitable<void> answer_and_close(Stream& stream, const Response& response) {
    stream.expires_after(std::chrono::seconds(5));
    if (!co_await write_plain(stream, response, 11, false)) co_return;
    beast::error_code ignored;
    stream.socket().shutdown(Stream::socket_type::shutdown_send, ignored);
    stream.expires_after(std::chrono::seconds(2));
    std::array<char, 16384> drain;
    for (std::size_t total = 0; total < (1u << 20);) {
      auto [ec, n] =
          co_await stream.async_read_some(asio::buffer(drain), asio::as_tuple(use_awaitable));
      if (ec) break;
      total += n;
    }
  }

  static void copy_headers(bhttp::fields& fields, const Response& response) {
    for (const auto& [name, value] : response.headers) fields.insert(name, value);
  }

  template <class Stream>
  awaitable<bool> write_plain(Stream& stream, const Response& response, unsigned version,
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

  template <class Stream>
  awaitable<bool> write_stream(Stream& stream, const Response& response, unsigned version) {
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
    ChunkWriter<Stream> writer(stream);
    co_await response.stream(writer);
    if (writer.broken()) co_return false;
    auto [ec2, n2] =
        co_await asio::async_write(stream, bhttp::make_chunk_last(), asio::as_tuple(use_awaitable));
    (void)n2;
    co_return !ec2;
  }
};

namespace {

// Makes way for a Unix socket at `path`: a socket file left by a process that is gone is removed;
// anything else (a live listener, a file that is not a socket) is an error naming it.
void clear_stale_socket(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;  // nothing there
  if (!S_ISSOCK(st.st_mode))
    throw std::runtime_error("ASYA_GATEWAY_SOCKET " + path +
                             " exists and is not a socket: remove it or choose another path");
  asio::io_context probe_io;
  local_stream::socket probe(probe_io);
  beast::error_code ec;
  probe.connect(local_stream::endpoint(path), ec);
  if (!ec)
    throw std::runtime_error("ASYA_GATEWAY_SOCKET " + path +
                             ": another process listens there (another gateway?)");
  if (ec == asio::error::connection_refused) ::unlink(path.c_str());
}

}  // namespace

Server::Server(asio::io_context& io, const std::string& host, std::uint16_t port, Handler handler,
               ServerOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(handler), std::move(options))) {
  tcp::endpoint endpoint(asio::ip::make_address(host), port);
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
  impl_->acceptor.bind(endpoint);
  impl_->acceptor.listen(asio::socket_base::max_listen_connections);
  const std::string& path = impl_->options.unix_socket;
  if (!path.empty()) {
    if (path.size() >= sizeof(sockaddr_un::sun_path))
      throw std::runtime_error("ASYA_GATEWAY_SOCKET " + path + " is " +
                               std::to_string(path.size()) + " bytes long; a Unix socket path " +
                               "holds at most " +
                               std::to_string(sizeof(sockaddr_un::sun_path) - 1));
    clear_stale_socket(path);
    impl_->unix_acceptor.open();
    // Created owner-only (0600): only processes of the gateway's user (and root) may connect.
    // The umask is process-wide, so it is set back at once; chmod after bind makes the mode
    // exact whatever the umask was.
    const mode_t previous = ::umask(0077);
    beast::error_code ec;
    impl_->unix_acceptor.bind(local_stream::endpoint(path), ec);
    ::umask(previous);
    if (ec)
      throw std::runtime_error("ASYA_GATEWAY_SOCKET " + path + ": cannot listen: " + ec.message());
    ::chmod(path.c_str(), 0600);
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) impl_->unix_inode = st.st_ino;
    impl_->unix_acceptor.listen(asio::socket_base::max_listen_connections);
  }
}

Server::~Server() {
  stop();
  // The socket file this server created goes with it (not one another process put there since).
  const std::string& path = impl_->options.unix_socket;
  struct stat st {};
  if (impl_->unix_inode != 0 && ::lstat(path.c_str(), &st) == 0 && st.st_ino == impl_->unix_inode)
    ::unlink(path.c_str());
}

std::uint16_t Server::port() const {
  return impl_->acceptor.local_endpoint().port();
}

void Server::start() {
  asio::co_spawn(impl_->io, impl_->accept_loop(impl_->acceptor), asio::detached);
  if (impl_->unix_acceptor.is_open())
    asio::co_spawn(impl_->io, impl_->accept_loop(impl_->unix_acceptor), asio::detached);
}

void Server::stop() {
  asio::post(impl_->io, [impl = impl_] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
    impl->unix_acceptor.close(ignored);
    std::lock_guard lock(impl->mutex);
    for (auto& weak : impl->connections) {
      if (auto stream = weak.lock()) stream->socket().close(ignored);
    }
    for (auto& weak : impl->unix_connections) {
      if (auto stream = weak.lock()) stream->socket().close(ignored);
    }
  });
}

}  // namespace asya::gateway::http
