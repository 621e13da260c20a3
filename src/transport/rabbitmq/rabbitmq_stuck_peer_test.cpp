// Peers that never answer: every step of opening a connection (TCP connect, AMQP handshake,
// channel open, declarations) waits at most ASYA_RABBITMQ_RPC_TIMEOUT, and its failure says
// where and which step timed out. No broker needed. The end-to-end versions (a SIGSTOPped broker
// under a real sidecar, SIGTERM during a stuck reconnect) are in
// tests/sidecar/test_rabbitmq_frozen_reconnect.py.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <poll.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "common/env.hpp"
#include "transport/rabbitmq/rabbitmq_transport.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;

// A loopback listener that completes TCP handshakes (the kernel does) and never reads or writes:
// a frozen broker, or a port where something else listens. With `fill` the accept queue is filled
// first, so further connects are not even answered (their SYNs are dropped).
class MuteListener {
 public:
  explicit MuteListener(bool fill = false) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(::listen(fd_, fill ? 0 : 16), 0);
    socklen_t length = sizeof address;
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length), 0);
    port_ = ntohs(address.sin_port);
    if (!fill) return;
    // Backlog 0 admits one or two pending connections; connect non-blocking until one hangs.
    for (int i = 0; i < 8; ++i) {
      int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      (void)::connect(c, reinterpret_cast<sockaddr*>(&address), sizeof address);
      fillers_.push_back(c);
    }
  }
  ~MuteListener() {
    for (int c : fillers_) ::close(c);
    ::close(fd_);
  }
  int port() const { return port_; }
  // Whether a connection waits to be accepted (the kernel completed its TCP handshake).
  bool has_pending_connection() const {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::vector<int> fillers_;
};

RabbitmqSettings settings_for(int port) {
  RabbitmqSettings s;
  s.host = "127.0.0.1";
  s.port = port;
  s.rpc_timeout = 1s;
  // Long enough for several attempts: the error is the last attempt's, not "no connection yet".
  s.connect_timeout = 5s;
  s.confirm_timeout = 300s;
  return s;
}

TEST(RabbitmqStuckPeerTest, MuteListenerFailsTheHandshakeWithinTheRpcTimeoutNamingIt) {
  MuteListener mute;
  auto t = make_rabbitmq_transport({}, settings_for(mute.port()));
  const auto started = std::chrono::steady_clock::now();
  Status st = t->ensure_queue("asya-x");
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(st.ok());
  EXPECT_LT(took, 60s) << "bounded by connect_timeout, not the 300 s confirm_timeout";
  const std::string where = "127.0.0.1:" + std::to_string(mute.port());
  EXPECT_NE(st.message().find(where), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("no answer to the AMQP handshake within 1s"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("ASYA_RABBITMQ_RPC_TIMEOUT"), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find("password"), std::string::npos) << st.message();
  // Closing while an attempt may be stuck in the handshake returns (the attempt is cut short).
  t.reset();
}

TEST(RabbitmqStuckPeerTest, UnansweredTcpConnectFailsWithinTheRpcTimeoutNamingIt) {
  MuteListener full(/*fill=*/true);
  auto t = make_rabbitmq_transport({}, settings_for(full.port()));
  Status st = t->ensure_queue("asya-x");
  ASSERT_FALSE(st.ok());
  const std::string where = "127.0.0.1:" + std::to_string(full.port());
  EXPECT_NE(st.message().find(where), std::string::npos) << st.message();
  // The kernel may still complete a connect into the drained part of the queue: then it is the
  // handshake that times out. Either way the step and the bound are named.
  const bool named =
      st.message().find("TCP connect timed out after 1s") != std::string::npos ||
      st.message().find("no answer to the AMQP handshake within 1s") != std::string::npos;
  EXPECT_TRUE(named) << st.message();
  EXPECT_NE(st.message().find("ASYA_RABBITMQ_RPC_TIMEOUT"), std::string::npos) << st.message();
}

template <typename Condition>
bool wait_until(Condition condition, std::chrono::seconds deadline) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// Stops the transport (interrupt, then close, as a SIGTERM to the sidecar does) from another
// thread; true when that finished within `deadline`. `t` is gone either way once this returns.
bool stops_within(std::unique_ptr<Transport>& t, std::chrono::seconds deadline) {
  auto stopping = std::async(std::launch::async, [&] {
    t->interrupt();
    t.reset();
  });
  return stopping.wait_for(deadline) == std::future_status::ready;
}

// A TLS peer that accepts and never answers the ClientHello: rabbitmq-c's TLS connect has no way
// to be cut short, so before this a stop waited for the whole step timeout (here 60 s). It runs
// on a thread of its own now, and a stop stops waiting for it.
TEST(RabbitmqStuckPeerTest, StopCutsShortATlsHandshakeThatGetsNoAnswer) {
  MuteListener mute;
  RabbitmqSettings s = settings_for(mute.port());
  s.tls = true;
  s.rpc_timeout = 60s;
  s.connect_timeout = 120s;
  auto t = make_rabbitmq_transport({}, s);
  auto call = std::async(std::launch::async, [&t] { return t->ensure_queue("asya-x"); });
  ASSERT_TRUE(wait_until([&] { return mute.has_pending_connection(); }, 30s));
  EXPECT_TRUE(stops_within(t, 20s)) << "the stop waited for the TLS handshake's step timeout";
  ASSERT_EQ(call.wait_for(60s), std::future_status::ready);
  EXPECT_FALSE(call.get().ok());
}

// A host name whose lookup never gets an answer. Only where the test can make one: run by
// tests/transport/test_rabbitmq_stuck_lookup.py in a network and mount namespace of its own whose
// /etc/resolv.conf names 127.0.0.1, with ASYA_TEST_SILENT_DNS=1; this test then binds the DNS
// port itself and never answers.
class SilentDnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::getenv("ASYA_TEST_SILENT_DNS") == nullptr)
      GTEST_SKIP() << "ASYA_TEST_SILENT_DNS is not set (see tests/transport/"
                      "test_rabbitmq_stuck_lookup.py)";
    fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(53);
    ASSERT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0)
        << "cannot bind 127.0.0.1:53: " << std::strerror(errno);
  }
  void TearDown() override {
    if (fd_ >= 0) ::close(fd_);
  }
  // Whether a query came (and is left unanswered).
  bool asked() const {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }
  RabbitmqSettings settings() const {
    RabbitmqSettings s = settings_for(5672);
    s.host = "rabbitmq.asya-lookup-test";
    return s;
  }

  int fd_ = -1;
};

