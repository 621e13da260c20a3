// RuntimeClient waiting for a runtime that is being restarted (RuntimeClientOptions::
// undelivered_wait): a request that provably never reached a live runtime waits for it and is
// written again; one the runtime may have handled never is. And the wait for the runtime to have
// read a request (wait_request_read). And the hook run while a call waits for its answer
// (arm_while_waiting).
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/test_temp_dir.hpp"
#include "wire/frame.hpp"
#include "wire/runtime_client.hpp"
#include "wire/socket_io.hpp"

namespace asya::wire {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using asya::test::TempDir;

// A listening socket at `path` (a stale socket file there is replaced) and the ready file.
int listen_at(const fs::path& path) {
  fs::remove(path);
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(::listen(fd, 16), 0);
  std::ofstream(path.parent_path() / "runtime-ready").put('\n');
  return fd;
}

// What a runtime does with each request it reads.
enum class Serve {
  kEcho,             // answers "[request]" and keeps the connection
  kReadThenClose,    // reads the whole request, closes without answering (a handler that kills it)
  kHeaderThenClose,  // reads the request's 4-byte header, closes with the rest unread
};

// A runtime stand-in serving connections in sequence on one thread.
class Runtime {
 public:
  Runtime(const fs::path& path, Serve serve) : serve_(serve), listen_fd_(listen_at(path)) {
    thread_ = std::thread([this] {
      for (;;) {
        int fd = ::accept(listen_fd_, nullptr, nullptr);
        if (fd < 0) return;
        serving_ = fd;
        serve_connection(fd);
        serving_ = -1;
        ::close(fd);
      }
    });
  }
  ~Runtime() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    // A client still connected (it outlives the runtime) does not hold the serving thread.
    if (int fd = serving_; fd >= 0) ::shutdown(fd, SHUT_RDWR);
    thread_.join();
    ::close(listen_fd_);
  }
  // Requests read whole (each one a handler call of a real runtime).
  int handled() const { return handled_; }
  // Requests whose header only was read.
  int headers() const { return headers_; }

