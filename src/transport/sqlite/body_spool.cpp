#include "transport/sqlite/body_spool.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "common/durable_file.hpp"
#include "common/failpoint.hpp"
#include "common/log.hpp"

namespace asya::transport::sqlite {

namespace {

constexpr std::size_t kPadding = 64;                      // readable after contents()
constexpr std::size_t kKickBytes = std::size_t{8} << 20;  // handed to the disk as they are written

std::size_t page_size() {
  return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

std::size_t round_up(std::size_t n) {
  const std::size_t page = page_size();
  return (n + page - 1) / page * page;
}

// Writes all of `bytes` at `offset`.
bool write_at(int fd, std::string_view bytes, std::size_t offset) {
  while (!bytes.empty()) {
    ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
    offset += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

Result<std::shared_ptr<SqliteBodySpool>> SqliteBodySpool::open(BodyFiles& files) {
  if (Status ready = files.ensure_directory(); !ready) return ready.error();
  std::string name = files.new_spool_name();
  const std::filesystem::path path = files.path_of(name);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Error{"creating the body file " + in_quotes(path.string()) +
                 " for an answer failed: " + errno_text(errno)};
  }
  return std::shared_ptr<SqliteBodySpool>(new SqliteBodySpool(files, std::move(name), fd));
}

SqliteBodySpool::SqliteBodySpool(BodyFiles& files, std::string name, int fd)
    : files_(files), name_(std::move(name)), fd_(fd) {}

SqliteBodySpool::~SqliteBodySpool() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_length_);
  if (fd_ >= 0) ::close(fd_);
  if (!named_) files_.discard(name_);
}

Status SqliteBodySpool::restart() {
  if (mapped_ || finished_) return Error{"the answer's body file was already used"};
  if (::ftruncate(fd_, 0) != 0) {
    return Error{"emptying the body file " + in_quotes(files_.path_of(name_).string()) +
                 " failed: " + errno_text(errno)};
  }
  size_ = 0;
  kicked_ = 0;
  return Status::Ok();
}

Status SqliteBodySpool::append(std::string_view bytes) {
  if (mapped_ || finished_) return Error{"the answer's body file was already used"};
  if (!write_at(fd_, bytes, kReserve + size_)) {
    return Error{"writing the answer to the body file " +
                 in_quotes(files_.path_of(name_).string()) + " failed: " + errno_text(errno)};
  }
  size_ += bytes.size();
  // Handed to the disk in 8 MiB steps while the rest arrives, so the fsync waits for the tail.
  if (size_ - kicked_ >= kKickBytes) {
    (void)::sync_file_range(fd_, static_cast<off_t>(kReserve + kicked_),
                            static_cast<off_t>(size_ - kicked_), SYNC_FILE_RANGE_WRITE);
    kicked_ = size_;
  }
  return Status::Ok();
}

Result<std::string_view> SqliteBodySpool::contents() {
  if (mapped_) return contents_;
  if (finished_) return Error{"the answer's body file was already used"};
  // A read-only region for the answer and its padding, the file mapped over its start (shared
  // with the page cache: nothing is copied; the bytes of the last page past the end read as
  // zeros, the padding pages are the anonymous region's).
  const std::size_t length = round_up(size_ + kPadding);
  void* region =
      ::mmap(nullptr, length, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (region == MAP_FAILED) return Error{"mapping the answer failed: " + errno_text(errno)};
  mapping_ = region;
  mapping_length_ = length;
  if (size_ > 0 && ::mmap(region, round_up(size_), PROT_READ, MAP_SHARED | MAP_FIXED | MAP_POPULATE,
                          fd_, static_cast<off_t>(kReserve)) == MAP_FAILED) {
    return Error{"mapping the answer in " + in_quotes(files_.path_of(name_).string()) +
                 " failed: " + errno_text(errno)};
  }
  mapped_ = true;
  contents_ = std::string_view(static_cast<const char*>(region), size_);
  return contents_;
}

Result<std::optional<std::string>> SqliteBodySpool::finish(
    std::span<const std::string_view> parts) {
  if (finished_ || !mapped_ || parts.size() != 3) return std::optional<std::string>();
  const std::string_view head = parts[0];
  const std::string_view payload = parts[1];
  const std::string_view tail = parts[2];
  const char* begin = contents_.data();
  if (payload.data() < begin || payload.data() + payload.size() > begin + contents_.size() ||
      head.empty() || std::isspace(static_cast<unsigned char>(head.front())))
    return std::optional<std::string>();
  const std::size_t payload_at = kReserve + static_cast<std::size_t>(payload.data() - begin);
  if (head.size() > payload_at) return std::optional<std::string>();
  finished_ = true;
  const std::string path = files_.path_of(name_).string();
  auto failed = [&](const char* step) -> Result<std::optional<std::string>> {
    return Error{std::string(step) + " of the body file " + in_quotes(path) +
                 " failed: " + errno_text(errno)};
  };
  // Spaces, the head ending where the payload starts, the tail right after it; then cut there.
  const std::size_t spaces = payload_at - head.size();
  const std::string blank(std::min(spaces, kReserve), ' ');
  for (std::size_t at = 0; at < spaces; at += blank.size()) {
    if (!write_at(fd_, std::string_view(blank).substr(0, spaces - at), at))
      return failed("writing");
  }
  if (!write_at(fd_, head, spaces) || !write_at(fd_, tail, payload_at + payload.size()))
    return failed("writing");
  if (::ftruncate(fd_, static_cast<off_t>(payload_at + payload.size() + tail.size())) != 0)
    return failed("cutting");
  if (::fsync(fd_) != 0) return failed("fsync");
  if (Status synced = fsync_directory(files_.path_of(name_).parent_path()); !synced)
    return synced.error();
  named_ = true;  // a row may name it from now on: never removed here
  // Durable and named, no row yet: a crash here leaves an orphan for the sweep.
  failpoint("sqlite.body_written");
  return std::optional<std::string>(name_);
}

std::shared_ptr<BodySpool> open_spool(BodyFiles& files, std::size_t file_body_bytes,
                                      std::size_t expected_bytes) {
  if (file_body_bytes == 0 || expected_bytes <= file_body_bytes) return nullptr;
  auto spool = SqliteBodySpool::open(files);
  if (!spool) {
    spdlog::warn("sqlite transport: {}; the answer is received into memory", spool.error().message);
    return nullptr;
  }
  return std::move(*spool);
}

Status write_message_body(BodyFiles& files, const OutgoingMessage& message,
                          std::string& file_name) {
  if (auto* spool = dynamic_cast<SqliteBodySpool*>(message.spool)) {
    auto finished = spool->finish(message.parts);
    if (finished && *finished) {
      file_name = std::move(**finished);
      return Status::Ok();
    }
    if (!finished) {
      spdlog::warn("sqlite transport: {}; writing a new body file instead",
                   finished.error().message);
    }
  }
  file_name = files.new_name();
  return files.write(file_name, message.body_parts());
}

}  // namespace asya::transport::sqlite
