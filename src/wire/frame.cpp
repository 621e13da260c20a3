#include "wire/frame.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <pthread.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <csignal>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include "wire/socket_io.hpp"

namespace asya::wire {

void encode_length(std::uint32_t size, unsigned char out[4]) {
  out[0] = static_cast<unsigned char>(size >> 24);
  out[1] = static_cast<unsigned char>(size >> 16);
  out[2] = static_cast<unsigned char>(size >> 8);
  out[3] = static_cast<unsigned char>(size);
}

std::uint32_t decode_length(const unsigned char in[4]) {
  return (static_cast<std::uint32_t>(in[0]) << 24) | (static_cast<std::uint32_t>(in[1]) << 16) |
         (static_cast<std::uint32_t>(in[2]) << 8) | static_cast<std::uint32_t>(in[3]);
}

namespace {

std::string oversize_message(std::uint64_t size, std::size_t max_message_bytes) {
  return fmt::format(
      "frame of {} bytes exceeds ASYA_MAX_MESSAGE_BYTES={}: raise ASYA_MAX_MESSAGE_BYTES on both "
      "sidecar and runtime, or send smaller messages",
      size, max_message_bytes);
}

}  // namespace

FrameDecoder::FrameDecoder(std::size_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}

Status FrameDecoder::feed(std::string_view bytes) {
  buffer_.append(bytes.data(), bytes.size());
  // Check every header that is now visible, so an oversize frame is refused as soon as its
  // header arrives, not when (never) its body does.
  std::size_t pos = read_offset_;
  while (buffer_.size() - pos >= 4) {
    std::uint32_t size =
        decode_length(reinterpret_cast<const unsigned char*>(buffer_.data() + pos));
    if (size > max_message_bytes_) return Error{oversize_message(size, max_message_bytes_)};
    if (buffer_.size() - pos - 4 < size) break;
    pos += 4 + static_cast<std::size_t>(size);
  }
  return Status::Ok();
}

bool FrameDecoder::next(std::string& out) {
  std::size_t available = buffer_.size() - read_offset_;
  if (available < 4) return false;
  std::uint32_t size =
      decode_length(reinterpret_cast<const unsigned char*>(buffer_.data() + read_offset_));
  if (size > max_message_bytes_ || available - 4 < size) return false;
  out.assign(buffer_.data() + read_offset_ + 4, size);
  read_offset_ += 4 + static_cast<std::size_t>(size);
  if (read_offset_ == buffer_.size()) {
    buffer_.clear();
    read_offset_ = 0;
  } else if (read_offset_ > buffer_.size() / 2) {
    buffer_.erase(0, read_offset_);
    read_offset_ = 0;
  }
  return true;
}

std::size_t FrameDecoder::pending_bytes() const {
  return buffer_.size() - read_offset_;
}

namespace detail {

Deadline deadline_after_ms(int deadline_ms) {
  if (deadline_ms < 0) return std::nullopt;
  return Clock::now() + std::chrono::milliseconds(deadline_ms);
}

namespace {

// Milliseconds left for poll(): -1 for no deadline, 0 when already passed (rounded up so we never
// spin with a 0 timeout while time remains).
int poll_timeout(const Deadline& deadline) {
  if (!deadline) return -1;
  auto left = *deadline - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return ms > 1'000'000 ? 1'000'000 : static_cast<int>(ms);
}

bool expired(const Deadline& deadline) {
  return deadline && Clock::now() >= *deadline;
}

// Waits for `events` on fd. Returns 1 ready, 0 timeout, -1 error.
int wait_for(int fd, short events, const Deadline& deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int timeout = poll_timeout(deadline);
    int rc = ::poll(&p, 1, timeout);
    if (rc > 0) return 1;
    if (rc == 0) {
      if (expired(deadline)) return 0;
      continue;  // woke early because of rounding
    }
    if (errno == EINTR) continue;
    return -1;
  }
}

IoResult timeout_result(const char* what) {
  return {IoCode::kTimeout, fmt::format("timed out while {}", what)};
}

IoResult system_error(const char* what, int err) {
  return {IoCode::kError, fmt::format("{} failed: {}", what, std::strerror(err))};
}

}  // namespace

IoResult send_iov_io(int fd, iovec* iov, std::size_t iov_count, const Deadline& deadline) {
  // Without a deadline a blocking sendmsg waits for room itself (a non-blocking fd still gets
  // EAGAIN and is polled).
  const int flags = deadline ? MSG_NOSIGNAL | MSG_DONTWAIT : MSG_NOSIGNAL;
  std::size_t iov_index = 0;
  while (iov_index < iov_count) {
    msghdr msg{};
    msg.msg_iov = iov + iov_index;
    msg.msg_iovlen = std::min<std::size_t>(iov_count - iov_index, IOV_MAX);
    ssize_t n = ::sendmsg(fd, &msg, flags);
    if (n >= 0) {
      auto left = static_cast<std::size_t>(n);
      while (iov_index < iov_count && left >= iov[iov_index].iov_len) {
        left -= iov[iov_index].iov_len;
        ++iov_index;
      }
      if (iov_index < iov_count) {
        iov[iov_index].iov_base = static_cast<char*>(iov[iov_index].iov_base) + left;
        iov[iov_index].iov_len -= left;
      }
      continue;
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      int rc = wait_for(fd, POLLOUT, deadline);
      if (rc == 0) return timeout_result("writing a frame");
      if (rc < 0) return system_error("poll", errno);
      continue;
    }
    if (err == EPIPE || err == ECONNRESET) {
      return {IoCode::kClosed, fmt::format("peer closed the connection: {}", std::strerror(err))};
    }
    return system_error("send", err);
  }
  return {};
}

IoResult read_exact_io(int fd, char* data, std::size_t size, bool frame_started,
                       const Deadline& deadline, std::size_t frame_bytes_total,
                       std::size_t frame_bytes_before) {
  // Without a deadline, one blocking recv waits for the whole rest (fewer wake-ups and system
  // calls for a large frame than poll + recv per chunk); a non-blocking fd still gets EAGAIN.
  const int flags = deadline ? MSG_DONTWAIT : MSG_WAITALL;
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::recv(fd, data + done, size - done, flags);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    int err = n == 0 ? 0 : errno;
    if (n == 0 || err == ECONNRESET) {
      const bool reset = err == ECONNRESET;
      if (!frame_started && done == 0) return {IoCode::kEof, "eof", reset};
      return {IoCode::kTruncated,
              fmt::format("connection closed in the middle of a frame after {} of {} bytes",
                          frame_bytes_before + done, frame_bytes_total),
              reset};
    }
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      int rc = wait_for(fd, POLLIN, deadline);
      if (rc == 0) return timeout_result("reading a frame");
      if (rc < 0) return system_error("poll", errno);
      continue;
    }
    return system_error("recv", err);
  }
  return {};
}

