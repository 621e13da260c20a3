#include "transport/sqlite/queue_waker.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

#include "common/log.hpp"

namespace asya::transport {

using namespace std::chrono_literals;

namespace {

// A read of a wake file (what notify() does), a write (what notify() did before, and does the
// first time, to give the file its byte) or a touch (utime); IN_IGNORED (the file was removed,
// the watch is gone) is always reported.
constexpr std::uint32_t kWatchMask = IN_ACCESS | IN_MODIFY | IN_ATTRIB;

// Bounds the descriptors a publisher keeps open (one per queue it sent to).
constexpr std::size_t kMaxWriteFds = 256;

bool plain_file_name(std::string_view name) {
  if (name.empty() || name.size() > 200 || name.front() == '.') return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string QueueWaker::file_name(std::string_view queue) {
  if (plain_file_name(queue)) return std::string(queue);
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a, 64 bits
  for (unsigned char c : queue) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return std::string("q-") + hex;
}

std::filesystem::path QueueWaker::directory_of(const std::filesystem::path& database) {
  return std::filesystem::path(database.string() + ".wake");
}

QueueWaker::QueueWaker(std::filesystem::path database) : directory_(directory_of(database)) {}

QueueWaker::~QueueWaker() {
  stop();
}

std::uint64_t QueueWaker::generation(std::string_view queue) {
  std::lock_guard lock(mutex_);
  std::string name(queue);
  Queue& state = queues_[name];
  if (!state.watch_tried && !interrupted_) watch_locked(name, state);
  return state.generation;
}

void QueueWaker::wait(std::string_view queue, std::uint64_t seen, Clock::time_point until) {
  std::string name(queue);
  std::unique_lock lock(mutex_);
  for (;;) {
    if (interrupted_ || queues_[name].generation != seen || Clock::now() >= until) return;
    if (inotify_fd_ < 0 || polling_) {
      // Another waiter reads the events (or there is no inotify): it wakes this one when they
      // change its queue's generation, and when it stops polling, so that one waiter takes over.
      changed_.wait_until(lock, until);
      continue;
    }
    // This waiter reads the events itself: a wake-up of one kernel task, not of a watcher thread
    // that then wakes the waiter.
    polling_ = true;
    lock.unlock();
    Events events = poll_events(until);
    lock.lock();
    polling_ = false;
    apply_locked(events);
    changed_.notify_all();
  }
}

QueueWaker::Events QueueWaker::poll_events(Clock::time_point until) {
  // The descriptors stay open while polling_ is set (stop() waits for it).
  Events events;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()) + 1ms;
  int timeout = static_cast<int>(std::clamp<std::chrono::milliseconds>(left, 0ms, 1h).count());
  pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {kick_fd_, POLLIN, 0}};
  if (::poll(fds, 2, timeout) <= 0) return events;
  if (fds[1].revents != 0) {
    std::uint64_t count = 0;
    ssize_t n = ::read(kick_fd_, &count, sizeof count);  // reset (non-blocking)
    (void)n;
  }
  if ((fds[0].revents & POLLIN) == 0) return events;
  alignas(inotify_event) char buffer[8192];
  for (;;) {
    ssize_t n = ::read(inotify_fd_, buffer, sizeof buffer);
    if (n <= 0) break;
    for (char* p = buffer; p < buffer + n;) {
      auto* event = reinterpret_cast<inotify_event*>(p);
      if (event->mask & IN_Q_OVERFLOW) {
        events.overflow = true;
      } else if (event->mask & IN_IGNORED) {
        events.ignored.push_back(event->wd);
      } else if (std::find(events.touched.begin(), events.touched.end(), event->wd) ==
                 events.touched.end()) {
        events.touched.push_back(event->wd);
      }
      p += sizeof(inotify_event) + event->len;
    }
    // A buffer not filled up means the queue was empty: no second read just to hear EAGAIN (a
    // later event makes the descriptor readable again).
    if (static_cast<std::size_t>(n) + sizeof(inotify_event) + NAME_MAX + 1 <= sizeof buffer) break;
  }
  return events;
}

void QueueWaker::apply_locked(const Events& events) {
  // One generation bump per queue per batch of events: a burst of sends is one wake-up.
  if (events.overflow) {
    for (auto& [name, state] : queues_) ++state.generation;
  }
  for (int wd : events.touched) {
    auto it = by_watch_.find(wd);
    if (it == by_watch_.end()) continue;
    for (const auto& name : it->second) ++queues_[name].generation;
  }
  // The wake file was removed (or its file system unmounted): wake its receivers, which look at
  // the database and, through generation(), watch a new file.
  for (int wd : events.ignored) {
    auto it = by_watch_.find(wd);
    if (it == by_watch_.end()) continue;
    for (const auto& name : it->second) {
      Queue& state = queues_[name];
      ++state.generation;
      state.watch = -1;
      state.watch_tried = false;
    }
    by_watch_.erase(it);
  }
}

void QueueWaker::kick_locked() {
  if (!polling_ || kick_fd_ < 0) return;
  std::uint64_t one = 1;
  ssize_t n = ::write(kick_fd_, &one, sizeof one);
  (void)n;
}

bool QueueWaker::watching(std::string_view queue) {
  std::lock_guard lock(mutex_);
  auto it = queues_.find(std::string(queue));
  return it != queues_.end() && it->second.watch >= 0;
}

void QueueWaker::notify(std::string_view queue) {
  std::string name(queue);
  bool local = false;
  {
    std::lock_guard lock(mutex_);
    auto it = queues_.find(name);
    if (it != queues_.end()) {
      ++it->second.generation;
      local = true;
      kick_locked();  // a waiter of this process polling the events wakes at once
    }
  }
  if (local) changed_.notify_all();
  int fd = write_fd(name);
  if (fd < 0) return;
  // A wake file removed by hand (and re-created by a receiver) is a new inode: write that one.
  struct stat info {};
  bool stat_ok = ::fstat(fd, &info) == 0;
  if (stat_ok && info.st_nlink == 0) {
    {
      std::lock_guard lock(write_mutex_);
      ::close(fd);
      write_fds_.erase(name);
    }
    fd = write_fd(name);
    if (fd < 0) return;
    stat_ok = ::fstat(fd, &info) == 0;
  }
  // A read of its one byte: inotify reports IN_ACCESS to the watchers, and a read costs less than
  // a write (~8 against ~12 µs here: no inode change, nothing for the file system's journal). An
  // empty file (new) gets its byte by a write, which wakes them too (IN_MODIFY).
  char byte;
  if (stat_ok && info.st_size > 0 && ::pread(fd, &byte, 1, 0) == 1) return;
  // One byte at offset 0: the file never grows, and inotify reports IN_MODIFY to the watchers.
  if (::pwrite(fd, "1", 1, 0) != 1) {
    std::lock_guard lock(write_mutex_);
    if (!warned_write_) {
      warned_write_ = true;
      spdlog::warn(
          "sqlite transport: cannot write the wake file of queue {} in {} ({}); its receivers in "
          "other processes find new messages at their fallback poll (ASYA_SQLITE_POLL_INTERVAL)",
          name, directory_.string(), std::strerror(errno));
    }
  }
}

int QueueWaker::write_fd(const std::string& queue) {
  std::lock_guard lock(write_mutex_);
  auto it = write_fds_.find(queue);
  if (it != write_fds_.end()) return it->second;
  if (write_fds_.size() >= kMaxWriteFds) {
    for (auto& [name, fd] : write_fds_) {
      if (fd >= 0) ::close(fd);
    }
    write_fds_.clear();
  }
  std::filesystem::path path = directory_ / file_name(queue);
  // Read (notify) and written (its first byte). O_NOATIME, allowed only to the file's owner, spares
  // the inode an access-time update on a file system mounted strictatime.
  auto open_wake_file = [&] {
    int opened = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOATIME, 0644);
    if (opened < 0 && errno == EPERM)
      opened = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    return opened;
  };
  int fd = open_wake_file();
  if (fd < 0 && errno == ENOENT) {
    ::mkdir(directory_.c_str(), 0755);  // EEXIST from a concurrent creator is fine
    fd = open_wake_file();
  }
  if (fd < 0 && !warned_write_) {
    warned_write_ = true;
    spdlog::warn(
        "sqlite transport: cannot open the wake file {} ({}); receivers of queue {} in other "
        "processes find new messages at their fallback poll (ASYA_SQLITE_POLL_INTERVAL)",
        path.string(), std::strerror(errno), queue);
  }
  write_fds_[queue] = fd;  // -1 is remembered too: no open() per send after a failure
  return fd;
}

