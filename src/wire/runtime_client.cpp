#include "wire/runtime_client.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "wire/frame.hpp"
#include "wire/payload_fd.hpp"
#include "wire/socket_io.hpp"

namespace asya::wire {

using detail::Clock;
using detail::IoCode;

std::string ready_file_for(std::string_view socket_path) {
  auto slash = socket_path.rfind('/');
  if (slash == std::string_view::npos) return "runtime-ready";
  return std::string(socket_path.substr(0, slash + 1)) + "runtime-ready";
}

RuntimeClient::RuntimeClient(RuntimeClientOptions options) : options_(std::move(options)) {}

RuntimeClient::~RuntimeClient() {
  disconnect();
}

void RuntimeClient::disconnect() {
  pending_ = Pending{};
  peer_payload_fd_ = false;  // a request in flight is never answered on a closed connection
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

Status RuntimeClient::connect_once() {
  disconnect();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (options_.socket_path.empty() || options_.socket_path.size() >= sizeof(addr.sun_path)) {
    return Error{fmt::format("runtime socket path \"{}\" must be 1 to {} bytes long",
                             options_.socket_path, sizeof(addr.sun_path) - 1)};
  }
  std::memcpy(addr.sun_path, options_.socket_path.data(), options_.socket_path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{fmt::format("socket() failed: {}", std::strerror(errno))};
  // Room for a large request, so it is written while the runtime reads it (socket_io.hpp).
  detail::raise_send_buffer(fd);
  // A Unix-socket connect completes at once or fails; EINTR leaves it in progress, so wait for
  // the outcome instead of retrying.
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  if (rc != 0 && errno == EINTR) {
    detail::wait_readable(fd, -1, Clock::now() + std::chrono::milliseconds(100));
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    rc = err == 0 ? 0 : -1;
    errno = err;
  }
  if (rc != 0) {
    int err = errno;
    ::close(fd);
    return Error{fmt::format("cannot connect to runtime socket {}: {}", options_.socket_path,
                             std::strerror(err))};
  }
  fd_ = fd;
  peer_payload_fd_ =
      options_.payload_fd && peer_runtime_declares(fd_, options_.socket_path, kPayloadFdCapability);
  return Status::Ok();
}

namespace {

constexpr std::size_t kShownBytes = 8;
// On an error path only: how long to wait for the bytes after a suspicious frame header, to say
// what they look like.
constexpr std::chrono::milliseconds kDiagnoseWait{20};

// Up to kShownBytes bytes in hex with their printable text, e.g. `00 00 7b 22 (text "..{"")`.
std::string show_bytes(std::string_view bytes) {
  std::string hex;
  std::string text;
  for (std::size_t i = 0; i < bytes.size() && i < kShownBytes; ++i) {
    auto c = static_cast<unsigned char>(bytes[i]);
    if (i > 0) hex += ' ';
    hex += fmt::format("{:02x}", c);
    text += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
  }
  if (bytes.size() > kShownBytes) hex += " ...";
  return fmt::format("{} (text \"{}\")", hex, text);
}

std::string size_text(std::uint64_t bytes) {
  if (bytes >= 1'000'000)
    return fmt::format("{} bytes ({:.1f} MB)", bytes, static_cast<double>(bytes) / 1e6);
  if (bytes >= 1'000)
    return fmt::format("{} bytes ({:.1f} kB)", bytes, static_cast<double>(bytes) / 1e3);
  return fmt::format("{} bytes", bytes);
}

bool is_json_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// True when `bytes` may be the start of a JSON array (whitespace, then '[').
bool may_start_array(std::string_view bytes) {
  for (char c : bytes) {
    if (c == '[') return true;
    if (!is_json_space(c)) return false;
  }
  return true;
}

enum class PeekState { kIdle, kData, kClosed, kError };

struct Peeked {
  PeekState state = PeekState::kIdle;
  std::string bytes;        // kData: the first (up to kShownBytes) bytes waiting
  std::size_t pending = 0;  // kData: how many bytes are waiting
};

// What is waiting on `fd`, without consuming it and without blocking (after waiting up to `wait`
// for something to arrive). kClosed: EOF or ECONNRESET.
Peeked peek(int fd, std::chrono::milliseconds wait = std::chrono::milliseconds(0)) {
  if (wait.count() > 0) detail::wait_readable(fd, -1, Clock::now() + wait);
  char buf[kShownBytes];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
      Peeked p{PeekState::kData, std::string(buf, static_cast<std::size_t>(n)),
               static_cast<std::size_t>(n)};
      int pending = 0;
      if (::ioctl(fd, FIONREAD, &pending) == 0 && pending > n)
        p.pending = static_cast<std::size_t>(pending);
      return p;
    }
    if (n == 0) return {PeekState::kClosed, {}, 0};
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) return {PeekState::kIdle, {}, 0};
    if (err == ECONNRESET) return {PeekState::kClosed, {}, 0};
    return {PeekState::kError, {}, 0};
  }
}

// After a write to `fd` failed because the peer had closed (EPIPE): whether it closed with bytes
// we wrote still unread in its socket (the pending error is ECONNRESET; Linux sets it when a Unix
// stream socket is released with data in its receive queue, or unaccepted in a listening socket's
// queue). A write after the peer's close fails with EPIPE either way; the read of a recv would
// report the reset, so it is asked for here. Clears the pending error.
bool closed_with_bytes_unread(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  return ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == ECONNRESET;
}

// `lost_unread`: the request was written on a connection the runtime then closed with it unread.
CallResult undelivered(CallResult r, bool lost_unread) {
  r.undelivered = true;
  r.lost_unread = lost_unread;
  return r;
}

std::chrono::milliseconds diagnose_wait(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return std::clamp(left, std::chrono::milliseconds(0), kDiagnoseWait);
}

}  // namespace

CallResult RuntimeClient::begin_call(const RequestBody& request, Clock::time_point deadline,
                                     std::chrono::milliseconds timeout) {
  pending_ = Pending{};
  std::string notice;
  bool kept = false;
  if (fd_ >= 0) {
    // Anything waiting before the request is written cannot belong to it.
    Peeked before = peek(fd_);
    if (before.state == PeekState::kIdle) {
      kept = true;
    } else {
      if (before.state == PeekState::kData) {
        notice = fmt::format(
            "the runtime wrote {} more byte(s) on the connection after its previous answer, "
            "starting {}: a second answer or stray bytes; that connection was closed and this "
            "request was sent on a new one",
            before.pending, show_bytes(before.bytes));
      }
      // kClosed: the runtime closed after its previous answer (older runtimes do).
      disconnect();
    }
  }
  bool may_resend = false;
  CallResult r = write_request(request, deadline, timeout, kept, may_resend);
  if (r.status == CallStatus::kOk)
    pending_ = Pending{true, request, may_resend, std::move(notice)};  // receive() reports it
  else
    r.notice = std::move(notice);
  return r;
}

CallResult RuntimeClient::write_request(const RequestBody& request, Clock::time_point deadline,
                                        std::chrono::milliseconds timeout, bool kept,
                                        bool& may_resend) {
  // A kept connection that the runtime closed with part of the request unread (ECONNRESET): the
  // request is written again on a new one, and the loss is remembered (CallResult::lost_unread).
  bool lost = false;
  for (int attempt = 0;; ++attempt) {
    if (fd_ < 0) {
      Status s = connect_once();
      if (!s.ok())
        return undelivered(
            {CallStatus::kUnavailable,
             lost ? fmt::format("the runtime closed the connection with the request unread, and "
                                "then {}",
                                s.message())
                  : s.message()},
            lost);
    }
    // The request is sent again only when it provably was not read, and only once: on a kept
    // connection that the runtime closed meanwhile.
    may_resend = kept && attempt == 0;
    kept = false;

    const FdRequest* fd_form =
        request.streamed != nullptr && peer_payload_fd_ ? request.streamed->payload_fd : nullptr;
    sent_payload_fd_ = fd_form != nullptr;
    if (fd_form != nullptr && fd_form->prepare) {
      if (Status prepared = fd_form->prepare(); !prepared)
        return {CallStatus::kUnavailable,
                fmt::format("the request was not sent: {}", prepared.message())};
    }
    auto w = fd_form != nullptr
                 ? detail::write_frame_with_fd_io(fd_, fd_form->text, fd_form->fd, deadline)
             : request.streamed
                 ? detail::write_frame_stream_io(fd_, request.streamed->size,
                                                 request.streamed->write_body, deadline)
                 : detail::write_frame_io(fd_, request.whole, deadline);
    if (w.ok()) return {};
    const bool reset = w.code == IoCode::kClosed && closed_with_bytes_unread(fd_);
    disconnect();
    // EPIPE/ECONNRESET: the runtime had closed; what it never received it did not read.
    if (w.code == IoCode::kClosed && may_resend) {
      lost = lost || reset;
      continue;
    }
    switch (w.code) {
      case IoCode::kTimeout:
        return {CallStatus::kTimeout,
                fmt::format("runtime did not accept the request within {} ms", timeout.count())};
      case IoCode::kOversize:
        return {CallStatus::kProtocol, w.message};
      case IoCode::kAborted:
        return {CallStatus::kUnavailable,
                fmt::format("the request was not sent completely: {}; the connection to {} was "
                            "closed",
                            w.message, options_.socket_path)};
      case IoCode::kClosed:
        // The runtime closed before it had all of the request: it cannot have run the handler.
        return undelivered(
            {CallStatus::kUnavailable,
             fmt::format("sending the request to {} failed: {}", options_.socket_path, w.message)},
            lost || reset);
      default:
        return {CallStatus::kUnavailable, fmt::format("sending the request to {} failed: {}",
                                                      options_.socket_path, w.message)};
    }
  }
}

CallResult RuntimeClient::end_call(AnswerReceiver& receiver, Clock::time_point deadline,
                                   std::chrono::milliseconds timeout) {
  Pending pending = std::move(pending_);
  pending_ = Pending{};
  if (!pending.active)
    return {CallStatus::kUnavailable, "no request in flight on this connection (a bug)"};
  bool request_unread = false;
  CallResult r = read_answer(receiver, deadline, timeout, request_unread);
  bool lost = false;  // on the kept connection, before the request was written again
  if (r.status == CallStatus::kUnavailable && request_unread && pending.may_resend) {
    // The kept connection was closed by the runtime with the request unread: once more, on a new
    // connection.
    lost = true;
    request_unread = false;
    bool again = false;
    const std::string first = std::move(r.error);
    r = write_request(pending.request, deadline, timeout, false, again);
    if (r.status != CallStatus::kOk) r.error = fmt::format("{}; then {}", first, r.error);
    if (r.status == CallStatus::kOk) r = read_answer(receiver, deadline, timeout, request_unread);
  }
  // Closed with the request unread (ECONNRESET before any answer byte): no handler ran for it.
  if (r.status == CallStatus::kUnavailable && request_unread) r.undelivered = true;
  if (r.undelivered) r.lost_unread = r.lost_unread || lost || request_unread;
  r.notice = std::move(pending.notice);
  return r;
}

CallResult RuntimeClient::call_with(const RequestBody& request, std::chrono::milliseconds timeout,
                                    AnswerReceiver& receiver) {
  auto attempt = [&] {
    const Clock::time_point deadline = Clock::now() + timeout;
    CallResult sent = begin_call(request, deadline, timeout);
    if (sent.status != CallStatus::kOk) return sent;
    return end_call(receiver, deadline, timeout);
  };
  CallResult r = attempt();
  if (!r.undelivered) return r;  // (no std::function built on the common path)
  return until_delivered(std::move(r), attempt);
}

CallResult RuntimeClient::send(std::string_view request, std::chrono::milliseconds timeout) {
  auto attempt = [&] { return begin_call({request, nullptr}, Clock::now() + timeout, timeout); };
  CallResult r = attempt();
  if (!r.undelivered) return r;
  return until_delivered(std::move(r), attempt);
}

void RuntimeClient::abandon() {
  if (pending_.active) disconnect();
}

char* RuntimeClient::first_read_buffer() {
  if (!first_read_) first_read_.reset(new char[kFirstReadBytes]);
  return first_read_.get();
}

CallResult RuntimeClient::read_answer(AnswerReceiver& receiver, const Clock::time_point& deadline,
                                      std::chrono::milliseconds timeout, bool& request_unread) {
  auto fail = [this](CallStatus status, std::string error, bool too_large = false) {
    disconnect();
    return CallResult{status, std::move(error), too_large};
  };
  auto io_failure = [&](const detail::IoResult& io) {
    switch (io.code) {
      case IoCode::kTimeout:
        return fail(CallStatus::kTimeout,
                    fmt::format("runtime did not answer within {} ms", timeout.count()));
      case IoCode::kEof:
        // ECONNRESET: the runtime closed with (part of) the request unread in its socket.
        request_unread = io.peer_reset;
        return fail(CallStatus::kUnavailable,
                    io.peer_reset ? fmt::format("runtime at {} closed the connection without "
                                                "reading the whole request",
                                                options_.socket_path)
                                  : fmt::format("runtime at {} closed the connection after "
                                                "reading the request, without answering",
                                                options_.socket_path));
      case IoCode::kTruncated:
        return fail(CallStatus::kProtocol, fmt::format("bad response frame: {}", io.message));
      default:
        return fail(CallStatus::kUnavailable, fmt::format("reading the response from {} failed: {}",
                                                          options_.socket_path, io.message));
    }
  };
  const detail::Deadline io_deadline = deadline;

  // The answer's header, its body and whatever follows it come with one read into `head` when
  // they fit (a small answer: the usual case). Bytes read beyond the frame are rule 5's "byte
  // waiting after the answer", and a read that drained the socket proves it idle right after the
  // answer without a look of its own (PROTOCOL §3).
  if (while_waiting_.fn) wait_answer_or_hook(deadline);
  char* const head = first_read_buffer();
  std::size_t got = 0;
  bool drained = false;
  auto io = detail::read_available_io(fd_, head, kFirstReadBytes, true, io_deadline, false, 4, 0,
                                      got, drained);
  if (!io.ok()) return io_failure(io);
  if (got < 4) {
    io = detail::read_exact_io(fd_, head + got, 4 - got, true, io_deadline, 4, got);
    if (!io.ok()) return io_failure(io);
    got = 4;
    drained = false;
  }
  unsigned char header[4];
  std::memcpy(header, head, 4);
  const std::uint32_t size = decode_length(header);
  // Only the error messages below show it: formatted when one is built, not for every answer.
  auto header_text = [&header] { return show_bytes({reinterpret_cast<const char*>(header), 4}); };
  const std::size_t frame_bytes = 4 + static_cast<std::size_t>(size);
  // What follows the header, for the messages of a header that cannot be a length: the bytes read
  // already, else a look (after waiting briefly for them).
  auto after_header = [&] {
    if (got > 4)
      return Peeked{PeekState::kData, std::string(head + 4, std::min(got - 4, kShownBytes)),
                    got - 4};
    return peek(fd_, diagnose_wait(deadline));
  };

  // A runtime answers a request after reading all of it. Bytes of the request still unread in
  // the runtime's socket (SIOCOUTQ: what we wrote that the peer has not consumed) mean this frame
  // was written before the request was read: a late extra answer to an earlier request. (The
  // value counts socket memory, not bytes: only zero or not matters.)
  int unread = 0;
  if (::ioctl(fd_, SIOCOUTQ, &unread) == 0 && unread > 0) {
    return fail(
        CallStatus::kProtocol,
        fmt::format("runtime answer frame (header {}) arrived before the runtime had read the "
                    "whole request, so it is not this request's answer (a late second "
                    "answer to an earlier request?)",
                    header_text()));
  }

  if (size > options_.max_message_bytes) {
    // A real answer that is too large starts with '[' right after its header; anything else means
    // the header is not a length at all: stray bytes before a frame.
    Peeked next = after_header();
    if (next.state != PeekState::kData || may_start_array(next.bytes)) {
      return fail(CallStatus::kProtocol,
                  fmt::format("bad response frame: runtime answer frame (header {}) announces {}, "
                              "which exceeds ASYA_MAX_MESSAGE_BYTES={}: raise "
                              "ASYA_MAX_MESSAGE_BYTES on both sidecar and runtime, or send "
                              "smaller messages",
                              header_text(), size_text(size), options_.max_message_bytes),
                  /*too_large=*/true);
    }
    return fail(CallStatus::kProtocol,
                fmt::format("bad response frame: runtime answer frame header {} announces {} "
                            "(over ASYA_MAX_MESSAGE_BYTES={}), and the bytes after it, {}, are "
                            "not the start of a JSON array: these look like stray bytes before a "
                            "frame, read as a length",
                            header_text(), size_text(size), options_.max_message_bytes,
                            show_bytes(next.bytes)));
  }

  receiver.start(size);
  if (size == 0) {
    Peeked next = after_header();
    return fail(
        CallStatus::kProtocol,
        fmt::format("bad response frame: runtime answer frame is empty (header {}), but a "
                    "response is always a JSON array{}",
                    header_text(),
                    next.state == PeekState::kData
                        ? fmt::format("; {} byte(s) follow it, starting {}: these look like stray "
                                      "bytes before a frame",
                                      next.pending, show_bytes(next.bytes))
                        : std::string()));
  }
  // The first bytes of the body before the rest: stray bytes read as a header announce a length
  // that has nothing to do with what follows, and the call must fail now rather than wait for
  // that many bytes. When only the header came, the next read brings at least one body byte.
  if (got == 4) {
    std::size_t more = 0;
    io = detail::read_available_io(fd_, head + 4, kFirstReadBytes - 4, false, io_deadline, true,
                                   frame_bytes, 4, more, drained);
    if (!io.ok()) return io_failure(io);
    got += more;
  }
  const std::size_t body_in_head = std::min<std::size_t>(got - 4, size);
  if (!may_start_array({head + 4, std::min(body_in_head, kShownBytes)})) {
    std::string start(head + 4, std::min(body_in_head, kShownBytes));
    if (start.size() < kShownBytes && got - 4 == body_in_head) {
      Peeked more = peek(fd_);
      if (more.state == PeekState::kData) start += more.bytes;
    }
    return fail(CallStatus::kProtocol,
                fmt::format("bad response frame: runtime answer frame header {} announces {}, but "
                            "its first bytes {} are not the start of a JSON array (a response is "
                            "always a JSON array): stray bytes before a frame, or a frame whose "
                            "body is not an array",
                            header_text(), size_text(size), show_bytes(start)));
  }
  // The receiver's rooms, filled from `head` first, then from the socket.
  const char* from_head = head + 4;
  std::size_t left_in_head = body_in_head;
  bool read_after_head = false;
  for (std::size_t done = 0; done < size;) {
    std::span<char> room = receiver.room(size - done);
    const std::size_t want = std::min<std::size_t>(room.size(), size - done);
    const std::size_t copied = std::min(want, left_in_head);
    if (copied > 0) std::memcpy(room.data(), from_head, copied);
    from_head += copied;
    left_in_head -= copied;
    if (copied < want) {
      io = detail::read_exact_io(fd_, room.data() + copied, want - copied, true, io_deadline,
                                 frame_bytes, 4 + done + copied);
      if (!io.ok()) return io_failure(io);
      read_after_head = true;
    }
    receiver.received(want);
    done += want;
  }

  // The connection must be idle after an answer: a byte waiting now is a second answer or stray
  // bytes, and then this answer may not be the one for this request either.
  Peeked after;
  if (got - 4 > size) {
    int waiting = 0;
    after = {PeekState::kData,
             std::string(head + frame_bytes, std::min(got - frame_bytes, kShownBytes)),
             got - frame_bytes};
    if (::ioctl(fd_, FIONREAD, &waiting) == 0 && waiting > 0)
      after.pending += static_cast<std::size_t>(waiting);
  } else if (read_after_head || !drained) {
    after = peek(fd_);
  }
  if (after.state == PeekState::kData) {
    return fail(CallStatus::kProtocol,
                fmt::format("runtime wrote {} more byte(s) right after its answer of {}, starting "
                            "{}: a second answer or stray bytes; the answer is not used, as it "
                            "may not belong to this request",
                            after.pending, size_text(size), show_bytes(after.bytes)));
  }
  // Closed after answering (older runtimes serve one request per connection): the answer stands.
  // (A read that drained the socket does not see a close that came with the answer: the next
  // call's look before its request does.)
  if (after.state != PeekState::kIdle) disconnect();
  return {};
}

namespace {

// The whole answer in one buffer: `prepare(size)` gives it, and each room is the rest of it.
class ContiguousAnswer : public AnswerReceiver {
 public:
  explicit ContiguousAnswer(std::function<char*(std::size_t)> prepare)
      : prepare_(std::move(prepare)) {}
  void start(std::size_t size) override {
    data_ = prepare_(size);
    offset_ = 0;
  }
  std::span<char> room(std::size_t remaining) override { return {data_ + offset_, remaining}; }
  void received(std::size_t count) override { offset_ += count; }

