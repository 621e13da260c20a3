// Opening the socket to the broker: the host name lookup, the TCP connect and, over TLS, the TLS
// handshake. Each step waits at most a bound (ASYA_RABBITMQ_RPC_TIMEOUT) and ends within 50 ms
// when `interrupted` turns true (a stop), and its failure says which step and where.
//
// getaddrinfo() and rabbitmq-c's TLS connect cannot be cut short where they run (no socket of
// ours to shut down, no timeout for the lookup), so they run on a thread of their own and the
// connecting thread only waits for them. On a stop or a timeout it stops waiting; the thread
// finishes by itself later and frees what it made. Only the link threads call these, one
// connection at a time.
#pragma once

#include <amqp.h>
#include <netdb.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "common/result.hpp"
#include "transport/rabbitmq/rabbitmq_transport.hpp"

namespace asya::transport::rabbitmq {

// The addresses of a host (getaddrinfo's list, freed with it).
using Addresses = std::shared_ptr<addrinfo>;

// Looks up host names for one connection. A lookup that outlived its bound is kept and waited
// for again by the next attempt (a slow resolver gets one lookup at a time, not one per attempt).
// Not thread-safe: one connecting thread.
class HostLookup {
 public:
  HostLookup();
  ~HostLookup();  // a lookup still running is left to finish alone
  HostLookup(const HostLookup&) = delete;
  HostLookup& operator=(const HostLookup&) = delete;

  // The TCP addresses of host:port, or why not: "looking up host "h" timed out after 1s
  // (ASYA_RABBITMQ_RPC_TIMEOUT) ...", "cannot resolve host "h" (...)", or "stopping: ...".
  Result<Addresses> resolve(const std::string& host, int port, std::chrono::milliseconds timeout,
                            const std::atomic<bool>& interrupted);

 private:
  struct Pending;
  std::shared_ptr<Pending> pending_;
};

// Connects a non-blocking TCP socket to one of `addresses` within `timeout`; `where` is host:port
// for messages. Returns the socket (TCP_NODELAY and keepalives on), or why not.
Result<int> connect_tcp(const addrinfo& addresses, const std::string& where,
                        std::chrono::milliseconds timeout, const std::atomic<bool>& interrupted);

// A new rabbitmq-c connection with a TLS socket that is connected and handshaken (peer and host
// name verified, `settings.ca_file` when set), or why not. rabbitmq-c's own connect and handshake
// are bounded by `timeout`; this waits at most a second longer (its lookup has no bound).
Result<amqp_connection_state_t> open_tls(const RabbitmqSettings& settings,
                                         std::chrono::milliseconds timeout,
                                         const std::atomic<bool>& interrupted);

// Makes the kernel abort the connection when what was written to `fd` is not taken by the peer
// for `timeout` (TCP_USER_TIMEOUT: unacknowledged data, or a zero window that stays shut): a write
// the broker stops reading then fails with ETIMEDOUT instead of waiting forever. False when the
// socket refuses it.
bool bound_writes(int fd, std::chrono::milliseconds timeout);

}  // namespace asya::transport::rabbitmq
