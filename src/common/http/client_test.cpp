#include "common/http/client.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/http/test_server.hpp"

namespace asya::http {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::closed_port;
using test::get;
using test::TestServer;

int connections(Client& client, const TestServer& server) {
  auto answer = client.perform(get(server.url("/connections")));
  EXPECT_TRUE(answer) << answer.error().message;
  return answer ? std::atoi(answer->body.c_str()) : -1;
}

TEST(HttpClient, PostSendsMethodHeadersAndBodyAndReturnsStatusBodyAndHeaders) {
  TestServer server;
  Client client;
  Request request;
  request.method = "POST";
  request.url = server.url("/echo");
  request.headers = {
      {"Content-Type", "application/json"}, {"Authorization", "Bearer t0k"}, {"X-Test", "a b"}};
  std::string body = R"({"x":1})";
  request.body = body;
  Failure why = Failure::kTimeout;
  auto response = client.perform(request, &why);
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(why, Failure::kNone);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body,
            "method=POST\nbody={\"x\":1}\nAuthorization=Bearer t0k\n"
            "Content-Type=application/json\nX-Test=a b\nExpect=");
  EXPECT_EQ(response->header("x-answer"), "yes");  // any case; the first of two
  EXPECT_EQ(response->header("Content-Length"), std::to_string(response->body.size()));
  EXPECT_EQ(response->header("X-Missing"), "");
}

TEST(HttpClient, AHeaderWithALineBreakIsRefusedOnBothPathsAndNothingIsSent) {
  TestServer server;
  Client client;
  const std::vector<std::pair<std::string, std::string>> bad = {{"X-Test", "a\r\nX-Injected: 1"},
                                                                {"X-Test", std::string("a\0b", 3)},
                                                                {"X-Te\nst", "a"},
                                                                {"X-Te:st", "a"},
                                                                {"", "a"}};
  // The plain path (http://) and libcurl's (https://, whose connect would be refused) alike.
  for (const std::string& url : {server.url("/echo"), std::string("https://127.0.0.1:1/echo")}) {
    for (const auto& [name, value] : bad) {
      Request request;
      request.method = "POST";
      request.url = url;
      request.headers = {{name, value}};
      request.body = "x";
      Failure why = Failure::kNone;
      auto response = client.perform(request, &why);
      ASSERT_FALSE(response) << url << " " << name;
      EXPECT_EQ(why, Failure::kInvalidInput) << response.error().message;
      EXPECT_NE(response.error().message.find("not sent"), std::string::npos)
          << response.error().message;
      EXPECT_EQ(response.error().message.find('\n'), std::string::npos)
          << "the error message carries the line break: " << response.error().message;
    }
  }
  // The connection still works, and the server never saw the injected header.
  Request request;
  request.method = "POST";
  request.url = server.url("/echo");
  request.headers = {{"X-Test", "fine"}};
  request.body = "y";
  auto response = client.perform(request);
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_NE(response->body.find("X-Test=fine"), std::string::npos) << response->body;
  EXPECT_EQ(response->body.find("X-Injected"), std::string::npos) << response->body;
}

TEST(HttpClient, PutPatchDeleteAndHeadUseTheirMethod) {
  TestServer server;
  Client client;
  for (std::string method : {"PUT", "PATCH", "DELETE"}) {
    Request request = get(server.url("/echo"));
    request.method = method;
    request.body = "b";
    auto response = client.perform(request);
    ASSERT_TRUE(response) << response.error().message;
    EXPECT_EQ(response->body.substr(0, response->body.find('\n')), "method=" + method);
  }
  Request head = get(server.url("/echo"));
  head.method = "HEAD";
  auto response = client.perform(head);
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "");
}

TEST(HttpClient, AnyHttpStatusIsAResponseNotAnError) {
  TestServer server;
  Client client;
  for (int status : {201, 401, 404, 500, 503}) {
    auto response = client.perform(get(server.url("/status/" + std::to_string(status))));
    ASSERT_TRUE(response) << response.error().message;
    EXPECT_EQ(response->status, status);
    EXPECT_EQ(response->body, "status " + std::to_string(status));
  }
}

TEST(HttpClient, RefusedConnectionNamesMethodUrlAndLibcurlsReason) {
  Client client;
  const std::string url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/readyz";
  Failure why = Failure::kNone;
  auto response = client.perform(get(url), &why);
  ASSERT_FALSE(response);
  EXPECT_EQ(why, Failure::kConnect);
  EXPECT_EQ(response.error().message.rfind("GET " + url + " failed: Couldn't connect to server", 0),
            0u)
      << response.error().message;
  EXPECT_EQ(label(why), "connect");
}

TEST(HttpClient, ABadUrlIsInvalidInput) {
  Client client;
  Failure why = Failure::kNone;
  auto response = client.perform(get("ftp://127.0.0.1/x"), &why);
  ASSERT_FALSE(response);
  EXPECT_EQ(why, Failure::kInvalidInput);
  EXPECT_NE(response.error().message.find("GET ftp://127.0.0.1/x failed: "), std::string::npos)
      << response.error().message;
}

