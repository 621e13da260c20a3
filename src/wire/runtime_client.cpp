#include "wire/runtime_client.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

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
  return Status::Ok();
}

Status RuntimeClient::wait_ready(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::string ready_file = ready_file_for(options_.socket_path);
  std::string last_problem;
  for (;;) {
    std::error_code ec;
    if (!std::filesystem::exists(ready_file, ec)) {
      last_problem = fmt::format("ready file {} does not exist", ready_file);
    } else {
      Status s = connect_once();
      if (s.ok()) return s;
      last_problem = s.message();
    }
    if (Clock::now() >= deadline) {
      return Error{
          fmt::format("runtime at {} not ready after {} ms: {}; is the runtime running "
                      "with the same ASYA_SOCKET_PATH?",
                      options_.socket_path, timeout.count(), last_problem)};
    }
    // Polling a file and a connect has no event to wait on; check often enough to start fast.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

char* FrameBuffer::prepare(std::size_t size) {
  if (!data_ || capacity_ < size) {
    data_.reset();  // the old contents are not kept: never hold both allocations at once
    capacity_ = 0;
    size_ = 0;
    // new char[] leaves the bytes uninitialised: the caller overwrites them (a zero-fill would
    // touch every page of a large frame once more before the read does).
    data_.reset(new char[size + kPadding]);
    capacity_ = size;
  }
  size_ = size;
  std::memset(data_.get() + size, 0, kPadding);
  return data_.get();
}

void FrameBuffer::assign(std::string_view bytes) {
  char* out = prepare(bytes.size());
  if (!bytes.empty()) std::memcpy(out, bytes.data(), bytes.size());
}

void FrameBuffer::release() {
  data_.reset();
  size_ = 0;
  capacity_ = 0;
}

template <typename ReadFrame>
CallResult RuntimeClient::call_with(std::string_view request, std::chrono::milliseconds timeout,
                                    const ReadFrame& read_frame) {
  const detail::Deadline deadline = Clock::now() + timeout;
  bool reused = fd_ >= 0;
  if (!reused) {
    Status s = connect_once();
    if (!s.ok()) return {CallStatus::kUnavailable, s.message()};
  }
  for (int attempt = 0;; ++attempt) {
    // A connection opened before this call may have been closed by the runtime after its last
    // response (older runtimes serve one request per connection): retry once on a fresh one.
    const bool may_retry = reused && attempt == 0;
    auto retry = [&]() -> std::optional<CallResult> {
      Status s = connect_once();
      if (!s.ok()) return CallResult{CallStatus::kUnavailable, s.message()};
      reused = false;
      return std::nullopt;
    };

    auto w = detail::write_frame_io(fd_, request, deadline);
    if (!w.ok()) {
      if (w.code == IoCode::kClosed && may_retry) {
        if (auto failed = retry()) return *failed;
        continue;
      }
      disconnect();
      switch (w.code) {
        case IoCode::kTimeout:
          return {CallStatus::kTimeout,
                  fmt::format("runtime did not accept the request within {} ms", timeout.count())};
        case IoCode::kOversize:
          return {CallStatus::kProtocol, w.message};
        default:
          return {CallStatus::kUnavailable, fmt::format("sending the request to {} failed: {}",
                                                        options_.socket_path, w.message)};
      }
    }

    auto r = read_frame(fd_, deadline);
    if (r.ok()) return {CallStatus::kOk, {}};
    if (r.code == IoCode::kEof && may_retry) {
      if (auto failed = retry()) return *failed;
      continue;
    }
    disconnect();
    switch (r.code) {
      case IoCode::kTimeout:
        return {CallStatus::kTimeout,
                fmt::format("runtime did not answer within {} ms", timeout.count())};
      case IoCode::kEof:
        return {CallStatus::kUnavailable,
                fmt::format("runtime at {} closed the connection before answering",
                            options_.socket_path)};
      case IoCode::kOversize:
      case IoCode::kTruncated:
        return {CallStatus::kProtocol, fmt::format("bad response frame: {}", r.message)};
      default:
        return {CallStatus::kUnavailable, fmt::format("reading the response from {} failed: {}",
                                                      options_.socket_path, r.message)};
    }
  }
}

CallResult RuntimeClient::call(std::string_view request, std::string& response,
                               std::chrono::milliseconds timeout) {
  return call_with(request, timeout, [&](int fd, detail::Deadline deadline) {
    return detail::read_frame_io(fd, response, options_.max_message_bytes, deadline);
  });
}

CallResult RuntimeClient::call(std::string_view request, FrameBuffer& response,
                               std::chrono::milliseconds timeout) {
  const std::function<char*(std::size_t)> storage = [&](std::size_t size) {
    return response.prepare(size);
  };
  return call_with(request, timeout, [&](int fd, detail::Deadline deadline) {
    return detail::read_frame_into(fd, storage, options_.max_message_bytes, deadline);
  });
}

}  // namespace asya::wire
