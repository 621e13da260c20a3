#include "transport/rabbitmq/dial.hpp"

#include <amqp_ssl_socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "common/env.hpp"
#include "transport/rabbitmq/amqp_connection.hpp"

namespace asya::transport::rabbitmq {

namespace {

using Clock = std::chrono::steady_clock;
// How often a wait for a detached call looks at `interrupted`.
constexpr auto kSlice = std::chrono::milliseconds(50);

// A call running on a detached thread. The waiter takes `result` once `done`; a waiter that gave
// up sets `abandoned`, and the thread then frees the result itself when the call returns.
template <typename T>
struct Detached {
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  bool abandoned = false;
  T result{};
};

// Runs `work()` on a detached thread into `call`; `discard(T&)` frees a result nobody takes.
// When no thread can be started, runs it here (blocking, as before).
template <typename T, typename Work, typename Discard>
void start_detached(const std::shared_ptr<Detached<T>>& call, Work work, Discard discard) {
  auto body = [call, work, discard]() mutable {
    T result = work();
    std::lock_guard lock(call->mutex);
    if (call->abandoned) {
      discard(result);
      return;
    }
    call->result = std::move(result);
    call->done = true;
    call->cv.notify_all();
  };
  try {
    std::thread(body).detach();
  } catch (const std::system_error&) {
    body();
  }
}

enum class Waited { kDone, kTimedOut, kInterrupted };

template <typename T>
Waited wait_for(Detached<T>& call, Clock::time_point deadline,
                const std::atomic<bool>& interrupted) {
  std::unique_lock lock(call.mutex);
  while (!call.done) {
    if (interrupted.load()) return Waited::kInterrupted;
    const auto now = Clock::now();
    if (now >= deadline) return Waited::kTimedOut;
    call.cv.wait_until(lock, std::min(deadline, now + kSlice));
  }
  return Waited::kDone;
}

// Gives up on `call`: its result is freed by `discard` (now, if it is there already).
template <typename T, typename Discard>
void abandon(Detached<T>& call, Discard discard) {
  std::lock_guard lock(call.mutex);
  if (call.done)
    discard(call.result);
  else
    call.abandoned = true;
}

struct LookupResult {
  int rc = 0;
  addrinfo* addresses = nullptr;
};

void free_lookup(LookupResult& r) {
  if (r.addresses != nullptr) ::freeaddrinfo(r.addresses);
  r.addresses = nullptr;
}

struct TlsResult {
  amqp_connection_state_t state = nullptr;
  std::string error;
};

void free_tls(TlsResult& r) {
  if (r.state != nullptr) amqp_destroy_connection(r.state);
  r.state = nullptr;
}

}  // namespace

struct HostLookup::Pending : Detached<LookupResult> {
  std::string host;
  int port = 0;
};

HostLookup::HostLookup() = default;

HostLookup::~HostLookup() {
  if (pending_) abandon(*pending_, free_lookup);
}

Result<Addresses> HostLookup::resolve(const std::string& host, int port,
                                      std::chrono::milliseconds timeout,
                                      const std::atomic<bool>& interrupted) {
  if (pending_ && (pending_->host != host || pending_->port != port)) {
    abandon(*pending_, free_lookup);
    pending_.reset();
  }
  if (!pending_) {
    pending_ = std::make_shared<Pending>();
    pending_->host = host;
    pending_->port = port;
    start_detached(
        std::static_pointer_cast<Detached<LookupResult>>(pending_),
        [host, port] {
          addrinfo hints{};
          hints.ai_family = AF_UNSPEC;
          hints.ai_socktype = SOCK_STREAM;
          LookupResult r;
          r.rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &r.addresses);
          return r;
        },
        free_lookup);
  }
  switch (wait_for(*pending_, Clock::now() + timeout, interrupted)) {
    case Waited::kInterrupted:
      abandon(*pending_, free_lookup);
      pending_.reset();
      return Error{"stopping: gave up looking up host \"" + host + "\""};
    case Waited::kTimedOut:
      // Kept: the next attempt waits for this lookup instead of starting another.
      return Error{"looking up host \"" + host + "\" timed out after " + format_duration(timeout) +
                   " (ASYA_RABBITMQ_RPC_TIMEOUT): is the DNS server reachable and answering?"};
    case Waited::kDone:
      break;
  }
  LookupResult r = std::exchange(pending_->result, LookupResult{});
  pending_.reset();
  if (r.rc != 0 || r.addresses == nullptr) {
    free_lookup(r);
    return Error{"cannot resolve host \"" + host + "\" (" + ::gai_strerror(r.rc) + ")"};
  }
  return Addresses(r.addresses, ::freeaddrinfo);
}

