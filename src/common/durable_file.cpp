#include "common/durable_file.hpp"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "common/failpoint.hpp"

namespace asya {
namespace {

std::string quoted(const std::filesystem::path& path) {
  std::string out(1, '"');  // not "\"" + ...: GCC 12 warns (-Wrestrict) falsely on that
  out += path.string();
  out += '"';
  return out;
}

Error failed(const std::string& step, int error) {
  return Error{step + " failed: " + std::strerror(error)};
}

}  // namespace

Status fsync_directory(const std::filesystem::path& directory) {
  const std::filesystem::path dir = directory.empty() ? std::filesystem::path(".") : directory;
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return failed("opening the directory " + quoted(dir), errno);
  int result = ::fsync(fd);
  int error = errno;
  ::close(fd);
  if (result != 0) return failed("fsync of the directory " + quoted(dir), error);
  return Status::Ok();
}

Status write_parts(int fd, std::span<const std::string_view> parts, bool start_writeback,
                   const std::filesystem::path& name) {
  std::size_t total = 0;
  for (std::string_view part : parts) total += part.size();
  // Each 8 MiB chunk is handed to the disk (sync_file_range, asynchronous) as soon as it is in
  // the page cache: the disk works while the next chunk is copied, so the fsync waits for the
  // tail only, instead of the whole contents after they were all copied. A chunk spanning
  // several parts is one writev.
  constexpr std::size_t kChunk = std::size_t{8} << 20;
  constexpr std::size_t kMaxIov = 16;
  std::size_t done = 0;
  std::size_t kicked = 0;
  std::size_t part = 0;         // the part holding byte `done`
  std::size_t part_offset = 0;  // and its offset in that part
  while (done < total) {
    iovec iov[kMaxIov];
    int count = 0;
    std::size_t planned = 0;
    for (std::size_t p = part, offset = part_offset;
         p < parts.size() && count < static_cast<int>(kMaxIov) && planned < kChunk;
         ++p, offset = 0) {
      const std::size_t take = std::min(parts[p].size() - offset, kChunk - planned);
      if (take == 0) continue;
      iov[count].iov_base = const_cast<char*>(parts[p].data() + offset);
      iov[count].iov_len = take;
      ++count;
      planned += take;
    }
    ssize_t n = ::writev(fd, iov, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      return failed("writing " + quoted(name), errno);
    }
    done += static_cast<std::size_t>(n);
    // Advance the cursor over the parts by what was written (a short write included).
    for (std::size_t left = static_cast<std::size_t>(n); left > 0;) {
      const std::size_t rest = parts[part].size() - part_offset;
      if (left < rest) {
        part_offset += left;
        break;
      }
      left -= rest;
      ++part;
      part_offset = 0;
    }
    if (start_writeback && (done - kicked >= kChunk || done == total)) {
      // Only a hint: an error here shows again in fsync.
      (void)::sync_file_range(fd, static_cast<off_t>(kicked), static_cast<off_t>(done - kicked),
                              SYNC_FILE_RANGE_WRITE);
      kicked = done;
    }
  }
  return Status::Ok();
}

Status write_file_atomically(const std::filesystem::path& path, std::string_view contents,
                             const FileWriteOptions& options) {
  return write_file_atomically(path, std::span<const std::string_view>(&contents, 1), options);
}

Status write_file_atomically(const std::filesystem::path& path,
                             std::span<const std::string_view> parts,
                             const FileWriteOptions& options) {
  std::filesystem::path tmp = options.in_place ? path : options.temporary_path;
  if (tmp.empty()) {
    tmp = path;
    tmp += ".tmp";
  }
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (options.exclusive ? O_EXCL : O_TRUNC);
  int fd = ::open(tmp.c_str(), flags, options.mode);
  if (fd < 0) return failed("creating " + quoted(tmp), errno);
  auto fail = [&](const std::string& step) -> Status {
    int error = errno;
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    return failed(step, error);
  };
  if (Status written = write_parts(fd, parts, options.durable, tmp); !written) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    return written;
  }
  if (!options.failpoint.empty()) failpoint(options.failpoint);
  if (options.durable && ::fsync(fd) != 0) return fail("fsync of " + quoted(tmp));
  int closed = ::close(fd);
  fd = -1;
  if (closed != 0) return fail("closing " + quoted(tmp));
  if (!options.in_place && ::rename(tmp.c_str(), path.c_str()) != 0)
    return fail("renaming " + quoted(tmp) + " to " + quoted(path));
  if (options.durable) return fsync_directory(path.parent_path());
  return Status::Ok();
}

}  // namespace asya
