// Frames that carry a file descriptor (PROTOCOL §3 "Payloads passed as a file"): the descriptor
// goes as SCM_RIGHTS ancillary data with the frame's first byte, so the receiver gets it with the
// read of the frame's header.
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "wire/frame.hpp"
#include "wire/socket_io.hpp"

namespace asya::wire::detail {

namespace {

// Waits until `fd` can take bytes: 1, 0 on timeout, -1 on error (errno).
int wait_writable(int fd, const Deadline& deadline) {
  for (;;) {
    int timeout = -1;
    if (deadline) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
      if (left.count() <= 0) return 0;
      timeout = static_cast<int>(std::min<std::int64_t>(left.count(), 1'000'000));
    }
    pollfd p{fd, POLLOUT, 0};
    const int rc = ::poll(&p, 1, timeout);
    if (rc > 0) return 1;
    if (rc == 0) continue;  // the deadline is checked above
    if (errno == EINTR) continue;
    return -1;
  }
}

}  // namespace

IoResult write_frame_with_fd_io(int fd, std::string_view body, int passed_fd, Deadline deadline) {
  if (body.size() > UINT32_MAX)
    return {IoCode::kOversize,
            fmt::format("frame of {} bytes cannot be sent: the length prefix holds at most {} "
                        "bytes",
                        body.size(), UINT32_MAX)};
  unsigned char header[4];
  encode_length(static_cast<std::uint32_t>(body.size()), header);
  iovec iov[2] = {{header, 4}, {const_cast<char*>(body.data()), body.size()}};
  const std::size_t iov_count = body.empty() ? 1 : 2;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  std::memset(control, 0, sizeof control);
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = iov_count;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &passed_fd, sizeof(int));
  // The first sendmsg carries the descriptor (with at least the first byte); the rest, if the
  // socket took only part, goes as plain bytes.
  const int flags = deadline ? MSG_NOSIGNAL | MSG_DONTWAIT : MSG_NOSIGNAL;
  for (;;) {
    ssize_t n = ::sendmsg(fd, &msg, flags);
    if (n >= 0) {
      auto left = static_cast<std::size_t>(n);
      std::size_t index = 0;
      while (index < iov_count && left >= iov[index].iov_len) {
        left -= iov[index].iov_len;
        ++index;
      }
      if (index == iov_count) return {};
      iov[index].iov_base = static_cast<char*>(iov[index].iov_base) + left;
      iov[index].iov_len -= left;
      return send_iov_io(fd, iov + index, iov_count - index, deadline);
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      // Nothing was sent: wait for room, then send the whole frame with its descriptor.
      const int rc = wait_writable(fd, deadline);
      if (rc == 0) return {IoCode::kTimeout, "timed out while writing a frame"};
      if (rc < 0) return {IoCode::kError, fmt::format("poll failed: {}", std::strerror(errno))};
      continue;
    }
    if (err == EPIPE || err == ECONNRESET)
      return {IoCode::kClosed, fmt::format("peer closed the connection: {}", std::strerror(err))};
    return {IoCode::kError, fmt::format("send failed: {}", std::strerror(err))};
  }
}

IoResult read_frame_with_fds(int fd, const std::function<char*(std::size_t)>& storage,
                             std::size_t max_message_bytes, Deadline deadline,
                             std::vector<int>& fds, bool& fds_truncated) {
  fds_truncated = false;
  unsigned char header[4];
  // The descriptors come with the frame's first byte: the header is read with recvmsg (the
  // kernel stops a read at a message that carries descriptors, so this read gets them).
  std::size_t got = 0;
  while (got == 0) {
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxReceivedFds)];
    iovec iov{header, 4};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | (deadline ? MSG_DONTWAIT : 0));
    if (n > 0 || (n == 0 && msg.msg_controllen > 0)) {
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
          int received = -1;
          std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          fds.push_back(received);
        }
      }
      if ((msg.msg_flags & MSG_CTRUNC) != 0) fds_truncated = true;
    }
    if (n > 0) {
      got = static_cast<std::size_t>(n);
      break;
    }
    const int err = n == 0 ? 0 : errno;
    if (n == 0 || err == ECONNRESET) return {IoCode::kEof, "eof", err == ECONNRESET};
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      const int rc = wait_readable(fd, -1, deadline);
      if (rc == 0) return {IoCode::kTimeout, "timed out while reading a frame"};
      if (rc < 0) return {IoCode::kError, fmt::format("poll failed: {}", std::strerror(errno))};
      continue;
    }
    return {IoCode::kError, fmt::format("recvmsg failed: {}", std::strerror(err))};
  }
  if (got < 4) {
    IoResult rest =
        read_exact_io(fd, reinterpret_cast<char*>(header) + got, 4 - got, true, deadline, 4, got);
    if (!rest.ok()) return rest;
  }
  const std::uint32_t size = decode_length(header);
  if (size > max_message_bytes)
    return {IoCode::kOversize,
            fmt::format("frame of {} bytes exceeds ASYA_MAX_MESSAGE_BYTES={}: raise "
                        "ASYA_MAX_MESSAGE_BYTES on both sidecar and runtime, or send smaller "
                        "messages",
                        size, max_message_bytes)};
  char* data = storage(size);
  if (size == 0) return {};
  return read_exact_io(fd, data, size, true, deadline, 4 + static_cast<std::size_t>(size), 4);
}

}  // namespace asya::wire::detail