void QueueWaker::interrupt() {
  {
    std::lock_guard lock(mutex_);
    interrupted_ = true;
    kick_locked();
  }
  changed_.notify_all();
}

bool QueueWaker::interrupted() {
  std::lock_guard lock(mutex_);
  return interrupted_;
}

void QueueWaker::stop() {
  {
    std::unique_lock lock(mutex_);
    interrupted_ = true;
    kick_locked();
    changed_.notify_all();
    // The waiter reading the events returns at once (interrupted); its descriptors stay open
    // until then.
    changed_.wait(lock, [this] { return !polling_; });
    if (inotify_fd_ >= 0) ::close(inotify_fd_);
    if (kick_fd_ >= 0) ::close(kick_fd_);
    inotify_fd_ = kick_fd_ = -1;
    by_watch_.clear();
    for (auto& [name, state] : queues_) state.watch = -1;
  }
  std::lock_guard lock(write_mutex_);
  for (auto& [name, fd] : write_fds_) {
    if (fd >= 0) ::close(fd);
  }
  write_fds_.clear();
}

void QueueWaker::start_inotify_locked() {
  if (inotify_started_) return;
  inotify_started_ = true;
  inotify_fd_ = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  kick_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (inotify_fd_ < 0 || kick_fd_ < 0) {
    spdlog::warn("sqlite transport: no inotify ({}); receivers poll instead", std::strerror(errno));
    if (inotify_fd_ >= 0) ::close(inotify_fd_);
    if (kick_fd_ >= 0) ::close(kick_fd_);
    inotify_fd_ = kick_fd_ = -1;
  }
}

void QueueWaker::watch_locked(const std::string& queue, Queue& state) {
  state.watch_tried = true;
  start_inotify_locked();
  if (inotify_fd_ < 0) return;
  std::filesystem::path path = directory_ / file_name(queue);
  // The file must exist to be watched; O_CREAT on an existing file changes nothing in it.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 && errno == ENOENT) {
    ::mkdir(directory_.c_str(), 0755);
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  }
  if (fd >= 0) ::close(fd);
  int watch = ::inotify_add_watch(inotify_fd_, path.c_str(), kWatchMask);
  if (watch < 0) {
    if (!warned_watch_) {
      warned_watch_ = true;
      spdlog::warn(
          "sqlite transport: cannot watch the wake file {} ({}); receivers of queue {} "
          "poll instead (ASYA_SQLITE_POLL_INTERVAL)",
          path.string(), std::strerror(errno), queue);
    }
    return;
  }
  state.watch = watch;
  auto& names = by_watch_[watch];
  if (std::find(names.begin(), names.end(), queue) == names.end()) names.push_back(queue);
}

}  // namespace asya::transport
