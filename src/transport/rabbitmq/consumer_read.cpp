// The consumer's wait for a delivery: a receive() caller that finds nobody reading the socket
// reads it itself (see Consumer::wait_for_delivery in consumer.hpp), so at a low rate a delivery
// wakes the one thread that takes it.
#include <poll.h>

#include <algorithm>
#include <functional>

#include "transport/rabbitmq/consumer.hpp"

namespace asya::transport::rabbitmq {

using Clock = std::chrono::steady_clock;

void Consumer::wait_for_delivery(std::unique_lock<std::mutex>& lock, QueueState& q,
                                 Clock::time_point deadline, const std::function<bool()>& ready) {
  bool link_has_it = false;  // read_until found the connection held or broken by the link thread
  while (!ready() && Clock::now() < deadline) {
    if (link_has_it || drivers_ > 0 || !connected_ || !q.consuming || stopping_) {
      // Another caller reads the socket (it wakes one of us when it leaves), or the link thread
      // is (re)connecting or starting the consumer: wait for a delivery or a change.
      if (drivers_ == 0 && !watching_) wakeup_.notify();  // the link thread watches for us
      q.arrived.wait_until(lock, deadline);
      link_has_it = false;
      continue;
    }
    // Nobody reads the socket: this caller reads it, so a delivery wakes this thread only (not
    // the link thread, which then wakes this one).
    ++drivers_;
    reader_ = std::this_thread::get_id();
    link_has_it = !read_until(lock, deadline, ready);
    reader_ = std::thread::id();
    --drivers_;
  }
  if (drivers_ > 0) return;
  // Nobody reads the socket now: the next waiter of this queue reads it (or takes what is
  // buffered); waiters of other queues only are the link thread's to watch for.
  if (q.waiting > 1)
    q.arrived.notify_one();
  else if (waiting_ > q.waiting && !watching_)
    wakeup_.notify();
}

bool Consumer::read_until(std::unique_lock<std::mutex>& lock, Clock::time_point deadline,
                          const std::function<bool()>& ready) {
  // Every frame that was complete when the socket was last read has been handled, unless
  // rabbitmq-c holds some (frames that came during an RPC, bytes read past a frame): so this reads
  // those, and otherwise first waits and reads when poll() says.
  bool polled = false, readable = false;
  while (!ready() && connected_ && !stopping_) {
    lock.unlock();
    int fd = -1;
    {
      // Never waits for io_: the link thread holds it for a turn (a moment) or for a reconnect,
      // which waits up to a step timeout per step for a broker that does not answer. The caller
      // then waits for a delivery or a change instead (wait_for_delivery), which returns at its
      // deadline and sees a stop at once.
      std::unique_lock io(io_, std::try_to_lock);
      if (!io.owns_lock()) {
        lock.lock();
        return false;
      }
      if (connection_.is_open() && (polled || amqp_frames_enqueued(connection_.state()) ||
                                    amqp_data_in_buffer(connection_.state()))) {
        read_ready_frames(readable);  // poll() saw the socket readable: read it at once
        if (connection_.is_open()) amqp_maybe_release_buffers(connection_.state());
      }
      if (connection_.is_open()) fd = connection_.fd();
    }
    if (fd < 0) {
      wakeup_.notify();  // the connection broke under us: the link thread reconnects
      lock.lock();
      return false;  // wait for the link thread to say so (wake_all), not spin until then
    }
    lock.lock();
    if (ready()) return true;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return true;
    lock.unlock();
    // Bounded slices: rabbitmq-c sends due heartbeats when this caller reads.
    pollfd fds[2] = {{reader_wakeup_.fd(), POLLIN, 0}, {fd, POLLIN, 0}};
    int rc = ::poll(fds, 2, static_cast<int>(std::min<std::int64_t>(left.count(), 1000)));
    if (rc > 0 && (fds[0].revents & POLLIN)) reader_wakeup_.clear();
    polled = true;
    readable = rc > 0 && (fds[1].revents & POLLIN) != 0;
    lock.lock();
  }
  return true;
}

}  // namespace asya::transport::rabbitmq
