// The socket side of the C++ runtime (PROTOCOL §3): configuration from the environment, the
// listening socket, the ready file, one thread per connection, shutdown on SIGTERM/SIGINT.
// Behaves like runtimes/python/asya_runtime.py (same variables, messages and exit codes).
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
#include <mutex>
#include <thread>

#include "asya/runtime.hpp"
#include "common/durable_file.hpp"
#include "common/env.hpp"
#include "common/log.hpp"
#include "wire/batch.hpp"
#include "wire/call_order.hpp"
#include "wire/frame.hpp"
#include "wire/payload_fd.hpp"
#include "wire/runtime_answer.hpp"
#include "wire/runtime_client.hpp"
#include "wire/runtime_envelope.hpp"
#include "wire/sidecar_features.hpp"
#include "wire/socket_io.hpp"

namespace asya {
namespace {

namespace fs = std::filesystem;
using wire::detail::IoCode;

struct RuntimeConfig {
  std::string socket_path;
  std::optional<mode_t> socket_mode;  // nullopt: leave the mode alone
  bool enable_validation = true;
  bool handler_thread_safe = false;
  std::string log_level;
  std::size_t max_message_bytes = wire::kDefaultMaxMessageBytes;
  // ASYA_PAYLOAD_UNCHANGED: answer "payload_unchanged" when a raw handler returns its payload and
  // the sidecar declared it takes that (PROTOCOL §3).
  bool payload_unchanged = true;
  // ASYA_PAYLOAD_FD: take payloads as file descriptors (declared in the ready file) when the
  // handler kind supports it (PROTOCOL §3 "Payloads passed as a file").
  bool payload_fd = true;
};

std::optional<mode_t> parse_socket_mode(std::string_view text) {
  std::string_view digits = text;
  while (!digits.empty() && digits.front() == ' ') digits.remove_prefix(1);
  while (!digits.empty() && digits.back() == ' ') digits.remove_suffix(1);
  if (digits.empty()) return std::nullopt;
  if (digits.starts_with("0o") || digits.starts_with("0O")) digits.remove_prefix(2);
  bool ok = !digits.empty() && digits.size() <= 5;
  mode_t mode = 0;
  for (char c : digits) {
    ok = ok && c >= '0' && c <= '7';
    mode = static_cast<mode_t>(mode * 8 + static_cast<mode_t>(c - '0'));
  }
  if (!ok || mode > 07777) {
    throw ConfigError(fmt::format(
        "ASYA_SOCKET_CHMOD=\"{}\" is not an octal file mode: use e.g. 0o666 or 660, or empty to "
        "leave the socket's permissions alone",
        text));
  }
  return mode;
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
  if (path.size() > sizeof(sockaddr_un::sun_path) - 1) {
    throw ConfigError(fmt::format(
        "socket path \"{}\" is {} bytes long: Unix socket paths are limited to {} bytes; use a "
        "shorter ASYA_SOCKET_PATH or ASYA_SOCKET_DIR",
        path, path.size(), sizeof(sockaddr_un::sun_path) - 1));
  }
  c.socket_path = path;
  c.socket_mode = parse_socket_mode(env_get("ASYA_SOCKET_CHMOD").value_or("0o666"));
  c.enable_validation = env_bool("ASYA_ENABLE_VALIDATION", true);
  c.handler_thread_safe = env_bool("ASYA_HANDLER_THREAD_SAFE", false);
  c.payload_unchanged = env_bool("ASYA_PAYLOAD_UNCHANGED", true);
  c.payload_fd = env_bool("ASYA_PAYLOAD_FD", true);
  c.log_level = env_string("ASYA_LOG_LEVEL", "info");
  std::uint64_t max_bytes = env_bytes("ASYA_MAX_MESSAGE_BYTES", wire::kDefaultMaxMessageBytes);
  if (max_bytes == 0 || max_bytes > UINT32_MAX) {
    throw ConfigError(fmt::format(
        "ASYA_MAX_MESSAGE_BYTES=\"{}\" is out of range: use 1 byte to 4GiB-1 (a frame length is "
        "32 bits)",
        env_string("ASYA_MAX_MESSAGE_BYTES", "")));
  }
  c.max_message_bytes = static_cast<std::size_t>(max_bytes);
  return c;
}

// Self-pipe written by the signal handler; it stays readable once written, so every thread that
// polls it sees the shutdown.
int g_stop_pipe[2] = {-1, -1};
// Signals received: the first stops accepting, the second stops waiting for requests in progress.
std::atomic<int> g_signals{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_stop_signal(int) {
  int saved = errno;
  g_signals.fetch_add(1);
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

sockaddr_un socket_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), std::min(path.size(), sizeof(addr.sun_path) - 1));
  return addr;
}

// True when something accepts connections on `path`.
bool someone_listens(const std::string& path) {
  sockaddr_un addr = socket_address(path);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return live;
}

Result<int> open_listener(const RuntimeConfig& config) {
  const std::string& path = config.socket_path;
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
        fmt::format("socket path {} is a directory: set ASYA_SOCKET_PATH to a file path", path)};
  }
  if (fs::exists(status)) {
    if (!fs::is_socket(status)) {
      return Error{fmt::format(
          "socket path {} exists and is not a socket: remove it or choose another path", path)};
    }
    if (someone_listens(path)) {
      return Error{fmt::format("another process is already listening on {}", path)};
    }
    // A socket left by a previous run that did not shut down cleanly.
    if (!fs::remove(path, ec) && ec) {
      return Error{fmt::format("cannot remove stale socket {}: {}", path, ec.message())};
    }
    spdlog::info("removed stale socket {}", path);
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{fmt::format("socket() failed: {}", std::strerror(errno))};
  sockaddr_un addr = socket_address(path);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      (config.socket_mode && ::chmod(path.c_str(), *config.socket_mode) != 0) ||
      ::listen(fd, SOMAXCONN) != 0) {
    int err = errno;
    ::close(fd);
    return Error{fmt::format("cannot listen on {}: {}", path, std::strerror(err))};
  }
  return fd;
}

