// A large answer received straight into a transport's own storage, so that the message built
// from it is published without writing its bulk a second time (the SQLite transport: the
// runtime's answer lands in a body file, and the output's head and tail are written around the
// payload it holds; docs/transports.md "Answers received into a body file").
//
// The sidecar opens a spool (Transport::open_body_spool) before a large runtime call, appends the
// answer to it as it arrives, then parses contents() in place. An output whose body is given in
// parts (OutgoingMessage::parts: head, payload, tail) and whose payload lies inside contents()
// may name the spool (OutgoingMessage::spool): the transport that opened it then finishes the
// spool's file into the message's body instead of writing a new one, at most once per spool.
// Anything else (another transport, a payload outside the spool, a second output) is sent as if
// there were no spool, byte for byte the same message.
//
// Threads: one thread appends and maps; the transport's send may run on another thread after
// that (never at the same time). A spool that is not finished into a sent message removes its
// storage when the last owner drops it; a crash leaves an unnamed file the transport sweeps.
#pragma once

#include <cstddef>
#include <string_view>

#include "common/result.hpp"

namespace asya::transport {

class BodySpool {
 public:
  virtual ~BodySpool() = default;

  // Drops what was appended (a second answer on a new connection starts again).
  virtual Status restart() = 0;
  // Appends `bytes` after what was appended before. Blocks for the write (into the page cache).
  virtual Status append(std::string_view bytes) = 0;
  // Everything appended, readable in place (mapped, not copied), followed by at least 64
  // readable bytes that are not part of it (a parser's read-ahead padding). Call once, after the
  // last append; the view stays valid while the spool lives.
  virtual Result<std::string_view> contents() = 0;
  // Bytes appended so far.
  virtual std::size_t size() const = 0;
};

}  // namespace asya::transport
