// Lease tokens and the processes that hold them, so that the leases of a process that died are
// released at once instead of at their expiry.
//
// A lease token is (owner << 32) | counter, where `owner` is a random 31-bit number of one
// transport instance. The first time an instance leases, it records its owner number with its
// machine (boot id + pid namespace), its pid and the pid's start time in the table `lease_owners`,
// in the same transaction as that lease (best effort: without the row the leases still expire).
// Opening the database calls release_dead_owners(): the leases of this machine's owners whose
// process is gone (or is another process now with the same pid) become visible again at once, with
// their delivery count kept; a live owner's leases are never touched, and the owners of another
// machine identity (another host, another container's pid namespace) or without a start time are
// left to their lease expiry. Which process is alive is judged by process_identity.hpp, as for
// the waiting receivers of hand_off.hpp. A clean close() removes the instance's row.
//
// Durability: the row and a release are written in write transactions that are durable at their
// commit, like the messages themselves.
// Threads: every method is thread-safe; the instance must not cross fork() (its pid is recorded).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "transport/sqlite/connection.hpp"

namespace asya::transport::sqlite {

class LeaseOwners {
 public:
  LeaseOwners();

  // This instance's owner number (the high half of its lease tokens).
  std::int64_t owner() const { return static_cast<std::int64_t>(lease_prefix_ >> 32); }

  // This machine and pid namespace (machine_identity(), process_identity.hpp).
  const std::string& host() const { return host_; }

  // A lease token not used before by this instance.
  std::int64_t next_token() {
    return static_cast<std::int64_t>(lease_prefix_ | (next_lease_.fetch_add(1) & 0xffffffffu));
  }

  // Inside the caller's lease transaction on `db`: writes this instance's row unless it is
  // recorded already. Returns true when it wrote it; the caller then calls recorded() after its
  // commit.
  bool record(Connection& db);
  void recorded() { recorded_ = true; }

  // On a clean close: removes this instance's row, if recorded, on a connection of `pool`
  // (every lease it handed out was settled; later ones expire as usual).
  void forget(ConnectionPool& pool);

  // Makes the messages leased by processes of this machine that are gone visible again at once
  // (their delivery count stays, as after a nack) and forgets those owners, one owner per write
  // transaction; after each commit calls `wake` once per queue that got messages back, and
  // `forgotten` (when given) with the owner number.
  void release_dead_owners(Connection& db, const std::function<void(const std::string&)>& wake,
                           const std::function<void(std::int64_t owner)>& forgotten = {});

  // Tests only: every instance of this process (and of children forked meanwhile) constructed
  // from now on takes `number` as its owner number (0: a random one again).
  static void prefer_owner_for_tests(std::int64_t number);

 private:
  bool run_owner_sql(Connection& db, const char* sql, std::int64_t owner_number,
                     const std::function<void(sqlite3_stmt*)>& row, const std::string& host = "",
                     pid_t pid = 0, const std::string& started = "");

  std::uint64_t lease_prefix_ = 0;
  std::atomic<std::uint64_t> next_lease_{1};
  std::atomic<bool> recorded_{false};  // this instance's row is in lease_owners
  std::string host_;
};

}  // namespace asya::transport::sqlite
