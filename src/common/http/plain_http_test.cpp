// The client's plain HTTP/1.1 path (plain_http.hpp): which calls take it, the body framings, and
// what a misbehaving server gets. Most calls of client_test.cpp (http:// URLs, no proxy) take
// this path too; these add what only it has to handle itself.
#include "common/http/plain_http.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

#include "common/http/client.hpp"
#include "common/http/test_server.hpp"

namespace asya::http {
namespace {

using test::closed_port;
using test::get;
using test::TestServer;

// Sets (or unsets, with nullptr) an environment variable for the scope of a test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// No proxy variable at all, whatever the environment the tests run in.
struct NoProxyEnv {
  ScopedEnv a{"http_proxy", nullptr}, b{"HTTP_PROXY", nullptr}, c{"all_proxy", nullptr},
      d{"ALL_PROXY", nullptr}, e{"no_proxy", nullptr}, f{"NO_PROXY", nullptr};
};

double rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string key;
  double kb = 0;
  while (status >> key)
    if (key == "VmRSS:") {
      status >> kb;
      break;
    }
  return kb / 1024.0;
}

int connections(Client& client, const TestServer& server) {
  auto answer = client.perform(get(server.url("/connections")));
  EXPECT_TRUE(answer) << answer.error().message;
  return answer ? std::atoi(answer->body.c_str()) : -1;
}

TEST(PlainHttpTarget, ParsesHostPortPathAndLeavesOutTheFragment) {
  NoProxyEnv env;
  auto target = detail::plain_target(get("http://collector:4318/v1/traces?x=1#top"));
  ASSERT_TRUE(target);
  EXPECT_EQ(target->host, "collector");
  EXPECT_EQ(target->port, "4318");
  EXPECT_EQ(target->host_header, "collector:4318");
  EXPECT_EQ(target->path, "/v1/traces?x=1");

  target = detail::plain_target(get("http://[::1]:8080"));
  ASSERT_TRUE(target);
  EXPECT_EQ(target->host, "::1");
  EXPECT_EQ(target->port, "8080");
  EXPECT_EQ(target->path, "/");

  target = detail::plain_target(get("http://example.test?q"));
  ASSERT_TRUE(target);
  EXPECT_EQ(target->port, "80");
  EXPECT_EQ(target->path, "/?q");
}

TEST(PlainHttpTarget, HttpsUserInfoAndOddUrlsStayOnLibcurl) {
  NoProxyEnv env;
  for (const char* url : {"https://127.0.0.1/", "HTTP://127.0.0.1/", "http://user:pw@127.0.0.1/",
                          "http://127.0.0.1:99999/", "http://127.0.0.1:x/", "http:///path",
                          "http://a b/", "ftp://127.0.0.1/", "http://[::1/"})
    EXPECT_FALSE(detail::plain_target(get(url))) << url;
}

TEST(PlainHttpTarget, AProxyInTheEnvironmentSendsTheCallToLibcurlUnlessExempted) {
  NoProxyEnv env;
  for (const char* name : {"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"}) {
    ScopedEnv proxy(name, "http://proxy.test:3128");
    EXPECT_FALSE(detail::plain_target(get("http://collector.monitoring:4318/"))) << name;
    Request bypass = get("http://collector.monitoring:4318/");
    bypass.bypass_proxy = true;
    EXPECT_TRUE(detail::plain_target(bypass)) << name;
  }
  ScopedEnv proxy("http_proxy", "http://proxy.test:3128");
  {
    ScopedEnv exempt("no_proxy", "localhost, .monitoring,10.0.0.7");
    EXPECT_TRUE(detail::plain_target(get("http://collector.monitoring:4318/")));
    EXPECT_TRUE(detail::plain_target(get("http://LOCALHOST:1/")));
    EXPECT_TRUE(detail::plain_target(get("http://10.0.0.7/")));
    EXPECT_FALSE(detail::plain_target(get("http://10.0.0.8/")));
    EXPECT_FALSE(detail::plain_target(get("http://xmonitoring/")));  // not a subdomain
  }
  {
    ScopedEnv exempt("NO_PROXY", "*");
    EXPECT_TRUE(detail::plain_target(get("http://anything.test/")));
  }
}

TEST(PlainHttp, ProxyFromTheEnvironmentIsUsedThroughLibcurlAndNoProxyGoesDirect) {
  NoProxyEnv env;
  TestServer server;  // also the proxy: it answers /target with the request target it got
  const std::string proxy = "http://127.0.0.1:" + std::to_string(server.port());
  ScopedEnv proxy_env("http_proxy", proxy.c_str());
  Client client;
  auto response = client.perform(get("http://asya-proxied.test:1/target"));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->body, "http://asya-proxied.test:1/target");  // the absolute form: proxied

