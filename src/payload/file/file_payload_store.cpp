// The local directory payload store: ASYA_PAYLOAD_STORE=file:///dir keeps each object as the file
// <dir>/<key>, written durably by common/durable_file (temporary file, fsync, rename, directory
// fsync), so a reader never sees a partial object and a put survives a crash once it returned.
// Temporaries are written in <dir>/tmp/ (same file system, so the rename is atomic); a put cut
// short by a crash leaves one there, listed under "tmp/" so the sweep removes it once old.
// Objects (objects/<sha256>) carry a verified mark once written or hashed (verified_mark.hpp).
#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <thread>
#include <utility>

#include "common/durable_file.hpp"
#include "common/failpoint.hpp"
#include "payload/file/object_file.hpp"
#include "payload/file/verified_mark.hpp"
#include "payload/payload_store.hpp"
#include "payload/reference.hpp"

namespace asya::payload {
namespace {

namespace fs = std::filesystem;

// Numbers the temporaries of the process (with its pid in their names): one counter for every
// store of the process, so two stores on one directory never pick the same name.
std::atomic<std::uint64_t> temporary_counter{0};

class FilePayloadStore : public PayloadStore {
 public:
  explicit FilePayloadStore(fs::path dir) : dir_(std::move(dir)) {}

  Status put(std::string_view key, std::string_view bytes) override {
    return write(key, bytes, /*durable=*/true);
  }

  // Written atomically, without the two fsyncs: a record a machine crash may lose (see the
  // interface). On a disk busy with large objects each fsync of a small file may wait for a
  // journal commit that flushes them (tens of ms under load), so these stay off that path.
  Status put_record(std::string_view key, std::string_view bytes) override {
    return write(key, bytes, /*durable=*/false);
  }

  Status write(std::string_view key, std::string_view bytes, bool durable) {
    fs::path final_path = dir_ / fs::path(key);
    std::error_code ec;
    fs::create_directories(final_path.parent_path(), ec);
    if (ec)
      return Error{fmt::format("payload store: cannot create directory {}: {}",
                               final_path.parent_path().string(), ec.message())};
    fs::create_directories(dir_ / "tmp", ec);
    FileWriteOptions options;
    options.temporary_path = dir_ / "tmp" /
                             fmt::format("{}.{}.{}.tmp", final_path.filename().string(), ::getpid(),
                                         temporary_counter.fetch_add(1));
    if (key.starts_with("objects/")) options.failpoint = "payload.file_before_rename";
    options.durable = durable;
    Status written = write_file_atomically(final_path, bytes, options);
    if (!written && !fs::is_directory(final_path.parent_path(), ec)) {
      // A sweep removed the (then empty) directory between create_directories and the rename.
      fs::create_directories(final_path.parent_path(), ec);
      written = write_file_atomically(final_path, bytes, options);
    }
    if (!written) return Error{"payload store: " + written.message()};
    mark_written(key, final_path, bytes.size());
    return Status::Ok();
  }

  Result<std::string> put_object(std::string_view bytes,
                                 const BeforeVisible& before_visible) override;
  std::unique_ptr<PendingObject> begin_object(std::string_view bytes) override;

  Status read(std::string_view key, std::string& out) override {
    fs::path path = dir_ / fs::path(key);
    struct stat st {};
    auto fd = open_object_file(path, st);
    if (!fd) return fd.error();
    Status read_status = read_whole(*fd, path, st, out);
    ::close(*fd);
    return read_status;
  }

  Result<bool> read_checked(std::string_view key, std::string_view sha256, std::uint64_t size_bytes,
                            std::string& out) override {
    fs::path path = dir_ / fs::path(key);
    struct stat st {};
    auto fd = open_object_file(path, st);
    if (!fd) return fd.error();
    bool marked = has_verified_mark(*fd, st, sha256, size_bytes);
    const std::size_t start = out.size();
    Status read_status = read_whole(*fd, path, st, out);
    // Trusted only if nothing changed the file while it was read either.
    struct stat after {};
    if (marked &&
        (::fstat(*fd, &after) != 0 || after.st_size != st.st_size ||
         after.st_mtim.tv_sec != st.st_mtim.tv_sec || after.st_mtim.tv_nsec != st.st_mtim.tv_nsec ||
         after.st_ctim.tv_sec != st.st_ctim.tv_sec || after.st_ctim.tv_nsec != st.st_ctim.tv_nsec))
      marked = false;
    bool matched = false;
    if (read_status) {
      const std::string_view bytes = std::string_view(out).substr(start);
      matched = marked || (bytes.size() == size_bytes && sha256_hex(bytes) == sha256);
      if (matched && !marked) (void)write_verified_mark(*fd, st, sha256);
    }
    ::close(*fd);
    if (!read_status) return read_status.error();
    return matched;
  }