// Before this getaddrinfo() ran on the link thread: nothing bounded it but the resolver's own
// timeouts (here minutes), and a stop waited for it.
TEST_F(SilentDnsTest, StopCutsShortAHostLookupThatGetsNoAnswer) {
  RabbitmqSettings s = settings();
  s.rpc_timeout = 60s;
  s.connect_timeout = 120s;
  auto t = make_rabbitmq_transport({}, s);
  auto call = std::async(std::launch::async, [&t] { return t->ensure_queue("asya-x"); });
  ASSERT_TRUE(wait_until([&] { return asked(); }, 30s));
  EXPECT_TRUE(stops_within(t, 20s)) << "the stop waited for the host name lookup";
  ASSERT_EQ(call.wait_for(60s), std::future_status::ready);
  EXPECT_FALSE(call.get().ok());
}

TEST_F(SilentDnsTest, HostLookupThatGetsNoAnswerFailsWithinTheRpcTimeoutNamingIt) {
  auto t = make_rabbitmq_transport({}, settings());
  Status st = t->ensure_queue("asya-x");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("looking up host \"rabbitmq.asya-lookup-test\" timed out after 1s"),
            std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("ASYA_RABBITMQ_RPC_TIMEOUT"), std::string::npos) << st.message();
  EXPECT_TRUE(stops_within(t, 20s)) << "the stop waited for the host name lookup";
}

TEST(RabbitmqStuckPeerTest, RpcTimeoutDefaultsToTwiceTheHeartbeatWithinFiveToTenSeconds) {
  RabbitmqSettings s;
  EXPECT_EQ(s.step_timeout(), 10s);  // 2 x 30 s heartbeat, at most 10 s
  s.heartbeat = 4s;
  EXPECT_EQ(s.step_timeout(), 8s);
  s.heartbeat = 1s;
  EXPECT_EQ(s.step_timeout(), 5s);  // at least 5 s: a loaded broker still answers
  s.heartbeat = 0s;
  EXPECT_EQ(s.step_timeout(), 10s);
  s.rpc_timeout = 1500ms;
  EXPECT_EQ(s.step_timeout(), 1500ms);

  auto read = RabbitmqSettings::from_env(
      Environment(environment_with({{"ASYA_RABBITMQ_RPC_TIMEOUT", "3s"}})));
  EXPECT_EQ(read.step_timeout(), 3s);
  try {
    RabbitmqSettings::from_env(
        Environment(environment_with({{"ASYA_RABBITMQ_RPC_TIMEOUT", "10ms"}})));
    FAIL() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("ASYA_RABBITMQ_RPC_TIMEOUT=\"10ms\" is too short"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace asya::transport
