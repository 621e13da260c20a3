// The sidecar's side of the socket protocol (PROTOCOL §3): one client per in-flight message slot.
// Blocking; one RuntimeClient must be used by one thread at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "common/result.hpp"

namespace asya::wire {

struct RuntimeClientOptions {
  std::string socket_path;  // e.g. /var/run/asya/asya-runtime.sock
  std::size_t max_message_bytes = 256u << 20;
  // Whether a request may go in the file-descriptor form (FdRequest below) on a connection whose
  // runtime declared it (ASYA_PAYLOAD_FD; PROTOCOL §3 "Payloads passed as a file").
  bool payload_fd = true;
  // What a call does when its request provably never reached a live runtime (CallResult::
  // undelivered below): 0 (the default) fails it at once as kUnavailable; more waits up to this
  // long for the runtime to be ready again (wait_ready) and writes the request again, as often as
  // it takes within that time (counted from the first such failure of the call), instead of
  // failing. Two cases end the waiting early, as a failed attempt (kUnavailable): a runtime found
  // ready at once after losing the request, more than 3 times in one call (it is there, but closes
  // connections without reading them), and a runtime that the wait saw restart (not ready, then
  // ready) and that then lost the request again after it was written to it
  // (CallResult::lost_after_restart: it may die while reading this very request). A handler never
  // runs twice for one call because of this: only a request that no runtime read whole is written
  // again. (The sidecar sets it to ASYA_RUNTIME_READY_TIMEOUT.)
  std::chrono::milliseconds undelivered_wait{0};
  // Asked between the polls of that wait (every 20 ms): true ends the wait and the call
  // fails as kUnavailable (the sidecar is stopping). On the calling thread.
  std::function<bool()> stop_waiting = nullptr;
  // Called when such a wait begins, with why the request did not reach the runtime (for a log
  // line, and the sidecar's /readyz). On the calling thread.
  std::function<void(std::string_view why)> on_wait = nullptr;
  // Called once when each wait that on_wait announced ends: `ready` true when the runtime is ready
  // again (the request is written again right after), false when the wait gave up or was stopped.
  // On the calling thread.
  std::function<void(bool ready)> on_wait_end = nullptr;
};

enum class CallStatus {
  kOk,           // response holds the runtime's answer
  kTimeout,      // no complete answer before the deadline; the connection was closed
  kUnavailable,  // could not connect, or the runtime closed/died before answering
  kProtocol,     // the answer was not a valid frame (oversize, truncated, not a JSON array,
                 // bytes left after it); the connection was closed
};

struct CallResult {
  CallResult() = default;
  CallResult(CallStatus status_, std::string error_, bool too_large_ = false)
      : status(status_), error(std::move(error_)), too_large(too_large_) {}

  CallStatus status = CallStatus::kOk;
  std::string error;  // human-readable cause when status != kOk
  // kProtocol only: the answer's frame announced more than max_message_bytes and looked like a
  // real (too large) answer, not like stray bytes (message_too_large rather than
  // runtime_protocol_error).
  bool too_large = false;
  // Not empty when the connection kept from the previous call was found broken before this
  // request was written (e.g. bytes the runtime wrote after its previous answer): what was wrong.
  // The request was then sent on a new connection; the caller logs this as a protocol error of
  // the runtime.
  std::string notice;
  // kUnavailable only: the request provably never reached a live runtime, so no handler ran for
  // it: no connection could be made (no socket, connection refused, the ready file missing), or
  // the runtime closed the connection with the request not read whole (the write failed with
  // EPIPE/ECONNRESET, or the read with ECONNRESET before any answer byte; PROTOCOL §3).
  bool undelivered = false;
  // kUnavailable and undelivered only: the request was written (whole or in part) on a connection
  // that the runtime then closed with it unread, rather than no connection being made at all.
  bool lost_unread = false;
  // kUnavailable only: the call waited RuntimeClientOptions::undelivered_wait for the runtime
  // and it was not ready again (as opposed to a runtime that came back and failed again).
  bool runtime_not_ready = false;
  // kUnavailable only: the call stopped waiting because the runtime, seen restarting during the
  // wait, lost the request again once it was written to it (lost_unread): a runtime that dies
  // while it reads this request (e.g. killed for the memory its size asks for) would otherwise
  // hold it for the whole wait. A failed attempt, like a runtime that read the request whole and
  // closed without answering.
  bool lost_after_restart = false;
  // How often the call waited for the runtime and wrote the request again because it had not
  // reached a live runtime (RuntimeClientOptions::undelivered_wait), and how long that took.
  int runtime_waits = 0;
  std::chrono::milliseconds runtime_waited{0};
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

// Where a StreamedRequest's body goes (below): parts of memory, or a range of a file.
class StreamSink {
 public:
  // What send_file() did.
  struct FileSent {
    std::uint64_t bytes = 0;  // of the file, sent
    // The socket failed (or the body grew past its size): stop and return this, as an error of
    // operator().
    Status socket;
    // Reading the file failed (bytes < count, socket ok): why. Both ok and bytes < count: the
    // file ended first.
    std::string file_error;
  };
  using Write = std::function<Status(std::string_view part)>;
  using SendFile = std::function<FileSent(int fd, std::uint64_t offset, std::uint64_t count)>;

