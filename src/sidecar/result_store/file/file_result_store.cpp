// The local directory result store: ASYA_RESULT_STORE=file:///dir (or file://relative/dir) writes
// each final envelope durably as <dir>/<id>.json (id encoded by result_file_name): a temporary
// file, fsync, rename, fsync of the directory, so a reader never sees a partial object.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/durable_file.hpp"
#include "common/env.hpp"
#include "sidecar/result_store.hpp"

namespace asya::sidecar {
namespace {

class FileResultStore : public ResultStore {
 public:
  explicit FileResultStore(std::filesystem::path dir) : dir_(std::move(dir)) {}

  Status put(std::string_view id, std::string_view body) override {
    std::string name = result_file_name(id);
    std::filesystem::path final_path = dir_ / name;
    std::filesystem::path temp_path =
        dir_ / fmt::format(".{}.{}.{}.tmp", name, ::getpid(), counter_.fetch_add(1));
    FileWriteOptions options;
    options.temporary_path = std::move(temp_path);
    if (Status written = write_file_atomically(final_path, body, options); !written)
      return Error{"result store: " + written.message()};
    return Status::Ok();
  }

  Result<std::optional<std::string>> get(std::string_view id) override {
    std::filesystem::path path = dir_ / result_file_name(id);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return std::optional<std::string>();
      return Error{
          fmt::format("result store: cannot open {}: {}", path.string(), std::strerror(errno))};
    }
    std::string body;
    char buffer[65536];
    for (;;) {
      ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        return Error{
            fmt::format("result store: cannot read {}: {}", path.string(), std::strerror(err))};
      }
      if (n == 0) break;
      body.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return std::optional<std::string>(std::move(body));
  }

  std::string describe() const override { return "file://" + dir_.string(); }

 private:
  std::filesystem::path dir_;
  std::atomic<std::uint64_t> counter_{0};
};

}  // namespace

std::unique_ptr<ResultStore> make_file_result_store(const ResultStoreOptions& options) {
  std::string_view url = options.url;
  std::filesystem::path dir(url.substr(7));  // after "file://"
  if (dir.empty())
    throw ConfigError(
        fmt::format("ASYA_RESULT_STORE=\"{}\" has no directory: use file:///path/to/dir", url));
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    throw ConfigError(fmt::format("ASYA_RESULT_STORE=\"{}\": cannot create directory {}: {}", url,
                                  dir.string(), ec ? ec.message() : "not a directory"));
  return std::make_unique<FileResultStore>(std::filesystem::absolute(dir));
}

}  // namespace asya::sidecar
