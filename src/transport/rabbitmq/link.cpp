#include "transport/rabbitmq/link.hpp"

#include <poll.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <stdexcept>

namespace asya::transport::rabbitmq {

namespace {
// How long the link thread sleeps when nothing happens (heartbeats are sent within this).
constexpr auto kIdleWait = std::chrono::milliseconds(1000);
}  // namespace

Wakeup::Wakeup() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) throw std::runtime_error("rabbitmq transport: eventfd() failed");
}

Wakeup::~Wakeup() {
  ::close(fd_);
}

void Wakeup::notify() {
  std::uint64_t one = 1;
  ssize_t n = ::write(fd_, &one, sizeof one);
  (void)n;  // EAGAIN means the counter is already non-zero: a wake-up is pending anyway
}

void Wakeup::clear() {
  std::uint64_t value;
  ssize_t n = ::read(fd_, &value, sizeof value);
  (void)n;
}

Link::Link(const RabbitmqSettings& settings, const char* role, int channels)
    : settings_(settings), role_(role), connection_(settings), channels_(channels) {}

Link::~Link() {
  // A derived destructor stopped the thread already; this only guards against a missing call.
  if (thread_.joinable()) {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wakeup_.notify();
    thread_.join();
  }
}

void Link::start_link() {
  thread_ = std::thread([this] { run(); });
}

void Link::stop_link() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    // Not connected: the link thread may be stuck in a connect, a handshake or a declaration
    // with a broker that does not answer; cut it short rather than wait for its step timeout. A
    // working connection is closed properly by the thread instead (acks written, then
    // connection.close).
    if (!connected_) connection_.interrupt();
    wake_all();
  }
  wakeup_.notify();
  if (thread_.joinable()) thread_.join();
}

void Link::set_error(const std::string& message) {
  std::lock_guard lock(mutex_);
  last_error_ = message;
}

void Link::wait(int fd, std::chrono::milliseconds timeout) {
  pollfd fds[2] = {{wakeup_.fd(), POLLIN, 0}, {fd, POLLIN, 0}};
  int rc = ::poll(fds, fd >= 0 ? 2 : 1, static_cast<int>(timeout.count()));
  if (rc > 0 && (fds[0].revents & POLLIN)) wakeup_.clear();
}

bool Link::holds_frames() {
  amqp_connection_state_t state = connection_.state();
  // TLS: OpenSSL may hold bytes the socket no longer shows; rabbitmq-c's read finds them.
  return settings_.tls || amqp_frames_enqueued(state) || amqp_data_in_buffer(state);
}

bool Link::may_have_frames() {
  if (holds_frames()) return true;
  pollfd pfd{connection_.fd(), POLLIN, 0};
  return ::poll(&pfd, 1, 0) != 0;
}

void Link::read_ready_frames(bool readable) {
  timeval zero{0, 0};
  // rabbitmq-c sends a due heartbeat (and finds the broker's missing) only inside its read: it is
  // called at least once a second, like the idle link thread's tick did.
  const auto now = std::chrono::steady_clock::now();
  bool due = now - last_read_ >= kIdleWait;
  bool read_any = false;
  while (connection_.is_open()) {
    // Else one poll() when nothing is there, where rabbitmq-c's non-blocking read costs a recv()
    // and then a poll(). Once something was read, what rabbitmq-c holds is read and the socket is
    // not asked again: what came meanwhile stays there for the next poll() of whoever reads next
    // (a reading caller, or the link thread watching the socket), one poll() fewer per read.
    if (read_any && !due && !holds_frames()) return;
    if (!due && !readable && !may_have_frames()) {
      drained_at_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                        std::memory_order_relaxed);
      return;
    }
    due = false;
    readable = false;
    last_read_ = now;
    amqp_frame_t frame;
    int rc = amqp_simple_wait_frame_noblock(connection_.state(), &frame, &zero);
    if (rc == AMQP_STATUS_TIMEOUT) return;
    read_any = true;
    if (rc != AMQP_STATUS_OK) {
      set_error(connection_.check_status(rc, "reading from the broker").message());
      return;
    }
    if (frame.frame_type == AMQP_FRAME_METHOD &&
        (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
         frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD)) {
      // The broker closed a channel or the connection: start over on a new connection.
      amqp_rpc_reply_t reply{};
      reply.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
      reply.reply = frame.payload.method;
      set_error(reply_text(reply));
      connection_.set_broken();
      return;
    }
    handle_frame(frame);
  }
}

