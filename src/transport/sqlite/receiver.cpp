#include "transport/sqlite/receiver.hpp"

#include <algorithm>
#include <iterator>
#include <thread>
#include <utility>

namespace asya::transport::sqlite {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

Receiver::Receiver(const SqliteSettings& settings, milliseconds visibility_timeout,
                   QueueWaker& waker, const LeaseParts& parts)
    : settings_(settings), visibility_timeout_(visibility_timeout), waker_(waker), parts_(parts) {}

Result<std::vector<Delivery>> Receiver::receive(std::string_view queue, std::size_t max_messages,
                                                milliseconds wait) {
  if (max_messages == 0) {
    return Error{"receive from queue " + in_quotes(queue) + ": max_messages is 0, use 1 or more"};
  }
  Clock::time_point deadline = Clock::now() + std::max(wait, milliseconds(0));
  Registration registration;
  auto received = receive_until(queue, max_messages, deadline, registration);
  if (!registration.active()) return received;
  // Leaving while registered as waiting (nothing came, interrupted, or an error): the row goes,
  // and a message a sender handed it meanwhile is returned (hand_off.hpp).
  LeaseLook look;
  auto last = lease(queue, max_messages, LeaseBegin::kWait, look, &registration,
                    /*register_if_none=*/false, /*unregister=*/true);
  if (!last) {
    // Deleted (its message released) later; a registration refused its message by close() is
    // no longer this call's (token 0).
    if (registration.active()) parts_.waiters.abandon(registration.token);
    return received;
  }
  if (!received) return last->empty() ? received : last;
  received->insert(received->end(), std::make_move_iterator(last->begin()),
                   std::make_move_iterator(last->end()));
  return received;
}

Result<std::vector<Delivery>> Receiver::receive_until(std::string_view queue,
                                                      std::size_t max_messages,
                                                      Clock::time_point deadline,
                                                      Registration& registration) {
  bool woken = false;
  for (;;) {
    // Read the generation before looking, so a commit between the look and the wait wakes us.
    std::uint64_t seen = waker_.generation(queue);
    if (waker_.interrupted()) return std::vector<Delivery>{};
    // Register as waiting only when this call may wait at all.
    const bool may_register = settings_.hand_off && Clock::now() < deadline;
    Registration* hand_off = registration.active() || may_register ? &registration : nullptr;
    LeaseLook look;
    auto under_lock = [&](LeaseBegin begin) -> Result<std::vector<Delivery>> {
      auto leased = lease(queue, max_messages, begin, look, hand_off, may_register);
      if (!leased || look.busy) return leased;
      if (registration.active()) registration.looked_at = seen;
      if (!look.handed) looked_under_lock(queue, seen, !leased->empty(), look.next_visible);
      return leased;
    };
    if (registration.active()) {
      // Waiting registered: a sender hands its message to this call (hand_off.hpp).
      Result<std::vector<Delivery>> got = std::vector<Delivery>{};
      bool lost = false;
      if (std::exchange(woken, false)) {
        // The sender woke us just before its COMMIT: read again (yielding) while that COMMIT
        // is being written, until the hand-off shows or the write lock is free; then look
        // under the lock as an unregistered receiver would (the message went to another
        // waiter, an older Asya sent it, or a nack made it ready).
        Clock::time_point spin_until = Clock::now() + kHandOffSpin;
        // The sender staged the message in this call's slot (hand_off_slots.hpp): taken from
        // there once its COMMIT returned, without a read of the database.
        if (auto slotted = take_from_slot(queue, registration, spin_until))
          return std::move(*slotted);
        for (;;) {
          got = read_hand_off(parts_, queue, registration, lost);
          if (!got || !got->empty()) break;
          if (lost || Clock::now() >= spin_until) {
            got = under_lock(LeaseBegin::kWait);
            break;
          }
          got = under_lock(LeaseBegin::kTry);
          if (!got || !look.busy) break;
          std::this_thread::yield();
        }
      } else {
        // A fallback poll, or the time a delayed message or a lease ends: a read, unless
        // this generation was not looked at under the lock yet (see below).
        got = read_hand_off(parts_, queue, registration, lost);
        if (got && got->empty()) {
          if (lost || registration.looked_at != seen) {
            got = under_lock(LeaseBegin::kWait);
          } else {
            auto visible = next_visible_at(queue);
            if (!visible) return visible.error();
            look.next_visible = *visible;
            if (*visible && **visible <= now_ms()) got = under_lock(LeaseBegin::kWait);
          }
        }
      }
      if (!got) return got.error();
      if (!got->empty()) return got;
    } else if (std::exchange(woken, false)) {
      // A wake-up almost always means a message is ready: lease at once, without the read that
      // tells whether to (one read transaction less per message).
      auto leased = under_lock(LeaseBegin::kSpin);
      if (!leased) return leased.error();
      if (!leased->empty()) return leased;
    } else if (may_register && !registration.active()) {
      // About to wait with hand-off: the lease that registers this call leases a ready message
      // instead when there is one, so the read of the queue's next visible time that would tell
      // whether to lease first is not needed (one read transaction less per message; its pages
      // re-read after every other process's commit).
      auto leased = under_lock(LeaseBegin::kWait);
      if (!leased) return leased.error();
      if (!leased->empty()) return leased;
    } else {
      std::int64_t now = now_ms();
      // Right after a lease at this generation (the previous receive), the queue's next
      // visible time it read stands in for the read transaction here: one less per message.
      if (!take_lease_look(queue, seen, look.next_visible)) {
        auto visible = next_visible_at(queue);
        if (!visible) return visible.error();
        look.next_visible = *visible;
      }
      if (look.next_visible && *look.next_visible <= now) {
        auto leased = under_lock(LeaseBegin::kWait);
        if (!leased) return leased.error();
        if (!leased->empty()) return leased;
        continue;  // another consumer took them; look again at once
      }
      if (!looked_under_lock_at(queue, seen)) {
        // Senders wake receivers just before their COMMIT, with the write lock held
        // (group_commit.hpp): a wake that came before `seen` was read may belong to a COMMIT
        // still being written, which the read above cannot see and after which no wake-up
        // follows. The first look at each generation therefore takes the write lock (the
        // lease), which waits for that COMMIT; later looks at the same generation read. (With
        // hand-off, the look before a wait registers this call as waiting: the branch above.)
        auto leased = under_lock(LeaseBegin::kWait);
        if (!leased) return leased.error();
        if (!leased->empty()) return leased;
      }
    }
    Clock::time_point steady_now = Clock::now();
    if (steady_now >= deadline) return std::vector<Delivery>{};
    Clock::time_point until = std::min(deadline, steady_now + settings_.poll_interval);
    if (look.next_visible) {
      // Ready already (visible between the lease's clock reading and its query): look again.
      std::int64_t in_ms = *look.next_visible - now_ms();
      if (in_ms <= 0) continue;
      until = std::min(until, steady_now + milliseconds(in_ms));
    }
    waker_.wait(queue, seen, until);
    woken = waker_.generation(queue) != seen;
  }
}

std::optional<Result<std::vector<Delivery>>> Receiver::take_from_slot(std::string_view queue,
                                                                      Registration& registration,
                                                                      Clock::time_point until) {
  for (;;) {
    Delivery delivery;
    HandOffSlots::Take taken = parts_.slots.take(registration.token, queue, delivery);
    if (taken == HandOffSlots::Take::kTaken) {
      if (!parts_.waiters.taken(std::exchange(registration.token, 0)))
        return Result<std::vector<Delivery>>{closed_while_taking(queue)};
      std::vector<Delivery> out;
      out.push_back(std::move(delivery));
      return Result<std::vector<Delivery>>{std::move(out)};
    }
    if (taken == HandOffSlots::Take::kNothing || Clock::now() >= until) return std::nullopt;
    std::this_thread::yield();  // the sender's COMMIT is being written
  }
}

Result<std::optional<std::int64_t>> Receiver::next_visible_at(std::string_view queue) {
  auto c = parts_.pool.acquire();
  if (!c) return c.error();
  auto s = c->connection().statement(kNextVisible);
  if (!s) return s.error();
  ResetOnExit reset{*s};
  bind_text(*s, 1, queue);
  if (sqlite3_step(*s) != SQLITE_ROW)
    return Error{"receive on queue " + in_quotes(queue) + " failed: " + c->connection().error()};
  if (sqlite3_column_type(*s, 0) == SQLITE_NULL) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(sqlite3_column_int64(*s, 0));
}

Result<std::vector<Delivery>> Receiver::lease(std::string_view queue, std::size_t max_messages,
                                              LeaseBegin begin, LeaseLook& look,
                                              Registration* registration, bool register_if_none,
                                              bool unregister) {
  return lease_ready(parts_,
                     LeaseRequest{queue, max_messages, visibility_timeout_, begin, registration,
                                  register_if_none, unregister},
                     look);
}

bool Receiver::looked_under_lock_at(std::string_view queue, std::uint64_t generation) {
  std::lock_guard lock(looked_mutex_);
  auto it = looked_under_lock_.find(std::string(queue));
  return it != looked_under_lock_.end() && it->second.generation == generation;
}
void Receiver::looked_under_lock(std::string_view queue, std::uint64_t generation, bool leased,
                                 std::optional<std::int64_t> next_visible) {
  std::lock_guard lock(looked_mutex_);
  looked_under_lock_[std::string(queue)] = Look{generation, leased, next_visible};
}
bool Receiver::take_lease_look(std::string_view queue, std::uint64_t generation,
                               std::optional<std::int64_t>& next_visible) {
  std::lock_guard lock(looked_mutex_);
  auto it = looked_under_lock_.find(std::string(queue));
  if (it == looked_under_lock_.end() || it->second.generation != generation ||
      !std::exchange(it->second.leased, false))
    return false;
  next_visible = it->second.next_visible;
  return true;
}

}  // namespace asya::transport::sqlite
