// Publishes written to the socket by the transport itself, several per system call.
//
// rabbitmq-c writes each of a publish's three frames (basic.publish, content header, body) with a
// send() of its own, so a publish costs three system calls, and several publishes in a row three
// each (TCP_CORK only merges their segments). A PublishFrames encodes the frames of many publishes
// (with rabbitmq-c's own encoders, so the bytes are the ones amqp_basic_publish would send) into
// one buffer and writes them with one sendmsg() per 1,024 pieces. Small bodies are copied into the
// buffer; larger ones are written from where they are.
//
// Only for a plain TCP connection (TLS goes through rabbitmq-c) and a body that fits one body
// frame (add() says no otherwise: the caller publishes it with amqp_basic_publish). Bytes written
// this way bypass rabbitmq-c, which is safe because rabbitmq-c never leaves a write half done: it
// then only sends a heartbeat it would not have needed.
#pragma once

#include <amqp.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace asya::transport::rabbitmq {

class PublishFrames {
 public:
  // Appends the frames of one basic.publish of `body` on `channel`. False (nothing appended) when
  // the body does not fit one body frame of `frame_max` (the connection's) or an encoder failed.
  bool add(amqp_channel_t channel, std::string_view exchange, std::string_view routing_key,
           bool mandatory, const amqp_basic_properties_t& properties, std::string_view body,
           std::size_t frame_max);
  std::size_t count() const { return count_; }
  bool empty() const { return count_ == 0; }
  // Bytes appended (the bodies included).
  std::size_t bytes() const { return bytes_; }
  // Writes everything appended to the socket `fd` (blocking or not), then clears. Fails when the
  // socket takes nothing for `timeout` (it may take a large batch slowly). On failure part may
  // have been written: the connection is unusable.
  Status write(int fd, std::chrono::milliseconds timeout);
  void clear();

 private:
  struct Piece {
    const char* external = nullptr;  // a body written from where it is; else meta_ at offset
    std::size_t offset = 0;
    std::size_t size = 0;
  };
  // Appends `size` bytes of meta_ (grown) and returns where they start.
  char* grow(std::size_t size);
  void add_meta(std::size_t offset, std::size_t size);

  std::string meta_;  // frame headers, encoded methods and properties, small bodies
  std::vector<Piece> pieces_;
  std::size_t count_ = 0;
  std::size_t bytes_ = 0;
};

}  // namespace asya::transport::rabbitmq
