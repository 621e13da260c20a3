// A resolved payload reference streamed from its store file to the runtime (file payload store;
// docs/protocol.md "Payload references", docs/sidecar.md): instead of reading the object whole
// into memory, checking its SHA-256 and then sending the request, the sidecar sends the envelope
// with the object's bytes in place of the reference while it reads and hashes the object in
// chunks. It never holds the payload, and each chunk is hashed while it is in the cache.
//
// The handler never sees an unverified payload: the runtime acts on a request only once its
// whole frame arrived, and the last byte of the object and the envelope's bytes after it are
// sent only after the whole object was read and its size and SHA-256 matched the reference.
// Otherwise the request is cut short (the connection is closed: the runtime sees a truncated
// frame and never calls the handler) and failure() says why, for the caller to send the envelope
// to error-end as payload_unavailable (or to nack it after a read error), as for a reference
// resolved in memory.
//
// An object whose file carries a valid verified mark (payload/file/verified_mark.hpp: written by
// the store's put() and by a reader whose hash matched, as this one marks after its hash) is not
// hashed: its bytes go from the page cache to the socket with sendfile(2), never through this
// process, and the last byte is held back until the file is seen unchanged since the mark was
// checked (a change meanwhile is a read error: the input is delivered again and hashed then).
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "payload/reference.hpp"
#include "wire/runtime_client.hpp"

namespace asya::sidecar {

class StreamedPayload {
 public:
  enum class Failure {
    kNone,
    kMismatch,   // size or SHA-256 differ from the reference: payload_unavailable
    kReadError,  // the file could not be read: the store failed, worth a retry
  };

  // Opens `path`, the file of `reference`'s object. An Error for which payload::object_unavailable
  // is true when it does not exist or may not be read by this process; another Error when it
  // cannot be opened.
  static Result<std::unique_ptr<StreamedPayload>> open(const std::filesystem::path& path,
                                                       payload::Reference reference);
  ~StreamedPayload();
  StreamedPayload(const StreamedPayload&) = delete;
  StreamedPayload& operator=(const StreamedPayload&) = delete;

  // The runtime request: `body` (the received envelope) with the object's bytes in place of
  // `payload_raw` (the reference's text, a view into `body`). Both views and this object must
  // outlive the call. Writing it again (a kept connection found closed) reads the object again.
  // The request also has the file-descriptor form (wire::FdRequest; PROTOCOL §3 "Payloads passed
  // as a file"), used on a connection whose runtime declared payload-fd: the object's descriptor
  // goes with the envelope, checked before it is sent (its verified mark, or its SHA-256 read
  // through that descriptor), and after the call (after_call) the file must show no change.
  wire::StreamedRequest request(std::string_view body, std::string_view payload_raw);

  // After a call whose request went in the file-descriptor form: the object must look as it did
  // when it was checked (size, times, inode), else a read error (the input is delivered again:
  // the runtime may have read other bytes than those checked).
  void after_fd_call();

  // After the call: whether the object failed its check or could not be read (the request was
  // then not sent completely), and the message naming the reference, as for a reference resolved
  // in memory.
  Failure failure() const { return failure_; }
  const std::string& failure_message() const { return message_; }

  // Whether `bytes` (an answer's payload) equals the object as it was verified: compared with the
  // file, read again through the descriptor kept open since (so a new object renamed over it does
  // not matter), and only while the file shows no change since the check (size, modification and
  // change times; the store never writes an object in place). False when the object was not
  // verified. Blocking.
  bool same_as(std::string_view bytes);

  const payload::Reference& reference() const { return reference_; }

  // Whether the object was sent whole and matched its reference (during the call).
  bool verified() const { return verified_; }
  // Reads `size` bytes of the object at `offset` into `out`, through the descriptor kept open;
  // true only when all of them were read and the file shows no change since it was verified (as
  // same_as). Blocking.
  bool read_verified(char* out, std::size_t size, std::uint64_t offset);

 private:
  StreamedPayload(int fd, std::filesystem::path path, payload::Reference reference);
  Status stream(std::string_view prefix, std::string_view suffix,
                const wire::StreamedRequest::Sink& sink);
  // The rest of stream() for a file whose verified mark holds (fstat `before`): sent unhashed.
  Status stream_marked(const struct stat& before, std::string_view suffix,
                       const wire::StreamedRequest::Sink& sink);
  Status fail(Failure failure, std::string message);
  // The check before the object's descriptor is passed to the runtime (FdRequest::prepare).
  Status check_for_fd();
  char* buffer();

  int fd_;
  std::filesystem::path path_;
  payload::Reference reference_;
  std::unique_ptr<char[]> buffer_;  // one chunk
  bool verified_ = false;
  struct stat verified_state_ {};
  Failure failure_ = Failure::kNone;
  std::string message_;
  wire::FdRequest fd_request_;
};

}  // namespace asya::sidecar
