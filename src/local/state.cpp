#include "local/state.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace asya::local {

StatePaths::StatePaths(std::filesystem::path dir) : root(std::filesystem::absolute(dir)) {
  root = root.lexically_normal();
  if (root.has_filename() == false) root = root.parent_path();
}

std::filesystem::path resolve_state_dir(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("ASYA_STATE_DIR"); env && *env) return env;
  return ".asya";
}

int running_supervisor(const StatePaths& paths) {
  int fd = ::open(paths.lock_file().c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  // The lock is free: nobody runs (a stale pid file is ignored).
  if (::flock(fd, LOCK_SH | LOCK_NB) == 0) {
    ::close(fd);
    return 0;
  }
  ::close(fd);
  std::string text;
  if (!read_file(paths.pid_file(), text)) return -1;
  int pid = std::atoi(text.c_str());
  return pid > 0 ? pid : -1;
}

Status write_file_atomic(const std::filesystem::path& path, std::string_view text) {
  auto tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Error{"cannot create " + tmp.string() + ": " + std::strerror(errno)};
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string cause = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return Error{"cannot write " + tmp.string() + ": " + cause};
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) {
    std::string cause = std::strerror(errno);
    ::unlink(tmp.c_str());
    return Error{"cannot write " + tmp.string() + ": " + cause};
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string cause = std::strerror(errno);
    ::unlink(tmp.c_str());
    return Error{"cannot rename " + tmp.string() + " to " + path.string() + ": " + cause};
  }
  return Status::Ok();
}

bool read_file(const std::filesystem::path& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream buffer;
  buffer << in.rdbuf();
  out = buffer.str();
  return true;
}

}  // namespace asya::local
