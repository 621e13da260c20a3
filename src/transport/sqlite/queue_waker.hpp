// Per-queue wake-ups for the processes that share one SQLite queue database.
//
// Every queue has a small wake file, `<database>.wake/<file_name(queue)>`. A writer that made a
// message of queue Q ready calls notify(Q) after its commit (nack), or just before it with the
// write lock held (a send's group commit: the receiver's lease then waits for that lock, and its
// wake-up overlaps the COMMIT, group_commit.hpp): that bumps Q's
// generation in its own process and reads the one byte of Q's wake file (a pread on a cached
// descriptor, a few microseconds; the first notify writes that byte). inotify reports the read
// (IN_ACCESS; a write, IN_MODIFY, as older writers do, too) to every process watching that file,
// and a process watches only the files of the queues it receives from. So a commit wakes the
// receivers of its own queue and nobody else: an idle sidecar sleeps through the traffic of every
// other queue, however busy (before, every commit of every process woke every receiver of the
// file through the shared `-wal` file).
//
// A wake-up is a hint, never the only way a message is found: the receiver looks at the database
// after every wake-up, and also when a fallback poll (the caller's timeout passed to wait()) runs
// out, so a wake-up that never comes (a writer killed between its commit and notify(), a writer of
// an older Asya, a file system without inotify, a wake file removed by hand, an inotify queue
// overflow) delays a message by at most that poll, never strands it. A wake file removed while
// watched is watched again on the next generation() call; an inotify overflow wakes every queue.
//
// Threads: every method is thread-safe. There is no watcher thread: one waiting receiver at a time
// polls the inotify descriptor and reads the events itself (a wake-up costs one task switch, not
// a watcher's plus a hand-off), applies them to every queue's generation and wakes the other
// waiters through a condition variable; when it returns, one of them takes over. The first
// generation() call opens the inotify instance (processes that only send pay for none). The
// instance must not cross fork(); create one per process.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace asya::transport {

class QueueWaker {
 public:
  using Clock = std::chrono::steady_clock;

  // `database`: the SQLite file; the wake files live in the directory `<database>.wake/`, which
  // is created on first use.
  explicit QueueWaker(std::filesystem::path database);
  ~QueueWaker();
  QueueWaker(const QueueWaker&) = delete;
  QueueWaker& operator=(const QueueWaker&) = delete;

  // The wake-up generation of `queue` in this process: it changes after every notify(queue) in
  // any process (and after events that may have hidden one). Read it before looking at the
  // database, then wait() with it, so that a commit between the look and the wait is not missed.
  // The first call for a queue creates its wake file and starts watching it.
  std::uint64_t generation(std::string_view queue);

  // Blocks until generation(queue) differs from `seen`, interrupt() or stop() was called, or
  // `until` passed. Holds no lock of the database.
  void wait(std::string_view queue, std::uint64_t seen, Clock::time_point until);

  // Wakes the receivers of `queue` in every process. Call after the commit that made a message
  // ready, or just before it while holding the write lock (receivers lease under that lock, so
  // they see the commit). Never blocks on other processes; when the wake file cannot
  // be written it logs a warning once and receivers fall back to polling.
  void notify(std::string_view queue);

  // True when the wake file of `queue` is watched (generation() was called for it and inotify
  // accepted the watch): other processes' notify() calls then reach this one.
  bool watching(std::string_view queue);

  // Makes every current and future wait() return at once.
  void interrupt();
  bool interrupted();

  // interrupt(), then waits for the waiter reading the events to return and closes every
  // descriptor. Idempotent.
  void stop();

  // The file name of `queue`'s wake file: the queue name itself when it is a plain file name
  // (letters, digits, '-', '_', '.', not starting with '.', at most 200 bytes), else "q-" and a
  // 64-bit hash of it in hex (two queues sharing a hashed name only wake each other spuriously).
  static std::string file_name(std::string_view queue);

  // The directory holding the wake files of `database`.
  static std::filesystem::path directory_of(const std::filesystem::path& database);

 private:
  struct Queue {
    std::uint64_t generation = 0;
    int watch = -1;            // inotify watch descriptor, -1 when not watched
    bool watch_tried = false;  // a failed watch is retried only after a wake (IN_IGNORED)
  };

  // What one read of the inotify descriptor reported.
  struct Events {
    std::vector<int> touched;  // watch descriptors of modified wake files
    std::vector<int> ignored;  // watches gone (file removed)
    bool overflow = false;     // the kernel dropped events: every queue may have changed
  };

  void start_inotify_locked();
  void watch_locked(const std::string& queue, Queue& state);
  // Polls the inotify and kick descriptors until an event or `until`, and reads what arrived.
  // Called without the lock by the one waiter that set polling_.
  Events poll_events(Clock::time_point until);
  void apply_locked(const Events& events);
  // Wakes the waiter polling the events, if one does (interrupt, stop, a notify of this process).
  void kick_locked();
  int write_fd(const std::string& queue);

  std::filesystem::path directory_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::unordered_map<std::string, Queue> queues_;
  std::unordered_map<int, std::vector<std::string>> by_watch_;  // watch descriptor -> queues
  bool interrupted_ = false;
  bool inotify_started_ = false;
  bool polling_ = false;  // a waiter polls inotify_fd_ (and kick_fd_) without the lock
  bool warned_watch_ = false;
  int inotify_fd_ = -1;
  int kick_fd_ = -1;  // eventfd: wakes the polling waiter

  std::mutex write_mutex_;
  std::unordered_map<std::string, int> write_fds_;  // queue -> wake file opened for writing
  bool warned_write_ = false;
};

}  // namespace asya::transport
