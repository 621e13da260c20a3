// RuntimeClient's waits for its runtime (runtime_client.hpp): wait_ready(), the wait of a call
// whose request never reached a live runtime (RuntimeClientOptions::undelivered_wait), and the
// wait for the runtime to have read a request (wait_request_read), and the hook run while a call
// waits (arm_while_waiting).
#include <fmt/format.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <thread>

#include "wire/runtime_client.hpp"
#include "wire/socket_io.hpp"

namespace asya::wire {

using detail::Clock;

namespace {

// A runtime found ready at once after it lost the request is there, not restarting: after this
// many such waits in one call, the call fails instead of looping on a runtime that closes every
// connection without reading it. (A restart shows as a wait that found no runtime first; a dying
// runtime's listening socket accepts a connection or two before it goes.)
constexpr int kMaxWaitsFoundReady = 3;

}  // namespace

Status RuntimeClient::wait_ready(std::chrono::milliseconds timeout) {
  return wait_ready_until(Clock::now() + timeout, timeout, {}).status;
}

RuntimeClient::ReadyWait RuntimeClient::wait_ready_until(Clock::time_point deadline,
                                                         std::chrono::milliseconds timeout,
                                                         const std::function<bool()>& stop) {
  ReadyWait wait;
  std::string ready_file = ready_file_for(options_.socket_path);
  std::string last_problem;
  for (;;) {
    ++wait.checks;
    std::error_code ec;
    if (!std::filesystem::exists(ready_file, ec)) {
      last_problem = fmt::format("ready file {} does not exist", ready_file);
    } else {
      Status s = connect_once();
      if (s.ok()) return wait;
      last_problem = s.message();
    }
    if (stop && stop()) {
      wait.stopped = true;
      wait.status = Error{fmt::format("stopped waiting for the runtime at {}: {}",
                                      options_.socket_path, last_problem)};
      return wait;
    }
    if (Clock::now() >= deadline) {
      wait.status =
          Error{fmt::format("runtime at {} not ready after {} ms: {}; is the runtime running "
                            "with the same ASYA_SOCKET_PATH?",
                            options_.socket_path, timeout.count(), last_problem)};
      return wait;
    }
    // Polling a file and a connect has no event to wait on; check often enough to start fast.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

CallResult RuntimeClient::until_delivered(CallResult result,
                                          const std::function<CallResult()>& again) {
  if (!result.undelivered || options_.undelivered_wait.count() <= 0) return result;
  const auto started = Clock::now();
  // One bound for the whole call: a runtime that comes back and loses the request again (dies
  // while reading it, every time) must not hold the message for ever.
  const auto give_up = started + options_.undelivered_wait;
  std::string notice = result.notice;
  int waits = 0;
  int found_ready = 0;
  // The last wait found no runtime first and then a ready one: the runtime was restarted (a
  // runtime starts listening only once its handler is loaded, and writes its ready file after).
  bool restarted = false;
  while (result.status == CallStatus::kUnavailable && result.undelivered) {
    if (restarted && result.lost_unread) {
      // A restarted runtime took the connection and closed it with the request in it, unread: it
      // died while this request was in its socket, as the runtime before it did (or had lost it).
      // A runtime that dies while it reads this request would do so after every restart; one that
      // was merely restarting handles the request. Ended here as a failed attempt, so the
      // delivery counts toward ASYA_MAX_DELIVERIES now, not after the whole wait.
      result.lost_after_restart = true;
      result.error = fmt::format(
          "{}; the runtime had been restarted meanwhile and lost this request again, unread: it "
          "may die while reading it (not waited for again; counts as an attempt)",
          result.error);
      break;
    }
    if (Clock::now() >= give_up) {
      result.error = fmt::format(
          "{}; the request did not reach the runtime within {} ms of waiting for it (the runtime "
          "came back {} time(s) and lost it again before reading it)",
          result.error, options_.undelivered_wait.count(), waits);
      break;
    }
    if (options_.on_wait) options_.on_wait(result.error);
    run_while_waiting();  // the caller's held work does not wait for a restart
    ReadyWait ready = wait_ready_until(give_up, options_.undelivered_wait, options_.stop_waiting);
    if (options_.on_wait_end) options_.on_wait_end(ready.status.ok());
    restarted = ready.checks > 1;
    if (!ready.status.ok()) {
      disconnect();
      result.error = fmt::format("{}; waited for the runtime to be ready again: {}", result.error,
                                 ready.status.message());
      result.runtime_not_ready = !ready.stopped;
      break;
    }
    if (ready.checks == 1 && ++found_ready > kMaxWaitsFoundReady) {
      disconnect();
      result.error = fmt::format(
          "{}; the runtime was ready at once each time it was waited for ({} times) and still "
          "lost the request before reading it: it closes connections without reading them",
          result.error, found_ready);
      break;
    }
    ++waits;
    result = again();
    if (notice.empty()) notice = result.notice;
  }
  result.notice = std::move(notice);
  result.runtime_waits = waits;
  result.runtime_waited =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  return result;
}

bool RuntimeClient::wait_request_read(Clock::time_point deadline) {
  if (!pending_.active || fd_ < 0) return false;
  // What we wrote that the runtime has not read yet (socket memory, not bytes: only zero or not
  // matters).
  auto unread = [this] {
    int bytes = 0;
    return ::ioctl(fd_, SIOCOUTQ, &bytes) != 0 || bytes > 0;
  };
  // A runtime reads a request as soon as it arrives (each connection has its own thread), so
  // this mostly holds at once; when the runtime was idle, its thread has to wake first: a few
  // tens of microseconds, worth a spin that yields the core to it.
  constexpr auto kSpin = std::chrono::microseconds(100);
  // Then sleeps that double from 100 us: a runtime that reads late (a stalled or rogue one) is not
  // polled 10,000 times a second for the whole of its call; one that reads within a few sleeps is
  // seen at most about as late again as it took. Capped, so a read is seen within 10 ms.
  constexpr Clock::duration kMaxSleep = std::chrono::milliseconds(10);
  Clock::duration sleep = std::chrono::microseconds(100);
  const auto spin_until = Clock::now() + kSpin;
  for (;;) {
    if (!unread()) return true;
    const auto now = Clock::now();
    if (now >= deadline) return false;
    if (now < spin_until) {
      ::sched_yield();
      continue;
    }
    pollfd poll_fd{fd_, POLLIN, 0};
    const auto left = std::min<Clock::duration>(sleep, deadline - now);
    sleep = std::min(sleep * 2, kMaxSleep);
    const timespec wait{
        0, static_cast<long>(std::chrono::duration_cast<std::chrono::nanoseconds>(left).count())};
    const int ready = ::ppoll(&poll_fd, 1, &wait, nullptr);
    if (ready < 0 && errno != EINTR) return false;
    // An answer (or a close) arrived: the runtime is done with the request, or broke the rules,
    // which receive() reports.
    if (ready > 0) return !unread();
  }
}

void RuntimeClient::run_while_waiting() {
  if (!while_waiting_.fn) return;
  auto fn = std::move(while_waiting_.fn);
  while_waiting_ = {};
  fn();
}

void RuntimeClient::wait_answer_or_hook(Clock::time_point deadline) {
  const bool hook_first = while_waiting_.at < deadline;
  const Clock::time_point until = hook_first ? while_waiting_.at : deadline;
  pollfd pfd{fd_, POLLIN, 0};
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now()).count();
    const int n = ::poll(&pfd, 1, static_cast<int>(std::clamp<std::int64_t>(left, 0, 1 << 30)));
    if (n < 0 && errno == EINTR) continue;
    // Something arrived (or the connection ended, or poll failed: the read finds out): the answer
    // is read at once, the hook left for the caller to disarm.
    if (n != 0) return;
    if (Clock::now() >= until) break;
  }
  if (hook_first) run_while_waiting();
}

}  // namespace asya::wire