  Request bypass = get(server.url("/target"));
  bypass.bypass_proxy = true;
  response = client.perform(bypass);
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->body, "/target");

  ScopedEnv exempt("no_proxy", "127.0.0.1");
  response = client.perform(get(server.url("/target")));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->body, "/target");
}

TEST(PlainHttp, ChunkedBodyIsJoinedAndItsConnectionKept) {
  NoProxyEnv env;
  TestServer server;
  Client client;
  for (int i = 0; i < 3; ++i) {
    auto response = client.perform(get(server.url("/chunked")));
    ASSERT_TRUE(response) << response.error().message;
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, "hello, chunked world");
  }
  EXPECT_EQ(connections(client, server), 1);
}

TEST(PlainHttp, StreamOfAChunkedBodyPassesLinesAcrossChunks) {
  NoProxyEnv env;
  TestServer server;
  Client client;
  std::vector<std::string> lines;
  auto response = client.stream(get(server.url("/chunked-lines")), [&](std::string_view line) {
    lines.emplace_back(line);
    return StreamControl::kContinue;
  });
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "", "three"}));
}

TEST(PlainHttp, BodyDelimitedByCloseEndsThereAndTheNextCallOpensANewConnection) {
  NoProxyEnv env;
  TestServer server;
  Client client;
  auto response = client.perform(get(server.url("/until-close")));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->body, "delimited by close");
  EXPECT_EQ(response->header("Content-Type"), "text/plain");
  EXPECT_EQ(connections(client, server), 2);
}

TEST(PlainHttp, LargeBodyArrivesWhole) {
  NoProxyEnv env;
  TestServer server;
  Client client;
  constexpr std::size_t kSize = 8 << 20;
  auto response = client.perform(get(server.url("/large/" + std::to_string(kSize))));
  ASSERT_TRUE(response) << response.error().message;
  std::string expected;
  while (expected.size() < kSize) expected += "0123456789";
  expected.resize(kSize);
  EXPECT_TRUE(response->body == expected) << "a body of " << response->body.size() << " bytes";
}

TEST(PlainHttp, AKeptConnectionTheServerClosedIsReplacedWithoutAnError) {
  NoProxyEnv env;
  TestServer server;
  Client client;
  auto response = client.perform(get(server.url("/then-close")));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->body, "bye");
  // The server closed the kept connection after "bye": the next call does not fail for it.
  for (int i = 0; i < 3; ++i) {
    Request post = get(server.url("/echo"));
    post.method = "POST";
    post.body = "again";
    response = client.perform(post);
    ASSERT_TRUE(response) << response.error().message;
    EXPECT_EQ(response->body.substr(0, 23), "method=POST\nbody=again\n");
  }
  EXPECT_EQ(connections(client, server), 2);
}

