// Private to src/wire: frame I/O with a classified outcome, so callers (the runtime client and
// server) can tell "the peer closed before answering" from a timeout or a bad frame. The public
// read_frame/write_frame in frame.hpp are thin wrappers over these.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "wire/runtime_client.hpp"

struct iovec;

namespace asya::wire::detail {

using Clock = std::chrono::steady_clock;
// No value: wait forever.
using Deadline = std::optional<Clock::time_point>;

Deadline deadline_after_ms(int deadline_ms);

enum class IoCode {
  kOk,
  kEof,        // peer closed (EOF or ECONNRESET) before the first byte of the frame
  kClosed,     // write failed because the peer is gone (EPIPE, ECONNRESET)
  kTimeout,    // the deadline passed
  kOversize,   // announced frame larger than the limit (nothing allocated)
  kTruncated,  // peer closed in the middle of a frame
  kError,      // any other system error
  kAborted,    // a streamed frame's producer failed or produced another size than announced
};

struct IoResult {
  IoCode code = IoCode::kOk;
  std::string message;  // empty for kOk; "eof" for kEof
  // kEof/kTruncated caused by ECONNRESET. On a Unix stream socket (Linux) a read gets ECONNRESET
  // only when the peer closed while bytes we sent were still unread in its receive queue.
  bool peer_reset = false;
  bool ok() const { return code == IoCode::kOk; }
};

// Sends every byte of `iov[0..iov_count)` (the iovecs are advanced in place), MSG_NOSIGNAL;
// retries on EINTR and partial writes, polls when the socket is full.
IoResult send_iov_io(int fd, struct iovec* iov, std::size_t iov_count, const Deadline& deadline);

// Writes header + body as write_frame_io does, with `passed_fd` attached to the frame's first
// byte (SCM_RIGHTS: the peer receives a descriptor of the same open file; ours stays open, the
// caller closes it). PROTOCOL §3 "Payloads passed as a file".
IoResult write_frame_with_fd_io(int fd, std::string_view body, int passed_fd, Deadline deadline);

// read_frame_into, also receiving the descriptors that came with the frame's first bytes
// (SCM_RIGHTS, close-on-exec): appended to `fds`, which the caller then owns (also on failure).
// Descriptors beyond kMaxReceivedFds in one message are closed by the kernel and reported as
// `fds_truncated`.
inline constexpr std::size_t kMaxReceivedFds = 4;
IoResult read_frame_with_fds(int fd, const std::function<char*(std::size_t)>& storage,
                             std::size_t max_message_bytes, Deadline deadline,
                             std::vector<int>& fds, bool& fds_truncated);

// Writes header + body with one sendmsg (gather I/O, body not copied); MSG_NOSIGNAL so a closed
// peer gives EPIPE instead of SIGPIPE; retries on EINTR and partial writes.
IoResult write_frame_io(int fd, std::string_view body, Deadline deadline);
// The same for a body given as `count` parts written one after the other (gather I/O, nothing
// copied; empty parts are skipped). The header announces the parts' total size.
IoResult write_frame_parts_io(int fd, const std::string_view* parts, std::size_t count,
                              Deadline deadline);
// Writes one frame whose body is produced while it is written (StreamedRequest of
// runtime_client.hpp): the header announcing `size`, then what `write_body` hands to its sink,
// gathered into writes of up to kStreamChunkBytes (a part at least that large is written as it
// is, not copied). kAborted when write_body returned an error of its own or produced more or fewer
// than `size` bytes (the frame on the wire is then incomplete: the connection must be closed).
inline constexpr std::size_t kStreamChunkBytes = 64u << 10;
// File ranges (StreamSink::send_file) go with sendfile(2), the socket made non-blocking for the
// time so that `deadline` holds, and SIGPIPE blocked (EPIPE instead).
IoResult write_frame_stream_io(int fd, std::uint64_t size,
                               const std::function<Status(const StreamSink&)>& write_body,
                               Deadline deadline);
// Reads one frame into `out`, resizing it once to the announced size after the limit check.
IoResult read_frame_io(int fd, std::string& out, std::size_t max_message_bytes, Deadline deadline);
// The same into storage the caller provides: after the limit check, `storage(size)` returns room
// for the announced `size` bytes (not initialised: no zero-fill before the read).
IoResult read_frame_into(int fd, const std::function<char*(std::size_t)>& storage,
                         std::size_t max_message_bytes, Deadline deadline);

// Reads exactly `size` bytes of a frame of `frame_bytes_total` bytes (header included), of which
// `frame_bytes_before` were read already (so EOF is a truncation, not a clean close, when
// `frame_started`).
IoResult read_exact_io(int fd, char* data, std::size_t size, bool frame_started,
                       const Deadline& deadline, std::size_t frame_bytes_total,
                       std::size_t frame_bytes_before);

// The send buffer asked for on both ends of a sidecar-runtime connection (SO_SNDBUF). With the
// default (net.core.wmem_default, 208 KiB here) a large frame's writer fills the socket, sleeps
// until the reader drained most of it, and the two then take turns instead of copying side by side
// (docs/performance.md "runtime_rtt_1mb_p50: where the time above the raw ping-pong goes"). A
// limit, not an allocation: memory is used only by bytes written and not yet read. The kernel
// caps it at net.core.wmem_max (4 MiB on the bench machine; often 208 KiB, then nothing changes).
inline constexpr int kSocketSendBufferBytes = 4 << 20;
// Asks for kSocketSendBufferBytes on `fd`; a refusal is ignored (the default stays: slower, not
// wrong).
void raise_send_buffer(int fd);

// One read of what is waiting on `fd` into `data` (up to `size` bytes), after waiting for it first
// when `wait_first` (right after a request is written its answer has rarely arrived, so reading
// first would mostly fail with EAGAIN: one system call more). `got`: the bytes read (> 0).
// `drained`: the read left nothing waiting behind it: it took fewer bytes than `size` and no
// descriptor came with them (a Unix stream read takes every byte waiting up to its size and stops
// early only at bytes carrying descriptors, which set MSG_CTRUNC here as no room is given for
// them, or at an out-of-band mark; a runtime sends neither). EOF or ECONNRESET: kEof, or
// kTruncated when `frame_started` (then `frame_bytes_*` word the message).
IoResult read_available_io(int fd, char* data, std::size_t size, bool wait_first,
                           const Deadline& deadline, bool frame_started,
                           std::size_t frame_bytes_total, std::size_t frame_bytes_before,
                           std::size_t& got, bool& drained);

// Waits until `fd` is readable (or `extra_fd`, when >= 0, is readable). Returns 1 when fd is
// readable (or hung up), 2 when extra_fd is readable, 0 on timeout, -1 on error (errno set).
int wait_readable(int fd, int extra_fd, Deadline deadline);

}  // namespace asya::wire::detail
