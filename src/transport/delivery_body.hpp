// The bytes of one delivery (transport::Delivery::body). Either a string the transport filled
// (every transport), or bytes the transport keeps elsewhere and hands over without a copy: the
// SQLite transport maps a large body file read-only (sqlite/body_files.hpp) instead of reading it
// into fresh memory, which on a 100 MB body costs a zero-fill, a copy and 25,600 page faults.
//
// It reads like a const std::string (data, size, capacity, conversion to std::string_view), so
// consumers need not know which kind they hold. Copies share kept bytes (they never change);
// moving keeps data() where it is for kept bytes and for a heap string alike, so views into the
// body (a parsed envelope's) survive a move. Not thread-safe for writes, like a std::string.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace asya::transport {

class DeliveryBody {
 public:
  DeliveryBody() = default;
  DeliveryBody(std::string text) : text_(std::move(text)) {}  // NOLINT: reads as a string
  DeliveryBody(const char* text) : text_(text) {}             // NOLINT: reads as a string

  // Bytes kept alive by `owner` (e.g. a read-only file mapping, released with the last copy),
  // followed by `readable_after` more readable bytes that are not part of the body (a parser's
  // read-ahead padding; capacity() reports them).
  DeliveryBody(std::shared_ptr<const void> owner, std::string_view bytes,
               std::size_t readable_after)
      : owner_(std::move(owner)), kept_(bytes), readable_after_(readable_after) {}
  // The same for bytes that are [file_offset, file_offset + size) of the file open as `file_fd`,
  // a descriptor `owner` keeps open (and closes) for as long as the bytes live: the sidecar may
  // pass it to a runtime instead of the bytes (PROTOCOL §3 "Payloads passed as a file"). The
  // file must never change while the bytes live (SQLite body files are never written after
  // their row exists).
  DeliveryBody(std::shared_ptr<const void> owner, std::string_view bytes,
               std::size_t readable_after, int file_fd, std::uint64_t file_offset)
      : owner_(std::move(owner)),
        kept_(bytes),
        readable_after_(readable_after),
        file_fd_(file_fd),
        file_offset_(file_offset) {}

  DeliveryBody& operator=(std::string text) {
    release_kept();
    text_ = std::move(text);
    return *this;
  }

  const char* data() const { return owner_ ? kept_.data() : text_.data(); }
  std::size_t size() const { return owner_ ? kept_.size() : text_.size(); }
  bool empty() const { return size() == 0; }
  // Readable bytes from data() on: at least size(); more when the bytes after the body may be
  // read (a parser that reads ahead can then iterate the body in place).
  std::size_t capacity() const {
    return owner_ ? kept_.size() + readable_after_ : text_.capacity();
  }
  std::string_view view() const { return {data(), size()}; }
  operator std::string_view() const { return view(); }          // NOLINT: reads as a string
  operator std::string() const { return std::string(view()); }  // NOLINT: a copy, as a string

  // std::string_view's reading members, for code written against a string body.
  std::size_t find(std::string_view text, std::size_t from = 0) const {
    return view().find(text, from);
  }
  std::string_view substr(std::size_t from, std::size_t count = std::string_view::npos) const {
    return view().substr(from, count);
  }
  int compare(std::string_view text) const { return view().compare(text); }
  bool starts_with(std::string_view text) const { return view().starts_with(text); }
  bool ends_with(std::string_view text) const { return view().ends_with(text); }

  // Whether the bytes are kept by an owner (a mapped file) rather than held in a string.
  bool kept() const { return owner_ != nullptr; }
  // For kept bytes of a file (the constructor above): a read-only descriptor of that file, valid
  // while this body lives, and where data() starts in it; -1 otherwise.
  int file_fd() const { return owner_ ? file_fd_ : -1; }
  std::uint64_t file_offset() const { return file_offset_; }

  // The string to fill in place (a transport reading a body); drops kept bytes first.
  std::string& text() {
    release_kept();
    return text_;
  }
  void assign(const char* bytes, std::size_t size) { text().assign(bytes, size); }
  void clear() { text().clear(); }

  friend bool operator==(const DeliveryBody& body, std::string_view text) {
    return body.view() == text;
  }
  // Printing (test failure messages, logs) prints the bytes.
  template <class Stream>
  requires requires(Stream& out, std::string_view text) { out << text; }
  friend Stream& operator<<(Stream& out, const DeliveryBody& body) {
    out << body.view();
    return out;
  }
  friend std::string operator+(const DeliveryBody& body, std::string_view text) {
    std::string joined(body.view());
    joined.append(text);
    return joined;
  }
  friend std::string operator+(std::string_view text, const DeliveryBody& body) {
    std::string joined(text);
    joined.append(body.view());
    return joined;
  }

 private:
  void release_kept() {
    owner_.reset();
    kept_ = {};
    readable_after_ = 0;
    file_fd_ = -1;
    file_offset_ = 0;
  }

  std::string text_;
  std::shared_ptr<const void> owner_;
  std::string_view kept_;
  std::size_t readable_after_ = 0;
  int file_fd_ = -1;
  std::uint64_t file_offset_ = 0;
};

}  // namespace asya::transport