TEST(HttpClient, TotalTimeoutEndsACallTheServerNeverAnswers) {
  TestServer server;
  Client client;
  Request request = get(server.url("/slow/60000"));
  request.timeout = 300ms;
  Failure why = Failure::kNone;
  auto started = Clock::now();
  auto response = client.perform(request, &why);
  ASSERT_FALSE(response);
  EXPECT_EQ(why, Failure::kTimeout);
  EXPECT_NE(response.error().message.find("Timeout was reached"), std::string::npos)
      << response.error().message;
  EXPECT_LT(Clock::now() - started, 30s);  // far below the server's 60 s
  // The same client works afterwards (the timed-out handle went back to the pool).
  auto next = client.perform(get(server.url("/status/204")));
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_EQ(next->status, 204);
}

TEST(HttpClient, ConnectTimeoutEndsAConnectThatHangs) {
  // A listener whose backlog is full: the kernel drops further SYNs, so a connect hangs.
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 0), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    fillers.push_back(fd);
  }
  Client client;
  Request request = get("http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/");
  request.connect_timeout = 300ms;
  request.timeout = 60s;
  Failure why = Failure::kNone;
  auto started = Clock::now();
  auto response = client.perform(request, &why);
  auto took = Clock::now() - started;
  for (int fd : fillers) ::close(fd);
  ::close(listener);
  ASSERT_FALSE(response);
  EXPECT_EQ(why, Failure::kTimeout) << response.error().message;
  EXPECT_LT(took, 30s);  // the connect timeout, not the total one
}

TEST(HttpClient, ABodyCutShortIsAConnectionFailure) {
  TestServer server;
  Client client;
  Failure why = Failure::kNone;
  auto response = client.perform(get(server.url("/short")), &why);
  ASSERT_FALSE(response);
  EXPECT_EQ(why, Failure::kConnection) << response.error().message;
}

TEST(HttpClient, CancelFlagEndsACallEarly) {
  TestServer server;
  Client client;
  std::atomic<bool> cancel{false};
  Request request = get(server.url("/slow/60000"));
  request.timeout = 0ms;  // no limit: only the flag ends it
  request.cancel = &cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(200ms);
    cancel = true;
  });
  Failure why = Failure::kNone;
  auto response = client.perform(request, &why);
  canceller.join();
  ASSERT_FALSE(response);
  EXPECT_EQ(why, Failure::kCancelled);
  EXPECT_EQ(response.error().message, "GET " + server.url("/slow/60000") + " failed: cancelled");
}

TEST(HttpClient, ConsecutiveCallsReuseOneConnection) {
  TestServer server;
  Client client;
  for (int i = 0; i < 10; ++i) {
    Request request = get(server.url("/echo"));
    request.method = "POST";
    request.body = "x";
    auto response = client.perform(request);
    ASSERT_TRUE(response) << response.error().message;
  }
  EXPECT_EQ(connections(client, server), 1);
  // close() drops the pooled connections: the next call opens a new one.
  client.close();
  EXPECT_EQ(connections(client, server), 2);
}

// The inodes of this process's established TCP connections to `port` (/proc/self/net/tcp).
std::vector<std::string> connection_inodes(int port) {
  std::ifstream table("/proc/self/net/tcp");
  std::string line;
  std::getline(table, line);  // the column titles
  std::vector<std::string> inodes;
  char remote_port[8];
  std::snprintf(remote_port, sizeof remote_port, "%04X", port);
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
    fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
        timeout >> inode;
    if (state == "01" && remote.substr(remote.find(':') + 1) == remote_port)
      inodes.push_back(inode);
  }
  return inodes;
}

// Whether the descriptor of socket `inode` in this process is close-on-exec.
bool socket_is_close_on_exec(const std::string& inode) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(entry.path(), ec);
    if (ec || target.string() != "socket:[" + inode + "]") continue;
    std::ifstream info("/proc/self/fdinfo/" + entry.path().filename().string());
    std::string key, flags;
    while (info >> key >> flags)
      if (key == "flags:") return (std::stoul(flags, nullptr, 8) & O_CLOEXEC) != 0;
  }
  ADD_FAILURE() << "no descriptor for socket inode " << inode;
  return false;
}

TEST(HttpClient, KeptConnectionsAreCloseOnExec) {
  TestServer server;
  Client client;
  auto response = client.perform(get(server.url("/status/200")));
  ASSERT_TRUE(response) << response.error().message;
  auto inodes = connection_inodes(server.port());
  ASSERT_EQ(inodes.size(), 1u);  // the pooled connection, still open
  EXPECT_TRUE(socket_is_close_on_exec(inodes[0]));
}

TEST(HttpClient, ConcurrentCallersEachBorrowAHandleAndTheConnectionsAreKept) {
  TestServer server;
  Client client;
  constexpr int kThreads = 4;
  std::atomic<int> failures{0};
  auto round = [&] {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 10; ++i) {
          auto response = client.perform(get(server.url("/slow/10")));
          if (!response || response->body != "slow") ++failures;
        }
      });
    }
    for (auto& t : threads) t.join();
  };
  round();
  int after_first = connections(client, server);
  round();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(after_first, 1);
  EXPECT_LE(after_first, kThreads);  // at most one connection per concurrent caller
  EXPECT_EQ(connections(client, server), after_first);  // the second round opened none
}

