// Hand-off: a sender gives its new message straight to a receiver that is already waiting for
// one, so that the woken receiver only reads it instead of leasing it in a write transaction of
// its own after the sender's COMMIT (docs/transports.md, "Hand-off to a waiting receiver").
//
// Receivers: a receive() about to wait records itself in the table `waiters` (queue, a fresh
// lease token of its instance, its visibility timeout, machine identity, pid and the pid's start
// time: process_identity.hpp), in the write
// transaction of the look under the lock it takes anyway before waiting (the lease that found
// nothing: lease.hpp). From then on its row says "waiting" (message_id NULL). It leaves that
// state by (a) being handed a message, (b) leasing messages itself (the lease deletes the row
// in the same transaction), or (c) returning without one (timeout, interrupt, error): a last
// write transaction deletes the row, or, when a sender handed it a message meanwhile, takes that
// message and returns it. So a row waits only while its receive() is running.
//
// Senders: every send without a delay, inside its own write transaction, picks the oldest
// waiting row of its queue on this machine (fairness: first registered, first served; one
// message per row), checks that the row's process is alive (the pid shows the recorded start
// time; a pid now used by another process is a dead one; ProcessLiveness keeps a pidfd of each
// process found alive, so a check costs one poll()), deletes the rows of a dead process on the
// way, and skips rows that cannot be checked (an older build's, without a start time). Rows of
// another machine identity (another host sharing the file over NFS, another container through a
// volume) are never picked nor deleted. It then inserts its message already leased with the row's
// token (delivery count 1, visible again after the row's visibility timeout: exactly the lease the
// receiver would have taken) and writes the message's id into the row. A group commit of many
// sends hands one message to each waiting row, oldest first; the rest stay ready.
//
// Taking it: the woken receiver reads its row and the message (one read, no write lock); as the
// sender wakes it just before its COMMIT, it reads again (yielding) until it sees the hand-off,
// or until it can take the write lock itself (the COMMIT is done and nothing was handed to it:
// another waiter got the message, an older Asya sent it, or it was a nack), and then looks under
// the lock as before. The row, now naming its message, is ignored by senders and deleted by a
// later write transaction of the same instance (taken()).
//
// Guarantees kept: a handed message is an ordinary lease. A receiver killed after being handed
// one holds it like any lease: it comes back at the lease's expiry, or at once when a transport
// on this machine next opens the file (release_dead_owners also deletes the dead owner's rows,
// and remove_stale() the rows of gone processes that no lease_owners row names).
// A row whose message is no longer leased with its token (expired and received elsewhere) is
// treated as "nothing handed". close() deletes the instance's rows and makes a message handed
// to one of them and not taken visible again (delivery count not raised). A receive() racing
// close() on another thread either took its message before close() looked (close() then leaves
// it leased to that receive()) or is refused it (taken() returns false: the receive() returns an
// error and close() makes the message visible again), never both.
//
// Threads: every method is thread-safe. The instance must not cross fork().
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "transport/sqlite/connection.hpp"
#include "transport/sqlite/process_identity.hpp"
#include "transport/transport.hpp"

namespace asya::transport::sqlite {

// How long a woken receiver keeps reading its row (yielding in between) while the sender's
// COMMIT is being written, before it waits for the write lock like any lease.
constexpr std::chrono::microseconds kHandOffSpin{200};

// One receive() call's row in `waiters`.
struct Registration {
  std::int64_t token = 0;       // the row's lease token; 0: not registered
  std::uint64_t looked_at = 0;  // the wake-up generation of its last look under the write lock
  bool active() const { return token != 0; }
};

// What a receiver found in its row.
struct HandOffLook {
  enum class State {
    kWaiting,  // nothing handed (yet)
    kHanded,   // `delivery` (its body read when `body_read`, else in `file` or too large)
    kLost,     // a message was handed, but is no longer leased with the row's token
    kGone,     // no row (deleted by close())
  };
  State state = State::kWaiting;
  Delivery delivery;
  std::int64_t id = 0;
  std::string file;  // the body file, empty for a body in the table
  bool body_read = false;
};

// How many handed messages receivers of this process took (tests; every transport instance).
std::uint64_t hand_offs_taken();

class Waiters {
 public:
  // `host`: this process's machine identity (LeaseOwners::host()).
  explicit Waiters(std::string host);

