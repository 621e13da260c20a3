#include "common/http/plain_http.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "common/http/http_exchange.hpp"
#include "common/percent_decode.hpp"

namespace asya::http::detail {
namespace {

constexpr std::size_t kMaxIdleConnections = 32;

bool is_ip_address(const std::string& host) {
  unsigned char buffer[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

// Whether no_proxy's `list` surely exempts `host` in libcurl too: "*" alone, an entry equal to
// the host, or (for a name) a domain the host is in. libcurl also knows CIDR ranges; a host
// only they exempt just stays on libcurl, which then connects directly itself.
bool no_proxy_exempts(std::string_view list, const std::string& host) {
  if (trim(list) == "*") return true;
  const bool address = is_ip_address(host);
  while (!list.empty()) {
    const std::size_t end = list.find_first_of(", ");
    std::string_view entry = trim(list.substr(0, end));
    list = end == std::string_view::npos ? std::string_view{} : list.substr(end + 1);
    if (entry.size() > 1 && entry.front() == '[' && entry.back() == ']')
      entry = entry.substr(1, entry.size() - 2);
    if (entry.empty()) continue;
    if (iequals(entry, host)) return true;
    if (address) continue;
    if (entry.front() == '.') entry.remove_prefix(1);
    if (host.size() > entry.size() && host[host.size() - entry.size() - 1] == '.' &&
        iequals(std::string_view(host).substr(host.size() - entry.size()), entry))
      return true;
  }
  return false;
}

bool proxy_may_apply(const std::string& host) {
  bool set = false;
  for (const char* name : {"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"}) {
    const char* value = std::getenv(name);
    if (value && *value) set = true;
  }
  if (!set) return false;
  for (const char* name : {"no_proxy", "NO_PROXY"}) {
    const char* value = std::getenv(name);
    if (value && *value && no_proxy_exempts(value, host)) return false;
  }
  return true;
}

// Opens a non-blocking, close-on-exec connection to the target's Unix socket, after checking that
// the process listening there runs as this process's user or as root.
int connect_unix(const PlainTarget& target, Clock::time_point started, Failed& failed) {
  auto fail = [&](std::string detail) {
    failed.kind = Failure::kConnect;
    failed.reason = kCouldNotConnect;
    failed.detail = std::move(detail);
    return -1;
  };
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, target.unix_socket.data(), target.unix_socket.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail("socket() failed: " + std::string(std::strerror(errno)));
  // A Unix-socket connect completes at once or fails (EAGAIN: the listener's backlog is full).
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    const int error = errno;
    ::close(fd);
    return fail("Failed to connect to Unix socket " + target.unix_socket + " after " +
                std::to_string(elapsed_ms(started)) + " ms: " + std::strerror(error));
  }
  ucred peer{};
  socklen_t length = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0 ||
      (peer.uid != ::geteuid() && peer.uid != 0)) {
    ::close(fd);
    return fail("the server on Unix socket " + target.unix_socket + " runs as user id " +
                std::to_string(peer.uid) + ", not as this process's (" +
                std::to_string(::geteuid()) +
                ") or root: nothing was sent to it (is the path shared with another user?)");
  }
  return fd;
}

// Opens a non-blocking, close-on-exec connection to one of the target's addresses.
int connect_to(const PlainTarget& target, const Request& request, Clock::time_point started,
               Failed& failed) {
  if (!target.unix_socket.empty()) return connect_unix(target, started, failed);
  auto fail = [&](Failure kind, std::string_view reason, std::string detail) {
    failed.kind = kind;
    failed.reason = reason;
    failed.detail = std::move(detail);
    return -1;
  };
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int code = ::getaddrinfo(target.host.c_str(), target.port.c_str(), &hints, &found);
      code != 0)
    return fail(Failure::kConnect, kCouldNotResolve,
                "Could not resolve host: " + target.host + " (" + ::gai_strerror(code) + ")");
  const auto connect_allowed = std::max(std::chrono::milliseconds(1), request.connect_timeout);
  auto deadline = started + connect_allowed;
  deadline = std::min(deadline, deadline_after(started, request.timeout));
  int last_error = 0;
  for (addrinfo* address = found; address; address = address->ai_next) {
    const int fd = ::socket(address->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_error = errno;
      continue;
    }
    const int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);  // as libcurl
    int error = 0;
    if (::connect(fd, address->ai_addr, address->ai_addrlen) != 0) {
      error = errno;
      if (error == EINPROGRESS) {
        const Wait waited = wait_for(fd, POLLOUT, deadline, request.cancel);
        if (waited != Wait::kReady) {
          ::close(fd);
          ::freeaddrinfo(found);
          if (waited == Wait::kCancelled) return fail(Failure::kCancelled, "cancelled", "");
          return fail(Failure::kTimeout, kTimedOut,
                      "Connection timed out after " + std::to_string(elapsed_ms(started)) +
                          " milliseconds");
        }
        socklen_t length = sizeof error;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
      }
    }
    if (error == 0) {
      ::freeaddrinfo(found);
      return fd;
    }
    last_error = error;
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return fail(Failure::kConnect, kCouldNotConnect,
              "Failed to connect to " + target.host + " port " + target.port + " after " +
                  std::to_string(elapsed_ms(started)) + " ms: " + std::strerror(last_error));
}

bool sends_body(const Request& request) {
  if (request.method == "GET" || request.method == "HEAD") return false;
  return !request.body.empty() || request.method == "POST" || request.method == "PUT" ||
         request.method == "PATCH";
}

}  // namespace

