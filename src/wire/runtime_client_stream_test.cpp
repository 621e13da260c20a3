// RuntimeClient::call with a StreamedRequest: the body produced while it is written (a join's
// branch list read from its store), against a real Unix-socket echo runtime.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/test_temp_dir.hpp"
#include "wire/frame.hpp"
#include "wire/runtime_client.hpp"

namespace asya::wire {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using asya::test::TempDir;

// Listens on `socket_path` as a runtime would and creates its ready file; the listening
// descriptor, or -1 when the socket could not be bound or listened on.
int listen_as_runtime(const fs::path& socket_path, int backlog) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, socket_path.c_str());
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, backlog) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  std::ofstream(socket_path.parent_path() / "runtime-ready").put('\n');
  return fd;
}

// Answers every request frame with "[" + request + "]" and counts the frames that ended early.
class EchoRuntime {
 public:
  explicit EchoRuntime(const fs::path& socket_path) {
    listen_fd_ = listen_as_runtime(socket_path, 16);
    EXPECT_GE(listen_fd_, 0);
    thread_ = std::thread([this] {
      for (;;) {
        int fd = ::accept(listen_fd_, nullptr, nullptr);
        if (fd < 0) return;
        std::string request;
        for (;;) {
          Status s = read_frame(fd, request, 64u << 20, 10'000);
          if (!s.ok()) {
            if (s.message().find("middle of a frame") != std::string::npos) ++truncated_;
            break;
          }
          ++requests_;
          if (!write_frame(fd, "[" + request + "]").ok()) break;
        }
        ::close(fd);
      }
    });
  }
  ~EchoRuntime() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    ::close(listen_fd_);
  }
  int requests() const { return requests_; }
  int truncated() const { return truncated_; }

 private:
  int listen_fd_ = -1;
  std::thread thread_;
  std::atomic<int> requests_{0};
  std::atomic<int> truncated_{0};
};

RuntimeClientOptions options_for(const fs::path& socket) {
  RuntimeClientOptions o;
  o.socket_path = socket.string();
  o.max_message_bytes = 64u << 20;
  return o;
}

// A streamed request handing `parts` to the sink one by one, announcing `size` (their total
// size when nullopt).
StreamedRequest request_of(const std::vector<std::string>& parts,
                           std::optional<std::uint64_t> size = std::nullopt) {
  StreamedRequest r;
  r.size = 0;
  for (const auto& p : parts) r.size += p.size();
  if (size) r.size = *size;
  r.write_body = [&parts](const StreamedRequest::Sink& sink) {
    for (const auto& p : parts)
      if (Status st = sink(p); !st) return st;
    return Status::Ok();
  };
  return r;
}

// The echo runtime's answer to the request made of `parts`.
std::string echoed(const std::vector<std::string>& parts) {
  std::string out("[");
  for (const auto& p : parts) out += p;
  out += ']';
  return out;
}

TEST(RuntimeClientStream, ManySmallPartsArriveAsOneFrame) {
  TempDir dir;
  EchoRuntime runtime(dir.path / "rt.sock");
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  ASSERT_TRUE(client.wait_ready(5s).ok());
  // 20,000 parts, about 200 kB: several 64 KiB chunks, with parts split across chunk edges.
  std::vector<std::string> parts{"["};
  for (int i = 0; i < 20'000; ++i) {
    std::string part(i ? "," : "");
    part.append(std::to_string(i * 7));
    parts.push_back(std::move(part));
  }
  parts.push_back("]");
  FrameBuffer response;
  CallResult r = client.call(request_of(parts), response, 10s);
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(response.view(), echoed(parts));
  EXPECT_EQ(runtime.requests(), 1);
}

TEST(RuntimeClientStream, PartsLargerThanAChunkAndEmptyPartsPassUnchanged) {
  TempDir dir;
  EchoRuntime runtime(dir.path / "rt.sock");
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  ASSERT_TRUE(client.wait_ready(5s).ok());
  std::vector<std::string> parts{"[\"", std::string(300'000, 'a'), "", std::string(70'000, 'b'),
                                 "\"]"};
  FrameBuffer response;
  for (int call = 0; call < 2; ++call) {  // the second call reuses the connection
    CallResult r = client.call(request_of(parts), response, 10s);
    ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
    EXPECT_EQ(response.view(), echoed(parts));
  }
  EXPECT_EQ(runtime.requests(), 2);
}