void raise_send_buffer(int fd) {
  const int bytes = kSocketSendBufferBytes;
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
}

IoResult read_available_io(int fd, char* data, std::size_t size, bool wait_first,
                           const Deadline& deadline, bool frame_started,
                           std::size_t frame_bytes_total, std::size_t frame_bytes_before,
                           std::size_t& got, bool& drained) {
  bool wait = wait_first;
  for (;;) {
    if (wait) {
      const int ready = wait_readable(fd, -1, deadline);
      if (ready == 0) return timeout_result("reading a frame");
      if (ready < 0) return system_error("poll", errno);
    }
    iovec iov{data, size};
    msghdr message{};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    const ssize_t n = ::recvmsg(fd, &message, MSG_DONTWAIT);
    if (n > 0) {
      got = static_cast<std::size_t>(n);
      drained = got < size && (message.msg_flags & MSG_CTRUNC) == 0;
      return {};
    }
    const int err = n == 0 ? 0 : errno;
    if (n == 0 || err == ECONNRESET) {
      const bool reset = err == ECONNRESET;
      if (!frame_started) return {IoCode::kEof, "eof", reset};
      return {IoCode::kTruncated,
              fmt::format("connection closed in the middle of a frame after {} of {} bytes",
                          frame_bytes_before, frame_bytes_total),
              reset};
    }
    if (err == EINTR) {
      wait = false;
      continue;
    }
    if (err == EAGAIN || err == EWOULDBLOCK) {
      wait = true;
      continue;
    }
    return system_error("recvmsg", err);
  }
}

int wait_readable(int fd, int extra_fd, Deadline deadline) {
  for (;;) {
    pollfd p[2] = {{fd, POLLIN, 0}, {extra_fd, POLLIN, 0}};
    int rc = ::poll(p, extra_fd >= 0 ? 2 : 1, poll_timeout(deadline));
    if (rc > 0) {
      if (p[0].revents != 0) return 1;
      return 2;
    }
    if (rc == 0) {
      if (expired(deadline)) return 0;
      continue;
    }
    if (errno == EINTR) continue;
    return -1;
  }
}

IoResult write_frame_io(int fd, std::string_view body, Deadline deadline) {
  return write_frame_parts_io(fd, &body, 1, deadline);
}

