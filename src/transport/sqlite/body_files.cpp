#include "transport/sqlite/body_files.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include "common/durable_file.hpp"
#include "common/failpoint.hpp"
#include "common/log.hpp"

namespace asya::transport::sqlite {

namespace {

using std::chrono::milliseconds;

constexpr std::string_view kBodyPrefix = "m-";
constexpr std::string_view kBodySuffix = ".body";
constexpr std::string_view kTmpSuffix = ".tmp";
constexpr std::string_view kSpooledSuffix = ".spooled.body";  // body_spool.hpp
constexpr std::string_view kSweptSuffix = ".swept";  // claimed by a sweep, unlinked after it
constexpr std::size_t kReadAheadPadding = 64;
// A body file at least this large is mapped (read-only, shared with the page cache) instead of
// read into fresh memory: see map_body_file. Smaller ones are read (a mapping costs two system
// calls and a kernel object per live delivery).
constexpr std::size_t kMapBodyBytes = std::size_t{1} << 20;

// Closes a file descriptor on scope exit.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

// Writes `body` durably as `directory/name`: created exclusively under its final name, fsync,
// fsync of the directory (common/durable_file, in place: no reader opens a body file before its
// row exists, so no temporary and no rename, which would cost a second journal commit). On
// failure nothing is left behind; a crash midway leaves a partial file no row names (an orphan).
Status write_body_file(const std::filesystem::path& directory, const std::string& name,
                       std::span<const std::string_view> body) {
  const std::filesystem::path final_path = directory / name;
  FileWriteOptions options;
  options.in_place = true;
  options.exclusive = true;
  Status written = write_file_atomically(final_path, body, options);
  if (!written) {
    // Only a failed directory fsync leaves the file; a row never names it, so remove it too.
    ::unlink(final_path.c_str());
    return Error{"body file: " + written.message()};
  }
  return Status::Ok();
}

// The spaces a spooled body file starts with (not part of its body: body_spool.hpp).
std::size_t leading_spaces(std::string_view bytes) {
  std::size_t n = 0;
  while (n < bytes.size() && bytes[n] == ' ') ++n;
  return n;
}

// A read-only mapping of a body file with kReadAheadPadding readable bytes after the body, and a
// descriptor of the file kept open with it (DeliveryBody::file_fd: the sidecar may pass it to a
// runtime instead of the bytes).
struct MappedBody {
  void* address = nullptr;
  std::size_t length = 0;
  int fd = -1;
  MappedBody(void* a, std::size_t l) : address(a), length(l) {}
  ~MappedBody() {
    ::munmap(address, length);
    if (fd >= 0) ::close(fd);
  }
  MappedBody(const MappedBody&) = delete;
  MappedBody& operator=(const MappedBody&) = delete;
};

// Maps the `size` bytes of `fd` read-only, its pages mapped at once (MAP_POPULATE: the body was
// usually just written, so they are in the page cache and nothing is copied or zero-filled),
// followed by kReadAheadPadding readable bytes: an anonymous region is reserved for the body and
// its padding, and the file mapped over its start (the bytes of the file's last page past its end
// read as zeros, the pages after it are the reservation's). nullopt when a mapping fails (the
// caller reads instead). Body files are never written after their row exists (created
// exclusively, unlinked or renamed when done, never truncated), so the mapping stays valid until
// it is unmapped, even after the file is removed.
std::optional<DeliveryBody> map_body_file(int fd, std::size_t size, bool spooled) {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const auto round_up = [page](std::size_t n) { return (n + page - 1) / page * page; };
  const std::size_t length = round_up(size + kReadAheadPadding);
  void* region =
      ::mmap(nullptr, length, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (region == MAP_FAILED) return std::nullopt;
  auto owner = std::make_shared<MappedBody>(region, length);
  if (::mmap(region, round_up(size), PROT_READ, MAP_PRIVATE | MAP_FIXED | MAP_POPULATE, fd, 0) ==
      MAP_FAILED)
    return std::nullopt;
  std::string_view bytes(static_cast<const char*>(region), size);
  if (spooled) bytes.remove_prefix(leading_spaces(bytes));
  // Our own descriptor for the mapping's lifetime (the caller closes the one it opened); without
  // one the bytes are still kept, only never passed as a file.
  owner->fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  const auto offset = static_cast<std::uint64_t>(bytes.data() - static_cast<const char*>(region));
  return DeliveryBody(owner, bytes, length - size, owner->fd, offset);
}

// Reads the whole file into `body` (sized from fstat; a large one mapped, else one read pass
// straight into a string), without its leading spaces when `spooled`. Returns ENOENT, and a path
// that is not a regular file (a FIFO or a directory put there: never a body, and a FIFO's open
// would block the receive forever without O_NONBLOCK), as `missing` instead of an error, which
// would fail every receive of the queue.
Status read_body_file(const std::filesystem::path& path, DeliveryBody& body, bool& missing,
                      bool spooled) {
  missing = false;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) {
      missing = true;
      return Status::Ok();
    }
    return Error{"opening the body file " + in_quotes(path.string()) +
                 " failed: " + errno_text(errno)};
  }
  FdCloser closer{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    return Error{"fstat of the body file " + in_quotes(path.string()) +
                 " failed: " + errno_text(errno)};
  }
  if (!S_ISREG(info.st_mode)) {
    missing = true;
    return Status::Ok();
  }
  const auto size = static_cast<std::size_t>(info.st_size);
  if (size >= kMapBodyBytes) {
    if (auto mapped = map_body_file(fd, size, spooled)) {
      body = std::move(*mapped);
      return Status::Ok();
    }
  }
  (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  // Spare room after the body lets a JSON parser that reads ahead (simdjson: 64 bytes) use it in
  // place instead of copying the body (the sidecar checks capacity()).
  std::string& text = body.text();
  text.clear();
  text.reserve(size + kReadAheadPadding);
  text.resize(size);
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::read(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error{"reading the body file " + in_quotes(path.string()) +
                   " failed: " + errno_text(errno)};
    }
    if (n == 0) {
      return Error{"the body file " + in_quotes(path.string()) + " ended after " +
                   std::to_string(done) + " of " + std::to_string(text.size()) + " bytes"};
    }
    done += static_cast<std::size_t>(n);
  }
  if (spooled) text.erase(0, leading_spaces(text));
  return Status::Ok();
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

std::string errno_text(int error) {
  return std::strerror(error);
}

BodyFiles::BodyFiles(const std::string& database_path) : directory_(database_path + ".bodies") {
  std::random_device random;
  std::uint64_t unique = (static_cast<std::uint64_t>(random()) << 32) ^ random() ^
                         (static_cast<std::uint64_t>(::getpid()) << 16);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(unique));
  file_prefix_ = std::string(kBodyPrefix) + hex + "-";
}

std::string BodyFiles::new_name() {
  return file_prefix_ + std::to_string(next_file_.fetch_add(1)) + std::string(kBodySuffix);
}

std::string BodyFiles::new_spool_name() {
  return file_prefix_ + std::to_string(next_file_.fetch_add(1)) + std::string(kSpooledSuffix);
}

Status BodyFiles::write(const std::string& name, std::string_view body) {
  return write(name, std::span<const std::string_view>(&body, 1));
}

Status BodyFiles::write(const std::string& name, std::span<const std::string_view> parts) {
  Status written = ensure_directory();
  if (written) written = write_body_file(directory_, name, parts);
  // Durable and named, no row yet: a crash here leaves an orphan for sweep_orphans().
  if (written) failpoint("sqlite.body_written");
  return written;
}

Status BodyFiles::read(const std::string& name, DeliveryBody& body, bool& missing) const {
  return read_body_file(directory_ / name, body, missing, ends_with(name, kSpooledSuffix));
}

void BodyFiles::discard(const std::string& name) const {
  ::unlink((directory_ / name).c_str());
}

void BodyFiles::drop_lost_row(Connection& db, std::int64_t id, std::int64_t token,
                              std::string_view queue, const std::string& name) const {
  if (!db.run(kBeginImmediate, "BEGIN IMMEDIATE")) return;  // it comes back after the lease
  bool deleted = false;
  std::string file;
  (void)delete_leased_row(db, id, token, deleted, file);
  if (!deleted || !db.run(kCommit, "COMMIT")) {
    (void)db.run(kRollback, "ROLLBACK");
    return;
  }
  spdlog::error(
      "sqlite transport: message {} of queue {} was dropped: its body file {} is missing (or "
      "is not a regular file)",
      id, std::string(queue), path_of(name).string());
}

void BodyFiles::remove(const std::string& name) const {
  std::filesystem::path path = directory_ / name;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn(
        "sqlite transport: removing the body file {} failed: {} (the orphan sweep "
        "retries later)",
        path.string(), errno_text(errno));
  }
}