  // Sender, inside its write transaction on `db`: the token and visibility timeout of the oldest
  // waiting receiver of `queue` of this machine identity whose process lives, or nullopt (rows
  // of gone processes deleted on the way).
  struct Target {
    std::int64_t token = 0;
    std::int64_t visibility_ms = 0;
  };
  Result<std::optional<Target>> pick(Connection& db, std::string_view queue);
  // Sender, same transaction: the row of `token` now names `message_id`.
  Status mark_handed(Connection& db, std::int64_t token, std::int64_t message_id);

  // Receiver, inside a write transaction on `db` that found nothing ready: records the row of
  // `token` (and deletes the rows given to taken() and abandon() before). An error once close()
  // began.
  Status register_in(Connection& db, std::string_view queue, std::int64_t token, std::int64_t owner,
                     std::chrono::milliseconds visibility);
  // Receiver: its row and a message handed to it, read on `db` (a read of its own, or inside
  // the caller's transaction). `queue` names the queue in the delivery and in errors.
  Result<HandOffLook> look(Connection& db, std::string_view queue, std::int64_t token);
  // Receiver, inside a write transaction: deletes its row.
  Status unregister_in(Connection& db, std::int64_t token);
  // The receiver read the message handed to `token` and is about to return it: true, and the row
  // is deleted by a later registration. False once close() began: the receiver must not return
  // the message, which close() makes visible again.
  bool taken(std::int64_t token);
  // The row could not be deleted (a failed write): a later registration or close() deletes it
  // and makes a message handed to it visible again.
  void abandon(std::int64_t token);

  // close(): from now on refuses taken() and registrations; deletes every row of `owner`, making
  // a message handed to one and not taken visible again (its delivery not counted); calls `wake`
  // for each queue that got one back.
  void forget(ConnectionPool& pool, std::int64_t owner,
              const std::function<void(const std::string&)>& wake);

  // At open, before the first receive(): deletes the rows no receive() can be waiting behind.
  // Those of this machine identity whose process is gone (also when no lease_owners row names
  // it): a message handed to one is made visible again with its delivery count kept, as a dead
  // owner's lease. And those of any identity registered more than kStaleWaiterAge ago that hold
  // no message still leased with their token: rows of a machine that rebooted or left, which no
  // sender may judge by pid. Deleting a waiting row is always safe: its receive(), if any, finds
  // it gone and leases under the lock as usual. Calls `wake` for each queue that got a message
  // back. Best effort: on a failure the rows stay (senders skip dead ones all the same).
  void remove_stale(Connection& db, const std::function<void(const std::string&)>& wake);
  static constexpr std::chrono::hours kStaleWaiterAge{24};

  const std::string& host() const { return host_; }

 private:
  // Inside a write transaction: deletes `token`'s row; unless its message was taken, makes that
  // message visible again and adds its queue to `woken`.
  Status retire_in(Connection& db, std::int64_t token, bool was_taken,
                   std::vector<std::string>& woken);

  std::string host_;
  pid_t pid_;            // this process's pid, recorded in its rows (no getpid() per wait)
  std::string started_;  // this process's start time, recorded in its rows
  ProcessLiveness liveness_;
  std::mutex mutex_;
  bool closing_ = false;     // forget() began
  bool registered_ = false;  // register_in() ran at least once
  std::vector<std::int64_t> taken_;
  std::vector<std::int64_t> abandoned_;
};

}  // namespace asya::transport::sqlite
