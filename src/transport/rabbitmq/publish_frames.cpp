#include "transport/rabbitmq/publish_frames.hpp"

#include <amqp_framing.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/env.hpp"

namespace asya::transport::rabbitmq {

namespace {

using Clock = std::chrono::steady_clock;
// Frame header (type, channel, payload size) and the frame-end octet.
constexpr std::size_t kFrameHeader = 7;
constexpr std::size_t kFrameOverhead = kFrameHeader + 1;
// Bodies up to this size are copied next to their frames (one piece for many publishes).
constexpr std::size_t kCopyBody = 4096;
constexpr std::size_t kMaxPieces = 1024;  // IOV_MAX on Linux

void put16(char* at, std::uint16_t v) {
  at[0] = static_cast<char>(v >> 8);
  at[1] = static_cast<char>(v);
}

void put32(char* at, std::uint32_t v) {
  put16(at, static_cast<std::uint16_t>(v >> 16));
  put16(at + 2, static_cast<std::uint16_t>(v));
}

void put64(char* at, std::uint64_t v) {
  put32(at, static_cast<std::uint32_t>(v >> 32));
  put32(at + 4, static_cast<std::uint32_t>(v));
}

void frame_header(char* at, std::uint8_t type, amqp_channel_t channel, std::size_t size) {
  at[0] = static_cast<char>(type);
  put16(at + 1, channel);
  put32(at + 3, static_cast<std::uint32_t>(size));
}

}  // namespace

char* PublishFrames::grow(std::size_t size) {
  std::size_t at = meta_.size();
  meta_.resize(at + size);
  return meta_.data() + at;
}

void PublishFrames::add_meta(std::size_t offset, std::size_t size) {
  // Adjacent meta bytes extend the last piece.
  if (!pieces_.empty() && pieces_.back().external == nullptr &&
      pieces_.back().offset + pieces_.back().size == offset) {
    pieces_.back().size += size;
    return;
  }
  pieces_.push_back(Piece{nullptr, offset, size});
}

bool PublishFrames::add(amqp_channel_t channel, std::string_view exchange,
                        std::string_view routing_key, bool mandatory,
                        const amqp_basic_properties_t& properties, std::string_view body,
                        std::size_t frame_max) {
  if (frame_max <= kFrameOverhead || body.size() > frame_max - kFrameOverhead) return false;
  if (exchange.size() > 255 || routing_key.size() > 255) return false;
  const std::size_t start = meta_.size();
  auto undo = [&] {
    meta_.resize(start);
    return false;
  };
  // basic.publish: class and method ids, then its fields (rabbitmq-c's encoder).
  amqp_basic_publish_t method{};
  method.exchange = amqp_bytes_t{exchange.size(), const_cast<char*>(exchange.data())};
  method.routing_key = amqp_bytes_t{routing_key.size(), const_cast<char*>(routing_key.data())};
  method.mandatory = mandatory ? 1 : 0;
  const std::size_t method_room = 4 + 2 + 1 + exchange.size() + 1 + routing_key.size() + 1 + 16;
  grow(kFrameHeader + method_room + 1);
  char* payload = meta_.data() + start + kFrameHeader;
  put32(payload, AMQP_BASIC_PUBLISH_METHOD);
  int encoded = amqp_encode_method(AMQP_BASIC_PUBLISH_METHOD, &method,
                                   amqp_bytes_t{method_room - 4, payload + 4});
  if (encoded < 0) return undo();
  std::size_t method_size = 4 + static_cast<std::size_t>(encoded);
  frame_header(meta_.data() + start, AMQP_FRAME_METHOD, channel, method_size);
  meta_[start + kFrameHeader + method_size] = static_cast<char>(AMQP_FRAME_END);
  meta_.resize(start + kFrameHeader + method_size + 1);

  // Content header: class, weight, body size, then the property flags and values.
  const std::size_t header_at = meta_.size();
  std::size_t props_room = 256;
  while (true) {
    grow(kFrameHeader + 12 + props_room + 1);
    char* at = meta_.data() + header_at + kFrameHeader;
    put16(at, AMQP_BASIC_CLASS);
    put16(at + 2, 0);
    put64(at + 4, body.size());
    encoded =
        amqp_encode_properties(AMQP_BASIC_CLASS, const_cast<amqp_basic_properties_t*>(&properties),
                               amqp_bytes_t{props_room, at + 12});
    if (encoded >= 0) break;
    if (props_room >= frame_max) return undo();
    meta_.resize(header_at);
    props_room *= 4;  // large headers: try again with more room
  }
  std::size_t header_size = 12 + static_cast<std::size_t>(encoded);
  frame_header(meta_.data() + header_at, AMQP_FRAME_HEADER, channel, header_size);
  meta_[header_at + kFrameHeader + header_size] = static_cast<char>(AMQP_FRAME_END);
  meta_.resize(header_at + kFrameHeader + header_size + 1);

  // Body frame (rabbitmq-c sends none for an empty body, and neither does this).
  if (!body.empty()) {
    char* at = grow(kFrameHeader);
    frame_header(at, AMQP_FRAME_BODY, channel, body.size());
    if (body.size() <= kCopyBody) {
      std::memcpy(grow(body.size()), body.data(), body.size());
      *grow(1) = static_cast<char>(AMQP_FRAME_END);
      add_meta(start, meta_.size() - start);
    } else {
      add_meta(start, meta_.size() - start);
      pieces_.push_back(Piece{body.data(), 0, body.size()});
      std::size_t end = meta_.size();
      *grow(1) = static_cast<char>(AMQP_FRAME_END);
      add_meta(end, 1);
    }
  } else {
    add_meta(start, meta_.size() - start);
  }
  bytes_ += meta_.size() - start + (body.size() > kCopyBody ? body.size() : 0);
  ++count_;
  return true;
}

Status PublishFrames::write(int fd, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;  // moved on by every byte the socket takes
  std::vector<iovec> iov;
  iov.reserve(std::min(pieces_.size(), kMaxPieces));
  std::size_t next = 0;     // first piece not (entirely) written
  std::size_t skipped = 0;  // bytes of pieces_[next] already written
  while (next < pieces_.size()) {
    iov.clear();
    for (std::size_t i = next; i < pieces_.size() && iov.size() < kMaxPieces; ++i) {
      const Piece& p = pieces_[i];
      const char* base = p.external != nullptr ? p.external : meta_.data() + p.offset;
      std::size_t skip = i == next ? skipped : 0;
      iov.push_back(iovec{const_cast<char*>(base + skip), p.size - skip});
    }
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = iov.size();
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        int saved = errno;
        clear();
        if (saved == ETIMEDOUT)  // the kernel gave up (TCP_USER_TIMEOUT, dial.hpp's bound_writes)
          return Error{"writing publishes to the broker made no progress for " +
                       format_duration(timeout) + " (its socket stayed full)"};
        return Error{std::string("writing publishes to the broker failed: ") +
                     std::strerror(saved)};
      }
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        clear();
        return Error{"writing publishes to the broker made no progress for " +
                     format_duration(timeout) + " (its socket stayed full)"};
      }
      pollfd pfd{fd, POLLOUT, 0};
      ::poll(&pfd, 1, static_cast<int>(left.count()));
      continue;
    }
    deadline = Clock::now() + timeout;
    auto written = static_cast<std::size_t>(n);
    while (written > 0) {
      std::size_t rest = pieces_[next].size - skipped;
      if (written < rest) {
        skipped += written;
        break;
      }
      written -= rest;
      skipped = 0;
      ++next;
    }
  }
  clear();
  return Status::Ok();
}

void PublishFrames::clear() {
  meta_.clear();
  pieces_.clear();
  count_ = 0;
  bytes_ = 0;
}

}  // namespace asya::transport::rabbitmq
