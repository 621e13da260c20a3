// http+unix:// URLs (client.hpp): plain HTTP/1.1 over a Unix socket, the server's user checked
// before anything is sent.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/http/client.hpp"
#include "common/test_temp_dir.hpp"

namespace asya::http {
namespace {

namespace fs = std::filesystem;

using asya::test::TempDir;

int listen_at(const fs::path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strcpy(address.sun_path, path.c_str());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(fd, 8) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads one request head (and a Content-Length body) from `fd`; empty at EOF.
std::string read_request(int fd) {
  std::string data;
  char buffer[4096];
  for (;;) {
    const std::size_t end = data.find("\r\n\r\n");
    if (end != std::string::npos) {
      std::size_t length = 0;
      if (auto at = data.find("Content-Length: "); at != std::string::npos && at < end)
        length = std::stoul(data.substr(at + 16));
      if (data.size() >= end + 4 + length) return data.substr(0, end + 4 + length);
    }
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return {};
    data.append(buffer, static_cast<std::size_t>(n));
  }
}

// An HTTP server on a Unix socket, one thread, connections in sequence: answers every request
// with `answer` and records the requests.
class UnixServer {
 public:
  UnixServer(const fs::path& path, std::string answer) : answer_(std::move(answer)) {
    listen_fd_ = listen_at(path);
    EXPECT_GE(listen_fd_, 0);
    thread_ = std::thread([this] {
      for (;;) {
        const int fd = ::accept(listen_fd_, nullptr, nullptr);
        if (fd < 0) return;
        ++connections_;
        for (std::string request; !(request = read_request(fd)).empty();) {
          {
            std::lock_guard lock(mutex_);
            requests_.push_back(request);
          }
          if (::send(fd, answer_.data(), answer_.size(), MSG_NOSIGNAL) < 0) break;
        }
        ::close(fd);
      }
    });
  }
  ~UnixServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    ::close(listen_fd_);
  }
  std::vector<std::string> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  int connections() const { return connections_; }

 private:
  std::string answer_;
  int listen_fd_ = -1;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::string> requests_;
  std::atomic<int> connections_{0};
};

constexpr const char* kOk = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}";

TEST(UnixHttp, TheUrlOfASocketPathEncodesEveryByteOutsideTheUnreservedSet) {
  EXPECT_EQ(http_unix_url("/run/asya/gateway.sock"), "http+unix://%2Frun%2Fasya%2Fgateway.sock");
  EXPECT_EQ(http_unix_url("/tmp/a b%c"), "http+unix://%2Ftmp%2Fa%20b%25c");
}

TEST(UnixHttp, ACallReachesTheServerOnTheSocketAndKeepsItsConnection) {
  TempDir dir;
  UnixServer server(dir.path / "gw.sock", kOk);
  Client client;
  const std::string base = http_unix_url((dir.path / "gw.sock").string());
  for (int i = 0; i < 3; ++i) {
    Request request;
    request.method = "POST";
    request.url = base + "/envelopes/e1/check?x=" + std::to_string(i);
    request.headers = {{"Authorization", "Bearer secret"}, {"Content-Type", "application/json"}};
    request.body = "{}";
    auto response = client.perform(request);
    ASSERT_TRUE(response) << response.error().message;
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, R"({"a":1})");
  }
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[2].rfind("POST /envelopes/e1/check?x=2 HTTP/1.1\r\n", 0), 0u) << requests[2];
  EXPECT_NE(requests[2].find("\r\nHost: localhost\r\n"), std::string::npos) << requests[2];
  EXPECT_NE(requests[2].find("\r\nAuthorization: Bearer secret\r\n"), std::string::npos);
  EXPECT_EQ(server.connections(), 1);  // kept alive
}

TEST(UnixHttp, NothingListeningIsAConnectFailureNamingTheSocket) {
  TempDir dir;
  Client client;
  Request request;
  request.url = http_unix_url((dir.path / "none.sock").string()) + "/healthz";
  Failure why = Failure::kNone;
  auto response = client.perform(request, &why);
  ASSERT_FALSE(response);
  EXPECT_EQ(why, Failure::kConnect);
  EXPECT_NE(response.error().message.find("Failed to connect to Unix socket " +
                                          (dir.path / "none.sock").string()),
            std::string::npos)
      << response.error().message;
}

TEST(UnixHttp, AUrlWithoutAnAbsoluteSocketPathIsInvalidInput) {
  Client client;
  for (const char* url : {"http+unix://relative.sock/x", "http+unix:///x", "http+unix://%2Fa%2"}) {
    Request request;
    request.url = url;
    Failure why = Failure::kNone;
    auto response = client.perform(request, &why);
    ASSERT_FALSE(response) << url;
    EXPECT_EQ(why, Failure::kInvalidInput) << url;
    EXPECT_NE(response.error().message.find("absolute Unix socket path"), std::string::npos)
        << response.error().message;
  }
}

// A rogue server that does not speak HTTP: a connection failure, never a response.
TEST(UnixHttp, AServerThatDoesNotSpeakHttpIsAConnectionFailure) {
  TempDir dir;
  UnixServer server(dir.path / "gw.sock", "SSH-2.0-OpenSSH\r\n\r\n");
  Client client;
  Request request;
  request.url = http_unix_url((dir.path / "gw.sock").string()) + "/healthz";
  Failure why = Failure::kNone;
  auto response = client.perform(request, &why);
  ASSERT_FALSE(response);
  EXPECT_EQ(why, Failure::kConnection) << response.error().message;
}

// A socket put at the path by another user (a shared directory): the client sees the listener's
// user and sends it nothing, not even the request line (and so never its token).
TEST(UnixHttp, AServerRunningAsAnotherUserIsSentNothing) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a server as another user";
  TempDir dir;
  ::chmod(dir.path.c_str(), 0777);
  const fs::path path = dir.path / "gw.sock";
  int ready[2], report[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(report), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(3);
    const int listener = listen_at(path);
    if (listener < 0) ::_exit(4);
    ::chmod(path.c_str(), 0777);
    (void)!::write(ready[1], "r", 1);
    const int fd = ::accept(listener, nullptr, nullptr);
    std::size_t received = 0;
    char buffer[512];
    for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;)
      received += static_cast<std::size_t>(n);
    (void)!::write(report[1], &received, sizeof received);
    ::_exit(0);
  }
  ::close(ready[1]);
  ::close(report[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  Client client;
  Request request;
  request.method = "POST";
  request.url = http_unix_url(path.string()) + "/envelopes/e1/check";
  request.headers = {{"Authorization", "Bearer secret"}};
  request.body = "{}";
  Failure why = Failure::kNone;
  auto response = client.perform(request, &why);
  ASSERT_FALSE(response);
  EXPECT_EQ(why, Failure::kConnect);
  EXPECT_NE(response.error().message.find("runs as user id 65534"), std::string::npos)
      << response.error().message;
  std::size_t received = 99;
  ASSERT_EQ(::read(report[0], &received, sizeof received), static_cast<ssize_t>(sizeof received));
  EXPECT_EQ(received, 0u);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ::close(ready[0]);
  ::close(report[0]);
}

}  // namespace
}  // namespace asya::http