TEST(PlainHttp, AStatusLineThatIsNotHttpIsAConnectionFailureNamingIt) {
  NoProxyEnv env;
  TestServer server;
  Client client;
  Failure why = Failure::kNone;
  auto response = client.perform(get(server.url("/bad-status")), &why);
  ASSERT_FALSE(response);
  EXPECT_EQ(why, Failure::kConnection);
  EXPECT_EQ(response.error().message,
            "GET " + server.url("/bad-status") +
                " failed: Weird server reply (the status line is not HTTP/1.x: \"HTCPCP/1.0 418 "
                "I'm a teapot\")");
}

TEST(PlainHttp, EndlessHeadersAreRefusedWithBoundedMemory) {
  NoProxyEnv env;
  TestServer server;
  Client client;
  for (const char* path : {"/endless-header", "/many-headers"}) {
    const double before = rss_mb();
    Failure why = Failure::kNone;
    auto response = client.perform(get(server.url(path)), &why);
    ASSERT_FALSE(response) << path;
    EXPECT_EQ(why, Failure::kConnection) << path;
    EXPECT_NE(response.error().message.find(
                  "Weird server reply (the response headers exceed 102400 bytes)"),
              std::string::npos)
        << response.error().message;
    EXPECT_LT(rss_mb() - before, 16.0) << path;  // the server offers 64 MB
  }
  auto response = client.perform(get(server.url("/status/200")));  // the client still works
  ASSERT_TRUE(response) << response.error().message;
}

TEST(PlainHttp, AHugeContentLengthCutShortIsAPartialTransferWithBoundedMemory) {
  NoProxyEnv env;
  TestServer server;
  Client client;
  const double before = rss_mb();
  Failure why = Failure::kNone;
  auto response = client.perform(get(server.url("/huge-length")), &why);
  ASSERT_FALSE(response);
  EXPECT_EQ(why, Failure::kConnection);
  EXPECT_NE(response.error().message.find(
                "Transferred a partial file (end of response with 99999999999999990 bytes "
                "missing)"),
            std::string::npos)
      << response.error().message;
  EXPECT_LT(rss_mb() - before, 16.0);
}

TEST(PlainHttp, AChunkedBodyCutShortIsAConnectionFailure) {
  NoProxyEnv env;
  TestServer server;
  Client client;
  Failure why = Failure::kNone;
  auto response = client.perform(get(server.url("/chunked-cut")), &why);
  ASSERT_FALSE(response);
  EXPECT_EQ(why, Failure::kConnection);
  EXPECT_NE(response.error().message.find("Transferred a partial file"), std::string::npos)
      << response.error().message;
}

TEST(PlainHttp, AHostNameIsResolvedAndEachOfItsAddressesTried) {
  NoProxyEnv env;
  TestServer server;  // listens on 127.0.0.1 only: "localhost" may give ::1 first, refused
  Client client;
  auto response =
      client.perform(get("http://localhost:" + std::to_string(server.port()) + "/status/201"));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->status, 201);
}

TEST(PlainHttp, RefusedConnectionNamesHostPortAndReason) {
  NoProxyEnv env;
  Client client;
  const std::string port = std::to_string(closed_port());
  const std::string url = "http://127.0.0.1:" + port + "/v1/traces";
  Request post = get(url);
  post.method = "POST";
  Failure why = Failure::kNone;
  auto response = client.perform(post, &why);
  ASSERT_FALSE(response);
  EXPECT_EQ(why, Failure::kConnect);
  const std::string& message = response.error().message;
  EXPECT_EQ(message.rfind("POST " + url +
                              " failed: Couldn't connect to server (Failed to connect to "
                              "127.0.0.1 port " +
                              port + " after ",
                          0),
            0u)
      << message;
  EXPECT_NE(message.find("ms: Connection refused)"), std::string::npos) << message;
}

