// The sidecar's side of the socket protocol (PROTOCOL §3): one client per in-flight message slot.
// Blocking; one RuntimeClient must be used by one thread at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace asya::wire {

struct RuntimeClientOptions {
  std::string socket_path;  // e.g. /var/run/asya/asya-runtime.sock
  std::size_t max_message_bytes = 256u << 20;
};

enum class CallStatus {
  kOk,           // response holds the runtime's answer
  kTimeout,      // no complete answer before the deadline; the connection was closed
  kUnavailable,  // could not connect, or the runtime closed/died before answering
  kProtocol,     // the answer was not a valid frame (oversize, truncated)
};

struct CallResult {
  CallStatus status = CallStatus::kOk;
  std::string error;  // human-readable cause when status != kOk
};

class RuntimeClient {
 public:
  explicit RuntimeClient(RuntimeClientOptions options);
  ~RuntimeClient();
  RuntimeClient(const RuntimeClient&) = delete;
  RuntimeClient& operator=(const RuntimeClient&) = delete;

  // Waits until the file `runtime-ready` exists next to the socket and a connect succeeds, up to
  // `timeout`. Returns an error naming the socket path and what was missing.
  Status wait_ready(std::chrono::milliseconds timeout);

  // Sends `request` as one frame and reads one response frame into `response` (capacity reused).
  // Reuses the open connection; when the runtime closed it after the previous response (older
  // runtimes do), reconnects once transparently and resends. The whole call must finish within
  // `timeout`; on kTimeout the connection is closed so a late answer is never mistaken for the
  // next request's.
  CallResult call(std::string_view request, std::string& response,
                  std::chrono::milliseconds timeout);

  // Closes the connection (the next call reconnects).
  void disconnect();

 private:
  Status connect_once();
  RuntimeClientOptions options_;
  int fd_ = -1;
};

// The ready-file path for a socket path: same directory, file name "runtime-ready".
std::string ready_file_for(std::string_view socket_path);

}  // namespace asya::wire
