// The order in which a runtime that serializes its handler calls runs them (internal to the C++
// runtime; PROTOCOL §3 "Pipelined batches", "Order"): the order in which its connection threads
// began reading the requests. A thread takes a ticket when a request starts to arrive, before it
// reads the request's last byte; a sidecar writes a batch ahead on its second connection only
// after the runtime read the first batch whole (wire::RuntimeClient::wait_request_read), so the
// first batch's ticket is always the earlier one and the batches run in the order sent, whichever
// connection thread finishes reading first.
//
// A ticket lock: begin(t) returns once every earlier ticket has ended, and then its holder is the
// only one between begin and end. Every ticket taken must be ended exactly once (a request that
// calls no handler, or whose connection closed before it was read whole, ends its ticket
// unused); end() of a ticket already ended does nothing. A ticket not ended holds back every later
// one: a connection that stops in the middle of a request holds back the calls of requests that
// began after it until it is closed.
//
// Threads: any; every method is thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>

namespace asya::wire {

class CallOrder {
 public:
  using Ticket = std::uint64_t;

  // The next place in the order.
  Ticket take();
  // Blocks until every ticket taken before `ticket` has ended.
  void begin(Ticket ticket);
  // Ends `ticket` (after its call, or unused): the next ticket may begin. Idempotent.
  void end(Ticket ticket);

 private:
  std::mutex mutex_;
  std::condition_variable turn_;
  Ticket issued_ = 0;
  Ticket next_ = 0;         // the lowest ticket not ended
  std::set<Ticket> ended_;  // tickets above next_ ended early (unused ones, in practice)
};

// Ends a ticket when it goes out of scope (once; CallOrder::end is idempotent).
class CallTurn {
 public:
  CallTurn(CallOrder& order, CallOrder::Ticket ticket) : order_(order), ticket_(ticket) {}
  ~CallTurn() { order_.end(ticket_); }
  CallTurn(const CallTurn&) = delete;
  CallTurn& operator=(const CallTurn&) = delete;

  // Blocks until this turn's ticket may run (CallOrder::begin).
  void begin() { order_.begin(ticket_); }
  void end() { order_.end(ticket_); }

 private:
  CallOrder& order_;
  CallOrder::Ticket ticket_;
};

}  // namespace asya::wire