IoResult write_frame_parts_io(int fd, const std::string_view* parts, std::size_t count,
                              Deadline deadline) {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < count; ++i) total += parts[i].size();
  if (total > UINT32_MAX) {
    return {
        IoCode::kOversize,
        fmt::format("frame of {} bytes cannot be sent: the length prefix holds at most {} bytes",
                    total, UINT32_MAX)};
  }
  unsigned char header[4];
  encode_length(static_cast<std::uint32_t>(total), header);
  // Header + the non-empty parts; a stack array for the usual few parts.
  constexpr std::size_t kStackParts = 8;
  iovec stack_iov[kStackParts];
  std::vector<iovec> heap_iov;
  iovec* iov = stack_iov;
  if (count + 1 > kStackParts) {
    heap_iov.resize(count + 1);
    iov = heap_iov.data();
  }
  std::size_t iov_count = 0;
  iov[iov_count++] = {header, 4};
  for (std::size_t i = 0; i < count; ++i) {
    if (!parts[i].empty()) iov[iov_count++] = {const_cast<char*>(parts[i].data()), parts[i].size()};
  }
  return send_iov_io(fd, iov, iov_count, deadline);
}

namespace {

// SIGPIPE blocked in this thread while it lives (sendfile has no MSG_NOSIGNAL): a write to a
// closed peer then fails with EPIPE only. A SIGPIPE raised meanwhile is taken back on the way out
// unless one was pending before.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    sigset_t pending;
    sigemptyset(&pending);
    was_pending_ = ::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
  }
  ~SigpipeBlocked() {
    if (raised_ && !was_pending_) {
      const struct timespec zero {};
      (void)::sigtimedwait(&pipe_, nullptr, &zero);
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;
  void raised() { raised_ = true; }

 private:
  sigset_t pipe_{};
  sigset_t old_{};
  bool was_pending_ = false;
  bool raised_ = false;
};

// The socket non-blocking while it lives (so a deadline holds during sendfile), as it was after.
class NonBlocking {
 public:
  explicit NonBlocking(int fd) : fd_(fd), flags_(::fcntl(fd, F_GETFL)) {
    if (flags_ >= 0 && (flags_ & O_NONBLOCK) == 0)
      set_ = ::fcntl(fd_, F_SETFL, flags_ | O_NONBLOCK) == 0;
  }
  ~NonBlocking() {
    if (set_) (void)::fcntl(fd_, F_SETFL, flags_);
  }
  NonBlocking(const NonBlocking&) = delete;
  NonBlocking& operator=(const NonBlocking&) = delete;

 private:
  int fd_;
  int flags_;
  bool set_ = false;
};

// Reads `count` bytes of `file` from `offset` and hands them to `write` in pieces (a sink without
// a socket, or a file that sendfile cannot read from).
StreamSink::FileSent copy_file_range_to(const StreamSink::Write& write, int file,
                                        std::uint64_t offset, std::uint64_t count) {
  StreamSink::FileSent sent;
  std::string buffer(std::min<std::uint64_t>(count, kStreamChunkBytes), '\0');
  while (sent.bytes < count) {
    const auto want =
        static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), count - sent.bytes));
    ssize_t n = ::pread(file, buffer.data(), want, static_cast<off_t>(offset + sent.bytes));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      sent.file_error = std::strerror(errno);
      break;
    }
    if (n == 0) break;
    if (Status st = write(std::string_view(buffer.data(), static_cast<std::size_t>(n))); !st) {
      sent.socket = st;
      break;
    }
    sent.bytes += static_cast<std::uint64_t>(n);
  }
  return sent;
}

}  // namespace