Status BodyFiles::ensure_directory() {
  std::error_code ec;
  if (std::filesystem::is_directory(directory_, ec)) return Status::Ok();
  bool created = std::filesystem::create_directory(directory_, ec);
  if (ec && !std::filesystem::is_directory(directory_)) {
    return Error{"creating the body file directory " + in_quotes(directory_.string()) +
                 " failed: " + ec.message()};
  }
  if (created) {
    std::filesystem::path parent = directory_.parent_path();
    return fsync_directory(parent.empty() ? std::filesystem::path(".") : parent);
  }
  return Status::Ok();
}

void BodyFiles::maybe_sweep(ConnectionPool& pool) {
  std::int64_t now = now_ms();
  std::int64_t last = last_sweep_ms_.load();
  if (now - last < std::chrono::duration_cast<milliseconds>(kSweepInterval).count()) return;
  if (!last_sweep_ms_.compare_exchange_strong(last, now)) return;
  auto c = pool.acquire();
  if (c) sweep_orphans(c->connection());
}

void BodyFiles::swept_now() {
  last_sweep_ms_ = now_ms();
}

// Removes body files that no row names and that are older than kOrphanAge: `.tmp` files of a
// sender that crashed while writing, and bodies whose sender crashed before inserting the row
// or whose acker crashed after deleting it; and `.swept` files, claimed by a sweep that crashed
// before unlinking them. Whether a row names a file is checked under the write lock, the same
// lock send() holds while it checks its file is there and inserts the row, and the file is
// renamed away under that lock, so a file is never removed while its row is (or is about to be)
// committed; the unlinks run after the commit.
void BodyFiles::sweep_orphans(Connection& db) {
  std::error_code ec;
  std::filesystem::directory_iterator it(directory_, ec);
  if (ec) return;  // no body file was ever written next to this database
  auto cutoff = std::filesystem::file_time_type::clock::now() - kOrphanAge;
  std::vector<std::string> bodies;
  std::vector<std::filesystem::path> unlink_now;  // old .tmp files and .swept leftovers
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!name.starts_with(kBodyPrefix)) continue;
    if (ends_with(name, std::string(kBodySuffix) + std::string(kSweptSuffix))) {
      unlink_now.push_back(it->path());  // claimed already: no row can name it
      continue;
    }
    bool tmp = ends_with(name, std::string(kBodySuffix) + std::string(kTmpSuffix));
    if (!tmp && !ends_with(name, kBodySuffix)) continue;
    std::error_code time_ec;
    auto written = std::filesystem::last_write_time(it->path(), time_ec);
    if (time_ec || written > cutoff) continue;
    if (tmp) {
      unlink_now.push_back(it->path());
    } else {
      bodies.push_back(std::move(name));
    }
  }
  std::size_t removed = remove_claimed(unlink_now);
  removed += remove_claimed(claim_orphans(db, bodies));
  if (removed > 0) {
    spdlog::info("sqlite transport: removed {} orphaned body file(s) from {}", removed,
                 directory_.string());
  }
}

