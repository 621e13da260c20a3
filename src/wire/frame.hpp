// Socket framing (PROTOCOL §3): a 4-byte unsigned big-endian length N, then N bytes of JSON.
// Used by both ends: the sidecar's runtime client and the C++ runtime server.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace asya::wire {

inline constexpr std::size_t kDefaultMaxMessageBytes = 256u << 20;  // 256 MiB

// Encodes the 4-byte big-endian length prefix for a body of `size` bytes.
void encode_length(std::uint32_t size, unsigned char out[4]);
std::uint32_t decode_length(const unsigned char in[4]);

// Incremental decoder for a byte stream. Feed it whatever arrived; it yields complete frames.
// A frame announcing more than `max_message_bytes` is an error ("frame of N bytes exceeds
// ASYA_MAX_MESSAGE_BYTES=M") raised as soon as the 4-byte header is seen: the announced size is
// never allocated. After an error the decoder must be discarded (close the connection).
class FrameDecoder {
 public:
  explicit FrameDecoder(std::size_t max_message_bytes = kDefaultMaxMessageBytes);

  // Appends bytes. Returns an error for an oversize frame.
  Status feed(std::string_view bytes);
  // Moves the next complete frame body into `out` and returns true, or returns false when no
  // complete frame is buffered.
  bool next(std::string& out);
  // Bytes buffered that do not yet form a complete frame.
  std::size_t pending_bytes() const;

 private:
  std::size_t max_message_bytes_;
  std::string buffer_;
  std::size_t read_offset_ = 0;
};

// Blocking helpers on a connected stream socket file descriptor. They retry on EINTR and partial
// transfers. `deadline_ms` < 0 waits forever; otherwise the whole operation must finish within
// that many milliseconds from the call or it fails with a message containing "timed out".
// read_frame: EOF before the first header byte gives an Error whose message is exactly "eof".
Status write_frame(int fd, std::string_view body, int deadline_ms = -1);
// Reads one frame into `out` (reusing its capacity). Refuses frames over `max_message_bytes`
// without allocating them.
Status read_frame(int fd, std::string& out, std::size_t max_message_bytes, int deadline_ms = -1);

}  // namespace asya::wire