  StreamSink() = default;  // empty: calling it is a bug (std::bad_function_call)
  // A sink of parts only: send_file() reads the file and hands its bytes to `write` (tests, and
  // producers run without a socket).
  template <class F>
  requires(!std::is_same_v<std::decay_t<F>, StreamSink> &&
           std::is_invocable_r_v<Status, F&, std::string_view>) StreamSink(F write)
      : write_(std::move(write)) {}  // NOLINT: implicit, as the former function
  StreamSink(Write write, SendFile send_file)
      : write_(std::move(write)), send_file_(std::move(send_file)) {}

  // Hands the next `part` of the body on; an error ends the body.
  Status operator()(std::string_view part) const { return write_(part); }
  // Hands on the next `count` bytes of the file open as `fd`, from `offset` (the descriptor's
  // own offset is not used or moved). The runtime client sends them with sendfile(2): from the
  // page cache to the socket, never through a buffer of the process.
  FileSent send_file(int fd, std::uint64_t offset, std::uint64_t count) const;

 private:
  Write write_;
  SendFile send_file_;
};

// A request whose body is produced while it is written (a join's branch list, read from its
// store one branch at a time; a payload object streamed from its file), so the sidecar never
// holds the whole request: `size` is the body's exact length in bytes (the frame header announces
// it before the first body byte), and `write_body(sink)` hands the body to `sink` in consecutive
// parts of any size (or file ranges, StreamSink::send_file), returning Ok, an error of its own,
// or the first error `sink` returned (after which it must stop). The client gathers parts into
// writes of up to 64 KiB. A body longer or shorter than `size`, or an error of write_body, ends
// the call as kUnavailable ("the request was not sent completely: ...") with the connection
// closed, so the runtime sees a truncated frame and never answers it. write_body may be called a
// second time for one call (a kept connection found closed by the runtime at the first write); it
// must then produce the same bytes. The call's timeout holds for file ranges too.
//
// `payload_fd`, when set, is another form of the same request, written instead when the runtime
// on the connection declared it takes payloads as file descriptors (a line `payload-fd` in its
// ready file whose first line is the connection's peer pid; RuntimeClientOptions::payload_fd):
// FdRequest below. The form is chosen for each connection the request is written on.
struct FdRequest;
struct StreamedRequest {
  using Sink = StreamSink;
  std::uint64_t size = 0;
  std::function<Status(const Sink& sink)> write_body;
  const FdRequest* payload_fd = nullptr;
};

// A request whose payload goes as a file descriptor (PROTOCOL §3 "Payloads passed as a file"):
// `text` is the envelope with the "payload_fd" marker in place of the payload (wire/payload_fd.hpp)
// and `fd` a read-only descriptor of the file, attached to the frame (the client never closes it:
// the caller does, after the call). `prepare`, when set, runs right before the form is written
// (each time it is): an error there means the request is not sent at all, and the call ends as
// kUnavailable with "the request was not sent: <error>" on a connection that stays usable.
struct FdRequest {
  std::string text;
  int fd = -1;
  std::function<Status()> prepare;
};

// Where an answer's body goes when it is not received into one buffer (a pass-through answer
// compared with the request's payload as it arrives: sidecar/passthrough_answer.hpp). The client
// calls start() once the frame's header announced `size` body bytes (again for a second answer
// on a new connection), then room() and received() in turn until all `size` bytes arrived, in
// order.
class AnswerReceiver {
 public:
  virtual ~AnswerReceiver() = default;
  virtual void start(std::size_t size) = 0;
  // Room for the next bytes: at most `remaining` (> 0) are read into it, exactly its size unless
  // that is more than `remaining`. Never empty.
  virtual std::span<char> room(std::size_t remaining) = 0;
  // `count` bytes were read into the start of the room last given.
  virtual void received(std::size_t count) = 0;
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
  // One request is in flight per connection, and an answer is accepted only when the connection
  // is idle right after it (PROTOCOL §3):
  // - Before writing on the connection kept from the previous call, checks it without blocking:
  //   closed by the runtime (older runtimes close after each response) -> a new connection; bytes
  //   waiting (a second answer, stray bytes) -> closed, a new connection, CallResult::notice.
  // - The request is written again on a new connection only when it provably was not read: the
  //   write failed because the runtime had closed, or the runtime closed with the request still
  //   unread in its socket (ECONNRESET). A runtime that read the request and closed without
  //   answering is kUnavailable: a failed attempt, never a second call of the handler.
  // - The answer must be a frame whose body starts like a JSON array, that arrives after the
  //   runtime read the whole request (SIOCOUTQ is 0), and no byte may follow it; otherwise
  //   kProtocol. A small answer is read with what follows it in one read: a read that left the
  //   socket empty shows it idle without a look of its own.
  // - A request that provably never reached a live runtime (CallResult::undelivered) waits for
  //   the runtime and is written again while RuntimeClientOptions::undelivered_wait allows.
  // After kTimeout, kProtocol or kUnavailable the connection is closed, never reused, so a late
  // or extra answer is never mistaken for the next request's. Each attempt at writing the request
  // and reading its answer must finish within `timeout` (a wait for the runtime is not counted).
  CallResult call(std::string_view request, std::string& response,
                  std::chrono::milliseconds timeout);
  // The same, reading the answer into `response` without zero-filling it first and leaving
  // FrameBuffer::kPadding zero bytes after it. `request` must not point into `response`.
  CallResult call(std::string_view request, FrameBuffer& response,
                  std::chrono::milliseconds timeout);
  // The same for a request written while it is produced (StreamedRequest above).
  CallResult call(const StreamedRequest& request, FrameBuffer& response,
                  std::chrono::milliseconds timeout);
  // The same, handing the answer's body to `receiver` piece by piece (AnswerReceiver above).
  CallResult call(const StreamedRequest& request, AnswerReceiver& receiver,
                  std::chrono::milliseconds timeout);
  CallResult call(std::string_view request, AnswerReceiver& receiver,
                  std::chrono::milliseconds timeout);

