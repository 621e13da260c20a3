#include "sidecar/gateway_reporter.hpp"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

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

}  // namespace
}  // namespace asya::sidecar
