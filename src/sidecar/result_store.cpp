#include "sidecar/result_store.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/env.hpp"

namespace asya::sidecar {
namespace {

std::string errno_text() {
  return std::strerror(errno);
}

class FileResultStore : public ResultStore {
 public:
  explicit FileResultStore(std::filesystem::path dir) : dir_(std::move(dir)) {}

  Status put(std::string_view id, std::string_view body) override {
    std::string name = result_file_name(id);
    std::filesystem::path final_path = dir_ / name;
    std::filesystem::path temp_path =
        dir_ / fmt::format(".{}.{}.{}.tmp", name, ::getpid(), counter_.fetch_add(1));
    int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
      return Error{
          fmt::format("result store: cannot create {}: {}", temp_path.string(), errno_text())};
    std::size_t written = 0;
    while (written < body.size()) {
      ssize_t n = ::write(fd, body.data() + written, body.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        std::string cause = errno_text();
        ::close(fd);
        ::unlink(temp_path.c_str());
        return Error{fmt::format("result store: cannot write {}: {}", temp_path.string(), cause)};
      }
      written += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) {
      std::string cause = errno_text();
      ::close(fd);
      ::unlink(temp_path.c_str());
      return Error{fmt::format("result store: cannot sync {}: {}", temp_path.string(), cause)};
    }
    ::close(fd);
    if (::rename(temp_path.c_str(), final_path.c_str()) != 0) {
      std::string cause = errno_text();
      ::unlink(temp_path.c_str());
      return Error{fmt::format("result store: cannot rename {} to {}: {}", temp_path.string(),
                               final_path.string(), cause)};
    }
    // Make the rename itself durable.
    int dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      ::fsync(dir_fd);
      ::close(dir_fd);
    }
    return Status::Ok();
  }

  std::string describe() const override { return "file://" + dir_.string(); }

 private:
  std::filesystem::path dir_;
  std::atomic<std::uint64_t> counter_{0};
};

}  // namespace

// S3-compatible storage, in result_store_s3.cpp.
std::unique_ptr<ResultStore> make_s3_result_store(std::string_view url);

std::unique_ptr<ResultStore> make_result_store(std::string_view url) {
  if (url.starts_with("s3://")) return make_s3_result_store(url);
  if (url.starts_with("file://")) {
    std::filesystem::path dir(url.substr(7));
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
  throw ConfigError(
      fmt::format("ASYA_RESULT_STORE=\"{}\" is not supported: use file:///path/to/dir or "
                  "s3://bucket/prefix",
                  url));
}

}  // namespace asya::sidecar
