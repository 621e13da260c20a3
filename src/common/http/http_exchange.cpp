#include "common/http/http_exchange.hpp"

#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace asya::http::detail {
namespace {

// One request and its answer over one connection.
class Exchange {
 public:
  Exchange(int fd, const Request& request, Transfer& transfer, Clock::time_point started)
      : fd_(fd),
        request_(request),
        transfer_(transfer),
        started_(started),
        deadline_(deadline_after(started, request.timeout)) {}

  // Sends the request and reads the answer into the transfer. On success, whether the
  // connection can carry another call.
  bool run(std::string_view head, std::string_view body, Failed& failed);

 private:
  // Sends the request; stops early (true, `answered_early_`) when the server answers first.
  bool send_all(std::string_view head, std::string_view body, Failed& failed);
  // Whether the server has sent bytes of an answer, without consuming them; false at the end of
  // the stream too (then `peer_closed_`).
  bool answer_waiting();
  // Reads more bytes into buffer_; false at the end of the stream (`eof_`) or on a failure.
  bool fill(Failed& failed);
  // The next line of at most `limit` bytes (without "\n" or "\r\n") of `part` (for errors:
  // "the response headers"), which may hold `part_limit` bytes in all.
  bool read_line(std::string& line, std::size_t limit, std::string_view part,
                 std::size_t part_limit, Failed& failed);
  bool read_head(Failed& failed);
  bool read_sized(unsigned long long length, Failed& failed);
  bool read_chunked(Failed& failed);
  bool read_to_close(Failed& failed);
  // Passes `data` to the transfer; false when it ended the call (stop or exception).
  bool deliver(std::string_view data);
  void fail(Failed& failed, Failure kind, std::string_view reason, std::string detail) {
    failed.kind = kind;
    failed.reason = reason;
    failed.detail = std::move(detail);
    failed.before_answer = received_ == 0;
  }
  void timed_out(Failed& failed) {
    fail(failed, Failure::kTimeout, kTimedOut,
         "Operation timed out after " + std::to_string(elapsed_ms(started_)) +
             " milliseconds with " + std::to_string(received_) + " bytes received");
  }
  void cancelled(Failed& failed) { fail(failed, Failure::kCancelled, "cancelled", ""); }

  int fd_;
  const Request& request_;
  Transfer& transfer_;
  Clock::time_point started_, deadline_;
  std::string buffer_;  // received and not yet consumed, from offset_
  std::size_t offset_ = 0;
  std::size_t received_ = 0;  // bytes of the answer so far
  bool eof_ = false;
  bool ended_by_transfer_ = false;  // stopped by on_line, or it threw
  bool keep_alive_ = true;
  bool answered_early_ = false;  // the server answered before it had the whole request
  bool peer_closed_ = false;     // ... or closed its side without a word
  int minor_version_ = 1;
};

bool Exchange::send_all(std::string_view head, std::string_view body, Failed& failed) {
  iovec parts[2] = {{const_cast<char*>(head.data()), head.size()},
                    {const_cast<char*>(body.data()), body.size()}};
  msghdr message{};
  message.msg_iov = parts;
  message.msg_iovlen = body.empty() ? 1 : 2;
  while (message.msg_iovlen > 0) {
    const ssize_t sent = ::sendmsg(fd_, &message, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        const int error = errno;
        // A server that refuses a request (413, 401) may answer and close before reading all of
        // it; that answer, not the broken pipe, is the call's outcome.
        if (answer_waiting()) return answered_early_ = true;
        fail(failed, Failure::kConnection, kSendError, std::strerror(error));
        return false;
      }
      // Waits for room to send, or for an answer that comes before the request is whole.
      const short events = peer_closed_ ? POLLOUT : POLLOUT | POLLIN;
      const Wait waited = wait_for(fd_, events, deadline_, request_.cancel);
      if (waited == Wait::kTimeout) return timed_out(failed), false;
      if (waited == Wait::kCancelled) return cancelled(failed), false;
      if (!peer_closed_ && answer_waiting()) return answered_early_ = true;
      continue;
    }
    auto left = static_cast<std::size_t>(sent);
    while (message.msg_iovlen > 0 && left >= message.msg_iov->iov_len) {
      left -= message.msg_iov->iov_len;
      ++message.msg_iov;
      --message.msg_iovlen;
    }
    if (message.msg_iovlen > 0) {
      message.msg_iov->iov_base = static_cast<char*>(message.msg_iov->iov_base) + left;
      message.msg_iov->iov_len -= left;
    }
  }
  return true;
}

