#include "local/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

extern char** environ;

namespace asya::local {

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
    int err = 0;
    if (!spec.working_dir.empty() && ::chdir(spec.working_dir.c_str()) != 0) {
      err = errno;
    } else {
      // execvpe searches PATH of the *child's* environment.
      ::execvpe(argv[0], argv.data(), envp.data());
      err = errno;
    }
    ssize_t ignored = ::write(report[1], &err, sizeof err);
    (void)ignored;
    ::_exit(127);
  }
  ::close(report[1]);
  if (log_fd >= 0) ::close(log_fd);
  if (null_fd >= 0) ::close(null_fd);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(report[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!spec.working_dir.empty() && ::access(spec.working_dir.c_str(), X_OK) != 0) {
      return Error{fmt::format("cannot start {}: working directory {}: {}", spec.argv[0],
                               spec.working_dir, strerror(child_errno))};
    }
    return Error{fmt::format("cannot start {}: {}", spec.argv[0], strerror(child_errno))};
  }
  return pid;
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
