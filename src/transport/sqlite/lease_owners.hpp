// Lease tokens and the processes that hold them, so that the leases of a process that died are
// released at once instead of at their expiry.
//
// A lease token is (owner << 32) | counter, where `owner` is the owner number of one transport
// instance, unique among the instances on the file. claim() allocates it when the transport opens,
// in one write transaction that also records the instance's row in `lease_owners` (its machine:
// boot id + pid namespace, its pid and the pid's start time): the next value of a counter kept in
// `lease_owner_numbers` (1, 2, 3...; after 2^31 - 1 it starts again at 1), skipping every number
// that has a row in `lease_owners` or `waiters` (an older build's random number), inserted without
// replacing any row. So two instances never share lease tokens, waiting rows (hand_off.hpp) or a
// slot file (hand_off_slots.hpp), and a number's row names the one process whose death releases
// its leases. (Numbers were once drawn at random and recorded with INSERT OR REPLACE: two
// instances could draw the same one, docs/transports.md "Lease-owner numbers".)
// Opening the database calls release_dead_owners(): the leases of this machine's owners whose
// process is gone (or is another process now with the same pid) become visible again at once, with
// their delivery count kept; a live owner's leases are never touched, and the owners of another
// machine identity (another container's pid namespace, an earlier boot) or without a start time
// are left to their lease expiry. Which process is alive is judged by process_identity.hpp, as for
// the waiting receivers of hand_off.hpp. Then remove_earlier_boots() forgets the rows of earlier
// boots that hold no lease any more. A clean close() removes the instance's row.
//
// Mixed builds on one file: an older build draws its number at random and records it with INSERT
// OR REPLACE at its first lease. claim() never takes a number so recorded; an older instance may
// still draw the number of a newer one (the old odds, for pairs with an older instance only), in
// which case the newer one's close() leaves the older one's row alone (it deletes its own row
// only: same pid and start time).
//
// Durability: the row, a release and a removal are written in write transactions that are durable
// at their commit, like the messages themselves.
// Threads: claim() runs once, before the instance is shared; every other method is thread-safe;
// the instance must not cross fork() (its pid is recorded).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "common/result.hpp"
#include "transport/sqlite/connection.hpp"

namespace asya::transport::sqlite {

class LeaseOwners {
 public:
  // Owner numbers are below 2^31, so that a lease token is a positive 64-bit integer.
  static constexpr std::int64_t kMaxOwner = 0x7fffffff;

  LeaseOwners();

  // At open, before the first lease: allocates this instance's owner number on `db` and records
  // its row, in one write transaction. An Error (naming the SQLite failure) when it could not: the
  // instance must then not lease.
  Status claim(Connection& db);

  // This instance's owner number (the high half of its lease tokens); 0 before claim().
  std::int64_t owner() const { return static_cast<std::int64_t>(lease_prefix_ >> 32); }

  // This machine and pid namespace (machine_identity(), process_identity.hpp).
  const std::string& host() const { return host_; }

  // A lease token not used before by this instance.
  std::int64_t next_token() {
    return static_cast<std::int64_t>(lease_prefix_ | (next_lease_.fetch_add(1) & 0xffffffffu));
  }

  // On a clean close: removes this instance's row, if claimed and still its own, on a connection
  // of `pool` (every lease it handed out was settled; later ones expire as usual).
  void forget(ConnectionPool& pool);

  // Makes the messages leased by processes of this machine that are gone visible again at once
  // (their delivery count stays, as after a nack) and forgets those owners, one owner per write
  // transaction (which checks that the row is still the one judged); after each commit calls
  // `wake` once per queue that got messages back, and `forgotten` (when given) with the owner
  // number.
  void release_dead_owners(Connection& db, const std::function<void(const std::string&)>& wake,
                           const std::function<void(std::int64_t owner)>& forgotten = {});

  // Forgets the owners of earlier boots that hold no lease: rows whose machine identity has
  // another boot id than this process's and no message leased with their tokens and not expired
  // (a message handed to one of their waiting rows is such a lease). Every process sharing a WAL
  // file runs on one kernel (SQLite's shared-memory index works on one machine only), so such a
  // row is of a boot that ended, or of a machine that used the file before. Their waiting rows go
  // with them, in one write transaction; then `forgotten` is called with each owner number. Rows
  // of this boot's other pid namespaces, rows whose identity could not be established
  // ("unverified-...") and rows holding a lease stay (a lease is left to its expiry; the row goes
  // at an open after it). Nothing when this process's own identity is unverified. Best effort.
  void remove_earlier_boots(Connection& db,
                            const std::function<void(std::int64_t owner)>& forgotten = {});

  // Tests only: claim() in this process (and in children forked meanwhile) first tries `number`
  // (0: the counter's next number, as usual); a number in use is skipped as usual.
  static void prefer_owner_for_tests(std::int64_t number);

 private:
  bool run_owner_sql(Connection& db, const char* sql, std::int64_t owner_number,
                     const std::function<void(sqlite3_stmt*)>& row, const std::string& host = "",
                     pid_t pid = 0, const std::string& started = "");

  std::uint64_t lease_prefix_ = 0;  // set by claim(), before the instance is shared
  std::atomic<std::uint64_t> next_lease_{1};
  std::atomic<bool> claimed_{false};  // this instance's row is in lease_owners
  std::string host_;
  std::string started_;  // this process's start time, recorded in its row
};

}  // namespace asya::transport::sqlite