bool Exchange::answer_waiting() {
  char first;
  const ssize_t got = ::recv(fd_, &first, 1, MSG_PEEK | MSG_DONTWAIT);
  if (got == 0) peer_closed_ = true;
  return got > 0;
}

bool Exchange::fill(Failed& failed) {
  // What was consumed goes first, so the buffer holds at most one line or one read beyond it.
  if (offset_ > 0) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  char chunk[16384];
  // The answer's first bytes cannot be there yet right after the request went (over loopback the
  // server has not even been scheduled): wait before the first read instead of a read that fails
  // with EAGAIN first, one system call less per request.
  bool wait_first = received_ == 0 && !answered_early_;
  for (;;) {
    if (std::exchange(wait_first, false)) {
      const Wait waited = wait_for(fd_, POLLIN, deadline_, request_.cancel);
      if (waited == Wait::kTimeout) return timed_out(failed), false;
      if (waited == Wait::kCancelled) return cancelled(failed), false;
    }
    const ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
    if (got > 0) {
      buffer_.append(chunk, static_cast<std::size_t>(got));
      received_ += static_cast<std::size_t>(got);
      return true;
    }
    if (got == 0) {
      eof_ = true;
      return false;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      fail(failed, Failure::kConnection, kReceiveError, std::strerror(errno));
      return false;
    }
    const bool answering = received_ > 0 && request_.cancel_waits_only;
    const Wait waited = wait_for(fd_, POLLIN, deadline_, answering ? nullptr : request_.cancel);
    if (waited == Wait::kTimeout) return timed_out(failed), false;
    if (waited == Wait::kCancelled) return cancelled(failed), false;
  }
}

bool Exchange::read_line(std::string& line, std::size_t limit, std::string_view part,
                         std::size_t part_limit, Failed& failed) {
  for (std::size_t searched = 0;;) {  // relative to offset_, which fill() may move
    const std::size_t newline = buffer_.find('\n', offset_ + searched);
    if (newline != std::string::npos && newline - offset_ <= limit) {
      std::size_t end = newline;
      if (end > offset_ && buffer_[end - 1] == '\r') --end;
      line.assign(buffer_, offset_, end - offset_);
      offset_ = newline + 1;
      return true;
    }
    if (buffer_.size() - offset_ > limit) {
      fail(failed, Failure::kConnection, kWeirdReply,
           std::string(part) + " exceed " + std::to_string(part_limit) + " bytes");
      return false;
    }
    searched = buffer_.size() - offset_;
    if (fill(failed)) continue;
    if (eof_) {
      if (received_ == 0)
        fail(failed, Failure::kConnection, kGotNothing, "");
      else
        fail(failed, Failure::kConnection, kPartial,
             "the connection closed inside " + std::string(part));
    }
    return false;
  }
}

