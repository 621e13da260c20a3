// The socket side of the C++ runtime (PROTOCOL §3): configuration from the environment, the
// listening socket, the ready file, one thread per connection, shutdown on SIGTERM/SIGINT.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "asya/runtime.hpp"
#include "common/env.hpp"
#include "common/log.hpp"
#include "wire/frame.hpp"
#include "wire/runtime_client.hpp"
#include "wire/socket_io.hpp"

namespace asya {
namespace {

namespace fs = std::filesystem;
using wire::detail::IoCode;

struct RuntimeConfig {
  std::string socket_path;
  std::optional<mode_t> socket_mode;  // nullopt: leave the mode alone
  bool enable_validation = true;
  std::string log_level;
  std::size_t max_message_bytes = wire::kDefaultMaxMessageBytes;
  std::chrono::milliseconds shutdown_grace{30'000};
};

std::optional<mode_t> parse_socket_mode(const std::string& text) {
  std::string digits = text;
  if (digits.rfind("0o", 0) == 0 || digits.rfind("0O", 0) == 0) digits = digits.substr(2);
  bool ok = !digits.empty() && digits.size() <= 4;
  for (char c : digits) ok = ok && c >= '0' && c <= '7';
  if (!ok) {
    throw ConfigError(fmt::format(
        "ASYA_SOCKET_CHMOD=\"{}\" is not an octal file mode: use e.g. 0660, 0o666, or empty to "
        "leave the mode unchanged",
        text));
  }
  return static_cast<mode_t>(std::stoul(digits, nullptr, 8));
}

// Throws ConfigError with a one-line message for an invalid variable.
RuntimeConfig load_config() {
  RuntimeConfig c;
  std::string path = env_string("ASYA_SOCKET_PATH", "");
  if (path.empty()) {
    std::string dir = env_string("ASYA_SOCKET_DIR", "");
    if (dir.empty()) {
      path = "/var/run/asya/asya-runtime.sock";
    } else {
      path = (fs::path(dir) / env_string("ASYA_SOCKET_NAME", "asya-runtime.sock")).string();
    }
  }
  c.socket_path = path;
  auto chmod_text = env_get("ASYA_SOCKET_CHMOD");
  if (!chmod_text) {
    c.socket_mode = 0660;
  } else if (!chmod_text->empty()) {
    c.socket_mode = parse_socket_mode(*chmod_text);
  }
  c.enable_validation = env_bool("ASYA_ENABLE_VALIDATION", true);
  c.log_level = env_string("ASYA_LOG_LEVEL", "info");
  c.max_message_bytes =
      static_cast<std::size_t>(env_bytes("ASYA_MAX_MESSAGE_BYTES", wire::kDefaultMaxMessageBytes));
  if (c.max_message_bytes == 0 || c.max_message_bytes > UINT32_MAX) {
    throw ConfigError(fmt::format("ASYA_MAX_MESSAGE_BYTES={} is out of range: use 1 to {} bytes",
                                  c.max_message_bytes, UINT32_MAX));
  }
  c.shutdown_grace = env_duration("ASYA_SHUTDOWN_GRACE", c.shutdown_grace);
  return c;
}

// Self-pipe written by the signal handler; stays readable once written, so every thread that
// polls it sees the shutdown.
int g_stop_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int) {
  int saved = errno;
  char byte = 1;
  [[maybe_unused]] ssize_t n = ::write(g_stop_pipe[1], &byte, 1);
  errno = saved;
}

Status install_signal_handlers() {
  if (g_stop_pipe[0] < 0 && ::pipe2(g_stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    return Error{fmt::format("pipe2() failed: {}", std::strerror(errno))};
  }
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
  // Writes use MSG_NOSIGNAL; ignoring SIGPIPE also protects handler code that writes to pipes.
  ::signal(SIGPIPE, SIG_IGN);
  return Status::Ok();
}

Result<int> open_listener(const RuntimeConfig& config) {
  const std::string& path = config.socket_path;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return Error{
        fmt::format("socket path \"{}\" is {} bytes long; Unix sockets allow at most {}: "
                    "set a shorter ASYA_SOCKET_PATH",
                    path, path.size(), sizeof(addr.sun_path) - 1)};
  }
  std::error_code ec;
  fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec) {
    return Error{
        fmt::format("cannot create socket directory {}: {}", parent.string(), ec.message())};
  }
  auto status = fs::symlink_status(path, ec);
  if (fs::is_directory(status)) {
    return Error{
        fmt::format("socket path {} is a directory: set ASYA_SOCKET_PATH to a file path "
                    "such as {}/asya-runtime.sock",
                    path, path)};
  }
  if (fs::exists(status)) {
    // A socket file left by a previous run that did not shut down cleanly.
    if (!fs::remove(path, ec) || ec) {
      return Error{fmt::format("cannot remove stale file at socket path {}: {}", path,
                               ec ? ec.message() : "unknown error")};
    }
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{fmt::format("socket() failed: {}", std::strerror(errno))};
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    ::close(fd);
    return Error{fmt::format("cannot bind socket {}: {}", path, std::strerror(err))};
  }
  if (config.socket_mode && ::chmod(path.c_str(), *config.socket_mode) != 0) {
    int err = errno;
    ::close(fd);
    return Error{fmt::format("cannot chmod socket {} to {:o}: {}", path, *config.socket_mode,
                             std::strerror(err))};
  }
  if (::listen(fd, 128) != 0) {
    int err = errno;
    ::close(fd);
    return Error{fmt::format("cannot listen on socket {}: {}", path, std::strerror(err))};
  }
  return fd;
}

using Responder = std::function<std::string(std::string_view request)>;

// Counts live connection threads so shutdown can wait for in-flight requests.
class ConnectionTracker {
 public:
  void add() {
    std::lock_guard lock(mutex_);
    ++active_;
  }
  void remove() {
    std::lock_guard lock(mutex_);
    if (--active_ == 0) idle_.notify_all();
  }
  bool wait_idle(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return idle_.wait_for(lock, timeout, [&] { return active_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable idle_;
  int active_ = 0;
};

// Serves requests on one connection until EOF, an unreadable frame, or shutdown while idle.
void serve_connection(int fd, std::shared_ptr<const Responder> respond,
                      std::size_t max_message_bytes, ConnectionTracker* tracker) {
  std::string request;
  std::string response;
  for (;;) {
    // Finish a request that is already arriving even during shutdown; stop only when idle.
    int ready = wire::detail::wait_readable(fd, g_stop_pipe[0], std::nullopt);
    if (ready != 1) break;
    auto read = wire::detail::read_frame_io(fd, request, max_message_bytes, std::nullopt);
    if (!read.ok()) {
      if (read.code == IoCode::kEof) {
        spdlog::debug("connection closed by the sidecar");
      } else if (read.code == IoCode::kOversize) {
        spdlog::error("refusing request and closing the connection: {}", read.message);
      } else {
        spdlog::warn("cannot read request, closing the connection: {}", read.message);
      }
      break;
    }
    response = (*respond)(request);
    auto written = wire::detail::write_frame_io(fd, response, std::nullopt);
    if (!written.ok()) {
      spdlog::warn("cannot send response of {} bytes, closing the connection: {}", response.size(),
                   written.message);
      break;
    }
  }
  ::close(fd);
  tracker->remove();
}

int run_server(const char* mode, Responder respond) {
  RuntimeConfig config;
  try {
    config = load_config();
    log::init("runtime", config.log_level);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "asya runtime: %s\n", e.what());
    return 2;
  }
  if (auto requested = env_get("ASYA_HANDLER_MODE");
      requested && !requested->empty() && *requested != mode) {
    spdlog::error(
        "ASYA_HANDLER_MODE={} does not match this runtime's handler, which is a {}-mode handler: "
        "set ASYA_HANDLER_MODE={} or leave it unset",
        *requested, mode, mode);
    return 1;
  }
  if (Status s = install_signal_handlers(); !s.ok()) {
    spdlog::error("{}", s.message());
    return 1;
  }
  auto listener = open_listener(config);
  if (!listener.ok()) {
    spdlog::error("{}", listener.error().message);
    return 1;
  }
  int listen_fd = *listener;
  const std::string ready_file = wire::ready_file_for(config.socket_path);
  {
    std::ofstream ready(ready_file, std::ios::trunc);
    if (!ready) {
      spdlog::error("cannot create ready file {}: {}", ready_file, std::strerror(errno));
      ::close(listen_fd);
      ::unlink(config.socket_path.c_str());
      return 1;
    }
  }
  spdlog::info("runtime ready: {} handler listening on {}", mode, config.socket_path);

  auto shared_respond = std::make_shared<const Responder>(std::move(respond));
  ConnectionTracker tracker;
  for (;;) {
    int ready = wire::detail::wait_readable(listen_fd, g_stop_pipe[0], std::nullopt);
    if (ready != 1) break;
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        spdlog::error("cannot accept a connection: {}; retrying", std::strerror(errno));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      spdlog::error("accept on {} failed: {}", config.socket_path, std::strerror(errno));
      break;
    }
    tracker.add();
    std::thread(serve_connection, fd, shared_respond, config.max_message_bytes, &tracker).detach();
  }

  spdlog::info("runtime shutting down: removing {} and {}", config.socket_path, ready_file);
  ::close(listen_fd);
  ::unlink(ready_file.c_str());
  ::unlink(config.socket_path.c_str());
  if (!tracker.wait_idle(config.shutdown_grace)) {
    spdlog::warn("requests still in progress after ASYA_SHUTDOWN_GRACE={}; exiting anyway",
                 format_duration(config.shutdown_grace));
    // Detached threads still reference `tracker`; leave without unwinding this frame.
    std::fflush(nullptr);
    std::_Exit(0);
  }
  return 0;
}

}  // namespace

int serve(PayloadHandler handler) {
  return run_server("payload", [handler = std::move(handler)](std::string_view request) {
    return handle_request(request, handler);
  });
}

int serve_envelopes(EnvelopeHandler handler) {
  bool validate = true;
  try {
    validate = env_bool("ASYA_ENABLE_VALIDATION", true);
  } catch (const ConfigError&) {
    // Reported by run_server's own configuration check.
  }
  return run_server("envelope", [handler = std::move(handler), validate](std::string_view request) {
    return handle_request(request, handler, validate);
  });
}

}  // namespace asya