// Written to a temporary name and renamed, so a sidecar never sees a half-written file. Not
// fsync'd: the file means "this process is ready" and is stale after a crash anyway.
// A runtime that takes batch requests says so with a line `batch`, and that it serves several
// connections at once (one thread each) with a line `pipeline`, and one that takes payloads as
// file descriptors with a line `payload-fd` (PROTOCOL §3).
Status write_ready_file(const std::string& path, bool batch, bool payload_fd) {
  FileWriteOptions options;
  options.temporary_path = fmt::format("{}.{}.tmp", path, ::getpid());
  options.durable = false;
  return write_file_atomically(
      path,
      fmt::format(
          "{}\n{}{}", ::getpid(),
          batch ? fmt::format("{}\n{}\n", wire::kBatchCapability, wire::kPipelineCapability) : "",
          payload_fd ? fmt::format("{}\n", wire::kPayloadFdCapability) : ""),
      options);
}

// Writes the answer to one request into `answer` (a per-connection object, reused). `fd_payload`
// is null for an ordinary request; for one whose payload came as a file descriptor, the mapped
// payload, and `request` is the envelope with "payload": null in its place (only for handler
// kinds that declare payload-fd). `turn`: the request's place in the call order of a batch
// runtime whose calls are serialized (call_order.hpp), else null.
using Responder = std::function<void(std::string_view request, const std::string_view* fd_payload,
                                     wire::CallTurn* turn, detail::Answer& answer)>;

// Connection threads and requests in progress, so shutdown can wait for the latter.
class ServerState {
 public:
  void connection_opened() {
    std::lock_guard lock(mutex_);
    ++connections_;
  }
  void connection_closed() {
    std::lock_guard lock(mutex_);
    --connections_;
    changed_.notify_all();
  }
  void request_started() {
    std::lock_guard lock(mutex_);
    ++requests_;
  }
  void request_finished() {
    std::lock_guard lock(mutex_);
    --requests_;
    changed_.notify_all();
  }
  // True when no request is in progress (after waiting up to `timeout`).
  bool wait_drained(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return requests_ == 0; });
  }
  // True when every connection thread has finished (after waiting up to `timeout`).
  bool wait_no_connections(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return connections_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int connections_ = 0;
  int requests_ = 0;
};

bool stopping() {
  return g_signals.load() > 0;
}

std::string connection_error_response(const std::string& message) {
  boost::json::object details{{"message", message}, {"type", "ConnectionError"}, {"traceback", ""}};
  boost::json::array response{
      boost::json::object{{"error", "connection_error"}, {"details", details}}};
  return boost::json::serialize(response);
}

