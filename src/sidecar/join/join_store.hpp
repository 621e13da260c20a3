// JoinStore: where a join actor's sidecars keep the branches of fan-out groups until a group is
// complete (PROTOCOL §4a). The sidecar is the only writer; several replicas of one join actor (on
// one host with SQLite, on several with PostgreSQL) share one store, and every rule below holds
// across them and across crashes.
//
// The life of a group:
//   put_branch()  stores one branch durably (idempotent on (group, index)) and, in the same
//                 transaction, decides completion: the branch that makes the group complete writes
//                 an outbox row. A sidecar acks the branch message only after put_branch returned.
//   expire()      decides groups whose timeout passed (outbox row with reason timeout).
//   claim()       leases one outbox row to a replica for `lease` and counts the attempt; a replica
//                 that dies between claiming and finish() loses the lease, and another replica
//                 claims it again, so a decided group is always published (at least once, always
//                 with the same id).
//   renew()       extends the caller's lease right before it sends, and tells it when the lease
//                 was lost meanwhile (another replica claimed the group after it expired): the
//                 caller then sends nothing, so two replicas never publish one group at once.
//   read_branches() streams the group's stored branches in index order (never all in memory).
//   held_branches() lists the branches whose payload is a reference into the payload store, so the
//                 sidecar keeps their objects held while they wait (PROTOCOL §10 "Lifetime") and
//                 releases them when their group ended; it reads what put_branch() recorded, so a
//                 restarted sidecar knows them as well as the one that stored them.
//   finish()      deletes the outbox row and the branches and keeps a tombstone, so a branch
//                 delivered again after its group was published is recognised (kAlreadyJoined)
//                 instead of starting a new group. Tombstones go after `tombstone_retention`.
//
// Threads: every method is thread-safe and blocking (it waits for the store's write lock up to the
// store's own busy timeout). Errors are values: an Error names the store, the operation and the
// cause; nothing was changed when one is returned.
//
// Implementations: "sqlite" (sqlite_join_store.cpp, default) and "postgresql" / "postgres"
// (postgres_join_store.cpp, for replicas on several hosts); others register by URL scheme with
// register_join_store().
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/env.hpp"
#include "common/registry.hpp"
#include "common/result.hpp"

namespace asya::sidecar::join {

// One branch handed to put_branch().
struct BranchIn {
  std::string actor;  // the join actor storing it: only its replicas claim the group
  std::string group;
  std::size_t index = 0;
  std::size_t count = 0;
  bool failed = false;       // the branch failed: `payload` is the error-end payload shape
  std::string_view payload;  // JSON text
  // The join input's envelope up to its payload (see join_input.hpp); stored with the group's
  // first branch, ignored for later ones.
  std::string_view head;
  std::chrono::milliseconds timeout{0};  // 0: never expires
  // The SHA-256 of the object in the payload store that `payload` refers to (a payload
  // reference, PROTOCOL §10); empty when `payload` is not one. Listed by held_branches() while
  // the group is not finished.
  std::string_view held_sha256;
};

enum class PutOutcome {
  kStored,         // new branch stored; the group is still open
  kCompleted,      // new branch stored and it completed the group: an outbox row was written
  kDuplicate,      // (group, index) was stored before: nothing changed
  kAlreadyJoined,  // the group was decided already (published or timed out): nothing changed
};

struct PutResult {
  PutOutcome outcome = PutOutcome::kStored;
  std::size_t stored = 0;  // branches of the group stored now
  std::size_t count = 0;   // the group's count
  // kAlreadyJoined: the group has no branch stored at this index (it was decided without it, or
  // it was published and its branches deleted), so the group never reads this branch.
  bool unused = false;
};

enum class DecidedBecause { kComplete, kTimeout };

// A stored branch whose payload refers to an object of the payload store (held_branches()).
struct HeldBranch {
  std::string group;
  std::size_t index = 0;
  std::string sha256;
};

// A decided group leased to the caller by claim().
struct ClaimedGroup {
  std::string group;
  std::string owner;  // who it is leased to: claim()'s `owner`
  DecidedBecause reason = DecidedBecause::kComplete;
  std::size_t count = 0;
  std::string head;
  std::vector<std::size_t> failed;   // indexes of failed branches, ascending
  std::vector<std::size_t> missing;  // indexes never stored (only for kTimeout), ascending
  // Claims of this group so far, this one included (1 on the first): a group whose publishing
  // keeps failing is stopped by the caller's attempt limit (PROTOCOL §4a).
  std::size_t attempts = 0;
  std::string last_error;  // why the previous attempt failed (release()); empty when none said
};

class JoinStore {
 public:
  virtual ~JoinStore() = default;
  JoinStore() = default;
  JoinStore(const JoinStore&) = delete;
  JoinStore& operator=(const JoinStore&) = delete;