  // call() in two halves, for a worker that keeps a second batch waiting on a second connection
  // (PROTOCOL §3 "Pipelined batches"): send() does what call() does up to the written request
  // (kOk: the request is in flight; otherwise the failure, and nothing is in flight), and
  // receive() reads its answer with every check of call(), bounded by `deadline` (`timeout` only
  // names the bound in a timeout's message; an attempt after a wait for the runtime gets `timeout`
  // of its own). Both wait for the runtime as call() does. `request` must stay valid until
  // receive() returns
  // (a kept connection closed by the runtime with the request unread gets it once more). One
  // request at most is in flight per client. CallResult::notice is reported by receive() (by send()
  // when it failed).
  CallResult send(std::string_view request, std::chrono::milliseconds timeout);
  CallResult receive(FrameBuffer& response, std::chrono::steady_clock::time_point deadline,
                     std::chrono::milliseconds timeout);
  // Whether a request was sent and its answer not received yet.
  bool in_flight() const { return pending_.active; }
  // Waits until the runtime has read the whole request in flight: nothing of it is left unread in
  // its socket (SIOCOUTQ is 0). A runtime that serializes its handler calls takes each request's
  // place in its call order before it reads the request's last byte, so a request written on
  // another connection after this returned true runs after this one (PROTOCOL §3 "Pipelined
  // batches", "Order"). Returns false, without consuming anything, when no request is in flight,
  // the connection is closed, `deadline` passed, or something arrived on the connection while
  // the request was not read whole (receive() then reports it). Polls: yields the core for the
  // first 100 µs, then sleeps 100 µs, doubled after each look up to 10 ms (a runtime that leaves a
  // request unread for long costs ~100 wake-ups a second, not 10,000; one that reads it is seen
  // at most about as late again as it took), and wakes early when an answer arrives.
  bool wait_request_read(std::chrono::steady_clock::time_point deadline);
  // Gives up on the request in flight, if any, without reading its answer: the connection is
  // closed, so its answer can never be read as another request's.
  void abandon();

