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
#include "transport/sqlite/lease_owners.hpp"
#include "transport/transport.hpp"

namespace asya::transport::sqlite {

// How long a lease right after a wake-up spins (yielding) on a held write lock before the busy
// handler's sleeps: covers the COMMIT of the sender that woke it (group_commit.hpp).
constexpr std::chrono::microseconds kWokenLeaseSpin{200};

struct LeaseRequest {
  std::string_view queue;
  std::size_t max_messages = 1;
  std::chrono::milliseconds visibility_timeout{0};
  // Right after a wake-up, which a sender gives just before its COMMIT: the write lock is then
  // usually still held for the few microseconds that COMMIT takes, and a sleep in the busy
  // handler would outlast it several times over, so BEGIN spins (Connection::begin_spinning).
  bool woken = false;
};

// Leases up to `request.max_messages` ready messages in one write transaction. A lease that takes
// one message (the steady path: a lease of one, or a lease of several that finds only one ready)
// reads a small body kept in the database inside it, one read transaction less per receive; other
// bodies are read after the commit, as a lease that takes several does (lease_bodies.hpp).
// Sets `next_visible` to the earliest visible_at_ms of the queue after this lease (ready, leased,
// the rows just leased included, or delayed; nullopt when it is empty), read in the same
// transaction: receive() waits until then when nothing is ready.
// Thread-safe (a connection of `pool` per call).
Result<std::vector<Delivery>> lease_ready(ConnectionPool& pool, LeaseOwners& owners,
                                          BodyFiles& body_files, const LeaseRequest& request,
                                          std::optional<std::int64_t>* next_visible);

}  // namespace asya::transport::sqlite
