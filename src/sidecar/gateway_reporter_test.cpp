#include "sidecar/gateway_reporter.hpp"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

namespace asya::sidecar {
namespace {

using namespace std::chrono_literals;

TEST(GatewayBodies, ProgressBodyMatchesProtocol) {
  EXPECT_EQ(
      progress_body({"a", "b"}, 1, "processing", "processing in b", std::nullopt),
      R"({"actors":["a","b"],"current_actor_idx":1,"status":"processing","message":"processing in b"})");
  EXPECT_EQ(
      progress_body({"a"}, 0, "completed", "done", 42),
      R"({"actors":["a"],"current_actor_idx":0,"status":"completed","message":"done","duration_ms":42})");
}

TEST(GatewayBodies, FanoutBodyMatchesProtocol) {
  EXPECT_EQ(fanout_body("X-1", "X", {"a", "b"}, 1),
            R"({"id":"X-1","parent_id":"X","actors":["a","b"],"current":1})");
}

TEST(GatewayBodies, FinalBodyMatchesProtocol) {
  EXPECT_EQ(
      final_body("X", true, R"({"r":1})", "", "", {"a"}, 0),
      R"({"id":"X","status":"succeeded","result":{"r":1},"actors":["a"],"current_actor_idx":0})");
  EXPECT_EQ(
      final_body("X", false, "", "runtime_timeout", R"({"message":"m"})", {"a"}, 0),
      R"({"id":"X","status":"failed","error":"runtime_timeout","error_details":{"message":"m"},"actors":["a"],"current_actor_idx":0})");
}

TEST(GatewayBodies, OnlyEnvelopesOfAGatewayJobAreTracked) {
  EXPECT_TRUE(tracked_by_gateway(R"({"job_id":"j1","tool":"t"})"));
  EXPECT_TRUE(tracked_by_gateway(R"({"tool":"t", "job_id": "j1"})"));
  EXPECT_FALSE(tracked_by_gateway(""));
  EXPECT_FALSE(tracked_by_gateway(R"({"tool":"t"})"));
  EXPECT_FALSE(tracked_by_gateway(R"({"note":"\"job_id\" in a value"})"));
  EXPECT_FALSE(tracked_by_gateway(R"({"inner":{"job_id":"x"}})"));
}

TEST(GatewayBodies, EnvelopePathEncodesTheId) {
  EXPECT_EQ(envelope_path("abc-1", "progress"), "/envelopes/abc-1/progress");
  EXPECT_EQ(envelope_path("a/b c", "final"), "/envelopes/a%2Fb%20c/final");
}

TEST(GatewayReporter, UnreachableGatewayDropsReportsWithoutBlocking) {
  std::atomic<int> dropped{0};
  GatewayReporterOptions o;
  o.base_url = "http://127.0.0.1:1";  // nothing listens on port 1
  o.capacity = 2;
  o.max_attempts = 2;
  o.timeout = 200ms;
  o.retry_delay = 10ms;
  o.on_dropped = [&] { ++dropped; };
  GatewayReporter reporter(o);
  auto started = std::chrono::steady_clock::now();
  int accepted = 0;
  for (int i = 0; i < 50; ++i) accepted += reporter.post("/envelopes/x/progress", "{}") ? 1 : 0;
  // post never waits for HTTP: waiting would take at least 50 × 200 ms.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  reporter.stop(5s);
  EXPECT_EQ(dropped.load(), 50);  // every report dropped: queue full, or failed after retries
  EXPECT_GE(accepted, 2);
}

// A socket that listens but never accepts: connects succeed, answers never come.
struct SilentServer {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int port = 0;
  SilentServer() {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(fd, 16), 0);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  ~SilentServer() { close(fd); }
};

TEST(GatewayReporter, PostNowGivesUpWithinItsBudgetWhenTheGatewayHangs) {
  SilentServer server;
  GatewayReporterOptions o;
  o.base_url = "http://127.0.0.1:" + std::to_string(server.port);
  GatewayReporter reporter(o);
  auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(reporter.post_now("/envelopes", "{}", 300ms, 2));
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 3s);  // the budget (2 × 300 ms) with room for a loaded machine, not the default
}

TEST(GatewayReporter, PostNowFailsFastWhenNothingListens) {
  GatewayReporterOptions o;
  o.base_url = "http://127.0.0.1:1";
  GatewayReporter reporter(o);
  auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(reporter.post_now("/envelopes", "{}", 10s, 2));
  // A refused connection ends the try at once; waiting out the budget would take 10 s.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

// An HTTP server answering every request with `status` (one request per connection), keeping the
// Authorization header of each request.
class AnsweringServer {
 public:
  explicit AnsweringServer(int status) : status_(status) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~AnsweringServer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // The Authorization header of every request so far ("" when a request had none).
  std::vector<std::string> authorizations() {
    std::lock_guard lock(mutex_);
    return authorizations_;
  }

 private:
  void serve() {
    for (;;) {
      int client = accept(fd_, nullptr, nullptr);
      if (client < 0) return;
      std::string request;
      char buf[4096];
      // Headers, then the body of Content-Length bytes.
      std::size_t end = std::string::npos;
      while ((end = request.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = recv(client, buf, sizeof buf, 0);
        if (n <= 0) break;
        request.append(buf, static_cast<std::size_t>(n));
      }
      std::string authorization;
      auto at = request.find("\r\nAuthorization: ");
      if (at != std::string::npos && at < end) {
        at += 17;
        authorization = request.substr(at, request.find("\r\n", at) - at);
      }
      {
        std::lock_guard lock(mutex_);
        authorizations_.push_back(authorization);
      }
      std::string body = status_ == 401 ? R"({"error":"missing or wrong bearer token"})" : "";
      std::string answer =
          "HTTP/1.1 " + std::to_string(status_) +
          " X\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
          body;
      send(client, answer.data(), answer.size(), MSG_NOSIGNAL);
      close(client);
    }
  }

  int status_;
  int fd_ = socket(AF_INET, SOCK_STREAM, 0);
  int port_ = 0;
  std::mutex mutex_;
  std::vector<std::string> authorizations_;
  std::thread thread_;
};

TEST(GatewayReporter, EveryRequestCarriesTheBearerToken) {
  AnsweringServer server(204);
  std::atomic<int> sent{0};
  GatewayReporterOptions o;
  o.base_url = server.url();
  o.bearer_token = "sidecar-secret";
  o.on_sent = [&] { ++sent; };
  GatewayReporter reporter(o);
  EXPECT_TRUE(reporter.post_now("/envelopes", "{}", 5s, 2));
  EXPECT_TRUE(reporter.post("/envelopes/x/progress", "{}"));
  reporter.stop(10s);
  EXPECT_EQ(sent.load(), 1);
  EXPECT_EQ(server.authorizations(),
            (std::vector<std::string>{"Bearer sidecar-secret", "Bearer sidecar-secret"}));
}

TEST(GatewayReporter, FlushReturnsOnceEveryEarlierReportWasSent) {
  AnsweringServer server(204);
  std::atomic<int> sent{0};
  GatewayReporterOptions o;
  o.base_url = server.url();
  o.on_sent = [&] { ++sent; };
  GatewayReporter reporter(o);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(reporter.post("/envelopes/x/progress", "{}"));
  EXPECT_TRUE(reporter.flush(30s));
  EXPECT_EQ(sent.load(), 5);         // a synchronous report sent now comes after all five
  EXPECT_TRUE(reporter.flush(0ms));  // nothing queued since
}

TEST(GatewayReporter, FlushGivesUpAfterItsBudgetWhenTheGatewayHangs) {
  SilentServer server;
  GatewayReporterOptions o;
  o.base_url = "http://127.0.0.1:" + std::to_string(server.port);
  o.timeout = 1s;  // the report's one try outlasts the flush's budget
  o.max_attempts = 1;
  GatewayReporter reporter(o);
  EXPECT_TRUE(reporter.post("/envelopes/x/progress", "{}"));
  EXPECT_FALSE(reporter.flush(200ms));
}

TEST(GatewayReporter, NoTokenSendsNoAuthorizationHeader) {
  AnsweringServer server(204);
  GatewayReporterOptions o;
  o.base_url = server.url();
  GatewayReporter reporter(o);
  EXPECT_TRUE(reporter.post_now("/envelopes", "{}", 5s, 2));
  EXPECT_EQ(server.authorizations(), (std::vector<std::string>{""}));
}

TEST(GatewayReporter, ARefusedReportIsLoggedAtWarnWithItsStatusAndNotRetried) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(16);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));
  {
    AnsweringServer server(401);
    std::atomic<int> dropped{0};
    GatewayReporterOptions o;
    o.base_url = server.url();
    o.bearer_token = "wrong";
    o.retry_delay = 10ms;
    o.on_dropped = [&] { ++dropped; };
    GatewayReporter reporter(o);
    EXPECT_TRUE(reporter.post("/envelopes/x/final", "{}"));
    reporter.stop(10s);
    EXPECT_FALSE(reporter.post_now("/envelopes", "{}", 5s, 3));
    EXPECT_EQ(dropped.load(), 1);
    EXPECT_EQ(server.authorizations().size(), 2u);  // one try each: a 401 is not retried
  }
  spdlog::set_default_logger(previous);
  std::vector<std::string> warnings;
  for (const auto& line : sink->last_formatted()) {
    if (line.find("[warning]") != std::string::npos) warnings.push_back(line);
  }
  ASSERT_EQ(warnings.size(), 2u);
  for (const auto& line : warnings) {
    EXPECT_NE(line.find("refused"), std::string::npos) << line;
    EXPECT_NE(line.find("HTTP 401"), std::string::npos) << line;
    EXPECT_NE(line.find("missing or wrong bearer token"), std::string::npos) << line;
  }
}

