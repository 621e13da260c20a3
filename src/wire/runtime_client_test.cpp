#include "wire/runtime_client.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "wire/frame.hpp"

namespace asya::wire {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A temporary directory removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    char pattern[] = "/tmp/asya-wire-test-XXXXXX";
    path = ::mkdtemp(pattern);
  }
  ~TempDir() { fs::remove_all(path); }
};

enum class Behaviour {
  kEchoAndKeepOpen,    // modern runtime
  kEchoAndClose,       // older runtime: one request per connection
  kNeverAnswer,        // hung handler
  kCloseWithoutReply,  // runtime dies on every request
  kOversizeReply,      // announces a frame far above the client's limit
};

// A runtime stand-in on a real Unix socket, served by one thread (connections in sequence).
class FakeRuntime {
 public:
  FakeRuntime(const fs::path& socket_path, Behaviour behaviour) : behaviour_(behaviour) {
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, socket_path.c_str());
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listen_fd_, 16), 0);
    std::ofstream(socket_path.parent_path() / "runtime-ready").put('\n');
    thread_ = std::thread([this] { run(); });
  }
  ~FakeRuntime() {
    stop_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    ::close(listen_fd_);
  }
  int connections() const { return connections_; }
  int requests() const { return requests_; }
  // True once the server saw the client close a connection it was waiting on.
  bool saw_client_close() const { return saw_client_close_; }

 private:
  void run() {
    while (!stop_) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      ++connections_;
      serve(fd);
      ::close(fd);
    }
  }
  void serve(int fd) {
    std::string request;
    for (;;) {
      Status s = read_frame(fd, request, 1u << 20, 10'000);
      if (!s.ok()) {
        if (s.message() == "eof") saw_client_close_ = true;
        return;
      }
      ++requests_;
      switch (behaviour_) {
        case Behaviour::kEchoAndKeepOpen:
          if (!write_frame(fd, "[" + request + "]").ok()) return;
          break;
        case Behaviour::kEchoAndClose:
          (void)write_frame(fd, "[" + request + "]");
          return;
        case Behaviour::kNeverAnswer:
          break;  // read the next frame: EOF when the client gives up
        case Behaviour::kCloseWithoutReply:
          return;
        case Behaviour::kOversizeReply: {
          unsigned char header[4];
          encode_length(1u << 30, header);
          (void)::write(fd, header, 4);
          break;
        }
      }
    }
  }

  Behaviour behaviour_;
  int listen_fd_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::atomic<bool> saw_client_close_{false};
};

RuntimeClientOptions options_for(const fs::path& socket) {
  RuntimeClientOptions o;
  o.socket_path = socket.string();
  o.max_message_bytes = 1u << 20;
  return o;
}

TEST(ReadyFile, SitsNextToTheSocket) {
  EXPECT_EQ(ready_file_for("/var/run/asya/asya-runtime.sock"), "/var/run/asya/runtime-ready");
  EXPECT_EQ(ready_file_for("x.sock"), "runtime-ready");
}

TEST(RuntimeClient, WaitReadyFailsNamingTheMissingReadyFile) {
  TempDir dir;
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  Status s = client.wait_ready(100ms);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find((dir.path / "runtime-ready").string()), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find((dir.path / "rt.sock").string()), std::string::npos) << s.message();
}

TEST(RuntimeClient, WaitReadyFailsWhenReadyFileExistsButNothingListens) {
  TempDir dir;
  std::ofstream(dir.path / "runtime-ready").put('\n');
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  Status s = client.wait_ready(100ms);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot connect"), std::string::npos) << s.message();
}

TEST(RuntimeClient, ReusesOneConnectionForManyCalls) {
  TempDir dir;
  FakeRuntime runtime(dir.path / "rt.sock", Behaviour::kEchoAndKeepOpen);
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  ASSERT_TRUE(client.wait_ready(5s).ok());
  std::string response;
  for (int i = 0; i < 5; ++i) {
    std::string request = "{\"n\":" + std::to_string(i) + "}";
    CallResult r = client.call(request, response, 5s);
    ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
    EXPECT_EQ(response, "[" + request + "]");
  }
  EXPECT_EQ(runtime.connections(), 1);
  EXPECT_EQ(runtime.requests(), 5);
}

TEST(RuntimeClient, ReconnectsWhenTheRuntimeClosesAfterEachResponse) {
  TempDir dir;
  FakeRuntime runtime(dir.path / "rt.sock", Behaviour::kEchoAndClose);
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  ASSERT_TRUE(client.wait_ready(5s).ok());
  std::string response;
  for (int i = 0; i < 4; ++i) {
    std::string request = "{\"n\":" + std::to_string(i) + "}";
    CallResult r = client.call(request, response, 5s);
    ASSERT_EQ(r.status, CallStatus::kOk) << "call " << i << ": " << r.error;
    EXPECT_EQ(response, "[" + request + "]");
  }
  EXPECT_EQ(runtime.requests(), 4);
  EXPECT_EQ(runtime.connections(), 4);
}

TEST(RuntimeClient, TimesOutAndClosesTheConnection) {
  TempDir dir;
  FakeRuntime runtime(dir.path / "rt.sock", Behaviour::kNeverAnswer);
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  std::string response;
  auto start = std::chrono::steady_clock::now();
  CallResult r = client.call("{}", response, 200ms);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status, CallStatus::kTimeout) << r.error;
  EXPECT_NE(r.error.find("200 ms"), std::string::npos) << r.error;
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, 5s);
  // The client closed its side, so the runtime's next read ends.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!runtime.saw_client_close() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(runtime.saw_client_close());
}