// A request whose payload came as a file descriptor (PROTOCOL §3 "Payloads passed as a file"),
// ready for the handler: the envelope text with "payload": null, and the mapped payload.
struct FdRequest {
  std::string rest;
  wire::MappedPayload payload;
};

// Reads what came with a request frame: nothing (nullopt, no error), a usable descriptor and
// marker, or an error message for a msg_parsing_error answer. Every received descriptor is
// owned (closed) in every case.
Result<std::optional<FdRequest>> take_fd_request(std::string_view frame, std::vector<int>& fds,
                                                 bool fds_truncated, bool accepted) {
  struct CloseAll {
    std::vector<int>& fds;
    ~CloseAll() {
      for (int received : fds) ::close(received);
      fds.clear();
    }
  } close_all{fds};
  if (fds.empty() && !fds_truncated) {
    if (accepted && wire::looks_like_payload_fd_request(frame))
      return Error{fmt::format(
          "the request has \"{}\" in place of its payload but no file descriptor came with it",
          wire::kPayloadFdField)};
    return std::optional<FdRequest>();
  }
  if (!accepted)
    return Error{fmt::format(
        "a file descriptor came with the request, but this runtime does not take payloads as "
        "file descriptors (its ready file does not declare {})",
        wire::kPayloadFdCapability)};
  if (fds.size() != 1 || fds_truncated)
    return Error{fmt::format("{}{} file descriptors came with the request; exactly one expected",
                             fds_truncated ? "more than " : "", fds.size())};
  auto marker = wire::parse_payload_fd_marker(frame);
  if (!marker) return marker.error();
  const int received = fds.front();
  fds.clear();  // MappedPayload owns it now, on failure too
  auto mapped = wire::MappedPayload::map(received, marker->offset, marker->length,
                                         /*populate=*/true);
  if (!mapped) return mapped.error();
  spdlog::debug("payload of {} bytes passed as a file descriptor", marker->length);
  return std::optional<FdRequest>(FdRequest{std::move(marker->rest), std::move(*mapped)});
}

// Serves requests on one connection until EOF, an unreadable frame, or shutdown. After a
// shutdown signal, a request already being read or processed is still answered. `order`: the
// call order of a serialized batch runtime, or null.
void serve_connection(int fd, std::shared_ptr<const Responder> respond, const RuntimeConfig* config,
                      ServerState* state, bool payload_fd, wire::CallOrder* order) {
  const std::size_t max_message_bytes = config->max_message_bytes;
  // Not a std::string: growing one zero-fills it, a whole extra pass over a large request's
  // fresh pages before the read fills them.
  wire::FrameBuffer request;
  detail::Answer answer;
  if (config->payload_unchanged) {
    // Read once per connection, when an answer could first use it: a sidecar that connects after
    // another stopped (a different version) is asked again (wire/sidecar_features.hpp).
    answer.payload_unchanged_allowed = [fd, config, known = std::optional<bool>()]() mutable {
      if (!known)
        known = wire::peer_declares(fd, config->socket_path, wire::kPayloadUnchangedFeature);
      return *known;
    };
  }
  for (;;) {
    // Readiness of the connection wins over the stop pipe: a request already sent is answered.
    int ready = wire::detail::wait_readable(fd, g_stop_pipe[0], std::nullopt);
    if (ready != 1) break;
    // The request's place in the call order, taken before any byte of it is read (so before its
    // last one: call_order.hpp); ended after its handler call, or unused when there is none.
    std::optional<wire::CallTurn> turn;
    if (order != nullptr) turn.emplace(*order, order->take());
    std::vector<int> fds;
    bool fds_truncated = false;
    auto read = wire::detail::read_frame_with_fds(
        fd, [&request](std::size_t size) { return request.prepare(size); }, max_message_bytes,
        std::nullopt, fds, fds_truncated);
    if (!read.ok()) {
      for (int received : fds) ::close(received);
      if (read.code == IoCode::kEof) {
        spdlog::debug("connection closed by the sidecar");
      } else if (read.code == IoCode::kOversize) {
        spdlog::error("request {}; closing the connection", read.message);
      } else if (read.code == IoCode::kTruncated) {
        spdlog::warn("request could not be read: {}", read.message);
        (void)wire::detail::write_frame_io(fd, connection_error_response(read.message),
                                           wire::detail::Clock::now() + std::chrono::seconds(1));
      } else {
        spdlog::warn("request could not be read, closing the connection: {}", read.message);
      }
      break;
    }
    state->request_started();
    auto fd_request = take_fd_request(request.view(), fds, fds_truncated, payload_fd);
    if (!fd_request) {
      spdlog::warn("request refused: {}", fd_request.error().message);
      answer.clear();
      answer.text = detail::error_response(detail::parsing_error(fd_request.error().message));
    } else if (*fd_request) {
      const std::string_view payload = (*fd_request)->payload.bytes();
      (*respond)((*fd_request)->rest, &payload, nullptr, answer);
    } else {
      (*respond)(request.view(), nullptr, turn ? &*turn : nullptr, answer);
    }
    if (turn) turn->end();
    // The answer's pieces (a raw handler's answer refers to the request's own payload bytes)
    // go out with one gather write, nothing copied into a new buffer.
    auto written = answer.pieces.empty()
                       ? wire::detail::write_frame_io(fd, answer.text, std::nullopt)
                       : wire::detail::write_frame_parts_io(fd, answer.pieces.data(),
                                                            answer.pieces.size(), std::nullopt);
    state->request_finished();
    if (fd_request && *fd_request) fd_request->reset();  // unmapped and closed after the write
    if (!written.ok()) {
      spdlog::warn("cannot send response of {} bytes, closing the connection: {}", answer.size(),
                   written.message);
      break;
    }
    answer.clear();
    // Buffers keep their capacity for the next request, unless a large message grew them.
    if (request.capacity() > detail::kKeptBufferBytes) request.release();
    if (stopping()) break;
  }
  ::close(fd);
  state->connection_closed();
}