  Result<bool> exists(std::string_view key) override {
    std::error_code ec;
    bool found = fs::is_regular_file(dir_ / fs::path(key), ec);
    if (ec && ec != std::errc::no_such_file_or_directory)
      return Error{fmt::format("payload store: cannot check {}: {}",
                               (dir_ / fs::path(key)).string(), ec.message())};
    return found;
  }

  Status remove(std::string_view key) override {
    std::error_code ec;
    fs::path path = dir_ / fs::path(key);
    fs::remove(path, ec);
    if (ec && ec != std::errc::no_such_file_or_directory)
      return Error{fmt::format("payload store: cannot remove {}: {}", path.string(), ec.message())};
    // Leave no empty directory behind (holds/<sha>/ once its last hold is gone); a directory that
    // another writer just filled is not removed (remove fails on a non-empty directory).
    // (put() recreates a directory removed under it.)
    fs::path parent = path.parent_path();
    if (parent.parent_path() != dir_ && parent != dir_ && fs::is_empty(parent, ec) && !ec)
      fs::remove(parent, ec);
    return Status::Ok();
  }

  Result<std::vector<StoredObject>> list(std::string_view prefix) override {
    std::vector<StoredObject> out;
    // Walk the deepest directory the prefix names completely.
    std::string_view dir_part =
        prefix.substr(0, prefix.rfind('/') == std::string_view::npos ? 0 : prefix.rfind('/') + 1);
    fs::path root = dir_ / fs::path(dir_part);
    std::error_code ec;
    if (!fs::exists(root, ec)) return out;
    for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      std::string key = fs::relative(it->path(), dir_, ec).generic_string();
      if (ec || !key.starts_with(prefix)) continue;
      struct stat st {};
      if (::stat(it->path().c_str(), &st) != 0) continue;  // removed meanwhile
      StoredObject object;
      object.key = std::move(key);
      object.size_bytes = static_cast<std::uint64_t>(st.st_size);
      object.modified = std::chrono::system_clock::time_point(
          std::chrono::duration_cast<std::chrono::system_clock::duration>(
              std::chrono::seconds(st.st_mtim.tv_sec) +
              std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
      out.push_back(std::move(object));
    }
    if (ec && ec != std::errc::no_such_file_or_directory)
      return Error{fmt::format("payload store: cannot list {}: {}", root.string(), ec.message())};
    return out;
  }

  std::string url() const override { return "file://" + dir_.string(); }

  std::optional<fs::path> local_path(std::string_view key) const override {
    return dir_ / fs::path(key);
  }

 private:
  // Appends the file's st.st_size bytes to `out` (nothing appended on an error).
  static Status read_whole(int fd, const fs::path& path, const struct stat& st, std::string& out) {
    const std::size_t start = out.size();
    const auto size = static_cast<std::size_t>(st.st_size);
    out.resize(start + size);
    std::size_t done = 0;
    while (done < size) {
      ssize_t n = ::read(fd, out.data() + start + done, size - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int err = n < 0 ? errno : EIO;
        out.resize(start);
        return Error{fmt::format("payload store: reading {} failed after {} of {} bytes: {}",
                                 path.string(), done, size,
                                 n == 0 ? "unexpected end of file" : std::strerror(err))};
      }
      done += static_cast<std::size_t>(n);
    }
    return Status::Ok();
  }

  // An object just written (objects/<sha256>: the caller computed the digest of these bytes)
  // gets its verified mark, so its readers need not hash it. Best effort.
  static void mark_written(std::string_view key, const fs::path& path, std::size_t size) {
    constexpr std::string_view kObjects = "objects/";
    if (!key.starts_with(kObjects)) return;
    const std::string_view sha256 = key.substr(kObjects.size());
    if (sha256.size() != 64 ||
        sha256.find_first_not_of("0123456789abcdef") != std::string_view::npos)
      return;
    (void)mark_written_object(path.string(), sha256, size);
  }

  fs::path dir_;
};

// Objects at least this large are hashed on a second thread while they are written (below, the
// thread costs more than it saves).
constexpr std::size_t kHashWhileWritingBytes = std::size_t{1} << 20;

// An object of FilePayloadStore written ahead (begin_object; put_object uses it too). A writer
// thread writes the bytes to the temporary in 8 MiB chunks, each handed to the disk as soon as it
// is written (sync_file_range), then fsyncs it; a hasher thread hashes them meanwhile (one pass
// over memory each, at the same time). commit() waits for the digest, runs `before_visible` (the
// hold: a small durable put, while the writer may still write), waits for the writer, then renames
// the temporary to objects/<digest> (the hold is durable before the object is visible) and
// fsyncs the directory once. A crash before the rename leaves the temporary in tmp/ (swept once
// old); an abandoned or failed object removes it. Two writers of equal bytes write their own
// temporaries and rename them over one another: the object is whole either way.
class FilePendingObject final : public PendingObject {
 public:
  FilePendingObject(fs::path objects, fs::path temporary, int fd, std::string_view bytes)
      : objects_(std::move(objects)), temporary_(std::move(temporary)), fd_(fd), bytes_(bytes) {}