// cancel_waits_only: a cancel during the wait ends the call; one after the answer began does not
// (the answer is read whole), on both paths.
TEST(PlainHttp, ACancelThatWaitsOnlyLetsAnAnswerThatBeganFinish) {
  NoProxyEnv env;
  TestServer server;
  ClientOptions curl_options;
  curl_options.tls.verify_peer = false;
  Client through_curl(curl_options), plain;
  for (Client* client : {&plain, &through_curl}) {
    const char* path = client == &plain ? "plain" : "libcurl";
    for (bool waits_only : {true, false}) {
      std::atomic<bool> cancel{false};
      Request request = get(server.url("/head-then-body"));
      request.cancel = &cancel;
      request.cancel_waits_only = waits_only;
      std::thread canceller([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(250));  // the head came, not the body
        cancel = true;
      });
      Failure why = Failure::kNone;
      auto response = client->perform(request, &why);
      canceller.join();
      if (waits_only) {
        ASSERT_TRUE(response) << path << ": " << response.error().message;
        EXPECT_EQ(response->body, "body") << path;
      } else {
        ASSERT_FALSE(response) << path;
        EXPECT_EQ(why, Failure::kCancelled) << path << ": " << response.error().message;
      }
    }
    // Cancelled while nothing has come yet: the call ends.
    std::atomic<bool> cancel{false};
    Request request = get(server.url("/slow/3000"));
    request.cancel = &cancel;
    request.cancel_waits_only = true;
    std::thread canceller([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      cancel = true;
    });
    Failure why = Failure::kNone;
    auto response = client->perform(request, &why);
    canceller.join();
    ASSERT_FALSE(response) << path;
    EXPECT_EQ(why, Failure::kCancelled) << path << ": " << response.error().message;
  }
}

// A server that refuses a large body (413) answers before reading it and closes; the answer is
// the call's outcome on both paths, not "Failed sending data", and the next call still works.
TEST(PlainHttp, AnAnswerSentBeforeTheWholeBodyIsTheOutcome) {
  NoProxyEnv env;
  TestServer server;
  ClientOptions curl_options;
  curl_options.tls.verify_peer = false;
  Client through_curl(curl_options), plain;
  const std::string body(32 << 20, 'x');  // far more than the socket buffers hold
  for (Client* client : {&plain, &through_curl}) {
    Request post = get(server.url("/refuse-body"));
    post.method = "POST";
    post.body = body;
    Failure why = Failure::kNone;
    auto response = client->perform(post, &why);
    const char* path = client == &plain ? "plain" : "libcurl";
    ASSERT_TRUE(response) << path << ": " << response.error().message;
    EXPECT_EQ(response->status, 413) << path;
    EXPECT_EQ(response->body, "too large") << path;
    auto next = client->perform(get(server.url("/status/200")));
    ASSERT_TRUE(next) << path << ": " << next.error().message;
    EXPECT_EQ(next->status, 200) << path;
  }
}

// The same calls through libcurl (TLS options force it, even for http://) and through the plain
// path give the same responses and the same kinds of failure.
TEST(PlainHttp, LibcurlAndThePlainPathAgree) {
  NoProxyEnv env;
  TestServer server;
  ClientOptions curl_options;
  curl_options.tls.verify_peer = false;
  Client through_curl(curl_options), plain;
  for (const char* path : {"/echo", "/chunked", "/until-close", "/status/404", "/large/100000",
                           "/short", "/chunked-cut", "/huge-length"}) {
    Request post = get(server.url(path));
    post.method = "POST";
    post.headers = {{"X-Test", "1"}};
    post.body = "payload";
    Failure why_curl = Failure::kNone, why_plain = Failure::kNone;
    auto a = through_curl.perform(post, &why_curl);
    auto b = plain.perform(post, &why_plain);
    EXPECT_EQ(why_curl, why_plain)
        << path << ": " << (a ? "" : a.error().message) << " / " << (b ? "" : b.error().message);
    ASSERT_EQ(bool(a), bool(b)) << path;
    if (!a) continue;
    EXPECT_EQ(a->status, b->status) << path;
    EXPECT_EQ(a->body, b->body) << path;
  }
}

}  // namespace
}  // namespace asya::http
