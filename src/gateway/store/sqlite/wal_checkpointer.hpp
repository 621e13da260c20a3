// Checkpoints the WAL of a SQLite database from a background thread on a connection of its own,
// instead of SQLite's automatic checkpoint, which runs inside the COMMIT that grows the WAL past
// 1000 pages: that commit (and every transaction of the job store queued behind it) would wait
// for the copy of the WAL into the database and its fsync.
//
// Installs a WAL hook on `db` (replacing the automatic checkpoint): after a commit that leaves at
// least `pages` pages in the WAL, the thread runs a PASSIVE checkpoint (it never blocks writers or
// readers; what readers still use is copied by a later one). It also checkpoints after a second
// without commits when the WAL holds anything, so a quiet database does not keep its WAL.
//
// Thread-safe: the hook runs on the committing thread and only wakes the checkpointer. `db` must
// outlive this object; destroy it before closing `db`.
#pragma once

#include <sqlite3.h>

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace asya::gateway {

class WalCheckpointer {
 public:
  WalCheckpointer(sqlite3* db, std::string path, int pages = 1000);
  ~WalCheckpointer();
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  // Checkpoints completed so far (tests).
  unsigned long checkpoints() const;

 private:
  static int on_commit(void* self, sqlite3* db, const char* name, int wal_pages);
  void run();

  sqlite3* db_;
  std::string path_;
  int pages_;
  sqlite3* own_ = nullptr;  // the checkpointer's connection
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool due_ = false;      // a commit left `pages_` pages or more in the WAL
  bool written_ = false;  // something was committed since the last checkpoint
  bool stopping_ = false;
  unsigned long commits_ = 0;
  unsigned long checkpoints_ = 0;
  std::thread thread_;
};

}  // namespace asya::gateway
