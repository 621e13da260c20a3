#include "wire/payload_fd.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "wire/json_scan.hpp"
#include "wire/runtime_client.hpp"
#include "wire/sidecar_features.hpp"

namespace asya::wire {

namespace {

using scan::is_space;
using scan::skip_space;
using scan::skip_string;
using scan::skip_value;

constexpr std::string_view kPayloadKey = "\"payload\"";

// One top-level member of an object: its key (without quotes) and its value's text.
struct Member {
  std::string_view key;
  const char* key_begin = nullptr;  // the key's opening quote
  std::string_view value;
};

// The top-level members of `text`, an object, handed to `visit` in order; false when the scan
// does not understand the text (not an object, an unterminated string or container, a key with
// escapes: such a request is never one of ours).
template <class Visit>
bool for_each_member(std::string_view text, Visit&& visit) {
  const char* p = text.data();
  const char* end = p + text.size();
  p = skip_space(p, end);
  if (p == end || *p != '{') return false;
  p = skip_space(p + 1, end);
  while (p < end && *p == '"') {
    const char* key_begin = p;
    const char* key_end = skip_string(p, end);
    if (key_end == nullptr) return false;
    std::string_view key(p + 1, static_cast<std::size_t>(key_end - 1 - (p + 1)));
    if (key.find('\\') != std::string_view::npos) return false;
    p = skip_space(key_end, end);
    if (p == end || *p != ':') return false;
    p = skip_space(p + 1, end);
    const char* value_end = skip_value(p, end);
    if (value_end == nullptr) return false;
    visit(Member{key, key_begin, std::string_view(p, static_cast<std::size_t>(value_end - p))});
    p = skip_space(value_end, end);
    if (p < end && *p == ',') p = skip_space(p + 1, end);
  }
  return p < end && *p == '}';
}

// An unsigned integer written in plain digits (as the sidecar writes it).
std::optional<std::uint64_t> parse_unsigned(std::string_view text) {
  std::uint64_t value = 0;
  if (text.empty() || text.front() == '-' || (text.size() > 1 && text.front() == '0'))
    return std::nullopt;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

std::optional<std::string> payload_fd_request(std::string_view body, std::string_view payload_value,
                                              std::uint64_t offset, std::uint64_t length) {
  if (payload_value.data() < body.data() ||
      payload_value.data() + payload_value.size() > body.data() + body.size())
    return std::nullopt;
  // Backwards from the value: optional blanks, ':', optional blanks, "payload".
  const char* begin = body.data();
  const char* p = payload_value.data();
  while (p > begin && is_space(p[-1])) --p;
  if (p == begin || p[-1] != ':') return std::nullopt;
  --p;
  while (p > begin && is_space(p[-1])) --p;
  if (static_cast<std::size_t>(p - begin) < kPayloadKey.size()) return std::nullopt;
  const char* key = p - kPayloadKey.size();
  if (std::string_view(key, kPayloadKey.size()) != kPayloadKey) return std::nullopt;
  const std::string_view head = body.substr(0, static_cast<std::size_t>(key - begin));
  const std::string_view tail =
      body.substr(static_cast<std::size_t>(payload_value.data() + payload_value.size() - begin));
  if (head.find(kPayloadFdField) != std::string_view::npos ||
      tail.find(kPayloadFdField) != std::string_view::npos)
    return std::nullopt;
  std::string request;
  request.reserve(head.size() + tail.size() + 64);
  request.append(head);
  request += fmt::format("\"{}\":{{\"offset\":{},\"length\":{}}}", kPayloadFdField, offset, length);
  request.append(tail);
  return request;
}

bool peer_runtime_declares(int connection_fd, std::string_view socket_path,
                           std::string_view capability) {
  // The ready file has the shape of the sidecar-features file: a pid, then one line per feature.
  return peer_file_declares(connection_fd, ready_file_for(socket_path), capability);
}

Result<PayloadFdMarker> parse_payload_fd_marker(std::string_view request) {
  int markers = 0;
  bool has_payload = false;
  Member marker;
  const bool understood = for_each_member(request, [&](const Member& member) {
    if (member.key == kPayloadFdField) {
      ++markers;
      marker = member;
    } else if (member.key == "payload") {
      has_payload = true;
    }
  });
  if (!understood)
    return Error{"the request that came with a payload file descriptor is not a JSON object"};
  if (markers != 1)
    return Error{
        fmt::format("the request came with a payload file descriptor but has {} \"{}\" members "
                    "(exactly one expected)",
                    markers, kPayloadFdField)};
  if (has_payload)
    return Error{fmt::format("the request has both \"payload\" and \"{}\"", kPayloadFdField)};
  std::optional<std::uint64_t> offset;
  std::optional<std::uint64_t> length;
  int members = 0;
  bool numbers = true;
  const bool object = for_each_member(marker.value, [&](const Member& member) {
    ++members;
    auto value = parse_unsigned(member.value);
    if (!value) numbers = false;
    if (member.key == "offset") offset = value;
    if (member.key == "length") length = value;
  });
  if (!object || members != 2 || !numbers || !offset || !length)
    return Error{fmt::format(
        "\"{}\" must be {{\"offset\": unsigned integer, \"length\": unsigned integer}}, not {}",
        kPayloadFdField, marker.value.substr(0, 200))};
  PayloadFdMarker out;
  out.offset = *offset;
  out.length = *length;
  const auto marker_begin = static_cast<std::size_t>(marker.key_begin - request.data());
  const auto marker_end =
      static_cast<std::size_t>(marker.value.data() + marker.value.size() - request.data());
  out.rest.reserve(request.size());
  out.rest.append(request.substr(0, marker_begin));
  out.rest += "\"payload\":null";
  out.rest.append(request.substr(marker_end));
  return out;
}

bool looks_like_payload_fd_request(std::string_view request, std::size_t max_scanned) {
  if (request.size() > max_scanned || request.find(kPayloadFdField) == std::string_view::npos)
    return false;
  bool marker = false;
  bool payload = false;
  for_each_member(request, [&](const Member& member) {
    if (member.key == kPayloadFdField) marker = true;
    if (member.key == "payload") payload = true;
  });
  return marker && !payload;
}

Result<MappedPayload> MappedPayload::map(int fd, std::uint64_t offset, std::uint64_t length,
                                         bool populate) {
  MappedPayload out;
  out.fd_ = fd;
  struct stat info {};
  if (::fstat(fd, &info) != 0)
    return Error{
        fmt::format("fstat of the payload file descriptor failed: {}", std::strerror(errno))};
  if (!S_ISREG(info.st_mode)) return Error{"the payload file descriptor is not a regular file"};
  const auto size = static_cast<std::uint64_t>(info.st_size);
  if (offset > size || length > size - offset)
    return Error{fmt::format(
        "the payload range (offset {}, length {}) ends past the end of its file ({} bytes)", offset,
        length, size)};
  if (length == 0) return out;
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t start = offset / page * page;
  const std::uint64_t span = offset - start + length;
  if (span > SIZE_MAX) return Error{"the payload range is too large to map"};
  void* mapping = ::mmap(nullptr, static_cast<std::size_t>(span), PROT_READ,
                         MAP_SHARED | (populate ? MAP_POPULATE : 0), fd, static_cast<off_t>(start));
  if (mapping == MAP_FAILED)
    return Error{fmt::format("mapping the payload (offset {}, length {}) failed: {}", offset,
                             length, std::strerror(errno))};
  out.mapping_ = mapping;
  out.mapping_length_ = static_cast<std::size_t>(span);
  out.bytes_ = std::string_view(static_cast<const char*>(mapping) + (offset - start),
                                static_cast<std::size_t>(length));
  return out;
}

void MappedPayload::reset() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_length_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  mapping_ = nullptr;
  mapping_length_ = 0;
  bytes_ = {};
}

MappedPayload::~MappedPayload() {
  reset();
}

MappedPayload::MappedPayload(MappedPayload&& other) noexcept
    : fd_(other.fd_),
      mapping_(other.mapping_),
      mapping_length_(other.mapping_length_),
      bytes_(other.bytes_) {
  other.fd_ = -1;
  other.mapping_ = nullptr;
  other.mapping_length_ = 0;
  other.bytes_ = {};
}

MappedPayload& MappedPayload::operator=(MappedPayload&& other) noexcept {
  if (this != &other) {
    reset();
    std::swap(fd_, other.fd_);
    std::swap(mapping_, other.mapping_);
    std::swap(mapping_length_, other.mapping_length_);
    std::swap(bytes_, other.bytes_);
  }
  return *this;
}

}  // namespace asya::wire