 private:
  std::function<char*(std::size_t)> prepare_;
  char* data_ = nullptr;
  std::size_t offset_ = 0;
};

}  // namespace

CallResult RuntimeClient::call(std::string_view request, std::string& response,
                               std::chrono::milliseconds timeout) {
  ContiguousAnswer answer([&](std::size_t size) {
    response.resize(size);
    return response.data();
  });
  return call_with({request, nullptr}, timeout, answer);
}

CallResult RuntimeClient::call(std::string_view request, FrameBuffer& response,
                               std::chrono::milliseconds timeout) {
  ContiguousAnswer answer([&](std::size_t size) { return response.prepare(size); });
  return call_with({request, nullptr}, timeout, answer);
}

CallResult RuntimeClient::call(const StreamedRequest& request, FrameBuffer& response,
                               std::chrono::milliseconds timeout) {
  ContiguousAnswer answer([&](std::size_t size) { return response.prepare(size); });
  return call_with({{}, &request}, timeout, answer);
}

CallResult RuntimeClient::call(const StreamedRequest& request, AnswerReceiver& receiver,
                               std::chrono::milliseconds timeout) {
  return call_with({{}, &request}, timeout, receiver);
}

CallResult RuntimeClient::call(std::string_view request, AnswerReceiver& receiver,
                               std::chrono::milliseconds timeout) {
  return call_with({request, nullptr}, timeout, receiver);
}

CallResult RuntimeClient::receive(FrameBuffer& response, Clock::time_point deadline,
                                  std::chrono::milliseconds timeout) {
  ContiguousAnswer answer([&](std::size_t size) { return response.prepare(size); });
  const RequestBody request = pending_.request;  // end_call() takes pending_
  CallResult r = end_call(answer, deadline, timeout);
  if (!r.undelivered) return r;
  return until_delivered(std::move(r), [&] {
    const Clock::time_point again_deadline = Clock::now() + timeout;
    CallResult sent = begin_call(request, again_deadline, timeout);
    if (sent.status != CallStatus::kOk) return sent;
    return end_call(answer, again_deadline, timeout);
  });
}

}  // namespace asya::wire