// A plain request whose answer goes to an AnswerReceiver (the sidecar's spooled answer) arrives
// whole, in order, in pieces no larger than the room given.
TEST(RuntimeClientStream, APlainRequestsAnswerReachesAReceiverPieceByPiece) {
  class Pieces : public AnswerReceiver {
   public:
    std::string got;
    std::size_t largest = 0;
    void start(std::size_t size) override {
      got.clear();
      got.reserve(size);
    }
    std::span<char> room(std::size_t remaining) override {
      return {chunk_, std::min(remaining, sizeof chunk_)};
    }
    void received(std::size_t count) override {
      largest = std::max(largest, count);
      got.append(chunk_, count);
    }

   private:
    char chunk_[4096];
  };
  TempDir dir;
  EchoRuntime runtime(dir.path / "rt.sock");
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  ASSERT_TRUE(client.wait_ready(5s).ok());
  std::string request = "[\"";
  for (int i = 0; i < 100'000; ++i) request += static_cast<char>('a' + i % 26);
  request += "\"]";
  Pieces pieces;
  CallResult r = client.call(std::string_view(request), pieces, 10s);
  ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
  EXPECT_EQ(pieces.got, "[" + request + "]");
  EXPECT_LE(pieces.largest, 4096u);
  EXPECT_EQ(runtime.requests(), 1);
}

TEST(RuntimeClientStream, ABodyShorterThanAnnouncedIsNotSentAndTheNextCallWorks) {
  TempDir dir;
  EchoRuntime runtime(dir.path / "rt.sock");
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  ASSERT_TRUE(client.wait_ready(5s).ok());
  std::vector<std::string> parts{"[1,", std::string(100'000, '2'), "]"};
  FrameBuffer response;
  CallResult r = client.call(request_of(parts, 100'010), response, 10s);
  EXPECT_EQ(r.status, CallStatus::kUnavailable);
  EXPECT_NE(r.error.find("the request was not sent completely: the request body was 100004 "
                         "bytes, 100010 announced"),
            std::string::npos)
      << r.error;
  // The runtime saw the frame end early and never answered it; the client goes on.
  CallResult next = client.call("[2]", response, 5s);
  ASSERT_EQ(next.status, CallStatus::kOk) << next.error;
  EXPECT_EQ(response.view(), "[[2]]");
  EXPECT_EQ(runtime.requests(), 1);
  EXPECT_EQ(runtime.truncated(), 1);
}

TEST(RuntimeClientStream, ABodyLongerThanAnnouncedStopsAtTheAnnouncedSize) {
  TempDir dir;
  EchoRuntime runtime(dir.path / "rt.sock");
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  ASSERT_TRUE(client.wait_ready(5s).ok());
  std::vector<std::string> parts{"[1,", "2,", "3]"};
  FrameBuffer response;
  CallResult r = client.call(request_of(parts, 5), response, 5s);
  EXPECT_EQ(r.status, CallStatus::kUnavailable);
  EXPECT_NE(r.error.find("the request body grew past the 5 bytes announced"), std::string::npos)
      << r.error;
  EXPECT_EQ(runtime.requests(), 0);
}

TEST(RuntimeClientStream, AnErrorOfTheProducerEndsTheCallNamingIt) {
  TempDir dir;
  EchoRuntime runtime(dir.path / "rt.sock");
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  ASSERT_TRUE(client.wait_ready(5s).ok());
  StreamedRequest request;
  request.size = 100;
  request.write_body = [](const StreamedRequest::Sink& sink) -> Status {
    if (Status st = sink("[1,"); !st) return st;
    return Error{"join store: disk I/O error (read branches of group g@0)"};
  };
  FrameBuffer response;
  CallResult r = client.call(request, response, 5s);
  EXPECT_EQ(r.status, CallStatus::kUnavailable);
  EXPECT_NE(r.error.find("not sent completely: join store: disk I/O error"), std::string::npos)
      << r.error;
  EXPECT_EQ(runtime.requests(), 0);
}

bool eventually(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// A file whose bytes are "0123456789" repeated, opened for reading; closed by the destructor.
struct NumberFile {
  int fd = -1;
  std::string bytes;
  NumberFile(const fs::path& path, std::size_t size) {
    for (std::size_t i = 0; i < size; ++i) bytes += static_cast<char>('0' + i % 10);
    std::ofstream(path, std::ios::binary) << bytes;
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  ~NumberFile() { ::close(fd); }
};

// A request "[\"" + `count` bytes of `file` from `offset` + "\"]", the file range sent with
// StreamSink::send_file; `sent` gets what send_file reported.
StreamedRequest file_request(const NumberFile& file, std::uint64_t offset, std::uint64_t count,
                             StreamSink::FileSent* sent = nullptr) {
  StreamedRequest r;
  r.size = count + 4;
  r.write_body = [&file, offset, count, sent](const StreamedRequest::Sink& sink) -> Status {
    if (Status st = sink("[\""); !st) return st;
    StreamSink::FileSent result = sink.send_file(file.fd, offset, count);
    if (sent) *sent = result;
    if (!result.socket) return result.socket;
    if (!result.file_error.empty()) return Error{result.file_error};
    return sink("\"]");
  };
  return r;
}

TEST(RuntimeClientStream, AFileRangeIsSentInPlaceInTheFrame) {
  TempDir dir;
  EchoRuntime runtime(dir.path / "rt.sock");
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  ASSERT_TRUE(client.wait_ready(5s).ok());
  NumberFile file(dir.path / "object", (5u << 20) + 7);
  FrameBuffer response;
  for (std::uint64_t offset :
       {std::uint64_t{0}, std::uint64_t{3}}) {  // the second: kept connection
    StreamSink::FileSent sent;
    const std::uint64_t count = file.bytes.size() - offset - 2;
    CallResult r = client.call(file_request(file, offset, count, &sent), response, 20s);
    ASSERT_EQ(r.status, CallStatus::kOk) << r.error;
    EXPECT_EQ(sent.bytes, count);
    EXPECT_EQ(response.view(), "[[\"" + file.bytes.substr(offset, count) + "\"]]");
  }
  EXPECT_EQ(::lseek(file.fd, 0, SEEK_CUR), 0) << "the descriptor's own offset moved";
  EXPECT_EQ(runtime.requests(), 2);
}

TEST(RuntimeClientStream, AFileShorterThanItsRangeEndsTheCallAsNotSentCompletely) {
  TempDir dir;
  EchoRuntime runtime(dir.path / "rt.sock");
  RuntimeClient client(options_for(dir.path / "rt.sock"));
  ASSERT_TRUE(client.wait_ready(5s).ok());
  NumberFile file(dir.path / "object", 100'000);
  StreamSink::FileSent sent;
  FrameBuffer response;
  CallResult r = client.call(file_request(file, 0, 100'010, &sent), response, 10s);
  EXPECT_EQ(r.status, CallStatus::kUnavailable);
  EXPECT_EQ(sent.bytes, 100'000u);
  EXPECT_TRUE(sent.socket.ok());
  EXPECT_TRUE(eventually([&runtime] { return runtime.truncated() == 1; }));
  EXPECT_EQ(runtime.requests(), 0);
}

// A runtime that accepts connections and never reads: a file range larger than the socket's
// buffers must still end at the call's timeout (sendfile on a blocking socket would not).
TEST(RuntimeClientStream, AFileRangeToARuntimeThatDoesNotReadTimesOut) {
  TempDir dir;
  const fs::path socket_path = dir.path / "rt.sock";
  int listen_fd = listen_as_runtime(socket_path, 4);
  ASSERT_GE(listen_fd, 0);
  RuntimeClient client(options_for(socket_path));
  NumberFile file(dir.path / "object", 32u << 20);
  FrameBuffer response;
  CallResult r = client.call(file_request(file, 0, file.bytes.size()), response, 300ms);
  EXPECT_EQ(r.status, CallStatus::kTimeout) << r.error;
  ::close(listen_fd);
}

// A runtime that closes the connection at once: the failed write is EPIPE, not a SIGPIPE that
// kills the process (sendfile has no MSG_NOSIGNAL), and the call fails as unavailable.
TEST(RuntimeClientStream, AFileRangeToAClosedRuntimeFailsWithoutSigpipe) {
  TempDir dir;
  const fs::path socket_path = dir.path / "rt.sock";
  int listen_fd = listen_as_runtime(socket_path, 4);
  ASSERT_GE(listen_fd, 0);
  std::thread closer([listen_fd] {
    for (int i = 0; i < 2; ++i) {
      int fd = ::accept(listen_fd, nullptr, nullptr);
      if (fd < 0) return;
      ::close(fd);
    }
  });
  RuntimeClient client(options_for(socket_path));
  NumberFile file(dir.path / "object", 8u << 20);
  FrameBuffer response;
  CallResult r = client.call(file_request(file, 0, file.bytes.size()), response, 10s);
  EXPECT_EQ(r.status, CallStatus::kUnavailable) << r.error;
  ::shutdown(listen_fd, SHUT_RDWR);
  closer.join();
  ::close(listen_fd);
}

TEST(RuntimeClientStream, ASinkOfPartsOnlyReadsAFileRangeIntoItsParts) {
  TempDir dir;
  NumberFile file(dir.path / "object", 200'000);
  std::string got;
  StreamSink sink([&got](std::string_view part) {
    got.append(part);
    return Status::Ok();
  });
  StreamSink::FileSent sent = sink.send_file(file.fd, 5, 150'000);
  EXPECT_TRUE(sent.socket.ok());
  EXPECT_EQ(sent.bytes, 150'000u);
  EXPECT_EQ(got, file.bytes.substr(5, 150'000));
}

}  // namespace
}  // namespace asya::wire
