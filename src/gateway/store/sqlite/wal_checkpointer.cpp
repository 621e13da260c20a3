#include "gateway/store/sqlite/wal_checkpointer.hpp"

#include <chrono>

#include "common/log.hpp"

namespace asya::gateway {

WalCheckpointer::WalCheckpointer(sqlite3* db, std::string path, int pages)
    : db_(db), path_(std::move(path)), pages_(pages) {
  if (sqlite3_open_v2(path_.c_str(), &own_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    // Without a connection of its own, SQLite's automatic checkpoint stays in place.
    spdlog::warn(
        "job store: cannot open a checkpoint connection to {}: {}; the WAL is "
        "checkpointed by the commits",
        path_, own_ ? sqlite3_errmsg(own_) : "out of memory");
    sqlite3_close(own_);
    own_ = nullptr;
    return;
  }
  sqlite3_busy_timeout(own_, 5000);
  // A connection that never read the database has not opened its WAL yet, and some SQLite
  // versions then checkpoint nothing (and report success): read the schema once.
  sqlite3_exec(own_, "PRAGMA schema_version", nullptr, nullptr, nullptr);
  sqlite3_wal_hook(db_, &WalCheckpointer::on_commit, this);
  thread_ = std::thread([this] { run(); });
}

WalCheckpointer::~WalCheckpointer() {
  if (!own_) return;
  sqlite3_wal_hook(db_, nullptr, nullptr);
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
  sqlite3_close(own_);
}

unsigned long WalCheckpointer::checkpoints() const {
  std::lock_guard lock(mutex_);
  return checkpoints_;
}

int WalCheckpointer::on_commit(void* self, sqlite3*, const char*, int wal_pages) {
  auto* me = static_cast<WalCheckpointer*>(self);
  std::lock_guard lock(me->mutex_);
  me->written_ = true;
  ++me->commits_;
  if (wal_pages >= me->pages_ && !me->due_) {
    me->due_ = true;
    me->wake_.notify_one();
  }
  return SQLITE_OK;
}

void WalCheckpointer::run() {
  std::unique_lock lock(mutex_);
  unsigned long commits_seen = commits_;
  while (!stopping_) {
    wake_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_ || due_; });
    if (stopping_) break;
    // Without a full WAL: only once the database went quiet for a second (a busy one is
    // checkpointed by the page limit, where a checkpoint copies each page once for many commits).
    bool quiet = commits_ == commits_seen;
    commits_seen = commits_;
    if (!due_ && !(written_ && quiet)) continue;
    due_ = false;
    written_ = false;
    lock.unlock();
    int rc = sqlite3_wal_checkpoint_v2(own_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
      spdlog::warn("job store: checkpoint of {} failed: {}", path_, sqlite3_errmsg(own_));
    lock.lock();
    if (rc == SQLITE_OK) ++checkpoints_;
  }
}

}  // namespace asya::gateway
