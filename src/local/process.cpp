#include "local/process.hpp"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

extern char** environ;

namespace asya::local {
namespace {

// What a child reports through its CLOEXEC pipe when it cannot exec: the failed step and errno.
enum class ChildStep : int { kExec, kChdir, kUnshare, kIdMap, kLoopback };

struct ChildFailure {
  ChildStep step = ChildStep::kExec;
  int error = 0;
};

// Reads the report pipe (close-on-exec) to its end and closes it: true with `failure` filled when
// the child reported a failed step before exec, false when exec succeeded (the pipe just closed).
bool read_child_failure(int report_fd, ChildFailure& failure) {
  ssize_t n;
  do {
    n = ::read(report_fd, &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  ::close(report_fd);
  return n == static_cast<ssize_t>(sizeof failure);
}

// Prepared before fork: the child may only make async-signal-safe calls.
struct IsolationPlan {
  std::string uid_map;  // "<uid> <uid> 1": the caller's ids, mapped to themselves
  std::string gid_map;
  IsolationPlan()
      : uid_map(fmt::format("{0} {0} 1", ::geteuid())),
        gid_map(fmt::format("{0} {0} 1", ::getegid())) {}
};

bool write_proc_file(const char* path, const std::string& text) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  int err = errno;
  ::close(fd);
  errno = err;
  return ok;
}

// In the child: moves it into a new network namespace and brings its loopback interface up.
// Async-signal-safe. On failure returns false with `failure` set.
bool isolate_network(const IsolationPlan& plan, ChildFailure& failure) {
  if (::unshare(CLONE_NEWNET) != 0) {
    // Not privileged: a user namespace of our own grants the right over a new network namespace.
    if (::unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) {
      failure = {ChildStep::kUnshare, errno};
      return false;
    }
    if ((!write_proc_file("/proc/self/setgroups", "deny") && errno != ENOENT) ||
        !write_proc_file("/proc/self/uid_map", plan.uid_map) ||
        !write_proc_file("/proc/self/gid_map", plan.gid_map)) {
      failure = {ChildStep::kIdMap, errno};
      return false;
    }
  }
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq request{};
  std::memcpy(request.ifr_name, "lo", 3);
  bool up = fd >= 0 && ::ioctl(fd, SIOCGIFFLAGS, &request) == 0;
  if (up) {
    request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP | IFF_RUNNING);
    up = ::ioctl(fd, SIOCSIFFLAGS, &request) == 0;
  }
  int err = errno;
  if (fd >= 0) ::close(fd);
  if (!up) {
    failure = {ChildStep::kLoopback, err};
    return false;
  }
  return true;
}

std::string describe_isolation_failure(const ChildFailure& failure) {
  const char* cause = strerror(failure.error);
  switch (failure.step) {
    case ChildStep::kUnshare:
      return fmt::format(
          "spec.isolation.network none needs a network namespace, and the kernel refused both "
          "unshare(CLONE_NEWNET) and unshare(CLONE_NEWUSER|CLONE_NEWNET): {}; run asya up as "
          "root, allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
          "user.max_user_namespaces > 0, or the AppArmor/seccomp policy of this container), or "
          "remove spec.isolation",
          cause);
    case ChildStep::kIdMap:
      return fmt::format(
          "spec.isolation.network none: cannot write the uid/gid map of the new user namespace: "
          "{}; run asya up as root or remove spec.isolation",
          cause);
    case ChildStep::kLoopback:
      return fmt::format(
          "spec.isolation.network none: cannot bring up the loopback interface of the new network "
          "namespace: {}",
          cause);
    default:
      return cause;
  }
}

}  // namespace

Result<pid_t> spawn(const ProcessSpec& spec) {
  if (spec.argv.empty()) return Error{"spawn: empty command"};
  // Everything the child needs is prepared before fork: only async-signal-safe calls after it.
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  int log_fd = -1;
  if (spec.output_fd < 0 && !spec.log_path.empty()) {
    log_fd = ::open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0)
      return Error{fmt::format("cannot open log file {}: {}", spec.log_path, strerror(errno))};
  }
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  // A CLOEXEC pipe reports exec failures: it closes on a successful exec, or carries errno.
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    if (log_fd >= 0) ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    return Error{fmt::format("cannot start {}: pipe: {}", spec.argv[0], strerror(errno))};
  }
  const IsolationPlan plan;
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(report[0]);
    ::close(report[1]);
    if (log_fd >= 0) ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    return Error{fmt::format("cannot start {}: fork: {}", spec.argv[0], strerror(err))};
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGTERM, SIGINT, SIGCHLD, SIGHUP, SIGPIPE, SIGQUIT}) ::signal(sig, SIG_DFL);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    if (log_fd >= 0) {
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
    } else if (spec.output_fd >= 0) {
      ::dup2(spec.output_fd, 1);
      ::dup2(spec.output_fd, 2);
    }
    ChildFailure failure;
    if (spec.isolate_network && !isolate_network(plan, failure)) {
      // `failure` names the step.
    } else if (!spec.working_dir.empty() && ::chdir(spec.working_dir.c_str()) != 0) {
      failure = {ChildStep::kChdir, errno};
    } else {
      // execvpe searches PATH of the *child's* environment.
      ::execvpe(argv[0], argv.data(), envp.data());
      failure = {ChildStep::kExec, errno};
    }
    ssize_t ignored = ::write(report[1], &failure, sizeof failure);
    (void)ignored;
    ::_exit(127);
  }
  ::close(report[1]);
  if (log_fd >= 0) ::close(log_fd);
  if (null_fd >= 0) ::close(null_fd);
  ChildFailure failure;
  const bool child_failed = read_child_failure(report[0], failure);
  if (child_failed) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    switch (failure.step) {
      case ChildStep::kChdir:
        return Error{fmt::format("cannot start {}: working directory {}: {}", spec.argv[0],
                                 spec.working_dir, strerror(failure.error))};
      case ChildStep::kExec:
        return Error{fmt::format("cannot start {}: {}", spec.argv[0], strerror(failure.error))};
      default:
        return Error{
            fmt::format("cannot start {}: {}", spec.argv[0], describe_isolation_failure(failure))};
    }
  }
  return pid;
}