Result<int> connect_tcp(const addrinfo& addresses, const std::string& where,
                        std::chrono::milliseconds timeout, const std::atomic<bool>& interrupted) {
  const auto deadline = Clock::now() + timeout;
  int error = 0;
  bool timed_out = false;
  int connected = -1;
  for (const addrinfo* a = &addresses; a != nullptr && connected < 0 && !timed_out;
       a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      error = errno;
      continue;
    }
    error = 0;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) error = errno;
    while (error == EINPROGRESS) {
      if (interrupted.load()) {
        error = EINTR;
        break;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        timed_out = true;
        break;
      }
      pollfd p{fd, POLLOUT, 0};
      const int rc = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 100)));
      if (rc < 0 && errno != EINTR) {
        error = errno;
      } else if (rc > 0) {
        socklen_t length = sizeof error;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
      }
    }
    if (error == 0 && !timed_out) {
      // As rabbitmq-c's own connect: no Nagle delay, TCP keepalives on.
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
      connected = fd;
    } else {
      ::close(fd);
    }
  }
  if (connected >= 0) return connected;
  if (timed_out)
    return Error{"TCP connect timed out after " + format_duration(timeout) +
                 " (ASYA_RABBITMQ_RPC_TIMEOUT): nothing answered at " + where +
                 " (a host that is down, a firewall dropping packets, or a broker too busy to "
                 "accept)"};
  if (error == EINTR) return Error{"stopping: gave up connecting to " + where};
  std::string text = std::strerror(error);
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  if (error == ECONNREFUSED)
    text +=
        " (nothing listens on " + where + ": is the broker running, and is this its AMQP port?)";
  return Error{text};
}

Result<amqp_connection_state_t> open_tls(const RabbitmqSettings& settings,
                                         std::chrono::milliseconds timeout,
                                         const std::atomic<bool>& interrupted) {
  const std::string where = settings.describe();
  auto call = std::make_shared<Detached<TlsResult>>();
  start_detached(
      call,
      [host = settings.host, port = settings.port, ca_file = settings.ca_file, where, timeout] {
        TlsResult r;
        r.state = amqp_new_connection();
        amqp_socket_t* socket = amqp_ssl_socket_new(r.state);
        if (socket == nullptr) {
          free_tls(r);
          r.error = "cannot create a TLS socket for " + where;
          return r;
        }
        if (!ca_file.empty() &&
            amqp_ssl_socket_set_cacert(socket, ca_file.c_str()) != AMQP_STATUS_OK) {
          free_tls(r);
          r.error = "cannot read ASYA_RABBITMQ_CA_FILE=\"" + ca_file + "\" for " + where;
          return r;
        }
        amqp_ssl_socket_set_verify_peer(socket, 1);
        amqp_ssl_socket_set_verify_hostname(socket, 1);
        timeval bound{static_cast<time_t>(timeout.count() / 1000),
                      static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
        const int rc = amqp_socket_open_noblock(socket, host.c_str(), port, &bound);
        if (rc != AMQP_STATUS_OK) {
          const int saved_errno = errno;
          free_tls(r);
          r.error = "cannot connect to RabbitMQ at " + where + ": " +
                    (rc == AMQP_STATUS_TIMEOUT
                         ? "TCP connect or TLS handshake timed out after " +
                               format_duration(timeout) + " (ASYA_RABBITMQ_RPC_TIMEOUT)"
                         : library_error_text(rc, saved_errno));
        }
        return r;
      },
      free_tls);
  // rabbitmq-c bounds the connect and the handshake; not its host name lookup.
  const auto deadline = Clock::now() + timeout + std::chrono::seconds(1);
  switch (wait_for(*call, deadline, interrupted)) {
    case Waited::kInterrupted:
      abandon(*call, free_tls);
      return Error{"stopping: gave up connecting to " + where};
    case Waited::kTimedOut:
      abandon(*call, free_tls);
      return Error{"cannot connect to RabbitMQ at " + where +
                   ": host name lookup, TCP connect or TLS handshake timed out after " +
                   format_duration(timeout) + " (ASYA_RABBITMQ_RPC_TIMEOUT)"};
    case Waited::kDone:
      break;
  }
  TlsResult r = std::exchange(call->result, TlsResult{});
  if (r.state == nullptr) return Error{r.error};
  return r.state;
}

bool bound_writes(int fd, std::chrono::milliseconds timeout) {
  const unsigned int milliseconds = static_cast<unsigned int>(timeout.count());
  return fd >= 0 &&
         ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &milliseconds, sizeof milliseconds) == 0;
}

}  // namespace asya::transport::rabbitmq