std::optional<PlainTarget> plain_target(const Request& request) {
  constexpr std::string_view kScheme = "http://";
  std::string_view url = request.url;
  if (!url.starts_with(kScheme)) return std::nullopt;
  url.remove_prefix(kScheme.size());
  const std::size_t end = url.find_first_of("/?#");
  const std::string_view authority = url.substr(0, end);
  std::string_view rest = end == std::string_view::npos ? std::string_view{} : url.substr(end);
  rest = rest.substr(0, rest.find('#'));
  if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
  for (char c : request.url)
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return std::nullopt;

  std::string_view host = authority, port;
  if (authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') return std::nullopt;
    if (!after.empty()) port = after.substr(1);
  } else if (const std::size_t colon = authority.find(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty() || !std::all_of(host.begin(), host.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' ||
               c == ':';
      }))
    return std::nullopt;
  if (port.empty()) port = "80";
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c));
      }))
    return std::nullopt;
  const long number = std::strtol(std::string(port).c_str(), nullptr, 10);
  if (number < 1 || number > 65535) return std::nullopt;

  PlainTarget target{
      std::string(host), std::string(port), std::string(authority),
      rest.empty() || rest.front() == '?' ? "/" + std::string(rest) : std::string(rest), ""};
  if (!request.bypass_proxy && proxy_may_apply(target.host)) return std::nullopt;
  return target;
}

}  // namespace asya::http::detail

namespace asya::http {

std::string http_unix_url(std::string_view socket_path) {
  std::string url(kHttpUnixScheme);
  for (char c : socket_path) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) || c == '-' || c == '_' || c == '.' || c == '~') {
      url += c;
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      url += '%';
      url += kHex[byte >> 4];
      url += kHex[byte & 15];
    }
  }
  return url;
}

}  // namespace asya::http

namespace asya::http::detail {

Result<PlainTarget> unix_target(const Request& request) {
  std::string_view url = request.url;
  url.remove_prefix(std::min(url.size(), kHttpUnixScheme.size()));
  const std::size_t end = url.find_first_of("/?#");
  std::string_view rest = end == std::string_view::npos ? std::string_view{} : url.substr(end);
  rest = rest.substr(0, rest.find('#'));
  for (char c : request.url)
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
      return Error{"a space or control character in the URL"};
  auto socket = percent_decode(url.substr(0, end));
  constexpr std::size_t kMaxPath = sizeof(sockaddr_un::sun_path) - 1;
  if (!socket || socket->empty() || socket->front() != '/' || socket->size() > kMaxPath ||
      socket->find('\0') != std::string::npos)
    return Error{"after http+unix:// must come an absolute Unix socket path of at most " +
                 std::to_string(kMaxPath) + " bytes, percent-encoded (e.g. " +
                 http_unix_url("/run/asya/gateway.sock") + "/path)"};
  PlainTarget target;
  target.host = "localhost";
  target.host_header = "localhost";
  target.path.reserve(rest.size() + 1);
  if (rest.empty() || rest.front() == '?') target.path.push_back('/');
  target.path.append(rest.data(), rest.size());
  target.unix_socket = std::move(*socket);
  return target;
}

PlainConnections::~PlainConnections() {
  close();
}

void PlainConnections::close() {
  std::lock_guard lock(mutex_);
  for (const Idle& idle : idle_) ::close(idle.fd);
  idle_.clear();
}

int PlainConnections::take(const std::string& key) {
  for (;;) {
    int fd = -1;
    {
      std::lock_guard lock(mutex_);
      auto it = std::find_if(idle_.rbegin(), idle_.rend(),
                             [&](const Idle& idle) { return idle.key == key; });
      if (it == idle_.rend()) return -1;
      fd = it->fd;
      idle_.erase(std::next(it).base());
    }
    // An idle connection must have nothing to read: readable means the server closed it (or
    // sent something unasked), so it is dropped.
    pollfd polled{fd, POLLIN, 0};
    if (::poll(&polled, 1, 0) == 0) return fd;
    ::close(fd);
  }
}

void PlainConnections::give_back(std::string key, int fd) {
  std::lock_guard lock(mutex_);
  if (idle_.size() >= kMaxIdleConnections) {
    ::close(idle_.front().fd);
    idle_.erase(idle_.begin());
  }
  idle_.push_back({std::move(key), fd});
}

Result<Response> PlainConnections::call(const PlainTarget& target, const Request& request,
                                        Transfer& transfer, Failure& failure) {
  const auto started = Clock::now();
  const bool with_body = sends_body(request);
  const std::string head = request_head(target, request, with_body);
  const std::string_view body = with_body ? request.body : std::string_view{};
  std::string key =
      target.unix_socket.empty() ? target.host + ' ' + target.port : "unix " + target.unix_socket;
  Failed failed;
  for (int attempt = 0; attempt < 2; ++attempt) {
    int fd = attempt == 0 ? take(key) : -1;
    const bool reused = fd >= 0;
    if (!reused) fd = connect_to(target, request, started, failed);
    if (fd < 0) break;
    failed = Failed{};
    transfer.response = Response{};
    bool reusable = false;
    try {
      reusable = exchange(fd, request, transfer, started, head, body, failed);
    } catch (...) {
      ::close(fd);
      throw;
    }
    if (failed.kind == Failure::kNone) {
      if (reusable)
        give_back(std::move(key), fd);
      else
        ::close(fd);
      return std::move(transfer.response);
    }
    ::close(fd);
    // A kept connection the server had closed: once more on a new one.
    if (!(reused && failed.before_answer && failed.kind == Failure::kConnection)) break;
  }
  failure = failed.kind;
  return Error{failure_message(request, failed.reason, failed.detail)};
}

}  // namespace asya::http::detail
