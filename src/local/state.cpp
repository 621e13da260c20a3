#include "local/state.hpp"

#include "common/durable_file.hpp"

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
  // Rewritten every refresh and meaningless after a crash: atomic for readers, not fsync'd.
  FileWriteOptions options;
  options.durable = false;
  return write_file_atomically(path, text, options);
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
