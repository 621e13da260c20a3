// The message bodies stored as files next to the queue database: `<path>.bodies/<name>`, one file
// per message larger than ASYA_SQLITE_FILE_BODY_BYTES, named `m-<16 hex digits unique per
// transport instance>-<counter>.body`.
//
// Life of a body file: send() writes it (write(): created under its final name, fsync, fsync of
// the directory; no temporary and rename, since nothing opens a body file before its row exists)
// outside any lock, then inserts the row naming it; receive() reads it after the lease committed;
// ack() deletes the row, then the file (remove()). So when write() returns Ok the body survives a
// crash and a power loss, before its row exists. A crash while a file is written or between a
// file and its row leaves a file (whole or partial) no row names: sweep_orphans() removes such
// files older than kOrphanAge, checking under the database's write lock that no row names them and
// claiming each such file by renaming it to `<name>.swept` under that lock (send checks under the
// same lock that its file still exists before inserting its row); the claimed files are unlinked
// after the commit, outside the lock (unlinking a large file frees its blocks and can take long:
// other writers must not wait for it). A `.swept` file left by a crash in between is removed by the
// next sweep.
//
// Threads: every method is thread-safe (each call works on its own file, or on the connection the
// caller lends it); file names are unique per instance and across processes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "transport/delivery_body.hpp"
#include "transport/sqlite/connection.hpp"

namespace asya::transport::sqlite {

// The text of errno value `error`.
std::string errno_text(int error);

class BodyFiles {
 public:
  // Files older than this that no row names are orphans.
  static constexpr std::chrono::minutes kOrphanAge{15};
  // How often send() and ack() look for orphans (besides the look on open).
  static constexpr std::chrono::minutes kSweepInterval{10};

  // The bodies of the database at `database_path`, in `<database_path>.bodies/`.
  explicit BodyFiles(const std::string& database_path);

  std::filesystem::path path_of(const std::string& name) const { return directory_ / name; }

  // A fresh file name, unique to this instance.
  std::string new_name();
  // A fresh name for a spool's file (body_spool.hpp), `<...>.spooled.body`: read() skips the
  // spaces such a file starts with.
  std::string new_spool_name();

  // Creates `<path>.bodies/` when missing (and makes its entry durable).
  Status ensure_directory();

  // Writes `body` durably as `name` (creating the directory when missing); on failure nothing is
  // left behind (best effort). Blocks for the writes and fsyncs. `parts`: the body given in parts
  // (OutgoingMessage::parts), written one after the other without joining them. Reaches the
  // failpoint `sqlite.body_written` once the file is durable, before its row exists.
  Status write(const std::string& name, std::string_view body);
  Status write(const std::string& name, std::span<const std::string_view> parts);

  // Reads the whole file `name` into `body` (without the leading spaces of a spooled file); a file
  // that does not exist sets `missing` instead of failing. A file of 1 MiB or more is mapped
  // read-only instead of copied (DeliveryBody::kept(): no fresh memory, no copy; valid after the
  // file is removed), with readable padding after it.
  Status read(const std::string& name, DeliveryBody& body, bool& missing) const;

  // Removes `name` after its row is gone; a failure is logged (the sweep retries later).
  void remove(const std::string& name) const;

  // Removes `name` of a send that failed before its row was committed, silently.
  void discard(const std::string& name) const;

  // A row this receiver leased (`id` under lease `token`, queue `queue`) whose body file `name` is
  // missing: if the row is still under that lease its body is lost (removed by hand?) and the
  // message can never be delivered, so it is deleted, loudly. If the row is gone, another receiver
  // acked it after this lease expired: nothing to do. Runs its own write transaction on `db`.
  void drop_lost_row(Connection& db, std::int64_t id, std::int64_t token, std::string_view queue,
                     const std::string& name) const;

  // At most this many files are checked and claimed in one write transaction of the sweep.
  static constexpr std::size_t kSweepBatch = 64;

  // Removes the orphans (see above) older than kOrphanAge: claim_orphans() then
  // remove_claimed(). Logs how many it removed.
  void sweep_orphans(Connection& db);

  // The first half of a sweep: of `names` (body files found older than kOrphanAge), renames those
  // no row names to `<name>.swept`, in write transactions of at most kSweepBatch files each on
  // `db`, and returns the claimed paths. Nothing but the row checks and the renames runs under
  // the lock; it returns with no transaction open.
  std::vector<std::filesystem::path> claim_orphans(Connection& db,
                                                   const std::vector<std::string>& names) const;

  // The second half: unlinks claimed files, outside any transaction. Returns how many it removed.
  std::size_t remove_claimed(const std::vector<std::filesystem::path>& claimed) const;

  // Sweeps (on a connection of `pool`) when kSweepInterval passed since the last sweep; one caller
  // of those arriving at once does it, the others return at once.
  void maybe_sweep(ConnectionPool& pool);

  // Marks a sweep done now (after the sweep on open).
  void swept_now();

 private:
  std::filesystem::path directory_;  // <path>.bodies
  std::string file_prefix_;          // "m-<16 hex digits>-", unique per instance
  std::atomic<std::uint64_t> next_file_{1};
  std::atomic<std::int64_t> last_sweep_ms_{0};
};

}  // namespace asya::transport::sqlite