IoResult write_frame_stream_io(int fd, std::uint64_t size,
                               const std::function<Status(const StreamSink&)>& write_body,
                               Deadline deadline) {
  if (size > UINT32_MAX) {
    return {
        IoCode::kOversize,
        fmt::format("frame of {} bytes cannot be sent: the length prefix holds at most {} bytes",
                    size, UINT32_MAX)};
  }
  // Parts are gathered here, so a body of many small parts (a join's branches) costs one system
  // call per chunk, not per part; the buffer is all the memory the stream holds.
  std::string chunk;
  chunk.reserve(kStreamChunkBytes);
  chunk.resize(4);
  encode_length(static_cast<std::uint32_t>(size), reinterpret_cast<unsigned char*>(chunk.data()));
  IoResult io;
  std::uint64_t produced = 0;
  auto send_bytes = [&](std::string_view bytes) {
    iovec one{const_cast<char*>(bytes.data()), bytes.size()};
    io = send_iov_io(fd, &one, bytes.empty() ? 0 : 1, deadline);
    return io.ok();
  };
  auto flush = [&] {
    const bool ok = send_bytes(chunk);
    chunk.clear();
    return ok;
  };
  auto grew = [size] {
    return Error{fmt::format("the request body grew past the {} bytes announced", size)};
  };
  const StreamSink::Write write = [&](std::string_view part) -> Status {
    if (produced + part.size() > size) return grew();
    produced += part.size();
    if (chunk.size() + part.size() <= kStreamChunkBytes) {
      chunk.append(part);
      return Status::Ok();
    }
    if (!flush()) return Error{io.message};
    if (part.size() >= kStreamChunkBytes)
      return send_bytes(part) ? Status::Ok() : Error{io.message};
    chunk.append(part);
    return Status::Ok();
  };
  // A file range: from the page cache to the socket (sendfile), never through this process.
  const StreamSink::SendFile send_file = [&](int file, std::uint64_t offset,
                                             std::uint64_t count) -> StreamSink::FileSent {
    StreamSink::FileSent sent;
    if (produced + count > size) {
      sent.socket = grew();
      return sent;
    }
    if (!chunk.empty() && !flush()) {
      sent.socket = Error{io.message};
      return sent;
    }
    SigpipeBlocked no_sigpipe;
    NonBlocking non_blocking(fd);
    while (sent.bytes < count) {
      auto position = static_cast<off_t>(offset + sent.bytes);
      const auto want =
          static_cast<std::size_t>(std::min<std::uint64_t>(count - sent.bytes, 1u << 30));
      ssize_t n = ::sendfile(fd, file, &position, want);
      if (n > 0) {
        sent.bytes += static_cast<std::uint64_t>(n);
        produced += static_cast<std::uint64_t>(n);
        continue;
      }
      if (n == 0) break;  // the file ended
      const int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        const int rc = wait_for(fd, POLLOUT, deadline);
        if (rc > 0) continue;
        io = rc == 0 ? timeout_result("writing a frame") : system_error("poll", errno);
        sent.socket = Error{io.message};
        break;
      }
      if (err == EPIPE || err == ECONNRESET || err == ENOTCONN) {
        if (err == EPIPE) no_sigpipe.raised();
        io = {IoCode::kClosed, fmt::format("peer closed the connection: {}", std::strerror(err))};
        sent.socket = Error{io.message};
        break;
      }
      if (err == EINVAL || err == ENOSYS || err == EOPNOTSUPP) {
        // A file sendfile cannot read from: copied through a buffer instead.
        StreamSink::FileSent rest =
            copy_file_range_to(write, file, offset + sent.bytes, count - sent.bytes);
        // (`write` counted them in `produced`)
        sent.bytes += rest.bytes;
        sent.socket = rest.socket;
        sent.file_error = rest.file_error;
        break;
      }
      sent.file_error = std::strerror(err);
      break;
    }
    return sent;
  };
  Status written = write_body(StreamSink(write, send_file));
  if (!io.ok()) return io;  // the socket failed first: say how (kClosed lets the caller resend)
  if (!written) return {IoCode::kAborted, written.message()};
  if (produced != size)
    return {IoCode::kAborted,
            fmt::format("the request body was {} bytes, {} announced", produced, size)};
  flush();
  return io;
}

IoResult read_frame_io(int fd, std::string& out, std::size_t max_message_bytes, Deadline deadline) {
  return read_frame_into(
      fd,
      [&out](std::size_t size) {
        out.resize(size);
        return out.data();
      },
      max_message_bytes, deadline);
}

IoResult read_frame_into(int fd, const std::function<char*(std::size_t)>& storage,
                         std::size_t max_message_bytes, Deadline deadline) {
  unsigned char header[4];
  IoResult r = read_exact_io(fd, reinterpret_cast<char*>(header), 4, false, deadline, 4, 0);
  if (!r.ok()) return r;
  std::uint32_t size = decode_length(header);
  if (size > max_message_bytes)
    return {IoCode::kOversize, oversize_message(size, max_message_bytes)};
  char* data = storage(size);
  if (size == 0) return {};
  return read_exact_io(fd, data, size, true, deadline, 4 + static_cast<std::size_t>(size), 4);
}

}  // namespace detail

StreamSink::FileSent StreamSink::send_file(int fd, std::uint64_t offset,
                                           std::uint64_t count) const {
  if (send_file_) return send_file_(fd, offset, count);
  return detail::copy_file_range_to(write_, fd, offset, count);
}

Status write_frame(int fd, std::string_view body, int deadline_ms) {
  auto r = detail::write_frame_io(fd, body, detail::deadline_after_ms(deadline_ms));
  if (r.ok()) return Status::Ok();
  return Error{std::move(r.message)};
}

Status read_frame(int fd, std::string& out, std::size_t max_message_bytes, int deadline_ms) {
  auto r =
      detail::read_frame_io(fd, out, max_message_bytes, detail::deadline_after_ms(deadline_ms));
  if (r.ok()) return Status::Ok();
  return Error{std::move(r.message)};
}

}  // namespace asya::wire