  // Closes the connection (the next call reconnects).
  void disconnect();

  // A one-shot hook for a caller that holds other work back while a call is in progress (the
  // sidecar's decisions held for a group leased ahead: sidecar/runner_defer.cpp): `fn` runs once,
  // on the calling thread, when a call has waited for its answer until `at` with no byte of it
  // arrived (or, first, when a call begins to wait for a runtime being restarted:
  // undelivered_wait); the call then goes on as before. An answer already arriving by `at` never
  // runs it. It stays armed across calls until it ran or disarm_while_waiting(). `fn` must not use
  // this client.
  void arm_while_waiting(std::chrono::steady_clock::time_point at, std::function<void()> fn) {
    while_waiting_ = {at, std::move(fn)};
  }
  void disarm_while_waiting() { while_waiting_ = {}; }

  // Whether the last request written went in the file-descriptor form
  // (StreamedRequest::payload_fd).
  bool sent_payload_fd() const { return sent_payload_fd_; }

 private:
  // A request given whole or streamed (exactly one of the two).
  struct RequestBody {
    std::string_view whole;
    const StreamedRequest* streamed = nullptr;
  };
  // The request in flight between send() and receive().
  struct Pending {
    bool active = false;
    RequestBody request;
    bool may_resend = false;  // written on a kept connection: see call()
    std::string notice;
  };
  Status connect_once();
  // arm_while_waiting(): runs the hook now (it is disarmed first), if armed.
  void run_while_waiting();
  // Before an answer is read: waits until its first byte, the connection's end, `deadline` or the
  // hook's time, whichever comes first, and runs the hook when its time came first.
  void wait_answer_or_hook(std::chrono::steady_clock::time_point deadline);
  CallResult begin_call(const RequestBody& request, std::chrono::steady_clock::time_point deadline,
                        std::chrono::milliseconds timeout);
  CallResult write_request(const RequestBody& request,
                           std::chrono::steady_clock::time_point deadline,
                           std::chrono::milliseconds timeout, bool kept, bool& may_resend);
  CallResult end_call(AnswerReceiver& receiver, std::chrono::steady_clock::time_point deadline,
                      std::chrono::milliseconds timeout);
  CallResult call_with(const RequestBody& request, std::chrono::milliseconds timeout,
                       AnswerReceiver& receiver);
  // What wait_ready_until() found.
  struct ReadyWait {
    Status status;         // ok: connected
    bool stopped = false;  // `stop` said so
    int checks = 0;        // of the ready file and a connect: 1 when the runtime was ready at once
  };
  // wait_ready() until `deadline` (`timeout` names it in the error), asking `stop` (when set)
  // between checks: true ends the wait with an error.
  ReadyWait wait_ready_until(std::chrono::steady_clock::time_point deadline,
                             std::chrono::milliseconds timeout, const std::function<bool()>& stop);
  // While `result` is undelivered and options_.undelivered_wait allows: waits for the runtime,
  // then `result = again()`.
  CallResult until_delivered(CallResult result, const std::function<CallResult()>& again);
  CallResult read_answer(AnswerReceiver& receiver,
                         const std::chrono::steady_clock::time_point& deadline,
                         std::chrono::milliseconds timeout, bool& request_unread);
  // Room for an answer's first read: its header, a small answer whole, and what may follow it.
  static constexpr std::size_t kFirstReadBytes = 16u << 10;
  char* first_read_buffer();
  RuntimeClientOptions options_;
  int fd_ = -1;
  std::unique_ptr<char[]> first_read_;  // kFirstReadBytes, allocated at the first answer
  // The runtime on this connection declared payload-fd (checked once per connection).
  bool peer_payload_fd_ = false;
  bool sent_payload_fd_ = false;
  Pending pending_;
  struct WhileWaiting {
    std::chrono::steady_clock::time_point at;
    std::function<void()> fn;
  };
  WhileWaiting while_waiting_;
};

// The ready-file path for a socket path: same directory, file name "runtime-ready".
std::string ready_file_for(std::string_view socket_path);

}  // namespace asya::wire
