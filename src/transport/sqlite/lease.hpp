// One lease transaction of the SQLite transport's receive() (sqlite_transport.hpp): the ready
// messages of a queue leased in one BEGIN IMMEDIATE ... COMMIT, or, when none is ready, the time
// the next one becomes visible, read in the same transaction.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "transport/sqlite/body_files.hpp"
#include "transport/sqlite/connection.hpp"
#include "transport/sqlite/hand_off.hpp"
#include "transport/sqlite/hand_off_slots.hpp"
#include "transport/sqlite/lease_owners.hpp"
#include "transport/transport.hpp"

namespace asya::transport::sqlite {

// How long a lease right after a wake-up spins (yielding) on a held write lock before the busy
// handler's sleeps: covers the COMMIT of the sender that woke it (group_commit.hpp).
constexpr std::chrono::microseconds kWokenLeaseSpin{200};

// How the lease takes the write lock.
enum class LeaseBegin {
  kWait,  // the busy handler's usual waits
  // Right after a wake-up, which a sender gives just before its COMMIT: the write lock is then
  // usually still held for the few microseconds that COMMIT takes, and a sleep in the busy
  // handler would outlast it several times over, so BEGIN spins (Connection::begin_spinning).
  kSpin,
  kTry,  // not at all while another connection holds it: LeaseLook::busy, nothing done
};

struct LeaseRequest {
  std::string_view queue;
  std::size_t max_messages = 1;
  std::chrono::milliseconds visibility_timeout{0};
  LeaseBegin begin = LeaseBegin::kWait;
  // Hand-off (hand_off.hpp): the receive() call's registration, or null. When a sender handed
  // its row a message, the lease returns that message alone and writes nothing; a lease that
  // takes messages deletes the row; a lease that finds nothing ready registers (a new row) when
  // `register_if_none`. With `unregister` (the receive() is leaving) it leases nothing: it takes
  // a handed message or deletes the row.
  Registration* registration = nullptr;
  bool register_if_none = false;
  bool unregister = false;
};

// What the lease saw besides the messages it returns.
struct LeaseLook {
  // The earliest visible_at_ms of the queue after this lease (ready, leased, the rows just
  // leased included, or delayed; nullopt when it is empty), read in the same transaction:
  // receive() waits until then when nothing is ready. Not read for a handed message.
  std::optional<std::int64_t> next_visible;
  bool handed = false;  // the message returned was handed over by its sender
  bool busy = false;    // LeaseBegin::kTry found the write lock held: nothing was done
};

// The parts a lease uses (each thread-safe).
struct LeaseParts {
  ConnectionPool& pool;
  LeaseOwners& owners;
  BodyFiles& body_files;
  Waiters& waiters;
  HandOffSlots& slots;
};

// Leases up to `request.max_messages` ready messages in one write transaction. A lease that takes
// one message (the steady path: a lease of one, or a lease of several that finds only one ready)
// reads a small body kept in the database inside it, one read transaction less per receive; other
// bodies are read after the commit, as a lease that takes several does (lease_bodies.hpp).
// Thread-safe (a connection of `parts.pool` per call).
Result<std::vector<Delivery>> lease_ready(const LeaseParts& parts, const LeaseRequest& request,
                                          LeaseLook& look);

// Outside any transaction: the message a sender handed to `registration` (hand_off.hpp), read
// without the write lock; empty while nothing is handed. Sets `lost` when a message was handed
// but is no longer leased with the row's token, or the row is gone (the caller then looks under
// the lock, which deletes the row). On a handed message the registration ends (token 0).
// A message handed to a receive() that close() on another thread got to first: close() makes it
// visible again, so this receive() must not return it (hand_off.hpp).
Error closed_while_taking(std::string_view queue);

Result<std::vector<Delivery>> read_hand_off(const LeaseParts& parts, std::string_view queue,
                                            Registration& registration, bool& lost);

}  // namespace asya::transport::sqlite
