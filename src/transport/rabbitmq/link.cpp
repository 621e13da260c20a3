#include "transport/rabbitmq/link.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <stdexcept>

namespace asya::transport::rabbitmq {

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

void wait_for_input(AmqpConnection& connection, Wakeup& wakeup, std::chrono::milliseconds timeout) {
  amqp_connection_state_t state = connection.state();
  if (state != nullptr && (amqp_frames_enqueued(state) || amqp_data_in_buffer(state))) return;
  pollfd fds[2] = {{wakeup.fd(), POLLIN, 0}, {connection.fd(), POLLIN, 0}};
  int count = connection.fd() >= 0 ? 2 : 1;
  int rc = ::poll(fds, count, static_cast<int>(timeout.count()));
  if (rc > 0 && (fds[0].revents & POLLIN)) wakeup.clear();
}

Result<bool> read_frame(AmqpConnection& connection, amqp_frame_t& frame) {
  timeval zero{0, 0};
  int rc = amqp_simple_wait_frame_noblock(connection.state(), &frame, &zero);
  if (rc == AMQP_STATUS_OK) return true;
  if (rc == AMQP_STATUS_TIMEOUT) return false;
  Status st = connection.check_status(rc, "reading from the broker");
  return st.error();
}

}  // namespace asya::transport::rabbitmq