Status check_network_isolation() {
  const IsolationPlan plan;
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0)
    return Error{fmt::format("cannot check network isolation: pipe: {}", strerror(errno))};
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(report[0]);
    ::close(report[1]);
    return Error{fmt::format("cannot check network isolation: fork: {}", strerror(err))};
  }
  if (pid == 0) {
    ChildFailure failure;
    if (!isolate_network(plan, failure)) {
      ssize_t ignored = ::write(report[1], &failure, sizeof failure);
      (void)ignored;
    }
    ::_exit(0);
  }
  ::close(report[1]);
  ChildFailure failure;
  const bool child_failed = read_child_failure(report[0], failure);
  ::waitpid(pid, nullptr, 0);
  if (child_failed) return Error{describe_isolation_failure(failure)};
  return Status::Ok();
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return fmt::format("was killed by SIG{}", name ? name : std::to_string(WTERMSIG(status)));
  }
  return fmt::format("ended (wait status {})", status);
}

bool process_alive(pid_t pid) {
  return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM);
}

std::vector<std::string> current_environment() {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) out.emplace_back(*e);
  return out;
}

Result<std::string> expand_references(
    std::string_view text,
    const std::function<std::optional<std::string>(std::string_view)>& lookup) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '$' || i + 1 >= text.size()) {
      out += text[i];
      continue;
    }
    if (text[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    std::size_t close = text[i + 1] == '(' ? text.find(')', i + 2) : std::string_view::npos;
    if (close == std::string_view::npos) {
      out += text[i];
      continue;
    }
    std::string_view name = text.substr(i + 2, close - i - 2);
    auto value = lookup(name);
    if (!value)
      return Error{
          fmt::format("$({}) in \"{}\" is not set: define {} in the container's env or "
                      "in the environment of asya up (write $$({}) for a literal $({}))",
                      name, text, name, name, name)};
    out += *value;
    i = close;
  }
  return out;
}

}  // namespace asya::local