 private:
  void serve_connection(int fd) {
    for (;;) {
      if (serve_ == Serve::kHeaderThenClose) {
        char header[4];
        if (::recv(fd, header, 4, MSG_WAITALL) == 4) ++headers_;
        return;
      }
      std::string request;
      if (!read_frame(fd, request, 1u << 20, 10'000).ok()) return;
      ++handled_;
      if (serve_ == Serve::kReadThenClose) return;
      if (!write_frame(fd, "[" + request + "]").ok()) return;
    }
  }

  Serve serve_;
  int listen_fd_;
  std::thread thread_;
  std::atomic<int> serving_{-1};
  std::atomic<int> handled_{0};
  std::atomic<int> headers_{0};
};

// A runtime that dies while it reads each request and is restarted: each life listens (writing
// the ready file), takes one connection, reads the request's 4-byte header and closes everything
// with the rest unread, removing its ready file (the process died; its socket file stays, so a
// connect is refused). The next life starts only once the client found the runtime not ready
// (`not_ready_seen` grew), so the client's wait always sees the restart. `lives` of them.
class DyingRuntime {
 public:
  // Returns once the first life is ready.
  DyingRuntime(const fs::path& path, const std::atomic<int>& not_ready_seen, int lives) {
    thread_ = std::thread([this, path, &not_ready_seen, lives] {
      for (int life = 0; life < lives && !stop_; ++life) {
        const int seen = not_ready_seen;
        int listener = listen_at(path);
        int fd = -1;
        while (!stop_ && fd < 0) {
          pollfd p{listener, POLLIN, 0};
          if (::poll(&p, 1, 20) == 1) fd = ::accept(listener, nullptr, nullptr);
        }
        if (fd >= 0) {
          char header[4];
          if (::recv(fd, header, 4, MSG_WAITALL) == 4) ++headers_;
          fs::remove(path.parent_path() / "runtime-ready");
          ::close(fd);
        }
        ::close(listener);
        while (!stop_ && not_ready_seen == seen) std::this_thread::sleep_for(2ms);
      }
    });
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!fs::exists(path.parent_path() / "runtime-ready") &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(2ms);
  }
  ~DyingRuntime() {
    stop_ = true;
    thread_.join();
  }
  // Requests whose header was read (each one a life that ended).
  int headers() const { return headers_; }

 private:
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> headers_{0};
};

// Options that wait up to `wait` and count the waits begun.
RuntimeClientOptions waiting(const fs::path& socket, std::chrono::milliseconds wait,
                             std::shared_ptr<std::atomic<int>> waits) {
  RuntimeClientOptions o;
  o.socket_path = socket.string();
  o.max_message_bytes = 1u << 20;
  o.undelivered_wait = wait;
  o.on_wait = [waits](std::string_view) { ++*waits; };
  return o;
}

// How the waits a client began ended (RuntimeClientOptions::on_wait_end), and how often its wait
// found the runtime not ready (asked for stop_waiting after each such check).
struct WaitLog {
  std::mutex mutex;
  std::vector<bool> ends;
  std::atomic<int> not_ready_seen{0};
  std::vector<bool> ended() {
    std::lock_guard lock(mutex);
    return ends;
  }
};
RuntimeClientOptions logged(RuntimeClientOptions o, std::shared_ptr<WaitLog> log) {
  o.on_wait_end = [log](bool ready) {
    std::lock_guard lock(log->mutex);
    log->ends.push_back(ready);
  };
  o.stop_waiting = [log] {
    ++log->not_ready_seen;
    return false;
  };
  return o;
}

// Waits up to 10 s until `count` reaches `at_least`.
bool reaches(const std::atomic<int>& count, int at_least) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (count < at_least && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(2ms);
  return count >= at_least;
}

TEST(RuntimeClientWait, WithoutAWaitAnUndeliveredRequestFailsAtOnce) {
  TempDir dir;
  RuntimeClientOptions o;
  o.socket_path = (dir.path / "rt.sock").string();
  RuntimeClient client(o);
  std::string response;
  CallResult r = client.call("{}", response, 1s);
  EXPECT_EQ(r.status, CallStatus::kUnavailable);
  EXPECT_TRUE(r.undelivered) << r.error;
  EXPECT_FALSE(r.runtime_not_ready);
  EXPECT_EQ(r.runtime_waits, 0);
}

TEST(RuntimeClientWait, ARequestThatFoundNoRuntimeWaitsForItAndIsHandledOnce) {
  TempDir dir;
  auto waits = std::make_shared<std::atomic<int>>(0);
  auto log = std::make_shared<WaitLog>();
  RuntimeClient client(logged(waiting(dir.path / "rt.sock", 30s, waits), log));
  std::string response;
  auto call =
      std::async(std::launch::async, [&] { return client.call("{\"n\":1}", response, 5s); });
  ASSERT_TRUE(reaches(*waits, 1));  // the call is waiting: now the runtime starts
  Runtime runtime(dir.path / "rt.sock", Serve::kEcho);
  CallResult r = call.get();
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(response, "[{\"n\":1}]");
  EXPECT_EQ(runtime.handled(), 1);
  EXPECT_GE(r.runtime_waits, 1);
  // Each wait that began ended once; the last one with the runtime back.
  auto ended = log->ended();
  EXPECT_EQ(static_cast<int>(ended.size()), *waits);
  ASSERT_FALSE(ended.empty());
  EXPECT_TRUE(ended.back());
}

// The race of a runtime that is going away: the connection the wait made sits in its listening
// socket (still open while the process tears down); the request is written into it and the
// connection is then closed with the request unread, and the socket refuses the next connect.
// The request reached no handler: it waits for the next runtime, which handles it once.
TEST(RuntimeClientWait, ARequestLostInADyingRuntimesSocketWaitsForTheNextRuntime) {
  TempDir dir;
  const fs::path socket = dir.path / "rt.sock";
  int dying = listen_at(socket);
  auto waits = std::make_shared<std::atomic<int>>(0);
  RuntimeClient client(waiting(socket, 30s, waits));
  ASSERT_TRUE(client.wait_ready(5s).ok());  // the kept connection, into the dying socket
  int accepted = ::accept(dying, nullptr, nullptr);
  ASSERT_GE(accepted, 0);
  std::string response;
  auto call =
      std::async(std::launch::async, [&] { return client.call("{\"n\":2}", response, 5s); });
  pollfd p{accepted, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10'000), 1);  // the request arrived; it is never read
  ::close(accepted);
  ::close(dying);  // the socket file stays: connects are refused
  ASSERT_TRUE(reaches(*waits, 1));
  Runtime runtime(socket, Serve::kEcho);
  CallResult r = call.get();
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(response, "[{\"n\":2}]");
  EXPECT_EQ(runtime.handled(), 1);
}

// A runtime that read the request whole may have run the handler (one that kills it): that is a
// failed attempt at once, never a second write, whatever the wait allows.
TEST(RuntimeClientWait, ARequestTheRuntimeReadWholeIsNeverWrittenAgain) {
  TempDir dir;
  Runtime runtime(dir.path / "rt.sock", Serve::kReadThenClose);
  auto waits = std::make_shared<std::atomic<int>>(0);
  RuntimeClient client(waiting(dir.path / "rt.sock", 30s, waits));
  ASSERT_TRUE(client.wait_ready(5s).ok());
  std::string response;
  for (int i = 1; i <= 3; ++i) {
    CallResult r = client.call("{}", response, 5s);
    EXPECT_EQ(r.status, CallStatus::kUnavailable);
    EXPECT_FALSE(r.undelivered) << r.error;
    EXPECT_EQ(r.runtime_waits, 0);
    EXPECT_EQ(runtime.handled(), i);
  }
  EXPECT_EQ(*waits, 0);
}

TEST(RuntimeClientWait, ARuntimeThatDoesNotComeBackEndsTheWaitNamingWhatWasMissing) {
  TempDir dir;
  auto waits = std::make_shared<std::atomic<int>>(0);
  auto log = std::make_shared<WaitLog>();
  RuntimeClient client(logged(waiting(dir.path / "rt.sock", 300ms, waits), log));
  std::string response;
  CallResult r = client.call("{}", response, 5s);
  EXPECT_EQ(r.status, CallStatus::kUnavailable);
  EXPECT_TRUE(r.undelivered);
  EXPECT_FALSE(r.lost_unread);  // no connection was ever made
  EXPECT_FALSE(r.lost_after_restart);
  EXPECT_TRUE(r.runtime_not_ready);
  EXPECT_EQ(*waits, 1);
  EXPECT_EQ(log->ended(), std::vector<bool>{false});
  EXPECT_NE(r.error.find("not ready after 300 ms"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("ready file"), std::string::npos) << r.error;
}

// A runtime that is there and closes every connection without reading the request (a rogue
// one) is not waited for again and again: after 3 waits that found it ready at once, the call
// fails (a counted attempt), without a handler call.
TEST(RuntimeClientWait, ARuntimeThatIsReadyButNeverReadsTheRequestIsGivenUpOn) {
  TempDir dir;
  Runtime runtime(dir.path / "rt.sock", Serve::kHeaderThenClose);
  auto waits = std::make_shared<std::atomic<int>>(0);
  RuntimeClient client(waiting(dir.path / "rt.sock", 10min, waits));
  std::string response;
  CallResult r = client.call("{}", response, 5s);
  EXPECT_EQ(r.status, CallStatus::kUnavailable);
  EXPECT_TRUE(r.undelivered);
  EXPECT_FALSE(r.runtime_not_ready);
  EXPECT_EQ(r.runtime_waits, 3);
  EXPECT_NE(r.error.find("closes connections without reading them"), std::string::npos) << r.error;
  EXPECT_EQ(runtime.handled(), 0);
  EXPECT_GE(runtime.headers(), 4);
}

// A runtime that dies while it reads the request, every time (a request that kills it, e.g. by the
// memory its size asks for): the first loss may be a runtime that was going away anyway, so the
// call waits; the runtime the wait saw restart losing the request again ends the call as a failed
// attempt at once (a counted delivery), instead of holding it for the whole wait.
TEST(RuntimeClientWait, ARestartedRuntimeThatLosesTheRequestAgainEndsTheCallAsAnAttempt) {
  TempDir dir;
  auto waits = std::make_shared<std::atomic<int>>(0);
  auto log = std::make_shared<WaitLog>();
  DyingRuntime runtime(dir.path / "rt.sock", log->not_ready_seen, 3);
  RuntimeClient client(logged(waiting(dir.path / "rt.sock", 30s, waits), log));
  std::string response;
  CallResult r = client.call("{\"kills\":true}", response, 5s);
  EXPECT_EQ(r.status, CallStatus::kUnavailable);
  EXPECT_TRUE(r.undelivered);
  EXPECT_TRUE(r.lost_unread);
  EXPECT_TRUE(r.lost_after_restart) << r.error;
  EXPECT_FALSE(r.runtime_not_ready);
  EXPECT_EQ(r.runtime_waits, 1);
  EXPECT_EQ(*waits, 1);
  EXPECT_EQ(log->ended(), std::vector<bool>{true});
  EXPECT_EQ(runtime.headers(), 2) << r.error;
  EXPECT_NE(r.error.find("lost this request again, unread"), std::string::npos) << r.error;
}

// The same when the request is larger than the socket holds, so the runtime's death cuts the
// write short (EPIPE, with the request's bytes unread in the dead runtime's socket), on the
// connection the wait made as well as on the first one.
TEST(RuntimeClientWait, AWriteCutShortByARestartedRuntimeEndsTheCallAsAnAttempt) {
  TempDir dir;
  auto waits = std::make_shared<std::atomic<int>>(0);
  auto log = std::make_shared<WaitLog>();
  DyingRuntime runtime(dir.path / "rt.sock", log->not_ready_seen, 3);
  RuntimeClient client(logged(waiting(dir.path / "rt.sock", 30s, waits), log));
  const std::string large = "[\"" + std::string(32u << 20, 'x') + "\"]";
  std::string response;
  CallResult r = client.call(large, response, 10s);
  EXPECT_EQ(r.status, CallStatus::kUnavailable);
  EXPECT_TRUE(r.lost_unread);
  EXPECT_TRUE(r.lost_after_restart) << r.error;
  EXPECT_EQ(r.runtime_waits, 1);
  EXPECT_EQ(runtime.headers(), 2) << r.error;
  EXPECT_NE(r.error.find("lost this request again, unread"), std::string::npos) << r.error;
}

TEST(RuntimeClientWait, AStoppingCallerEndsTheWait) {
  TempDir dir;
  auto waits = std::make_shared<std::atomic<int>>(0);
  RuntimeClientOptions o = waiting(dir.path / "rt.sock", 10min, waits);
  o.stop_waiting = [waits] { return *waits > 0; };
  RuntimeClient client(o);
  std::string response;
  CallResult r = client.call("{}", response, 5s);
  EXPECT_EQ(r.status, CallStatus::kUnavailable);
  EXPECT_FALSE(r.runtime_not_ready);
  EXPECT_NE(r.error.find("stopped waiting"), std::string::npos) << r.error;
}

// send() and receive() (pipelined batches) wait as call() does.
TEST(RuntimeClientWait, SendWaitsForTheRuntimeAndReceiveGetsTheAnswer) {
  TempDir dir;
  auto waits = std::make_shared<std::atomic<int>>(0);
  RuntimeClient client(waiting(dir.path / "rt.sock", 30s, waits));
  auto sent = std::async(std::launch::async, [&] { return client.send("{\"n\":3}", 5s); });
  ASSERT_TRUE(reaches(*waits, 1));
  Runtime runtime(dir.path / "rt.sock", Serve::kEcho);
  ASSERT_EQ(sent.get().status, CallStatus::kOk);
  FrameBuffer response;
  CallResult r = client.receive(response, std::chrono::steady_clock::now() + 5s, 5s);
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(response.view(), "[{\"n\":3}]");
  EXPECT_EQ(runtime.handled(), 1);
}

// A streamed request is produced again for the next runtime, whole.
TEST(RuntimeClientWait, AStreamedRequestIsWrittenWholeAfterTheWait) {
  TempDir dir;
  auto waits = std::make_shared<std::atomic<int>>(0);
  RuntimeClient client(waiting(dir.path / "rt.sock", 30s, waits));
  const std::string body = "{\"parts\":[1,2,3]}";
  StreamedRequest request;
  request.size = body.size();
  request.write_body = [&](const StreamedRequest::Sink& sink) -> Status {
    for (std::size_t i = 0; i < body.size(); i += 5)
      if (Status s = sink(std::string_view(body).substr(i, 5)); !s) return s;
    return Status::Ok();
  };
  FrameBuffer response;
  auto call = std::async(std::launch::async, [&] { return client.call(request, response, 5s); });
  ASSERT_TRUE(reaches(*waits, 1));
  Runtime runtime(dir.path / "rt.sock", Serve::kEcho);
  CallResult r = call.get();
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(response.view(), "[" + body + "]");
  EXPECT_EQ(runtime.handled(), 1);
}

// wait_request_read (pipelined batches, PROTOCOL §3 "Order"): true only once the runtime read the
// whole request in flight; without one, false at once.
TEST(RuntimeClientWait, TheRequestCountsAsReadOnlyOnceTheRuntimeReadItsLastByte) {
  TempDir dir;
  const fs::path path = dir.path / "rt.sock";
  const int listen_fd = listen_at(path);
  RuntimeClient client(RuntimeClientOptions{path.string()});
  EXPECT_FALSE(client.wait_request_read(std::chrono::steady_clock::now() + 5s));  // none in flight
  const std::string request = "{\"batch\":[1,2,3]}";
  ASSERT_EQ(client.send(request, 5s).status, CallStatus::kOk);
  const int peer = ::accept(listen_fd, nullptr, nullptr);
  ASSERT_GE(peer, 0);
  // Nothing read yet: the wait ends at its deadline, the request unread.
  EXPECT_FALSE(client.wait_request_read(std::chrono::steady_clock::now() + 20ms));
  // All but the last byte read: still not.
  std::string got(4 + request.size(), '\0');
  ASSERT_EQ(::recv(peer, got.data(), got.size() - 1, MSG_WAITALL),
            static_cast<ssize_t>(got.size() - 1));
  EXPECT_FALSE(client.wait_request_read(std::chrono::steady_clock::now() + 20ms));
  // The last byte, read by another thread while the client waits.
  auto last = std::async(std::launch::async,
                         [&] { return ::recv(peer, got.data() + got.size() - 1, 1, 0); });
  EXPECT_TRUE(client.wait_request_read(std::chrono::steady_clock::now() + 30s));
  ASSERT_EQ(last.get(), 1);
  EXPECT_EQ(got.substr(4), request);
  EXPECT_TRUE(client.in_flight());  // nothing consumed: the answer is still to be received
  const std::string answer = "[1]";
  ASSERT_TRUE(detail::write_frame_io(peer, answer, std::nullopt).ok());
  FrameBuffer response;
  CallResult r = client.receive(response, std::chrono::steady_clock::now() + 5s, 5s);
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(response.view(), answer);
  ::close(peer);
  ::close(listen_fd);
}

// A runtime that leaves a request partly unread (a rogue one, or a stalled reader) is waited for
// without a busy poll: the sleeps between looks grow, so a wait of a second wakes the caller a
// few hundred times at most, not every 100 us (about 10,000 times). Counted in voluntary context
// switches of this thread (each sleep is one), not in time.
TEST(RuntimeClientWait, ARequestLeftUnreadIsWaitedForWithoutABusyPoll) {
  TempDir dir;
  const fs::path path = dir.path / "rt.sock";
  const int listen_fd = listen_at(path);
  RuntimeClient client(RuntimeClientOptions{path.string()});
  const std::string request(1000, 'x');
  ASSERT_EQ(client.send(request, 5s).status, CallStatus::kOk);
  const int peer = ::accept(listen_fd, nullptr, nullptr);
  ASSERT_GE(peer, 0);
  std::string got(100, '\0');  // half a request read, then nothing
  ASSERT_EQ(::recv(peer, got.data(), got.size(), MSG_WAITALL), 100);
  rusage before{};
  ASSERT_EQ(::getrusage(RUSAGE_THREAD, &before), 0);
  EXPECT_FALSE(client.wait_request_read(std::chrono::steady_clock::now() + 2s));
  rusage after{};
  ASSERT_EQ(::getrusage(RUSAGE_THREAD, &after), 0);
  EXPECT_LT(after.ru_nvcsw - before.ru_nvcsw, 400);
  ::close(peer);
  ::close(listen_fd);
}

// A runtime whose handler answers only once `open` is set (or after 10 s), on one connection.
class GatedRuntime {
 public:
  GatedRuntime(const fs::path& path, const std::atomic<bool>& open) : listen_fd_(listen_at(path)) {
    thread_ = std::thread([this, &open] {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      std::string request;
      while (read_frame(fd, request, 1u << 20, 10'000).ok()) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!open && std::chrono::steady_clock::now() < deadline)
          std::this_thread::sleep_for(1ms);
        if (!write_frame(fd, "[" + request + "]").ok()) break;
      }
      ::close(fd);
    });
  }
  ~GatedRuntime() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    ::close(listen_fd_);
  }

 private:
  int listen_fd_;
  std::thread thread_;
};

TEST(RuntimeClientWhileWaiting, TheHookRunsOnceOnTheCallingThreadWhileTheAnswerIsAwaited) {
  TempDir dir;
  std::atomic<bool> open{false};
  GatedRuntime runtime(dir.path / "rt.sock", open);
  RuntimeClient client(waiting(dir.path / "rt.sock", 0ms, std::make_shared<std::atomic<int>>(0)));
  int runs = 0;
  std::thread::id ran_on;
  // The handler answers only after the hook ran: the hook runs during the call, not after it.
  client.arm_while_waiting(std::chrono::steady_clock::now() + 5ms, [&] {
    ++runs;
    ran_on = std::this_thread::get_id();
    open = true;
  });
  FrameBuffer response;
  CallResult r = client.call("{\"n\":1}", response, 30s);
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(response.view(), "[{\"n\":1}]");
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  // One-shot: the next call does not run it again.
  r = client.call("{\"n\":2}", response, 30s);
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(runs, 1);
}

TEST(RuntimeClientWhileWaiting, AnAnswerBeforeTheHooksTimeNeverRunsItAndDisarmDropsIt) {
  TempDir dir;
  Runtime runtime(dir.path / "rt.sock", Serve::kEcho);
  RuntimeClient client(waiting(dir.path / "rt.sock", 0ms, std::make_shared<std::atomic<int>>(0)));
  int runs = 0;
  client.arm_while_waiting(std::chrono::steady_clock::now() + 1h, [&] { ++runs; });
  FrameBuffer response;
  CallResult r = client.call("{\"n\":1}", response, 30s);
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(runs, 0);
  client.disarm_while_waiting();
  r = client.call("{\"n\":2}", response, 30s);
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(response.view(), "[{\"n\":2}]");
  EXPECT_EQ(runs, 0);
}

}  // namespace
}  // namespace asya::wire
