#include "payload/file/verified_mark.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace asya::payload {

namespace {

std::atomic<bool> g_unsupported_for_testing{false};
std::atomic<bool> g_logged{false};

std::int64_t nanoseconds(const struct timespec& time) {
  return static_cast<std::int64_t>(time.tv_sec) * 1'000'000'000 + time.tv_nsec;
}

// One debug line per process: the store works without marks, it only hashes every time.
void log_once(const char* what, int error) {
  if (g_logged.exchange(true)) return;
  spdlog::debug(
      "payload store: objects are not marked verified ({} failed: {}); every read hashes the "
      "object (docs/protocol.md §10)",
      what, std::strerror(error));
}

bool set_attribute(int fd, std::string_view value) {
  if (g_unsupported_for_testing.load()) {
    log_once("fsetxattr", EOPNOTSUPP);
    return false;
  }
  if (::fsetxattr(fd, kVerifiedMarkAttribute, value.data(), value.size(), 0) == 0) return true;
  log_once("fsetxattr", errno);
  return false;
}

struct Mark {
  std::string_view sha256;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::uint64_t ino = 0;
  std::int64_t ctime_ns = 0;
};

// Parses "v1 sha256=<hex> size=<n> mtime_ns=<n> ino=<n> ctime_ns=<n>"; false on anything else.
bool parse(std::string_view text, Mark& mark) {
  constexpr std::string_view kVersion = "v1 ";
  if (!text.starts_with(kVersion)) return false;
  text.remove_prefix(kVersion.size());
  auto field = [&text](std::string_view name, std::string_view& value) {
    if (!text.starts_with(name) || text.size() <= name.size() || text[name.size()] != '=')
      return false;
    text.remove_prefix(name.size() + 1);
    const std::size_t end = std::min(text.find(' '), text.size());
    value = text.substr(0, end);
    text.remove_prefix(end == text.size() ? end : end + 1);
    return !value.empty();
  };
  auto number = [&field](std::string_view name, auto& out) {
    std::string_view value;
    if (!field(name, value)) return false;
    auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), out);
    return error == std::errc() && end == value.data() + value.size();
  };
  return field("sha256", mark.sha256) && number("size", mark.size) &&
         number("mtime_ns", mark.mtime_ns) && number("ino", mark.ino) &&
         number("ctime_ns", mark.ctime_ns) && text.empty();
}

}  // namespace

std::string format_verified_mark(std::string_view sha256, const struct stat& state,
                                 std::int64_t ctime_ns) {
  return fmt::format("v1 sha256={} size={} mtime_ns={} ino={} ctime_ns={}", sha256,
                     static_cast<std::uint64_t>(state.st_size), nanoseconds(state.st_mtim),
                     static_cast<std::uint64_t>(state.st_ino), ctime_ns);
}

bool has_verified_mark(int fd, const struct stat& state, std::string_view sha256,
                       std::uint64_t size_bytes) {
  if (g_unsupported_for_testing.load()) {
    log_once("fgetxattr", EOPNOTSUPP);
    return false;
  }
  char buffer[256];
  const ssize_t length = ::fgetxattr(fd, kVerifiedMarkAttribute, buffer, sizeof(buffer));
  if (length < 0) {
    if (errno != ENODATA && errno != ERANGE) log_once("fgetxattr", errno);
    return false;
  }
  Mark mark;
  if (!parse(std::string_view(buffer, static_cast<std::size_t>(length)), mark)) return false;
  const std::int64_t ctime_ns = nanoseconds(state.st_ctim);
  const std::int64_t settle_ns = std::chrono::nanoseconds(kMarkSettle).count();
  return mark.sha256 == sha256 && mark.size == size_bytes &&
         static_cast<std::uint64_t>(state.st_size) == size_bytes &&
         mark.mtime_ns == nanoseconds(state.st_mtim) &&
         mark.ino == static_cast<std::uint64_t>(state.st_ino) && ctime_ns >= mark.ctime_ns &&
         ctime_ns - mark.ctime_ns <= settle_ns;
}

bool write_verified_mark(int fd, const struct stat& verified, std::string_view sha256,
                         struct stat* after) {
  // First a placeholder (no reader trusts it), so that the change time read next is now; then
  // the mark with that change time inside. A reader accepts the change time of the second write
  // (a moment later) and nothing later than kMarkSettle after it.
  if (!set_attribute(fd, "v1 pending")) return false;
  struct stat now {};
  if (::fstat(fd, &now) != 0) return false;
  if (now.st_size != verified.st_size || now.st_ino != verified.st_ino ||
      nanoseconds(now.st_mtim) != nanoseconds(verified.st_mtim))
    return false;  // changed since the caller's bytes: the placeholder stays (never trusted)
  if (!set_attribute(fd, format_verified_mark(sha256, now, nanoseconds(now.st_ctim)))) return false;
  if (after != nullptr && ::fstat(fd, after) != 0) return false;
  return true;
}

bool mark_written_object(const std::string& path, std::string_view sha256,
                         std::uint64_t size_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // never wait on a FIFO
  if (fd < 0) return false;
  struct stat state {};
  const bool marked = ::fstat(fd, &state) == 0 && S_ISREG(state.st_mode) &&
                      static_cast<std::uint64_t>(state.st_size) == size_bytes &&
                      write_verified_mark(fd, state, sha256);
  ::close(fd);
  return marked;
}

void set_verified_marks_unsupported_for_testing(bool unsupported) {
  g_unsupported_for_testing.store(unsupported);
}

}  // namespace asya::payload