bool Exchange::read_head(Failed& failed) {
  Response& response = transfer_.response;
  for (;;) {  // informational answers (1xx) come before the real one
    response.headers.clear();
    std::string line;
    std::size_t head_bytes = 0;
    if (!read_line(line, kMaxHeadBytes, "the response headers", kMaxHeadBytes, failed))
      return false;
    // "HTTP/1.1 200 OK": a version, a three-digit status, a reason that may be empty.
    const bool valid =
        line.size() >= 12 && line.starts_with("HTTP/1.") &&
        std::isdigit(static_cast<unsigned char>(line[7])) && line[8] == ' ' &&
        std::all_of(line.begin() + 9, line.begin() + 12,
                    [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) &&
        (line.size() == 12 || line[12] == ' ');
    if (!valid) {
      std::string shown = line.substr(0, 80);
      for (char& c : shown)
        if (!std::isprint(static_cast<unsigned char>(c))) c = '?';
      fail(failed, Failure::kConnection, kWeirdReply,
           "the status line is not HTTP/1.x: \"" + shown + "\"");
      return false;
    }
    minor_version_ = line[7] - '0';
    response.status = std::strtol(line.c_str() + 9, nullptr, 10);
    head_bytes += line.size() + 2;
    for (;;) {
      const std::size_t left = head_bytes < kMaxHeadBytes ? kMaxHeadBytes - head_bytes : 0;
      if (!read_line(line, left, "the response headers", kMaxHeadBytes, failed)) return false;
      head_bytes += line.size() + 2;
      if (line.empty()) break;
      const std::size_t colon = line.find(':');
      if (colon == std::string::npos || colon == 0) {
        fail(failed, Failure::kConnection, kWeirdReply,
             "a header line has no name: \"" + line.substr(0, 80) + "\"");
        return false;
      }
      response.headers.emplace_back(line.substr(0, colon),
                                    std::string(trim(std::string_view(line).substr(colon + 1))));
    }
    if (response.status >= 200 || response.status == 101) return true;
  }
}

bool Exchange::deliver(std::string_view data) {
  if (transfer_.deliver(data)) return true;
  ended_by_transfer_ = true;
  return false;
}

bool Exchange::read_sized(unsigned long long length, Failed& failed) {
  if (!transfer_.streaming()) transfer_.response.body.reserve(std::min(length, 1ULL << 20));
  while (length > 0) {
    if (offset_ == buffer_.size() && !fill(failed)) {
      if (eof_)
        fail(failed, Failure::kConnection, kPartial,
             "end of response with " + std::to_string(length) + " bytes missing");
      return false;
    }
    const std::size_t take =
        static_cast<std::size_t>(std::min<unsigned long long>(length, buffer_.size() - offset_));
    const std::string_view piece(buffer_.data() + offset_, take);
    offset_ += take;
    length -= take;
    if (!deliver(piece)) return true;
  }
  return true;
}

bool Exchange::read_chunked(Failed& failed) {
  std::string line;
  for (;;) {
    if (!read_line(line, kMaxChunkLine, "the chunk-size lines", kMaxChunkLine, failed))
      return false;
    std::string_view digits = trim(std::string_view(line).substr(0, line.find(';')));
    unsigned long long size = 0;
    const bool valid = !digits.empty() && digits.size() <= 15 &&
                       std::all_of(digits.begin(), digits.end(), [](char c) {
                         return std::isxdigit(static_cast<unsigned char>(c));
                       });
    if (valid) size = std::strtoull(std::string(digits).c_str(), nullptr, 16);
    if (!valid) {
      fail(failed, Failure::kConnection, kWeirdReply,
           "invalid chunk size \"" + line.substr(0, 40) + "\"");
      return false;
    }
    if (size == 0) break;
    if (!read_sized(size, failed)) return false;
    if (ended_by_transfer_) return true;
    if (!read_line(line, kMaxChunkLine, "the chunk-size lines", kMaxChunkLine, failed))
      return false;
    if (!line.empty()) {
      fail(failed, Failure::kConnection, kWeirdReply, "a chunk does not end with CRLF");
      return false;
    }
  }
  // Trailer fields, up to the empty line.
  for (std::size_t trailer_bytes = 0;;) {
    const std::size_t left = trailer_bytes < kMaxHeadBytes ? kMaxHeadBytes - trailer_bytes : 0;
    if (!read_line(line, left, "the trailer fields", kMaxHeadBytes, failed)) return false;
    if (line.empty()) return true;
    trailer_bytes += line.size() + 2;
  }
}

bool Exchange::read_to_close(Failed& failed) {
  keep_alive_ = false;
  for (;;) {
    if (offset_ < buffer_.size()) {
      const std::string_view piece(buffer_.data() + offset_, buffer_.size() - offset_);
      offset_ = buffer_.size();
      if (!deliver(piece)) return true;
    }
    if (!fill(failed)) return eof_;
  }
}

bool Exchange::run(std::string_view head, std::string_view body, Failed& failed) {
  if (!send_all(head, body, failed) || !read_head(failed)) return false;
  if (answered_early_) keep_alive_ = false;  // the rest of the request was never sent
  const Response& response = transfer_.response;
  const std::string connection = response.header("Connection");
  if (minor_version_ == 0 || strcasestr(connection.c_str(), "close") != nullptr)
    keep_alive_ = false;
  bool ok = true;
  const long status = response.status;
  if (request_.method == "HEAD" || status == 204 || status == 304 || status == 101) {
    if (status == 101) keep_alive_ = false;
  } else if (strcasestr(response.header("Transfer-Encoding").c_str(), "chunked") != nullptr) {
    ok = read_chunked(failed);
  } else if (const std::string length = response.header("Content-Length"); !length.empty()) {
    const bool valid = length.size() <= 18 && std::all_of(length.begin(), length.end(), [](char c) {
                         return std::isdigit(static_cast<unsigned char>(c));
                       });
    if (!valid) {
      fail(failed, Failure::kConnection, kWeirdReply,
           "invalid Content-Length \"" + length.substr(0, 40) + "\"");
      return false;
    }
    ok = read_sized(std::strtoull(length.c_str(), nullptr, 10), failed);
  } else {
    ok = read_to_close(failed);
  }
  if (!ok) return false;
  // A kept connection must hold nothing more than this answer.
  if (ended_by_transfer_ || offset_ != buffer_.size()) keep_alive_ = false;
  return keep_alive_;
}

}  // namespace