// `payload_fd`: the handler kind takes payloads as file descriptors (declared unless
// ASYA_PAYLOAD_FD=false).
int run_server(const char* mode, const std::function<Responder(const RuntimeConfig&)>& make,
               bool batch = false, bool payload_fd = false) {
  if (Status s = install_signal_handlers(); !s.ok()) {
    log::init("runtime", "info");
    spdlog::error("{}", s.message());
    return 1;
  }
  RuntimeConfig config;
  try {
    config = load_config();
    log::init("runtime", config.log_level);
    auto requested = env_string("ASYA_HANDLER_MODE", "");
    if (!requested.empty() && requested != "payload" && requested != "envelope") {
      throw ConfigError(
          fmt::format("ASYA_HANDLER_MODE=\"{}\" is not valid: use payload or envelope", requested));
    }
    if (!requested.empty() && requested != mode) {
      throw ConfigError(fmt::format(
          "ASYA_HANDLER_MODE={} does not match the handler, which is a {}-mode handler: set "
          "ASYA_HANDLER_MODE={} or leave it unset",
          requested, mode, mode));
    }
  } catch (const ConfigError& e) {
    log::init("runtime", "info");  // component "runtime" even when the level was the mistake
    spdlog::error("{}", e.what());
    return 1;
  }
  const std::string ready_file = wire::ready_file_for(config.socket_path);
  ::unlink(ready_file.c_str());  // a ready file left by an earlier run must not announce us early
  auto listener = open_listener(config);
  if (!listener.ok()) {
    spdlog::error("{}", listener.error().message);
    return 1;
  }
  int listen_fd = *listener;
  payload_fd = payload_fd && config.payload_fd;
  if (Status s = write_ready_file(ready_file, batch, payload_fd); !s.ok()) {
    spdlog::error("cannot write ready file {}: {}", ready_file, s.message());
    ::close(listen_fd);
    ::unlink(config.socket_path.c_str());
    return 1;
  }
  spdlog::info("runtime ready: {}-mode handler on {} (pid {})", mode, config.socket_path,
               ::getpid());

  auto respond = std::make_shared<const Responder>(make(config));
  // A batch runtime whose calls are serialized runs them in the order the requests began to
  // arrive (call_order.hpp); a thread-safe handler's calls run as they come.
  wire::CallOrder call_order;
  wire::CallOrder* order = batch && !config.handler_thread_safe ? &call_order : nullptr;
  ServerState state;
  while (!stopping()) {
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
    // Room for a large answer, so it is written while the sidecar reads it (socket_io.hpp).
    wire::detail::raise_send_buffer(fd);
    state.connection_opened();
    std::thread(serve_connection, fd, respond, &config, &state, payload_fd, order).detach();
  }

  spdlog::info("stopping: no new connections; finishing requests in progress");
  ::close(listen_fd);
  ::unlink(ready_file.c_str());
  ::unlink(config.socket_path.c_str());
  // Idle connection threads end as soon as they see the stop pipe, busy ones after answering.
  // A connection stuck in the middle of a request frame is not waited for once nothing is being
  // processed; a second signal stops waiting altogether.
  auto idle_since = wire::detail::Clock::now();
  bool all_closed = false;
  while (g_signals.load() < 2) {
    if (state.wait_no_connections(std::chrono::milliseconds(50))) {
      all_closed = true;
      break;
    }
    if (!state.wait_drained(std::chrono::milliseconds(0))) {
      idle_since = wire::detail::Clock::now();
    } else if (wire::detail::Clock::now() - idle_since > std::chrono::seconds(1)) {
      break;
    }
  }
  if (g_signals.load() >= 2) {
    spdlog::warn("second signal: exiting without waiting for requests in progress");
  }
  spdlog::info("stopped");
  if (!all_closed) {
    // Remaining threads still reference `state`: leave without unwinding this frame.
    spdlog::default_logger()->flush();
    std::fflush(nullptr);
    std::_Exit(0);
  }
  return 0;
}