std::vector<std::filesystem::path> BodyFiles::claim_orphans(
    Connection& db, const std::vector<std::string>& names) const {
  std::vector<std::filesystem::path> claimed;
  for (std::size_t start = 0; start < names.size(); start += kSweepBatch) {
    if (!db.run(kBeginImmediate, "BEGIN IMMEDIATE")) break;
    bool failed = false;
    for (std::size_t i = start; i < std::min(names.size(), start + kSweepBatch); ++i) {
      auto s = db.statement(kFileReferenced);
      if (!s) {
        failed = true;
        break;
      }
      ResetOnExit reset{*s};
      bind_text(*s, 1, names[i]);
      if (sqlite3_step(*s) != SQLITE_DONE) continue;  // named by a row (or the check failed)
      std::filesystem::path from = directory_ / names[i];
      std::filesystem::path to = directory_ / (names[i] + std::string(kSweptSuffix));
      // A rename only changes the directory entry: quick, whatever the file's size.
      if (::rename(from.c_str(), to.c_str()) == 0) claimed.push_back(std::move(to));
    }
    // A failed COMMIT rolls nothing back that matters: the renamed files were unnamed anyway.
    if (!db.run(kCommit, "COMMIT")) (void)db.run(kRollback, "ROLLBACK");
    if (failed) break;
  }
  return claimed;
}

std::size_t BodyFiles::remove_claimed(const std::vector<std::filesystem::path>& claimed) const {
  std::size_t removed = 0;
  for (const auto& path : claimed) {
    if (::unlink(path.c_str()) == 0) ++removed;
  }
  return removed;
}

}  // namespace asya::transport::sqlite
