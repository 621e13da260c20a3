// The blocking receive() of the SQLite transport (sqlite_transport.hpp): when it reads, when it
// leases under the write lock, when it waits for a wake-up (queue_waker.hpp), and, with hand-off
// on (hand_off.hpp), how a receive() about to wait registers as waiting, takes the message a
// sender handed it with a read, and ends its registration when it returns.
//
// Threads: receive() is thread-safe; each call uses its own pooled connections and its own
// registration (a sidecar with several workers on one queue has one row per waiting worker).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.hpp"
#include "transport/sqlite/hand_off.hpp"
#include "transport/sqlite/lease.hpp"
#include "transport/sqlite/queue_waker.hpp"
#include "transport/sqlite/sqlite_settings.hpp"
#include "transport/transport.hpp"

namespace asya::transport::sqlite {

class Receiver {
 public:
  // `settings`, `waker` and `parts` must outlive the Receiver.
  Receiver(const SqliteSettings& settings, std::chrono::milliseconds visibility_timeout,
           QueueWaker& waker, const LeaseParts& parts);

  // Transport::receive() (transport.hpp): waits up to `wait` for a message of `queue` and
  // returns up to `max_messages` of them, leased for the visibility timeout.
  Result<std::vector<Delivery>> receive(std::string_view queue, std::size_t max_messages,
                                        std::chrono::milliseconds wait);

 private:
  using Clock = std::chrono::steady_clock;

  // receive() until `deadline`. With hand-off on, a receive() about to wait is registered in
  // `registration`; it may return with the registration still active (nothing came,
  // interrupted, an error), and receive() then ends it.
  Result<std::vector<Delivery>> receive_until(std::string_view queue, std::size_t max_messages,
                                              Clock::time_point deadline,
                                              Registration& registration);

  // The message handed to `registration` from its hand-off slot (hand_off_slots.hpp), waiting
  // (yielding) until `until` while it is staged and its sender's COMMIT not done; nullopt when
  // the slot holds nothing for it (the caller reads the database). Ends the registration when it
  // returns a message, or an error when close() got to the hand-off first (closed_while_taking).
  std::optional<Result<std::vector<Delivery>>> take_from_slot(std::string_view queue,
                                                              Registration& registration,
                                                              Clock::time_point until);

  // The earliest visible_at_ms of the queue (ready, leased or delayed), or nullopt when empty.
  Result<std::optional<std::int64_t>> next_visible_at(std::string_view queue);

  // One lease transaction (lease.hpp).
  Result<std::vector<Delivery>> lease(std::string_view queue, std::size_t max_messages,
                                      LeaseBegin begin, LeaseLook& look,
                                      Registration* registration = nullptr,
                                      bool register_if_none = false, bool unregister = false);

  // Whether a look under the write lock was made at wake-up generation `generation` of `queue`
  // in this process, and recording one. A look that leased messages also keeps the queue's
  // next visible time it read, for one later receive() at the same generation
  // (take_lease_look): no sender committed to the queue since (each wakes it first), its leased
  // and delayed rows are counted, and what can change without a wake-up (a dead process's
  // leases released) waits for the poll interval, as it does between the reads.
  bool looked_under_lock_at(std::string_view queue, std::uint64_t generation);
  void looked_under_lock(std::string_view queue, std::uint64_t generation, bool leased,
                         std::optional<std::int64_t> next_visible);
  bool take_lease_look(std::string_view queue, std::uint64_t generation,
                       std::optional<std::int64_t>& next_visible);

  const SqliteSettings& settings_;
  const std::chrono::milliseconds visibility_timeout_;
  QueueWaker& waker_;
  const LeaseParts& parts_;

  std::mutex looked_mutex_;
  struct Look {
    std::uint64_t generation = 0;
    bool leased = false;  // it leased messages, and no receive() took its next_visible yet
    std::optional<std::int64_t> next_visible;
  };
  std::unordered_map<std::string, Look> looked_under_lock_;  // by queue
};

}  // namespace asya::transport::sqlite
