#include "transport/sqlite/process_identity.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <random>
#include <system_error>

#include "common/log.hpp"

namespace asya::transport::sqlite {

namespace {

// The first line of a small file, trailing spaces and newline removed; "" when unreadable.
std::string first_line(const std::filesystem::path& path) {
  std::string line;
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    char buffer[128] = {};
    if (std::fgets(buffer, sizeof buffer, f)) line = buffer;
    std::fclose(f);
  }
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
  return line;
}

std::string unverified_identity(const char* why) {
  std::random_device random;
  char text[64];
  std::snprintf(text, sizeof text, "unverified-%08x%08x", random(), random());
  spdlog::warn(
      "sqlite transport: cannot tell which machine and pid namespace this process is in ({}): "
      "the leases of a killed process of this machine are released at their expiry only, and "
      "messages are handed over only to receivers of this process",
      why);
  return text;
}

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

// Whether the process of `pidfd` exited (a pidfd polls readable once it has).
bool exited(int pidfd) {
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

}  // namespace

std::string machine_identity(const std::filesystem::path& proc) {
  std::string boot = first_line(proc / "sys/kernel/random/boot_id");
  if (boot.empty()) return unverified_identity("no boot id in /proc/sys/kernel/random/boot_id");
  std::error_code ec;
  std::string pid_namespace = std::filesystem::read_symlink(proc / "self/ns/pid", ec).string();
  if (ec || pid_namespace.empty()) return unverified_identity("/proc/self/ns/pid is unreadable");
  // /proc shows the pids of the namespace it was mounted for, which need not be this process's
  // (a process that entered a new pid namespace without mounting /proc again).
  std::string self = std::filesystem::read_symlink(proc / "self", ec).string();
  if (ec || self != std::to_string(::getpid()))
    return unverified_identity("/proc belongs to another pid namespace");
  return boot + "/" + pid_namespace;
}

std::string process_start_time(pid_t pid, const std::filesystem::path& proc) {
  std::string path = (proc / std::to_string(pid) / "stat").string();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buffer[1024];
  ssize_t n = ::read(fd, buffer, sizeof buffer);
  ::close(fd);
  if (n <= 0) return "";
  std::string_view text(buffer, static_cast<std::size_t>(n));
  auto close = text.rfind(") ");  // the command name in field 2 may hold spaces and ')'
  if (close == std::string_view::npos) return "";
  text.remove_prefix(close + 2);  // field 3 (state) onwards
  if (!text.empty() && (text[0] == 'Z' || text[0] == 'X')) return "";
  for (int field = 3; field < 22; ++field) {
    auto space = text.find(' ');
    if (space == std::string_view::npos) return "";
    text.remove_prefix(space + 1);
  }
  return std::string(text.substr(0, text.find_first_of(" \n")));
}

ProcessState process_state(pid_t pid, std::string_view started) {
  if (pid <= 0) return ProcessState::kGone;
  if (started.empty()) return ProcessState::kUnknown;
  std::string now = process_start_time(pid);
  return !now.empty() && now == started ? ProcessState::kAlive : ProcessState::kGone;
}

ProcessLiveness::ProcessLiveness()
    : own_pid_(::getpid()), own_started_(process_start_time(own_pid_)) {}

ProcessLiveness::~ProcessLiveness() {
  for (const Kept& k : kept_) ::close(k.pidfd);
}

ProcessState ProcessLiveness::state(pid_t pid, std::string_view started) {
  if (pid <= 0) return ProcessState::kGone;
  if (started.empty()) return ProcessState::kUnknown;
  if (pid == own_pid_ && !own_started_.empty())
    return started == own_started_ ? ProcessState::kAlive : ProcessState::kGone;
  {
    std::lock_guard lock(mutex_);
    for (auto it = kept_.begin(); it != kept_.end(); ++it) {
      if (it->pid != pid) continue;
      // While the kept process runs, the pid is its own: another start time is a process gone.
      if (!exited(it->pidfd))
        return it->started == started ? ProcessState::kAlive : ProcessState::kGone;
      ::close(it->pidfd);
      kept_.erase(it);
      break;
    }
  }
  // Opened before the start time is read: when that start time is the recorded one, the pidfd
  // names the recorded process (a pid is reused only after its process was reaped).
  int pidfd = open_pidfd(pid);
  if (pidfd < 0 && errno == ESRCH) return ProcessState::kGone;
  std::string now = process_start_time(pid);
  if (now.empty() || now != started) {
    if (pidfd >= 0) ::close(pidfd);
    return ProcessState::kGone;
  }
  if (pidfd >= 0) {
    std::lock_guard lock(mutex_);
    for (const Kept& k : kept_) {
      if (k.pid == pid) {  // kept by another thread meanwhile
        ::close(pidfd);
        return ProcessState::kAlive;
      }
    }
    if (kept_.size() >= kMaxKept) {
      ::close(kept_.front().pidfd);
      kept_.erase(kept_.begin());
    }
    kept_.push_back(Kept{pid, std::string(started), pidfd});
  }
  return ProcessState::kAlive;
}

}  // namespace asya::transport::sqlite