Clock::time_point deadline_after(Clock::time_point start, std::chrono::milliseconds allowed) {
  return allowed.count() > 0 ? start + allowed : Clock::time_point::max();
}

Wait wait_for(int fd, short events, Clock::time_point deadline, const std::atomic<bool>* cancel) {
  for (;;) {
    if (cancel && cancel->load()) return Wait::kCancelled;
    int step_ms = cancel ? 100 : 60000;
    if (deadline != Clock::time_point::max()) {
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return Wait::kTimeout;
      step_ms = static_cast<int>(std::min<long long>(step_ms, left));
    }
    pollfd polled{fd, events, 0};
    const int ready = ::poll(&polled, 1, step_ms);
    if (ready > 0) return Wait::kReady;
    if (ready < 0 && errno != EINTR) return Wait::kReady;  // the next read or write tells why
  }
}

long long elapsed_ms(Clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count();
}

std::string request_head(const PlainTarget& target, const Request& request, bool with_body) {
  std::string head;
  head.reserve(256 + request.headers.size() * 64);
  head += request.method;
  head += ' ';
  head += target.path;
  head += " HTTP/1.1\r\n";
  bool host = false, accept = false, content_type = false;
  for (const auto& [name, value] : request.headers) {
    // As with libcurl, a header with an empty value only takes a default one away.
    if (iequals(name, "Host")) host = true;
    if (iequals(name, "Accept")) accept = true;
    if (iequals(name, "Content-Type")) content_type = true;
    if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding")) continue;
    if (trim(value).empty()) continue;
    head += name;
    head += ": ";
    head += value;
    head += "\r\n";
  }
  if (!host) head += "Host: " + target.host_header + "\r\n";
  if (!accept) head += "Accept: */*\r\n";
  if (with_body) {
    if (!content_type) head += "Content-Type: application/x-www-form-urlencoded\r\n";
    head += "Content-Length: " + std::to_string(request.body.size()) + "\r\n";
  }
  head += "\r\n";
  return head;
}

bool exchange(int fd, const Request& request, Transfer& transfer, Clock::time_point started,
              std::string_view head, std::string_view body, Failed& failed) {
  return Exchange(fd, request, transfer, started).run(head, body, failed);
}

}  // namespace asya::http::detail