TEST(RuntimeClient, UnavailableWhenNothingListens) {
  TempDir dir;
  RuntimeClient client(options_for(dir.path / "missing.sock"));
  std::string response;
  CallResult r = client.call("{}", response, 1s);
  EXPECT_EQ(r.status, CallStatus::kUnavailable);
  EXPECT_NE(r.error.find("missing.sock"), std::string::npos) << r.error;
}

TEST(RuntimeClient, UnavailableWhenAFreshConnectionClosesWithoutAnswer) {
  TempDir dir;
  FakeRuntime runtime(dir.path / "rt.sock", Behaviour::kCloseWithoutReply);
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  std::string response;
  CallResult r = client.call("{}", response, 5s);
  EXPECT_EQ(r.status, CallStatus::kUnavailable) << r.error;
  EXPECT_NE(r.error.find("closed the connection before answering"), std::string::npos) << r.error;
  EXPECT_EQ(runtime.requests(), 1);  // a fresh connection is not retried
}

TEST(RuntimeClient, ReusedConnectionIsRetriedOnlyOnce) {
  TempDir dir;
  FakeRuntime runtime(dir.path / "rt.sock", Behaviour::kCloseWithoutReply);
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  ASSERT_TRUE(client.wait_ready(5s).ok());  // leaves an open, reusable connection
  std::string response;
  CallResult r = client.call("{}", response, 5s);
  EXPECT_EQ(r.status, CallStatus::kUnavailable) << r.error;
  EXPECT_EQ(runtime.requests(), 2);
}

TEST(RuntimeClient, OversizeResponseIsAProtocolError) {
  TempDir dir;
  FakeRuntime runtime(dir.path / "rt.sock", Behaviour::kOversizeReply);
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  std::string response;
  CallResult r = client.call("{}", response, 5s);
  EXPECT_EQ(r.status, CallStatus::kProtocol) << r.error;
  EXPECT_NE(r.error.find("exceeds ASYA_MAX_MESSAGE_BYTES=1048576"), std::string::npos) << r.error;
  EXPECT_LT(response.capacity(), 1024u);
}

TEST(FrameBuffer, PadsWithZerosReusesCapacityAndReleases) {
  FrameBuffer buffer;
  EXPECT_EQ(buffer.size(), 0u);
  buffer.assign("hello");
  EXPECT_EQ(buffer.view(), "hello");
  for (std::size_t i = 0; i < FrameBuffer::kPadding; ++i) EXPECT_EQ(buffer.data()[5 + i], 0);
  buffer.assign(std::string(1000, 'x'));
  const char* storage = buffer.data();
  EXPECT_EQ(buffer.capacity(), 1000u);
  buffer.assign("ab");  // fits: same storage, padding right after the new contents
  EXPECT_EQ(buffer.data(), storage);
  EXPECT_EQ(buffer.view(), "ab");
  for (std::size_t i = 0; i < FrameBuffer::kPadding; ++i) EXPECT_EQ(buffer.data()[2 + i], 0);
  buffer.assign("");
  EXPECT_EQ(buffer.view(), "");
  EXPECT_EQ(buffer.data()[0], 0);
  buffer.release();
  EXPECT_EQ(buffer.capacity(), 0u);
  EXPECT_EQ(buffer.size(), 0u);
}

TEST(RuntimeClient, CallIntoAFrameBufferReusesItAcrossSizes) {
  TempDir dir;
  FakeRuntime runtime(dir.path / "rt.sock", Behaviour::kEchoAndKeepOpen);
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  ASSERT_TRUE(client.wait_ready(5s).ok());
  FrameBuffer response;
  response.assign(std::string(300, 'q'));  // stale contents must not leak into a shorter answer
  for (std::size_t size : {10u, 200000u, 3u, 70000u}) {
    std::string request(size + 2, static_cast<char>('a' + size % 26));
    request.front() = '"';
    request.back() = '"';
    CallResult r = client.call(request, response, 5s);
    ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
    ASSERT_EQ(response.size(), request.size() + 2);
    EXPECT_EQ(response.view().substr(1, request.size()), request);
    EXPECT_EQ(response.view().front(), '[');
    EXPECT_EQ(response.view().back(), ']');
    for (std::size_t i = 0; i < FrameBuffer::kPadding; ++i)
      ASSERT_EQ(response.data()[response.size() + i], 0);
  }
  EXPECT_EQ(response.capacity(), 200004u);  // the largest answer: the request plus "[" and "]"
  EXPECT_EQ(runtime.connections(), 1);
}

TEST(RuntimeClient, OversizeResponseIntoAFrameBufferAllocatesNothing) {
  TempDir dir;
  FakeRuntime runtime(dir.path / "rt.sock", Behaviour::kOversizeReply);
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  FrameBuffer response;
  CallResult r = client.call("{}", response, 5s);
  EXPECT_EQ(r.status, CallStatus::kProtocol) << r.error;
  EXPECT_NE(r.error.find("exceeds ASYA_MAX_MESSAGE_BYTES=1048576"), std::string::npos) << r.error;
  EXPECT_EQ(response.capacity(), 0u);
}

}  // namespace
}  // namespace asya::wire
