// The sidecar's side of the socket protocol (PROTOCOL §3): one client per in-flight message slot.
// Blocking; one RuntimeClient must be used by one thread at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
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

// Storage for one frame with `kPadding` zero bytes after its contents in the same allocation (so a
// JSON parser that reads ahead, e.g. envelope::parse_response_padded, can use it in place). Grows
// without zero-filling what is about to be overwritten; keeps its capacity until release().
class FrameBuffer {
 public:
  static constexpr std::size_t kPadding = 64;

  // Room for `size` bytes (contents unspecified until written), followed by kPadding zero bytes.
  // Reuses the capacity when it suffices; otherwise allocates exactly size + kPadding (previous
  // contents are dropped, not copied).
  char* prepare(std::size_t size);
  // Makes the contents a copy of `bytes`.
  void assign(std::string_view bytes);
  // Frees the storage.
  void release();

  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  std::size_t size() const { return size_; }
  // Bytes the contents may grow to without a new allocation (the padding not counted).
  std::size_t capacity() const { return capacity_; }
  std::string_view view() const { return {data_.get(), size_}; }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
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
  // The same, reading the answer into `response` without zero-filling it first and leaving
  // FrameBuffer::kPadding zero bytes after it. `request` must not point into `response`.
  CallResult call(std::string_view request, FrameBuffer& response,
                  std::chrono::milliseconds timeout);

  // Closes the connection (the next call reconnects).
  void disconnect();

 private:
  Status connect_once();
  template <typename ReadFrame>
  CallResult call_with(std::string_view request, std::chrono::milliseconds timeout,
                       const ReadFrame& read_frame);
  RuntimeClientOptions options_;
  int fd_ = -1;
};

// The ready-file path for a socket path: same directory, file name "runtime-ready".
std::string ready_file_for(std::string_view socket_path);

}  // namespace asya::wire