  // "sqlite", ...
  virtual std::string_view name() const = 0;

  // Stores `branch` durably (see the file comment). A `count` that differs from the group's count
  // stored by an earlier branch is an Error (it names both counts), as is an index >= count.
  virtual Result<PutResult> put_branch(const BranchIn& branch) = 0;

  // Decides every open group whose timeout passed before `now`; returns how many.
  virtual Result<std::size_t> expire(std::chrono::system_clock::time_point now) = 0;

  // Leases one decided, unpublished group of join actor `actor` to `owner` for `lease` (one whose
  // lease expired counts as unleased) and counts the claim in its `attempts`; nullopt when there
  // is none. Several join actors may share one store (nested joins, `asya up`'s one joins.db):
  // each claims only its own groups.
  virtual Result<std::optional<ClaimedGroup>> claim(std::string_view actor, std::string_view owner,
                                                    std::chrono::milliseconds lease) = 0;

  // Calls `each(index, failed, payload)` for every stored branch of `group` in index order; stops
  // with the callback's Error when it returns one.
  virtual Status read_branches(
      std::string_view group,
      const std::function<Status(std::size_t, bool, std::string_view)>& each) = 0;

  // Up to `limit` branches stored with a held_sha256, of the groups of join actor `actor` that are
  // not finished (open or decided), only of `group` when it is not empty; in (group, index) order,
  // starting after `after` (nullptr: from the first), so a caller pages through any number of
  // them without holding the store between pages. Branches stored by a sidecar older than
  // held_sha256 are not listed.
  virtual Result<std::vector<HeldBranch>> held_branches(std::string_view actor,
                                                        std::string_view group,
                                                        const HeldBranch* after,
                                                        std::size_t limit) = 0;

  // `owner`'s lease of `group` now ends `lease` from now. Returns false (nothing changed) when the
  // group is not leased to `owner` any more: its lease expired and another replica claimed it, or
  // it was finished. A lease that expired but that nobody claimed since is still the owner's.
  virtual Result<bool> renew(std::string_view group, std::string_view owner,
                             std::chrono::milliseconds lease) = 0;

  // Publishing failed (the runtime was unavailable, a send failed): `owner`'s lease now ends
  // `retry_after` from now instead, so the group is claimed again soon, and `error` is kept as
  // the group's last_error for the next claim. Not an error when the lease was lost meanwhile.
  virtual Status release(std::string_view group, std::string_view owner,
                         std::chrono::milliseconds retry_after, std::string_view error) = 0;

  // Publishing is done: removes the outbox row and the branches, keeps a tombstone. Only `owner`'s
  // lease counts: returns false (nothing changed) when the lease was lost to another replica.
  virtual Result<bool> finish(std::string_view group, std::string_view owner) = 0;

  // Open groups, decided groups not yet published (for metrics and tests).
  struct Counts {
    std::int64_t open = 0;
    std::int64_t decided = 0;
  };
  virtual Result<Counts> counts() = 0;
};

struct JoinStoreOptions {
  std::string url;  // "sqlite://<path>", "postgresql://user@host/db" or "<scheme>://..."
  std::chrono::milliseconds busy_timeout{std::chrono::seconds(10)};
  std::chrono::hours tombstone_retention{24 * 7};
  EnvironmentLookup environment;
};

using JoinStoreRegistry = NamedRegistry<JoinStore, JoinStoreOptions>;

// The registry keyed by URL scheme ("sqlite", ...).
JoinStoreRegistry& join_store_registry();
void register_join_store(std::string scheme, JoinStoreRegistry::Factory factory);

// Opens the store `options.url` names. Throws ConfigError for an unknown scheme (listing the known
// ones) or a store that cannot be opened (naming ASYA_JOIN_STORE and the cause).
std::unique_ptr<JoinStore> make_join_store(const JoinStoreOptions& options);

}  // namespace asya::sidecar::join