void Link::read_if_free() {
  std::unique_lock io(io_, std::try_to_lock);
  if (!io.owns_lock() || !connection_.is_open()) return;
  read_ready_frames();
  if (connection_.is_open())
    amqp_maybe_release_buffers(connection_.state());
  else
    wakeup_.notify();  // the link thread reconnects
}

void Link::turn(bool read, bool readable) {
  write_pending();
  if (read) read_ready_frames(readable);
  // Frames were handled completely: their memory can go back (rabbitmq-c keeps it otherwise).
  if (connection_.is_open()) amqp_maybe_release_buffers(connection_.state());
}

bool Link::connect() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
  }
  Status st = connection_.open(channels_);
  if (st) st = on_open();
  std::lock_guard lock(mutex_);
  if (!st && (stopping_ || connection_.interrupted())) {
    connection_.close();
    return false;  // cut short by a stop: its line says so, the last real error is kept
  }
  if (!st) {
    if (last_error_ != st.message()) spdlog::warn("rabbitmq {}: {}", role_, st.message());
    last_error_ = st.message();
    connection_.close();
    return false;
  }
  if (!last_error_.empty())
    spdlog::info("rabbitmq {}: connected to {}", role_, settings_.describe());
  connected_ = true;
  ever_connected_ = true;
  backoff_.reset();
  on_connected();
  wake_all();
  return true;
}

void Link::run() {
  // Named for per-thread profiles (top -H, /proc/PID/task/*/comm): "amqp-publisher", ...
  std::string name = std::string("amqp-") + role_;
  ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
  while (true) {
    bool wanted;
    {
      std::lock_guard lock(mutex_);
      watching_ = false;
      if (stopping_) break;
      wanted = wants_connection();
    }
    std::unique_lock io(io_);
    if (!connection_.is_open()) {
      if (connection_.state() != nullptr) {
        std::string why;
        {
          std::lock_guard lock(mutex_);
          why = last_error_.empty() ? "connection error" : last_error_;
          connected_ = false;
          last_error_ = why;
        }
        connection_.set_broken();
        connection_.close();
        on_lost(why);
        std::lock_guard lock(mutex_);
        wake_all();
      }
      if (!wanted) {
        io.unlock();
        wait(-1, kIdleWait);
        continue;
      }
      if (!connect()) {
        io.unlock();
        wait(-1, backoff_.next());
        continue;
      }
    }
    bool read;
    {
      std::lock_guard lock(mutex_);
      read = drivers_ == 0;
    }
    turn(read);
    if (!connection_.is_open()) continue;
    bool more;
    int fd = connection_.fd();
    std::chrono::milliseconds sleep;
    {
      std::lock_guard lock(mutex_);
      more = has_pending();
      sleep = idle_wait();
      if (!watch_socket()) fd = -1;
      watching_ = !more && fd >= 0;
    }
    io.unlock();
    if (!more) wait(fd, sleep);
  }
  std::lock_guard io(io_);
  on_stop();
  connection_.close();  // the broker requeues what is still unacked
  std::lock_guard lock(mutex_);
  if (!connected_ && !last_error_.empty()) {
    // Stopped while the broker could not be reached (SIGTERM during a stuck reconnect): say so,
    // and that nothing is lost.
    spdlog::warn(
        "rabbitmq {}: stopped while reconnecting to {} (last error: {}); nothing is lost: "
        "messages not acked are delivered again by the broker, sends not confirmed failed",
        role_, settings_.describe(), last_error_);
  }
  connected_ = false;
  on_stopped();
  wake_all();
}

}  // namespace asya::transport::rabbitmq