TEST(HttpClient, StreamPassesEachLineAsItArrivesWithoutTheUnterminatedTail) {
  TestServer server;
  Client client;
  std::vector<std::string> lines;
  auto response = client.stream(get(server.url("/lines")), [&](std::string_view line) {
    lines.emplace_back(line);
    return StreamControl::kContinue;
  });
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->header("Content-Type"), "text/event-stream");
  EXPECT_EQ(response->body, "");
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "", "three"}));
}

TEST(HttpClient, StreamStopsWhenTheCallbackSaysSoWithoutAnError) {
  TestServer server;
  Client client;
  int seen = 0;
  Failure why = Failure::kTimeout;
  auto response = client.stream(
      get(server.url("/endless")),
      [&](std::string_view line) {
        EXPECT_EQ(line, "tick " + std::to_string(seen));
        return ++seen == 3 ? StreamControl::kStop : StreamControl::kContinue;
      },
      &why);
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(why, Failure::kNone);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(seen, 3);
}

TEST(HttpClient, StreamOfAnErrorStatusCollectsTheBodyInstead) {
  TestServer server;
  Client client;
  int calls = 0;
  auto response = client.stream(get(server.url("/status/410")), [&](std::string_view) {
    ++calls;
    return StreamControl::kContinue;
  });
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->status, 410);
  EXPECT_EQ(response->body, "status 410");
  EXPECT_EQ(calls, 0);
}

TEST(HttpClient, StreamEndsOnCancelAndOnItsTotalTimeout) {
  TestServer server;
  Client client;
  std::atomic<bool> cancel{false};
  Request request = get(server.url("/endless"));
  request.timeout = 0ms;
  request.cancel = &cancel;
  Failure why = Failure::kNone;
  auto response = client.stream(
      request,
      [&](std::string_view) {
        cancel = true;
        return StreamControl::kContinue;
      },
      &why);
  ASSERT_FALSE(response);
  EXPECT_EQ(why, Failure::kCancelled);

  Request limited = get(server.url("/endless"));
  limited.timeout = 300ms;
  int lines = 0;
  response = client.stream(
      limited,
      [&](std::string_view) {
        ++lines;
        return StreamControl::kContinue;
      },
      &why);
  ASSERT_FALSE(response);
  EXPECT_EQ(why, Failure::kTimeout);
  EXPECT_GT(lines, 0);
}

TEST(HttpClient, AnExceptionFromTheStreamCallbackReachesTheCaller) {
  TestServer server;
  Client client;
  EXPECT_THROW(
      (void)client.stream(get(server.url("/endless")),
                          [](std::string_view) -> StreamControl { throw std::logic_error("x"); }),
      std::logic_error);
  // The handle went back to the pool in a usable state.
  auto response = client.perform(get(server.url("/status/200")));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->status, 200);
}

// A CA and a server certificate for 127.0.0.1 signed by it (openssl CLI), in `folder`.
bool make_certificates(const std::filesystem::path& folder) {
  std::string dir = folder.string();
  std::string script =
      "cd '" + dir +
      "' && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 "
      "-subj /CN=asya-test-ca && openssl req -newkey rsa:2048 -nodes -keyout server.key -out "
      "server.csr -subj /CN=127.0.0.1 && echo subjectAltName=IP:127.0.0.1 > san.ext && "
      "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out "
      "server.crt -days 1 -extfile san.ext";
  return std::system(("(" + script + ") > /dev/null 2>&1").c_str()) == 0;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(HttpClient, TlsTrustsTheGivenCaAndRefusesAnUnknownOne) {
  auto folder =
      std::filesystem::temp_directory_path() / ("asya_http_tls_" + std::to_string(::getpid()));
  std::filesystem::create_directories(folder);
  ASSERT_TRUE(make_certificates(folder)) << "openssl failed in " << folder;
  TestServer server({"--tls", (folder / "server.crt").string(), (folder / "server.key").string()});
  const std::string url = server.url("/status/200", "https");

  Client untrusting;
  Failure why = Failure::kNone;
  auto refused = untrusting.perform(get(url), &why);
  ASSERT_FALSE(refused);
  EXPECT_EQ(why, Failure::kTls) << refused.error().message;

  ClientOptions pem_options;
  pem_options.tls.ca_pem = read_text(folder / "ca.crt");
  Client by_pem(pem_options);
  auto response = by_pem.perform(get(url));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->status, 200);

  ClientOptions file_options;
  file_options.tls.ca_file = (folder / "ca.crt").string();
  Client by_file(file_options);
  response = by_file.perform(get(url));
  ASSERT_TRUE(response) << response.error().message;

  ClientOptions insecure_options;
  insecure_options.tls.verify_peer = false;
  Client insecure(insecure_options);
  response = insecure.perform(get(url));
  ASSERT_TRUE(response) << response.error().message;
  std::filesystem::remove_all(folder);
}

}  // namespace
}  // namespace asya::http
