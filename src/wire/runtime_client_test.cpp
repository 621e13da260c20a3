#include "wire/runtime_client.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/test_temp_dir.hpp"
#include "wire/frame.hpp"

namespace asya::wire {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using asya::test::TempDir;

enum class Behaviour {
  kEchoAndKeepOpen,         // modern runtime
  kEchoAndClose,            // older runtime: one request per connection
  kNeverAnswer,             // hung handler
  kCloseWithoutReply,       // runtime dies on every request
  kOversizeReply,           // announces a frame far above the client's limit
  kDoubleAnswer,            // two answers to one request, in one write
  kStrayBytesBefore,        // two NUL bytes, then the answer frame, in one write
  kStrayBytesAfter,         // the answer frame, then three bytes, in one write
  kGarbageHeader,           // 00 47 5b 7b "payload":1}] : JSON text where a header should be
  kNotAnArray,              // a well-framed answer whose body is a JSON object
  kExtraBytesLater,         // first request: the answer, then (when the test says so) 4 more bytes
  kCloseUnreadAfterAnswer,  // answers, waits for the next request, closes without reading it
  kReadHeaderThenClose,     // reads the 4-byte header of the request, closes
  kLateSecondAnswer,        // first request: answers; once the next request arrived, answers again
                            // before reading it (after 300 ms reads and answers it)
};

// The frame carrying `body`: 4-byte big-endian length, then the body.
std::string framed(std::string_view body) {
  unsigned char header[4];
  encode_length(static_cast<std::uint32_t>(body.size()), header);
  return std::string(reinterpret_cast<const char*>(header), 4) + std::string(body);
}

void write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Waits up to 5 s until `flag` is set.
bool wait_flag(const std::atomic<bool>& flag) {
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!flag && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(2ms);
  return flag;
}

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
  // kExtraBytesLater: lets the runtime write its extra bytes; wait_extra_written() until it did.
  void write_extra() { write_extra_ = true; }
  bool wait_extra_written() const { return wait_flag(extra_written_); }

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
    if (behaviour_ == Behaviour::kReadHeaderThenClose) {
      char header[4];
      if (::recv(fd, header, 4, MSG_WAITALL) == 4) ++requests_;
      return;
    }
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
        case Behaviour::kDoubleAnswer:
          write_all(fd, framed("[" + request + "]") + framed(R"(["extra"])"));
          break;
        case Behaviour::kStrayBytesBefore:
          write_all(fd, std::string(2, '\0') + framed("[" + request + "]"));
          break;
        case Behaviour::kStrayBytesAfter:
          write_all(fd, framed("[" + request + "]") + "xyz");
          break;
        case Behaviour::kGarbageHeader:
          write_all(fd, std::string("\x00\x47[{\"payload\":1}]", 17));
          break;
        case Behaviour::kNotAnArray:
          write_all(fd, framed(R"({"payload":1})"));
          break;
        case Behaviour::kExtraBytesLater:
          write_all(fd, framed("[" + request + "]"));
          if (requests_ == 1) {
            if (!wait_flag(write_extra_)) return;
            write_all(fd, "junk");
            extra_written_ = true;
          }
          break;
        case Behaviour::kCloseUnreadAfterAnswer: {
          write_all(fd, framed("[" + request + "]"));
          // Wait until the next request arrived, then close with it unread.
          pollfd p{fd, POLLIN, 0};
          (void)::poll(&p, 1, 5000);
          return;
        }
        case Behaviour::kReadHeaderThenClose:
          return;
        case Behaviour::kLateSecondAnswer:
          write_all(fd, framed("[" + request + "]"));
          if (requests_ == 1) {
            pollfd p{fd, POLLIN, 0};
            (void)::poll(&p, 1, 5000);
            write_all(fd, framed("[" + request + "]"));
            std::this_thread::sleep_for(300ms);
          }
          break;
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
  std::atomic<bool> write_extra_{false};
  std::atomic<bool> extra_written_{false};
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

TEST(RuntimeClient, SendThenReceiveIsOneCallInTwoHalvesOnTheKeptConnection) {
  TempDir dir;
  FakeRuntime runtime(dir.path / "rt.sock", Behaviour::kEchoAndKeepOpen);
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  ASSERT_TRUE(client.wait_ready(5s).ok());
  FrameBuffer response;
  for (int i = 0; i < 3; ++i) {
    std::string request = "{\"n\":" + std::to_string(i) + "}";
    CallResult sent = client.send(request, 5s);
    ASSERT_EQ(sent.status, CallStatus::kOk) << sent.error;
    EXPECT_TRUE(client.in_flight());
    CallResult r = client.receive(response, std::chrono::steady_clock::now() + 5s, 5s);
    ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
    EXPECT_FALSE(client.in_flight());
    EXPECT_EQ(response.view(), "[" + request + "]");
  }
  EXPECT_EQ(runtime.connections(), 1);
}

TEST(RuntimeClient, AnAbandonedRequestsAnswerIsNeverReadAsTheNextOnes) {
  TempDir dir;
  FakeRuntime runtime(dir.path / "rt.sock", Behaviour::kEchoAndKeepOpen);
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  ASSERT_TRUE(client.wait_ready(5s).ok());
  ASSERT_EQ(client.send("{\"n\":\"abandoned\"}", 5s).status, CallStatus::kOk);
  client.abandon();
  EXPECT_FALSE(client.in_flight());
  FrameBuffer response;
  // Nothing in flight: receive() says so instead of reading whatever comes.
  EXPECT_EQ(client.receive(response, std::chrono::steady_clock::now() + 1s, 1s).status,
            CallStatus::kUnavailable);
  std::string out;
  CallResult r = client.call("{\"n\":\"next\"}", out, 5s);
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(out, "[{\"n\":\"next\"}]");
  EXPECT_EQ(runtime.connections(), 2);  // the abandoned request's connection was closed
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
  EXPECT_NE(r.error.find("closed the connection after reading the request, without answering"),
            std::string::npos)
      << r.error;
  EXPECT_EQ(runtime.requests(), 1);  // a fresh connection is not retried
}

// Issue 11 item 2: a runtime that read the request and closed may have run the handler; sending
// the request again would run it twice.
TEST(RuntimeClient, ReusedConnectionClosedAfterReadingTheRequestIsNotResent) {
  TempDir dir;
  FakeRuntime runtime(dir.path / "rt.sock", Behaviour::kCloseWithoutReply);
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  ASSERT_TRUE(client.wait_ready(5s).ok());  // leaves an open, reusable connection
  std::string response;
  for (int i = 1; i <= 5; ++i) {
    CallResult r = client.call("[]", response, 5s);
    EXPECT_EQ(r.status, CallStatus::kUnavailable) << r.error;
    EXPECT_NE(r.error.find("after reading the request, without answering"), std::string::npos)
        << r.error;
    EXPECT_EQ(runtime.requests(), i);  // one read per call, never two
  }
}

// The runtime closed with the request still unread in its socket (ECONNRESET): it provably did
// not read it, so it is sent again once, on a new connection.
TEST(RuntimeClient, ReusedConnectionClosedWithTheRequestUnreadIsResentOnce) {
  TempDir dir;
  FakeRuntime runtime(dir.path / "rt.sock", Behaviour::kReadHeaderThenClose);
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  ASSERT_TRUE(client.wait_ready(5s).ok());
  std::string response;
  CallResult r = client.call("[]", response, 5s);
  EXPECT_EQ(r.status, CallStatus::kUnavailable) << r.error;
  EXPECT_NE(r.error.find("without reading the whole request"), std::string::npos) << r.error;
  EXPECT_EQ(runtime.connections(), 2);  // the kept one, then one more for the resend
  EXPECT_EQ(runtime.requests(), 2);     // header reads; no handler could run
}

// An older runtime closes after its answer; when it closes only after the next request arrived,
// that request was never read and is sent again: every call is answered, each handled once.
TEST(RuntimeClient, RuntimeClosingWithTheNextRequestUnreadIsHandledOncePerCall) {
  TempDir dir;
  FakeRuntime runtime(dir.path / "rt.sock", Behaviour::kCloseUnreadAfterAnswer);
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  std::string response;
  for (int i = 0; i < 4; ++i) {
    std::string request = "{\"n\":" + std::to_string(i) + "}";
    CallResult r = client.call(request, response, 5s);
    ASSERT_EQ(r.status, CallStatus::kOk) << "call " << i << ": " << r.error;
    EXPECT_EQ(response, "[" + request + "]");
  }
  EXPECT_EQ(runtime.requests(), 4);
}

// Issue 11 item 1: a second answer in the same write is caught right after the first one; the
// connection is closed, and the next call gets its own answer on a new connection.
TEST(RuntimeClient, BytesRightAfterTheAnswerAreAProtocolErrorAndTheConnectionIsDropped) {
  for (Behaviour b : {Behaviour::kDoubleAnswer, Behaviour::kStrayBytesAfter}) {
    TempDir dir;
    FakeRuntime runtime(dir.path / "rt.sock", b);
    RuntimeClient client(options_for(dir.path / "rt.sock"));
    std::string response;
    for (int i = 0; i < 3; ++i) {
      std::string request = "{\"n\":" + std::to_string(i) + "}";
      CallResult r = client.call(request, response, 5s);
      EXPECT_EQ(r.status, CallStatus::kProtocol) << r.error;
      EXPECT_FALSE(r.too_large);
      EXPECT_NE(r.error.find("more byte(s) right after its answer"), std::string::npos) << r.error;
      EXPECT_NE(r.error.find(b == Behaviour::kDoubleAnswer ? "00 00 00 09" : "78 79 7a"),
                std::string::npos)
          << r.error;
      EXPECT_TRUE(r.notice.empty()) << r.notice;
    }
    EXPECT_EQ(runtime.connections(), 3);  // never reused after a protocol error
    EXPECT_EQ(runtime.requests(), 3);
  }
}

// Two NUL bytes before a frame: read as an empty frame, reported with the bytes that follow.
TEST(RuntimeClient, StrayBytesBeforeAFrameAreReportedAsSuch) {
  TempDir dir;
  FakeRuntime runtime(dir.path / "rt.sock", Behaviour::kStrayBytesBefore);
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  std::string response;
  CallResult r = client.call("{}", response, 5s);
  EXPECT_EQ(r.status, CallStatus::kProtocol) << r.error;
  EXPECT_FALSE(r.too_large);
  EXPECT_NE(r.error.find("frame is empty (header 00 00 00 00"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("stray bytes before a frame"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("00 04 5b 7b"), std::string::npos) << r.error;
  EXPECT_EQ(r.error.find("ASYA_MAX_MESSAGE_BYTES"), std::string::npos) << r.error;
}

// Issue 11 item 3: JSON text where a header should be is not "message too large", and with a
// limit above the announced size it fails at once instead of waiting for 4.6 MB.
TEST(RuntimeClient, JsonWhereAHeaderShouldBeIsStrayBytesNotTooLarge) {
  for (std::size_t limit : {std::size_t{1} << 20, std::size_t{8} << 20}) {
    TempDir dir;
    FakeRuntime runtime(dir.path / "rt.sock", Behaviour::kGarbageHeader);
    RuntimeClientOptions o = options_for(dir.path / "rt.sock");
    o.max_message_bytes = limit;
    RuntimeClient client(o);
    std::string response;
    CallResult r = client.call("{}", response, 5s);
    EXPECT_EQ(r.status, CallStatus::kProtocol) << r.error;
    EXPECT_FALSE(r.too_large) << r.error;
    EXPECT_NE(r.error.find("00 47 5b 7b"), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("4676475 bytes (4.7 MB)"), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("stray bytes before a frame"), std::string::npos) << r.error;
    EXPECT_EQ(r.error.find("raise ASYA_MAX_MESSAGE_BYTES"), std::string::npos) << r.error;
  }
}

// A second answer written while the next request is in flight, before the runtime read it, is not
// taken as that request's answer.
TEST(RuntimeClient, AnAnswerArrivingBeforeTheRequestWasReadIsAProtocolError) {
  TempDir dir;
  FakeRuntime runtime(dir.path / "rt.sock", Behaviour::kLateSecondAnswer);
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  std::string response;
  CallResult r = client.call(R"({"n":1})", response, 5s);
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  r = client.call(R"({"n":2})", response, 5s);
  EXPECT_EQ(r.status, CallStatus::kProtocol) << r.error << " answer: " << response;
  EXPECT_NE(r.error.find("arrived before the runtime had read the whole request"),
            std::string::npos)
      << r.error;
  r = client.call(R"({"n":3})", response, 5s);
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(response, R"([{"n":3}])");
  EXPECT_EQ(runtime.connections(), 2);
}

TEST(RuntimeClient, AnAnswerThatIsNotAnArrayFailsOnItsFirstByte) {
  TempDir dir;
  FakeRuntime runtime(dir.path / "rt.sock", Behaviour::kNotAnArray);
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  std::string response;
  CallResult r = client.call("{}", response, 5s);
  EXPECT_EQ(r.status, CallStatus::kProtocol) << r.error;
  EXPECT_NE(r.error.find("are not the start of a JSON array"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("7b 22 70 61"), std::string::npos) << r.error;
}

// Bytes that arrive after the sidecar checked the connection belong to no request: found before
// the next request is written, they close that connection and the next request goes on a new one.
TEST(RuntimeClient, BytesFoundBeforeWritingAreReportedAndTheRequestGoesOnANewConnection) {
  TempDir dir;
  FakeRuntime runtime(dir.path / "rt.sock", Behaviour::kExtraBytesLater);
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  std::string response;
  CallResult r = client.call(R"({"n":1})", response, 5s);
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(response, R"([{"n":1}])");
  runtime.write_extra();
  ASSERT_TRUE(runtime.wait_extra_written());
  // (A Unix-socket send puts the bytes straight into the client's receive queue.)
  r = client.call(R"({"n":2})", response, 5s);
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(response, R"([{"n":2}])");
  EXPECT_NE(r.notice.find("4 more byte(s) on the connection after its previous answer"),
            std::string::npos)
      << r.notice;
  EXPECT_NE(r.notice.find("6a 75 6e 6b"), std::string::npos) << r.notice;
  EXPECT_EQ(runtime.connections(), 2);
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
  EXPECT_NE(r.error.find("raise ASYA_MAX_MESSAGE_BYTES"), std::string::npos) << r.error;
  EXPECT_TRUE(r.too_large);
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
