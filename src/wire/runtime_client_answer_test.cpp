// The answer's read (PROTOCOL §3 rules 3-5): a small answer comes with one read that also shows
// the socket idle after it; these tests cover the paths where that read cannot prove it (a large
// answer, an answer in pieces, a descriptor attached) and a runtime dying in the middle.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "common/test_temp_dir.hpp"
#include "wire/frame.hpp"
#include "wire/runtime_client.hpp"

namespace asya::wire {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using asya::test::TempDir;

std::string framed(std::string_view body) {
  unsigned char header[4];
  encode_length(static_cast<std::uint32_t>(body.size()), header);
  return std::string(reinterpret_cast<const char*>(header), 4) + std::string(body);
}

void send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

// A runtime stand-in that answers each request with `answer(fd, request_number, request)` (it
// writes what it likes and returns false to close the connection). Connections in sequence.
class ScriptedRuntime {
 public:
  using Answer = std::function<bool(int fd, int request_number, const std::string& request)>;
  ScriptedRuntime(const fs::path& socket_path, Answer answer) : answer_(std::move(answer)) {
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, socket_path.c_str());
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listen_fd_, 16), 0);
    std::ofstream(socket_path.parent_path() / "runtime-ready").put('\n');
    thread_ = std::thread([this] {
      for (;;) {
        int fd = ::accept(listen_fd_, nullptr, nullptr);
        if (fd < 0) return;
        ++connections_;
        std::string request;
        while (read_frame(fd, request, 1u << 20, 10'000).ok()) {
          if (!answer_(fd, ++requests_, request)) break;
        }
        ::close(fd);
      }
    });
  }
  ~ScriptedRuntime() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    ::close(listen_fd_);
  }
  int connections() const { return connections_; }

 private:
  Answer answer_;
  int listen_fd_ = -1;
  std::thread thread_;
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
};

RuntimeClientOptions options_for(const fs::path& socket) {
  RuntimeClientOptions o;
  o.socket_path = socket.string();
  o.max_message_bytes = 1u << 20;
  return o;
}