TEST(GatewayReporter, AReportAboutAnEnvelopeTheGatewayDoesNotKnowIsADebugLine) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(16);
  auto previous = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>("test", sink);
  logger->set_level(spdlog::level::debug);
  spdlog::set_default_logger(logger);
  {
    AnsweringServer server(404);
    GatewayReporterOptions o;
    o.base_url = server.url();
    o.retry_delay = 10ms;
    GatewayReporter reporter(o);
    EXPECT_TRUE(reporter.post("/envelopes/unknown/progress", "{}"));
    reporter.stop(10s);
    EXPECT_EQ(server.authorizations().size(), 1u);  // one try: a 404 is not retried
  }
  spdlog::set_default_logger(previous);
  int debug = 0;
  for (const auto& line : sink->last_formatted()) {
    EXPECT_EQ(line.find("[warning]"), std::string::npos) << line;
    if (line.find("[debug]") != std::string::npos &&
        line.find("does not know") != std::string::npos)
      ++debug;
  }
  EXPECT_EQ(debug, 1);
}

}  // namespace
}  // namespace asya::sidecar

namespace asya::sidecar {
namespace {

TEST(CheckBody, CarriesTheProgressReportOrNothing) {
  EXPECT_EQ(check_body(""), "{}");
  std::string progress = progress_body({"a"}, 0, "processing", "processing in a", std::nullopt);
  EXPECT_EQ(check_body(progress), "{\"progress\":" + progress + "}");
}

TEST(ReadCheckAnswer, SaysWhetherCancelledAndWhetherTheReportWasTaken) {
  CheckAnswer both =
      read_check_answer(R"({"job_status":"cancelled","cancelled":true,"progress":"accepted"})");
  EXPECT_TRUE(both.cancelled);
  EXPECT_TRUE(both.progress_accepted);
  // An older gateway answers a check without "progress": the sidecar posts its report itself.
  CheckAnswer older = read_check_answer(R"({"job_status":"running","cancelled":false})");
  EXPECT_FALSE(older.cancelled);
  EXPECT_FALSE(older.progress_accepted);
  EXPECT_FALSE(read_check_answer(R"({"cancelled":false,"progress":"later"})").progress_accepted);
  EXPECT_FALSE(read_check_answer(R"({"cancelled":"yes","progress":true})").cancelled);
  EXPECT_FALSE(read_check_answer(R"({"cancelled":"yes","progress":true})").progress_accepted);
  EXPECT_FALSE(read_check_answer("not json").progress_accepted);
  EXPECT_FALSE(read_check_answer("").cancelled);
}

// The parsers are kept per thread between calls: a shorter answer after a longer one, a broken one
// between good ones, and one larger than the kept parser takes (its own parser) all read alike.
TEST(ReadCheckAnswer, ReadsEachAnswerAloneWhateverCameBeforeIt) {
  const std::string long_answer =
      R"({"cancelled":true,"progress":"accepted","reports":"accepted","pad":")" +
      std::string(1000, 'x') + R"("})";
  const std::string huge_answer =
      R"({"cancelled":true,"pad":")" + std::string(100u << 10, 'y') + R"(","reports":"accepted"})";
  const std::string huge_metadata = R"({"job_id":")" + std::string(100u << 10, 'z') + R"("})";
  for (int round = 0; round < 3; ++round) {
    CheckAnswer first = read_check_answer(long_answer);
    EXPECT_TRUE(first.cancelled && first.progress_accepted && first.reports_accepted);
    CheckAnswer shorter = read_check_answer(R"({"cancelled":false})");
    EXPECT_FALSE(shorter.cancelled || shorter.progress_accepted || shorter.reports_accepted);
    EXPECT_FALSE(read_check_answer(R"({"cancelled":true)").cancelled);  // cut short
    CheckAnswer huge = read_check_answer(huge_answer);
    EXPECT_TRUE(huge.cancelled && huge.reports_accepted);
    EXPECT_FALSE(huge.progress_accepted);
    EXPECT_TRUE(tracked_by_gateway(R"({"tool":"t","job_id":"j"})"));
    EXPECT_FALSE(tracked_by_gateway(R"({"tool":"job_id"})"));
    EXPECT_TRUE(tracked_by_gateway(huge_metadata));
  }
}

TEST(ReadCheckAnswer, ThreadsReadTheirOwnAnswersAtOnce) {
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &wrong] {
      const bool cancelled = t % 2 == 1;
      const std::string answer =
          std::string("{\"cancelled\":") + (cancelled ? "true" : "false") + "}";
      for (int i = 0; i < 2000; ++i) {
        if (read_check_answer(answer).cancelled != cancelled) ++wrong;
        if (tracked_by_gateway(cancelled ? R"({"job_id":"j"})" : R"({"job":"j"})") != cancelled)
          ++wrong;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong, 0);
}

}  // namespace
}  // namespace asya::sidecar