  // Starts the two threads; throws std::system_error when they cannot be had (nothing runs then).
  void start() {
    writer_ = std::thread([this] { write(); });
    try {
      hasher_ = std::thread([this] { hash(); });
    } catch (const std::system_error&) {
      cancelled_ = true;
      writer_.join();
      throw;
    }
  }

  ~FilePendingObject() override {
    cancelled_ = true;
    if (hasher_.joinable()) hasher_.join();
    if (writer_.joinable()) writer_.join();
    if (fd_ >= 0) ::close(fd_);
    if (!renamed_) ::unlink(temporary_.c_str());
  }

  Result<std::string> commit(const BeforeVisible& before_visible) override {
    hasher_.join();
    Status visible = before_visible(sha256_);
    if (!visible) cancelled_ = true;  // nothing will be published: stop writing
    writer_.join();
    // The digest (and the hold) first: a crash at the failpoint leaves this temporary only.
    if (written_ && visible) failpoint("payload.file_before_rename");
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0 && written_)
      written_ =
          Error{fmt::format("closing {} failed: {}", temporary_.string(), std::strerror(errno))};
    if (!visible) return visible.error();
    if (!written_) return Error{"payload store: " + written_.message()};
    const fs::path final_path = objects_ / sha256_;
    if (::rename(temporary_.c_str(), final_path.c_str()) != 0)
      return Error{fmt::format("payload store: renaming {} to {} failed: {}", temporary_.string(),
                               final_path.string(), std::strerror(errno))};
    renamed_ = true;
    if (Status synced = fsync_directory(objects_); !synced)
      return Error{"payload store: " + synced.message()};
    // The digest of exactly the bytes written: readers need not hash the object again.
    (void)mark_written_object(final_path.string(), sha256_, bytes_.size());
    return sha256_;
  }

 private:
  static constexpr std::size_t kChunk = std::size_t{8} << 20;

