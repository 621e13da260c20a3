#include "local/output_collector.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>

namespace asya::local {
namespace {

constexpr std::size_t kTailBytes = 8192;  // kept per stream: enough for the last lines

struct StreamState {
  int read_fd = -1;
  int log_fd = -1;
  std::string log_path;
  std::string tail;
  std::string log_error;
  bool ended = false;
  bool released = false;
};

}  // namespace

struct OutputCollector::State {
  std::mutex mutex;
  std::condition_variable changed;
  std::map<int, StreamState> streams;
  int next_id = 1;
  int wake_fd = -1;
  bool stopping = false;
  std::thread thread;

  void wake() {
    std::uint64_t one = 1;
    ssize_t ignored = ::write(wake_fd, &one, sizeof one);
    (void)ignored;
  }

  // Appends what was read to the log file and the tail; called by the thread with the lock.
  void take(StreamState& s, const char* data, std::size_t size) {
    if (s.log_fd >= 0) {
      std::size_t done = 0;
      while (done < size) {
        ssize_t n = ::write(s.log_fd, data + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          if (s.log_error.empty())
            s.log_error = fmt::format("cannot write {}: {}", s.log_path, std::strerror(errno));
          break;
        }
        done += static_cast<std::size_t>(n);
      }
    }
    s.tail.append(data, size);
    if (s.tail.size() > kTailBytes) s.tail.erase(0, s.tail.size() - kTailBytes);
  }

  void end(StreamState& s) {
    ::close(s.read_fd);
    s.read_fd = -1;
    if (s.log_fd >= 0) ::close(s.log_fd);
    s.log_fd = -1;
    s.ended = true;
  }

  void run() {
    char buffer[65536];
    std::vector<pollfd> fds;
    std::vector<int> ids;
    for (;;) {
      fds.assign(1, pollfd{wake_fd, POLLIN, 0});
      ids.assign(1, 0);
      {
        std::lock_guard lock(mutex);
        if (stopping) return;
        for (auto& [id, s] : streams) {
          if (s.ended) continue;
          fds.push_back(pollfd{s.read_fd, POLLIN, 0});
          ids.push_back(id);
        }
      }
      if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) return;
      if (fds[0].revents != 0) {
        std::uint64_t count;
        ssize_t ignored = ::read(wake_fd, &count, sizeof count);
        (void)ignored;
      }
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        std::lock_guard lock(mutex);
        auto it = streams.find(ids[i]);
        if (it == streams.end()) continue;
        if (n > 0) {
          take(it->second, buffer, static_cast<std::size_t>(n));
          continue;
        }
        end(it->second);
        if (it->second.released) streams.erase(it);
        changed.notify_all();
      }
    }
  }
};

OutputCollector::OutputCollector() : state_(std::make_unique<State>()) {
  state_->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  state_->thread = std::thread([s = state_.get()] { s->run(); });
}

OutputCollector::~OutputCollector() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->wake();
  state_->thread.join();
  for (auto& [id, s] : state_->streams) {
    if (!s.ended) state_->end(s);
  }
  ::close(state_->wake_fd);
}

Result<OutputCollector::Stream> OutputCollector::open(const std::filesystem::path& log_path) {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0)
    return Error{
        fmt::format("cannot make a pipe for {}: {}", log_path.string(), std::strerror(errno))};
  // The reader never blocks the thread on one stream.
  ::fcntl(ends[0], F_SETFL, ::fcntl(ends[0], F_GETFL) | O_NONBLOCK);
  StreamState s;
  s.read_fd = ends[0];
  s.log_path = log_path.string();
  s.log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (s.log_fd < 0)
    s.log_error = fmt::format("cannot open {}: {}", log_path.string(), std::strerror(errno));
  Stream out;
  out.write_fd = ends[1];
  {
    std::lock_guard lock(state_->mutex);
    out.id = state_->next_id++;
    state_->streams.emplace(out.id, std::move(s));
  }
  state_->wake();
  return out;
}

OutputCollector::Tail OutputCollector::tail(int id, std::size_t max_lines,
                                            std::chrono::milliseconds wait_for_end) {
  std::unique_lock lock(state_->mutex);
  auto ended = [&] {
    auto it = state_->streams.find(id);
    return it == state_->streams.end() || it->second.ended;
  };
  state_->changed.wait_for(lock, wait_for_end, ended);
  Tail out;
  auto it = state_->streams.find(id);
  if (it == state_->streams.end()) return out;
  out.log_error = it->second.log_error;
  std::string_view text = it->second.tail;
  // A cut at the front of the kept bytes leaves a partial first line: drop it.
  if (text.size() >= kTailBytes) {
    auto newline = text.find('\n');
    text = newline == std::string_view::npos ? "" : text.substr(newline + 1);
  }
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    auto newline = text.find('\n', start);
    if (newline == std::string_view::npos) newline = text.size();
    std::string line(text.substr(start, newline - start));
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) lines.push_back(std::move(line));
    start = newline + 1;
  }
  if (lines.size() > max_lines)
    lines.erase(lines.begin(), lines.end() - static_cast<std::ptrdiff_t>(max_lines));
  out.lines = std::move(lines);
  return out;
}

void OutputCollector::release(int id) {
  std::lock_guard lock(state_->mutex);
  auto it = state_->streams.find(id);
  if (it == state_->streams.end()) return;
  if (it->second.ended)
    state_->streams.erase(it);
  else
    it->second.released = true;
}

}  // namespace asya::local
