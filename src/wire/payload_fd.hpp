// Payloads passed to the runtime as a file descriptor (PROTOCOL §3 "Payloads passed as a file"):
// when a request's payload lives in a file the sidecar holds (a payload store object), and the
// runtime on the connection declared it takes that form (a line `payload-fd` in its ready file,
// whose first line is its pid), the sidecar writes the envelope with the payload's member
// `"payload": P` replaced by `"payload_fd": {"offset": O, "length": N}` and attaches a read-only
// descriptor of the file to the frame's first byte (SCM_RIGHTS). The runtime maps bytes
// [O, O + N) of it read-only and gives the handler a view of them: nothing of the payload is
// copied in user space or through the socket.
//
// This header holds what both sides share: the names, building the request (sidecar), finding
// and checking the marker and mapping the range (runtime). Pure functions except
// peer_runtime_declares() and MappedPayload.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace asya::wire {

// The ready-file line of a runtime that takes payloads as file descriptors.
inline constexpr std::string_view kPayloadFdCapability = "payload-fd";
// The envelope member that replaces "payload" in such a request.
inline constexpr std::string_view kPayloadFdField = "payload_fd";

// Sidecar side. The request text for `body` (an envelope) whose payload value is `payload_value`
// (a view into `body`): the member `"payload": <value>` replaced by
// `"payload_fd":{"offset":<offset>,"length":<length>}`, everything else byte for byte. nullopt
// when the form cannot be used for this envelope: the key before the value is not written plainly
// as "payload" (escapes), or the envelope's other bytes contain "payload_fd" (an unknown member
// of that name would be ambiguous; such envelopes keep the bytes form).
std::optional<std::string> payload_fd_request(std::string_view body, std::string_view payload_value,
                                              std::uint64_t offset, std::uint64_t length);

// Sidecar side: whether the runtime that accepted `connection_fd` (a connected Unix socket)
// declared `capability` in the ready file next to `socket_path`: the file's first line is the
// pid of the connection's peer (SO_PEERCRED; a peer pid of 0, not visible from this pid
// namespace, trusts the file as it is) and a later line is exactly `capability`. False when the
// file is missing, unreadable, names another pid (a stale file of an earlier runtime), or the
// credentials cannot be read. Blocking (reads a small file): once per connection.
bool peer_runtime_declares(int connection_fd, std::string_view socket_path,
                           std::string_view capability);

// Runtime side: what the marker of a request said.
struct PayloadFdMarker {
  // The request with `"payload":null` in place of the marker member: the envelope as the
  // ordinary checks read it (the payload itself is the mapped range).
  std::string rest;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

// Finds the top-level member "payload_fd" of `request` and reads it: an object with exactly the
// unsigned integers "offset" and "length". An error message (for a msg_parsing_error) when the
// request is not an object the scan understands, has no such member or several, also has a
// "payload" member, or the marker is malformed. `request` is not otherwise validated here.
Result<PayloadFdMarker> parse_payload_fd_marker(std::string_view request);

// Whether `request` (a frame that came without a descriptor) has a top-level member
// "payload_fd" and none "payload": a request meant to come with a descriptor that did not.
// Only frames of at most `max_scanned` bytes are looked at (false otherwise).
bool looks_like_payload_fd_request(std::string_view request, std::size_t max_scanned = 64u << 10);

// Runtime side: bytes [offset, offset + length) of a file descriptor, mapped read-only. Owns the
// descriptor (closed, and the mapping unmapped, on destruction). Move-only.
class MappedPayload {
 public:
  MappedPayload() = default;
  // Maps the range of `fd` (taken over in every case: closed on failure too). Fails, with a
  // message naming the numbers, when fstat fails, the descriptor is not a regular file, the range
  // ends past the file's end, or mmap fails. A length of 0 maps nothing. `populate`: map all
  // pages at once (MAP_POPULATE) rather than on first touch.
  static Result<MappedPayload> map(int fd, std::uint64_t offset, std::uint64_t length,
                                   bool populate);
  ~MappedPayload();
  MappedPayload(MappedPayload&& other) noexcept;
  MappedPayload& operator=(MappedPayload&& other) noexcept;
  MappedPayload(const MappedPayload&) = delete;
  MappedPayload& operator=(const MappedPayload&) = delete;

  std::string_view bytes() const { return bytes_; }

 private:
  void reset();
  int fd_ = -1;
  void* mapping_ = nullptr;
  std::size_t mapping_length_ = 0;
  std::string_view bytes_;
};

}  // namespace asya::wire