  void hash() {
    EVP_MD_CTX* context = EVP_MD_CTX_new();
    if (context == nullptr || EVP_DigestInit_ex(context, EVP_sha256(), nullptr) != 1) {
      EVP_MD_CTX_free(context);
      sha256_ = sha256_hex(bytes_);
      return;
    }
    for (std::size_t done = 0; done < bytes_.size() && !cancelled_;) {
      const std::size_t take = std::min(kChunk, bytes_.size() - done);
      EVP_DigestUpdate(context, bytes_.data() + done, take);
      done += take;
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(context, digest, &length);
    EVP_MD_CTX_free(context);
    sha256_ = digest_hex(digest, length);
  }

  void write() {
    for (std::size_t done = 0; done < bytes_.size();) {
      if (cancelled_) {
        written_ = Error{"abandoned"};
        return;
      }
      const std::string_view chunk = bytes_.substr(done, kChunk);
      written_ = write_parts(fd_, std::span<const std::string_view>(&chunk, 1),
                             /*start_writeback=*/false, temporary_);
      if (!written_) return;
      // Handed to the disk now, so that the fsync waits for the tail only.
      (void)::sync_file_range(fd_, static_cast<off_t>(done), static_cast<off_t>(chunk.size()),
                              SYNC_FILE_RANGE_WRITE);
      done += chunk.size();
    }
    if (!cancelled_ && ::fsync(fd_) != 0)
      written_ =
          Error{fmt::format("fsync of {} failed: {}", temporary_.string(), std::strerror(errno))};
  }

  const fs::path objects_;
  const fs::path temporary_;
  int fd_;
  const std::string_view bytes_;
  std::atomic<bool> cancelled_{false};
  std::string sha256_;  // the hasher's, read after joining it
  Status written_;      // the writer's, read after joining it
  bool renamed_ = false;
  std::thread writer_;
  std::thread hasher_;
};

std::unique_ptr<PendingObject> FilePayloadStore::begin_object(std::string_view bytes) {
  fs::path objects = dir_ / "objects";
  std::error_code ec;
  fs::create_directories(objects, ec);
  if (!ec) fs::create_directories(dir_ / "tmp", ec);
  if (ec) return nullptr;  // put_object then says why
  fs::path temporary =
      dir_ / "tmp" / fmt::format("object.{}.{}.tmp", ::getpid(), temporary_counter.fetch_add(1));
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return nullptr;
  auto pending =
      std::make_unique<FilePendingObject>(std::move(objects), std::move(temporary), fd, bytes);
  try {
    pending->start();
  } catch (const std::system_error&) {  // no thread to be had: the caller writes it in one go
    return nullptr;
  }
  return pending;
}

Result<std::string> FilePayloadStore::put_object(std::string_view bytes,
                                                 const BeforeVisible& before_visible) {
  std::unique_ptr<PendingObject> pending;
  if (bytes.size() >= kHashWhileWritingBytes) pending = begin_object(bytes);
  // Small, or no temporary or thread to be had: hashed, then put() (which names any error).
  if (!pending) return PayloadStore::put_object(bytes, before_visible);
  return pending->commit(before_visible);
}

}  // namespace

Result<int> open_object_file(const fs::path& path, struct stat& st) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT)
      return Error{fmt::format("{} payload store: no object {}", kNotFound, path.string())};
    struct stat seen {};
    if ((err == EACCES || err == EPERM) && ::stat(path.c_str(), &seen) == 0)
      return Error{fmt::format(
          "{} payload store: object {} may not be read by this process (uid {}, gid {}): {} (the "
          "file has mode {:04o}, owner {}:{}); every sidecar's user must be able to read the "
          "store's objects",
          kUnreadable, path.string(), ::geteuid(), ::getegid(), std::strerror(err),
          seen.st_mode & 07777, seen.st_uid, seen.st_gid)};
    if (err == EACCES || err == EPERM)
      return Error{fmt::format(
          "payload store: cannot open {}: {}: this process (uid {}, gid {}) cannot enter the "
          "store's directories",
          path.string(), std::strerror(err), ::geteuid(), ::getegid())};
    return Error{
        fmt::format("payload store: cannot open {}: {}", path.string(), std::strerror(err))};
  }
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return Error{
        fmt::format("payload store: cannot stat {}: {}", path.string(), std::strerror(err))};
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error{
        fmt::format("{} payload store: {} is not a regular file (mode {:o}): not an object",
                    kNotFound, path.string(), st.st_mode & S_IFMT)};
  }
  return fd;
}

std::unique_ptr<PayloadStore> make_file_payload_store(const PayloadStoreOptions& options) {
  std::string_view url = options.url;
  fs::path dir(url.substr(7));  // after "file://"
  if (dir.empty())
    throw ConfigError(
        fmt::format("ASYA_PAYLOAD_STORE=\"{}\" has no directory: use file:///path/to/dir", url));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw ConfigError(fmt::format("ASYA_PAYLOAD_STORE=\"{}\": cannot create directory {}: {}", url,
                                  dir.string(), ec ? ec.message() : "not a directory"));
  fs::path absolute = fs::weakly_canonical(fs::absolute(dir));
  std::string text = absolute.string();
  while (text.size() > 1 && text.ends_with('/')) text.pop_back();
  return std::make_unique<FilePayloadStore>(fs::path(text));
}

}  // namespace asya::payload
