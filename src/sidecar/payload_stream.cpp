#include "sidecar/payload_stream.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "payload/file/object_file.hpp"
#include "payload/file/verified_mark.hpp"
#include "payload/payload_store.hpp"
#include "payload/reference.hpp"
#include "wire/payload_fd.hpp"

namespace asya::sidecar {

namespace {

// Read, hashed and sent at a time: large enough for few system calls, small enough to stay in
// the cache between the read, the hash and the send.
constexpr std::size_t kChunkBytes = std::size_t{1} << 20;

// Reads up to `size` bytes at `offset`; fewer only at the end of the file. -1 on an error (errno).
ssize_t read_at(int fd, char* out, std::size_t size, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, out + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

bool unchanged(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec &&
         a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

struct DigestContext {
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  ~DigestContext() { EVP_MD_CTX_free(context); }
};

}  // namespace

Result<std::unique_ptr<StreamedPayload>> StreamedPayload::open(const std::filesystem::path& path,
                                                               payload::Reference reference) {
  struct stat state {};
  auto opened = payload::open_object_file(path, state);
  if (!opened) return opened.error();
  const int fd = *opened;
  (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  return std::unique_ptr<StreamedPayload>(new StreamedPayload(fd, path, std::move(reference)));
}

StreamedPayload::StreamedPayload(int fd, std::filesystem::path path, payload::Reference reference)
    : fd_(fd), path_(std::move(path)), reference_(std::move(reference)) {}

StreamedPayload::~StreamedPayload() {
  ::close(fd_);
}

char* StreamedPayload::buffer() {
  if (!buffer_) buffer_.reset(new char[kChunkBytes]);
  return buffer_.get();
}

wire::StreamedRequest StreamedPayload::request(std::string_view body,
                                               std::string_view payload_raw) {
  const auto prefix_size = static_cast<std::size_t>(payload_raw.data() - body.data());
  const std::string_view prefix = body.substr(0, prefix_size);
  const std::string_view suffix = body.substr(prefix_size + payload_raw.size());
  wire::StreamedRequest request;
  request.size = prefix.size() + reference_.size_bytes + suffix.size();
  request.write_body = [this, prefix, suffix](const wire::StreamedRequest::Sink& sink) {
    return stream(prefix, suffix, sink);
  };
  if (auto text = wire::payload_fd_request(body, payload_raw, 0, reference_.size_bytes)) {
    fd_request_.text = std::move(*text);
    fd_request_.fd = fd_;
    fd_request_.prepare = [this] { return check_for_fd(); };
    request.payload_fd = &fd_request_;
  }
  return request;
}

Status StreamedPayload::check_for_fd() {
  // As stream() checks, with nothing sent meanwhile: the runtime gets the descriptor only once
  // the object matched (its verified mark, or its SHA-256 and size, read through this same
  // descriptor, so a file renamed over the object afterwards is not the one passed).
  verified_ = false;
  failure_ = Failure::kNone;
  message_.clear();
  auto read_error = [this](const std::string& cause) {
    return fail(Failure::kReadError, fmt::format("payload {} cannot be read: payload store: {}: {}",
                                                 reference_.describe(), path_.string(), cause));
  };
  struct stat before {};
  if (::fstat(fd_, &before) != 0) return read_error(std::strerror(errno));
  const std::uint64_t size = reference_.size_bytes;
  if (static_cast<std::uint64_t>(before.st_size) == size &&
      payload::has_verified_mark(fd_, before, reference_.sha256, size)) {
    verified_ = true;
    verified_state_ = before;
    return Status::Ok();
  }
  DigestContext digest;
  if (digest.context == nullptr || EVP_DigestInit_ex(digest.context, EVP_sha256(), nullptr) != 1)
    return fail(Failure::kReadError,
                fmt::format("payload {} cannot be checked: SHA-256 is unavailable (OpenSSL)",
                            reference_.describe()));
  char* chunk = buffer();
  std::uint64_t done = 0;
  for (;;) {
    ssize_t n = read_at(fd_, chunk, kChunkBytes, done);
    if (n < 0)
      return read_error(
          fmt::format("reading failed after {} bytes: {}", done, std::strerror(errno)));
    if (n == 0) break;
    EVP_DigestUpdate(digest.context, chunk, static_cast<std::size_t>(n));
    done += static_cast<std::uint64_t>(n);
    if (done > size) break;  // longer than the reference: a mismatch
  }
  struct stat after {};
  if (::fstat(fd_, &after) != 0) return read_error(std::strerror(errno));
  unsigned char bytes[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(digest.context, bytes, &length);
  const std::string actual = payload::digest_hex(bytes, length);
  const auto file_size = static_cast<std::uint64_t>(after.st_size);
  if (done != size || file_size != size || actual != reference_.sha256)
    return fail(Failure::kMismatch,
                fmt::format("payload {} does not match its reference: the object has {} bytes{}; "
                            "it was changed or damaged in the store",
                            reference_.describe(), file_size,
                            file_size == size ? ", sha256 " + actual : std::string()));
  if (!unchanged(before, after)) return read_error("the object changed while it was checked");
  verified_ = true;
  verified_state_ = after;
  struct stat marked {};
  if (payload::write_verified_mark(fd_, before, reference_.sha256, &marked))
    verified_state_ = marked;  // the mark moved the change time
  return Status::Ok();
}

void StreamedPayload::after_fd_call() {
  if (!verified_ || failure_ != Failure::kNone) return;
  struct stat state {};
  if (::fstat(fd_, &state) == 0 && unchanged(state, verified_state_)) return;
  verified_ = false;
  (void)fail(Failure::kReadError,
             fmt::format("payload {} cannot be read: payload store: {}: the object changed while "
                         "the runtime had it (passed as a file descriptor)",
                         reference_.describe(), path_.string()));
}

Status StreamedPayload::fail(Failure failure, std::string message) {
  failure_ = failure;
  message_ = std::move(message);
  return Error{message_};
}

Status StreamedPayload::stream(std::string_view prefix, std::string_view suffix,
                               const wire::StreamedRequest::Sink& sink) {
  verified_ = false;
  failure_ = Failure::kNone;
  message_.clear();
  if (Status sent = sink(prefix); !sent) return sent;
  struct stat before {};
  if (::fstat(fd_, &before) != 0)
    return fail(Failure::kReadError,
                fmt::format("payload {} cannot be read: payload store: cannot stat {}: {}",
                            reference_.describe(), path_.string(), std::strerror(errno)));
  if (static_cast<std::uint64_t>(before.st_size) == reference_.size_bytes &&
      payload::has_verified_mark(fd_, before, reference_.sha256, reference_.size_bytes))
    return stream_marked(before, suffix, sink);
  DigestContext digest;
  if (digest.context == nullptr || EVP_DigestInit_ex(digest.context, EVP_sha256(), nullptr) != 1)
    return fail(Failure::kReadError,
                fmt::format("payload {} cannot be checked: SHA-256 is unavailable (OpenSSL)",
                            reference_.describe()));
  const std::uint64_t size = reference_.size_bytes;
  char* chunk = buffer();
  char held = 0;  // the object's last byte, sent once the object matched
  std::uint64_t done = 0;
  while (done < size) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(kChunkBytes, size - done));
    ssize_t n = read_at(fd_, chunk, want, done);
    if (n < 0)
      return fail(
          Failure::kReadError,
          fmt::format("payload {} cannot be read: payload store: reading {} failed after "
                      "{} of {} bytes: {}",
                      reference_.describe(), path_.string(), done, size, std::strerror(errno)));
    if (n == 0) break;  // shorter than the reference: reported below
    const auto got = static_cast<std::size_t>(n);
    EVP_DigestUpdate(digest.context, chunk, got);
    done += got;
    const bool last = done == size;
    if (Status sent = sink(std::string_view(chunk, last ? got - 1 : got)); !sent) return sent;
    if (last) held = chunk[got - 1];
  }
  struct stat state {};
  if (::fstat(fd_, &state) != 0)
    return fail(Failure::kReadError,
                fmt::format("payload {} cannot be read: payload store: cannot stat {}: {}",
                            reference_.describe(), path_.string(), std::strerror(errno)));
  unsigned char bytes[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(digest.context, bytes, &length);
  const std::string actual = payload::digest_hex(bytes, length);
  const auto file_size = static_cast<std::uint64_t>(state.st_size);
  if (done != size || file_size != size || actual != reference_.sha256) {
    return fail(Failure::kMismatch,
                fmt::format("payload {} does not match its reference: the object has {} bytes{}; "
                            "it was changed or damaged in the store",
                            reference_.describe(), file_size,
                            file_size == size ? ", sha256 " + actual : std::string()));
  }
  verified_ = true;
  verified_state_ = state;
  // Hashed and matched, the file unchanged while it was read: the next reader need not hash it.
  struct stat marked {};
  if (unchanged(before, state) &&
      payload::write_verified_mark(fd_, before, reference_.sha256, &marked))
    verified_state_ = marked;  // the mark moved the change time
  if (size > 0) {
    if (Status sent = sink(std::string_view(&held, 1)); !sent) return sent;
  }
  return sink(suffix);
}

Status StreamedPayload::stream_marked(const struct stat& before, std::string_view suffix,
                                      const wire::StreamedRequest::Sink& sink) {
  // The file carries a valid verified mark: its bytes go from the page cache to the socket
  // (sendfile), unhashed. The last byte is still held back until the file is seen unchanged
  // since the mark was checked; a change meanwhile is a read error (the input is delivered again
  // and then hashed), never a payload the runtime gets whole.
  const std::uint64_t size = reference_.size_bytes;
  auto read_error = [this](const std::string& cause) {
    return fail(Failure::kReadError, fmt::format("payload {} cannot be read: payload store: {}: {}",
                                                 reference_.describe(), path_.string(), cause));
  };
  char held = 0;
  if (size > 1) {
    wire::StreamSink::FileSent sent = sink.send_file(fd_, 0, size - 1);
    if (!sent.socket) return sent.socket;
    if (!sent.file_error.empty())
      return read_error(fmt::format("reading failed after {} of {} bytes: {}", sent.bytes, size,
                                    sent.file_error));
    if (sent.bytes != size - 1)
      return read_error(
          fmt::format("the object ended after {} of {} bytes while it was sent", sent.bytes, size));
  }
  if (size > 0 && read_at(fd_, &held, 1, size - 1) != 1)
    return read_error(fmt::format("reading its last byte failed: {}", std::strerror(errno)));
  struct stat after {};
  if (::fstat(fd_, &after) != 0) return read_error(std::strerror(errno));
  if (!unchanged(before, after)) return read_error("the object changed while it was sent");
  verified_ = true;
  verified_state_ = before;
  if (size > 0) {
    if (Status sent = sink(std::string_view(&held, 1)); !sent) return sent;
  }
  return sink(suffix);
}

bool StreamedPayload::read_verified(char* out, std::size_t size, std::uint64_t offset) {
  if (!verified_ || offset + size > reference_.size_bytes) return false;
  if (read_at(fd_, out, size, offset) != static_cast<ssize_t>(size)) return false;
  struct stat state {};
  return ::fstat(fd_, &state) == 0 && unchanged(state, verified_state_);
}

bool StreamedPayload::same_as(std::string_view bytes) {
  if (!verified_ || bytes.size() != reference_.size_bytes) return false;
  char* chunk = buffer();
  for (std::uint64_t done = 0; done < bytes.size();) {
    const auto want =
        static_cast<std::size_t>(std::min<std::uint64_t>(kChunkBytes, bytes.size() - done));
    if (read_at(fd_, chunk, want, done) != static_cast<ssize_t>(want)) return false;
    if (std::memcmp(chunk, bytes.data() + done, want) != 0) return false;
    done += want;
  }
  struct stat state {};
  return ::fstat(fd_, &state) == 0 && unchanged(state, verified_state_);
}

}  // namespace asya::sidecar