// An answer larger than the first read: bytes after it are found by a look of its own.
TEST(RuntimeClientAnswer, BytesAfterAnAnswerLargerThanTheFirstReadAreAProtocolError) {
  TempDir dir;
  const std::string big = "[\"" + std::string(100'000, 'x') + "\"]";
  ScriptedRuntime runtime(dir.path / "rt.sock", [&](int fd, int n, const std::string&) {
    send_all(fd, framed(big) + (n == 1 ? "xyz" : ""));
    return true;
  });
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  std::string response;
  CallResult r = client.call("{}", response, 5s);
  EXPECT_EQ(r.status, CallStatus::kProtocol) << r.error;
  EXPECT_NE(r.error.find("3 more byte(s) right after its answer"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("78 79 7a"), std::string::npos) << r.error;
  r = client.call("{}", response, 5s);
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(response, big);
  EXPECT_EQ(runtime.connections(), 2);
}

// Stray bytes that arrive with the last part of a small answer are in the same read.
TEST(RuntimeClientAnswer, AnAnswerWrittenInPiecesIsReadWholeAndBytesAfterItAreFound) {
  TempDir dir;
  ScriptedRuntime runtime(dir.path / "rt.sock", [&](int fd, int n, const std::string& request) {
    const std::string frame = framed("[" + request + "]");
    send_all(fd, frame.substr(0, 2));
    std::this_thread::sleep_for(20ms);
    send_all(fd, frame.substr(2, 5));
    std::this_thread::sleep_for(20ms);
    send_all(fd, frame.substr(7) + (n == 2 ? "zz" : ""));
    return true;
  });
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  std::string response;
  CallResult r = client.call(R"({"n":1})", response, 5s);
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(response, R"([{"n":1}])");
  r = client.call(R"({"n":2})", response, 5s);
  EXPECT_EQ(r.status, CallStatus::kProtocol) << r.error;
  EXPECT_NE(r.error.find("2 more byte(s) right after its answer"), std::string::npos) << r.error;
  r = client.call(R"({"n":3})", response, 5s);
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(response, R"([{"n":3}])");
  EXPECT_EQ(runtime.connections(), 2);
}

// A read stops at bytes that carry a descriptor, so a short read there proves nothing: the bytes
// written after the answer are still found (and the descriptor is not kept).
TEST(RuntimeClientAnswer, AnAnswerCarryingADescriptorDoesNotHideBytesAfterIt) {
  TempDir dir;
  ScriptedRuntime runtime(dir.path / "rt.sock", [&](int fd, int n, const std::string& request) {
    std::string frame = framed("[" + request + "]");
    if (n > 1) {
      send_all(fd, frame);  // the client may have closed already (junk read as a header)
      return true;
    }
    iovec iov{frame.data(), frame.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr message{};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&message);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    const int passed = STDIN_FILENO;
    std::memcpy(CMSG_DATA(c), &passed, sizeof passed);
    EXPECT_EQ(::sendmsg(fd, &message, MSG_NOSIGNAL), static_cast<ssize_t>(frame.size()));
    send_all(fd, "junk");
    return true;
  });
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  std::string response;
  CallResult r = client.call(R"({"n":1})", response, 5s);
  if (r.status == CallStatus::kOk) {
    // The junk, a write of its own after the answer's, had not arrived when the client looked
    // after the answer (the runtime is another thread). It is then found by the next call: by
    // the look before its request (protocol §3 rule 2: a notice, the request goes on a new
    // connection) or, if it came later still, as stray bytes before the next answer's frame (a
    // protocol error). Either way it is named and never taken for an answer.
    EXPECT_EQ(response, R"([{"n":1}])");
    r = client.call(R"({"n":2})", response, 5s);
    if (r.status == CallStatus::kOk) {
      EXPECT_EQ(response, R"([{"n":2}])");
      EXPECT_NE(r.notice.find("4 more byte(s) on the connection after its previous answer"),
                std::string::npos)
          << r.notice;
      EXPECT_NE(r.notice.find("6a 75 6e 6b"), std::string::npos) << r.notice;
    } else {
      EXPECT_EQ(r.status, CallStatus::kProtocol) << r.error;
      EXPECT_NE(r.error.find("header 6a 75 6e 6b"), std::string::npos) << r.error;
    }
    return;
  }
  EXPECT_EQ(r.status, CallStatus::kProtocol) << r.error << " answer: " << response;
  EXPECT_NE(r.error.find("4 more byte(s) right after its answer"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("6a 75 6e 6b"), std::string::npos) << r.error;
}

// A runtime that dies in the middle of its answer: the call fails as a truncated frame (never
// the partial answer), and the next call goes on a new connection.
TEST(RuntimeClientAnswer, ARuntimeDyingInTheMiddleOfItsAnswerFailsTheCallOnly) {
  TempDir dir;
  ScriptedRuntime runtime(dir.path / "rt.sock", [&](int fd, int n, const std::string& request) {
    const std::string frame = framed("[" + request + "]");
    if (n == 1) {
      send_all(fd, frame.substr(0, frame.size() - 3));
      return false;  // closes: the rest never comes
    }
    send_all(fd, frame);
    return true;
  });
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  std::string response;
  CallResult r = client.call(R"({"n":1})", response, 5s);
  EXPECT_EQ(r.status, CallStatus::kProtocol) << r.error;
  EXPECT_NE(r.error.find("connection closed in the middle of a frame"), std::string::npos)
      << r.error;
  r = client.call(R"({"n":2})", response, 5s);
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(response, R"([{"n":2}])");
  EXPECT_TRUE(r.notice.empty()) << r.notice;
  EXPECT_EQ(runtime.connections(), 2);
}

// A runtime that closes right after its answer (in the same read as the answer): the answer
// stands, and the next call finds the close before writing and reconnects without a notice.
TEST(RuntimeClientAnswer, ACloseThatCameWithTheAnswerIsFoundByTheNextCall) {
  TempDir dir;
  ScriptedRuntime runtime(dir.path / "rt.sock", [&](int fd, int, const std::string& request) {
    send_all(fd, framed("[" + request + "]"));
    return false;
  });
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  std::string response;
  for (int i = 1; i <= 3; ++i) {
    const std::string request = "{\"n\":" + std::to_string(i) + "}";
    CallResult r = client.call(request, response, 5s);
    ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
    EXPECT_EQ(response, "[" + request + "]");
    EXPECT_TRUE(r.notice.empty()) << r.notice;
  }
  EXPECT_EQ(runtime.connections(), 3);
}

}  // namespace
}  // namespace asya::wire
