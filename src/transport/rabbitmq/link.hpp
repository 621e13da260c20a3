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
#include <vector>

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

class Link;

// One rabbitmq-c connection, the thread that keeps it, and the state its users share. One
// LinkCore serves the publisher and the consumer together (ASYA_RABBITMQ_CONNECTIONS=1, the
// default: each on channels of its own on one connection, so the broker runs one reader, one
// writer and one connection process for both), or each has one (=2).
class LinkCore {
 public:
  LinkCore(const RabbitmqSettings& settings, const char* role);
  LinkCore(const LinkCore&) = delete;
  LinkCore& operator=(const LinkCore&) = delete;
  // Stops the thread if stop() was not called.
  ~LinkCore();

  // Before start(): `user` uses the next `channels` channels. Returns the number of the channel
  // before its first (its channels are that + 1 .. that + channels).
  int attach(Link* user, int channels);
  // Starts the link thread; every user is attached and constructed.
  void start();
  // Stops the link thread after its last turn (every user's on_stop), closes the connection and
  // calls every user's on_stopped. Idempotent; must be called before a user is destroyed.
  void stop();

 private:
  friend class Link;

  void run();
  bool connect();
  void turn(bool read, bool readable);
  void read_ready_frames(bool readable);
  bool holds_frames();
  bool may_have_frames();
  void read_if_free();
  void wait(int fd, std::chrono::milliseconds timeout);
  void set_error(const std::string& message);
  void dispatch(const amqp_frame_t& frame);
  // mutex_ held: every user's wake_all().
  void wake_all();
  // mutex_ held: a reader left and `from` found none of its own callers to read next: another
  // user's waiting caller is offered the reading (Link::offer_reading). False when none took it.
  bool hand_over(const Link* from);

  struct User {
    Link* link;
    int first_channel;  // its channels: first_channel .. first_channel + channels - 1
    int channels;
  };

  const RabbitmqSettings& settings_;
  const char* const role_;  // "publisher", "consumer", "connection" (both): for log lines
  std::vector<User> users_;
  int channels_ = 0;

  std::mutex mutex_;  // what callers and the link thread share (below and in the users)
  std::condition_variable changed_;
  bool connected_ = false;
  bool ever_connected_ = false;  // a connection succeeded once (connect_timeout no longer applies)
  bool stopping_ = false;
  bool stopped_ = false;  // stop() returned: the thread is gone
  std::string last_error_;
  // A caller reading the socket itself (at most one for all users: a second reader could take
  // the frames the first one waits for in poll()). While there is one, the link thread writes but
  // never reads.
  int drivers_ = 0;
  // The idle link thread sleeps watching the socket (some user's watch_socket() was true): what
  // arrives is read without anyone having to wake it.
  bool watching_ = false;

  std::mutex io_;  // the connection; taken with try_lock by callers
  AmqpConnection connection_;
  std::chrono::steady_clock::time_point last_read_{};  // io_: rabbitmq-c's read last called
  // When read_ready_frames() last found nothing more to read (steady clock, ns; 0: never).
  std::atomic<std::int64_t> drained_at_{0};
  Wakeup wakeup_;

  Backoff backoff_;
  std::thread thread_;
};

// A user of a LinkCore (the publisher or the consumer): its hooks, and references to the
// core's shared state under the names both used when each had a connection of its own.
class Link {
 public:
  Link(LinkCore& core, int channels);
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;
  virtual ~Link() = default;

 protected:
  friend class LinkCore;

  // Stops the core's link thread (LinkCore::stop; with a shared core, for every user).
  void stop_link() { core_.stop(); }

  // ---- hooks; io_ is held unless said otherwise ----
  // mutex_ held: whether to (re)connect now (the consumer alone connects on its first receive()).
  virtual bool wants_connection() { return true; }
  // The socket is open and logged in: set up this user's channels (confirm.select, basic.qos).
  virtual Status on_open() = 0;
  // mutex_ held too: the connection is up; reset what belongs to one connection.
  virtual void on_connected() {}
  // The connection was lost and is closed now (`why` is the cause); mutex_ is not held.
  virtual void on_lost(const std::string& why) = 0;
  // Writes what callers queued for the link thread.
  virtual void write_pending() = 0;
  // A frame on one of this user's channels (or on channel 0).
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
  // mutex_ held, nobody reads the socket: wake one caller of this user that waits for something
  // from the broker, to read the socket itself (a reader of another user left). False when none
  // waits.
  virtual bool offer_reading() { return false; }
  // The last turn before closing (stopping; the connection may be open or not).
  virtual void on_stop() {}
  // mutex_ held, the connection closed, the thread ending: fail whatever still waits.
  virtual void on_stopped() {}

  // One turn: every user's write_pending(), then (when `read`) every frame that is ready goes to
  // its user's handle_frame(), then the frame buffers are released. io_ held, the connection
  // open. `readable`: the caller's poll() just saw the socket readable (see read_ready_frames).
  void turn(bool read, bool readable = false) { core_.turn(read, readable); }
  // Reads the frames that are ready (rabbitmq-c also sends due heartbeats here) and hands them to
  // their users. Stops at the first error or channel/connection close from the broker (the
  // connection is then marked broken and last_error_ says why). `readable`: the caller's poll()
  // just saw the socket readable, so it is read without asking poll() again.
  void read_ready_frames(bool readable = false) { core_.read_ready_frames(readable); }
  // Whether rabbitmq-c holds a frame or bytes of one (frames that came during an RPC's reply,
  // bytes read past a frame), which poll() on the socket does not show; always true with TLS.
  bool holds_frames() { return core_.holds_frames(); }
  // From a calling thread: reads what is ready if the connection is free and no caller reads it
  // already (with a shared core: a reader of the other user would not see what this read);
  // wakes the link thread when that found the connection broken.
  void read_if_free() { core_.read_if_free(); }
  void set_error(const std::string& message) { core_.set_error(message); }
  // mutex_ held: this user's reader left and none of its callers reads next: offers the reading
  // to the other user's callers (LinkCore::hand_over). False when none took it.
  bool hand_over_to_others() { return core_.hand_over(this); }
  // Whether another user shares the connection (mutex_ not needed: fixed once started).
  bool shares_connection() const { return core_.users_.size() > 1; }
  // The number of this user's channel `n` (1-based) on the connection.
  amqp_channel_t channel(int n) const { return static_cast<amqp_channel_t>(channel_base_ + n); }

  LinkCore& core_;
  const RabbitmqSettings& settings_;
  std::mutex& mutex_;
  std::condition_variable& changed_;
  bool& connected_;
  bool& ever_connected_;
  bool& stopping_;
  std::string& last_error_;
  int& drivers_;
  bool& watching_;
  std::mutex& io_;
  AmqpConnection& connection_;
  std::atomic<std::int64_t>& drained_at_;
  Wakeup& wakeup_;

 private:
  const int channel_base_;
};

}  // namespace asya::transport::rabbitmq