// Calls the handler under a mutex unless the user declared it thread-safe
// (ASYA_HANDLER_THREAD_SAFE=true), like the Python runtime. Parsing and serializing stay
// concurrent.
template <class Handler>
Handler serialized_unless_thread_safe(const RuntimeConfig& config, Handler handler) {
  if (config.handler_thread_safe) return handler;
  auto mutex = std::make_shared<std::mutex>();
  return [mutex, handler = std::move(handler)](const auto& input) {
    std::lock_guard lock(*mutex);
    return handler(input);
  };
}

}  // namespace

int serve(PayloadHandler handler) {
  return run_server(
      "payload",
      [&](const RuntimeConfig& config) -> Responder {
        return [handler = serialized_unless_thread_safe(config, std::move(handler))](
                   std::string_view request, const std::string_view* fd_payload, wire::CallTurn*,
                   detail::Answer& answer) {
          if (fd_payload != nullptr)
            detail::respond_payload_fd(request, *fd_payload, handler, answer);
          else
            detail::respond_payload(request, handler, answer);
        };
      },
      /*batch=*/false, /*payload_fd=*/true);
}

int serve_raw(RawPayloadHandler handler) {
  return run_server(
      "payload",
      [&](const RuntimeConfig& config) -> Responder {
        return [handler = serialized_unless_thread_safe(config, std::move(handler))](
                   std::string_view request, const std::string_view* fd_payload, wire::CallTurn*,
                   detail::Answer& answer) {
          if (fd_payload != nullptr)
            detail::respond_raw_fd(request, *fd_payload, handler, answer);
          else
            detail::respond_raw(request, handler, answer);
        };
      },
      /*batch=*/false, /*payload_fd=*/true);
}

int serve_batch(BatchHandler handler) {
  return run_server(
      "payload",
      [&](const RuntimeConfig&) -> Responder {
        // Serialized (unless thread-safe) by the call order: `turn` is then set.
        return [handler = std::move(handler)](std::string_view request, const std::string_view*,
                                              wire::CallTurn* turn, detail::Answer& answer) {
          answer.clear();
          if (turn == nullptr) {
            answer.text = handle_batch_request(request, handler);
            return;
          }
          answer.text = handle_batch_request(request, [&](const std::vector<Json>& payloads) {
            turn->begin();
            struct EndTurn {
              wire::CallTurn* turn;
              ~EndTurn() { turn->end(); }
            } end_turn{turn};
            return handler(payloads);
          });
        };
      },
      /*batch=*/true);
}

int serve_envelopes(EnvelopeHandler handler) {
  return run_server("envelope", [&](const RuntimeConfig& config) -> Responder {
    return [handler = serialized_unless_thread_safe(config, std::move(handler)),
            validate = config.enable_validation](std::string_view request, const std::string_view*,
                                                 wire::CallTurn*, detail::Answer& answer) {
      answer.clear();
      answer.text = handle_request(request, handler, validate);
    };
  });
}

}  // namespace asya
