// What the publisher and the consumer share: one rabbitmq-c connection, the thread that keeps it
// (connects, reconnects with backoff, reads what the broker sends, sends heartbeats), and the
// locks that let the calling threads use the same connection directly.
//
// rabbitmq-c is not thread-safe, but it does not need one thread: every use of the connection is
// serialized by `io_`. Whoever holds `io_` may write frames and read them (a "turn"). The link
// thread takes turns when the broker sends something or when a caller queued work for it; a
// caller that finds the connection free writes its own frames (a publish, an ack) and, for a
// publish, reads until its confirm arrives, so the common path crosses no thread boundary. A
// caller that finds `io_` taken (the link thread is connecting, declaring or reading) queues its
// work and wakes the link thread instead; the result is the same.
#pragma once

#include <amqp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "transport/rabbitmq/amqp_connection.hpp"

namespace asya::transport::rabbitmq {

// An eventfd another thread writes to wake the link thread out of poll().
class Wakeup {
 public:
  Wakeup();
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;
  ~Wakeup();
  void notify();
  // Consumes pending notifications.
  void clear();
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Reconnect backoff: 100ms doubling to 5s, reset after a successful connect.
class Backoff {
 public:
  std::chrono::milliseconds next() {
    auto d = delay_;
    delay_ = std::min(delay_ * 2, std::chrono::milliseconds(5000));
    return d;
  }
  void reset() { delay_ = std::chrono::milliseconds(100); }

 private:
  std::chrono::milliseconds delay_{100};
};

class Link {
 public:
  Link(const RabbitmqSettings& settings, const char* role, int channels);
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;
  virtual ~Link();

 protected:
  // Starts the link thread: the last statement of a derived constructor (the thread calls the
  // hooks below).
  void start_link();
  // Stops the link thread after its last turn (on_stop), closes the connection and calls
  // on_stopped. Idempotent; a derived destructor must call it (the hooks are gone after that).
  void stop_link();

  // ---- hooks; io_ is held unless said otherwise ----
  // mutex_ held: whether to (re)connect now (the consumer connects on its first receive()).
  virtual bool wants_connection() { return true; }
  // The socket is open and logged in: set up the channels (confirm.select, basic.qos, ...).
  virtual Status on_open() = 0;
  // mutex_ held too: the connection is up; reset what belongs to one connection.
  virtual void on_connected() {}
  // The connection was lost and is closed now (`why` is the cause); mutex_ is not held.
  virtual void on_lost(const std::string& why) = 0;
  // Writes what callers queued for the link thread.
  virtual void write_pending() = 0;
  virtual void handle_frame(const amqp_frame_t& frame) = 0;
  // mutex_ held: write_pending() has more to do without waiting for input.
  virtual bool has_pending() = 0;
  // mutex_ held: how long the idle link thread may sleep before write_pending() has something
  // due (heartbeats are sent within the default, a second).
  virtual std::chrono::milliseconds idle_wait() { return std::chrono::milliseconds(1000); }
  // mutex_ held: whether the idle link thread watches the socket (else it reads what came at its
  // next tick, within a second). Default: unless callers read it themselves (drivers_).
  virtual bool watch_socket() { return drivers_ == 0; }
  // mutex_ held: something every waiting caller must see happened (connected, lost, stopping).
  // Default: changed_.notify_all(); a derived class whose callers also wait on condition
  // variables of their own (one per call or per queue, so that a confirm or a delivery wakes only
  // the caller it is for) wakes those too.
  virtual void wake_all() { changed_.notify_all(); }
  // The last turn before closing (stopping; the connection may be open or not).
  virtual void on_stop() {}
  // mutex_ held, the connection closed, the thread ending: fail whatever still waits.
  virtual void on_stopped() {}

  // One turn: write_pending(), then (when `read`) every frame that is ready goes to
  // handle_frame(), then the frame buffers are released. io_ held, the connection open.
  // `readable`: the caller's poll() just saw the socket readable (see read_ready_frames).
  void turn(bool read, bool readable = false);
  // Reads the frames that are ready (rabbitmq-c also sends due heartbeats here) and hands them to
  // handle_frame(). Stops at the first error or channel/connection close from the broker (the
  // connection is then marked broken and last_error_ says why). `readable`: the caller's poll()
  // just saw the socket readable, so it is read without asking poll() again.
  void read_ready_frames(bool readable = false);
  // Whether rabbitmq-c holds a frame or bytes of one (frames that came during an RPC's reply,
  // bytes read past a frame), which poll() on the socket does not show; always true with TLS.
  bool holds_frames();
  // holds_frames(), or the socket is readable (or in error).
  bool may_have_frames();
  // From a calling thread: reads what is ready if the connection is free; wakes the link thread
  // when that found the connection broken.
  void read_if_free();
  // Waits up to `timeout` for the socket `fd` (-1: not watched) to be readable or the wakeup.
  void wait(int fd, std::chrono::milliseconds timeout);
  void set_error(const std::string& message);

  const RabbitmqSettings& settings_;
  const char* const role_;  // "publisher" / "consumer", for log lines

  std::mutex mutex_;  // what callers and the link thread share (below and in derived classes)
  std::condition_variable changed_;
  bool connected_ = false;
  bool ever_connected_ = false;  // a connection succeeded once (connect_timeout no longer applies)
  bool stopping_ = false;
  std::string last_error_;
  // A caller reading the socket itself (at most one: a second reader could take the frames the
  // first one waits for in poll()). While there is one, the link thread writes but never reads.
  int drivers_ = 0;
  // The idle link thread sleeps watching the socket (watch_socket() was true): what arrives is
  // read without anyone having to wake it.
  bool watching_ = false;

  std::mutex io_;  // the connection; taken with try_lock by callers
  AmqpConnection connection_;
  std::chrono::steady_clock::time_point last_read_{};  // io_: rabbitmq-c's read last called
  // When read_ready_frames() last found nothing more to read (steady clock, ns; 0: never): a
  // caller that only wants to know whether the connection still stands may skip reading when
  // that was a moment ago (Consumer::holds).
  std::atomic<std::int64_t> drained_at_{0};
  Wakeup wakeup_;

 private:
  void run();
  bool connect();

  const int channels_;
  Backoff backoff_;
  std::thread thread_;
};

}  // namespace asya::transport::rabbitmq
