// RabbitMQ transport: the connections dropped under a hop. What must hold: a drop between an
// output's confirm and its input's ack loses nothing (the input is delivered again, counted; the
// output stays queued); publishes in flight when they drop are published again and confirmed;
// deliveries held before the drop cannot be acked on the new connection. The drop is made by
// shutting down this process's sockets to the broker (the broker sees the close at once and
// requeues what the connection held), not by a restart: it cuts exactly these connections.
// Against a real broker (ASYA_TEST_RABBITMQ_URL, see tests/transport/test_rabbitmq.py).
#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "transport/rabbitmq/rabbitmq_test_fixture.hpp"
#include "transport/rabbitmq/rabbitmq_transport.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using rabbitmq_test::Clock;
using rabbitmq_test::numbered;
using rabbitmq_test::RabbitmqTransportTest;

// shutdown(SHUT_RDWR) of every TCP socket of this process connected to `port`: what a reset by
// the network does to the connection. Returns how many.
int drop_connections_to(int port) {
  int dropped = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  std::vector<int> fds;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    fds.push_back(std::atoi(entry->d_name));
  }
  ::closedir(dir);
  for (int fd : fds) {
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) continue;
    int peer_port = 0;
    if (peer.ss_family == AF_INET)
      peer_port = ntohs(reinterpret_cast<sockaddr_in*>(&peer)->sin_port);
    else if (peer.ss_family == AF_INET6)
      peer_port = ntohs(reinterpret_cast<sockaddr_in6*>(&peer)->sin6_port);
    if (peer_port == port && ::shutdown(fd, SHUT_RDWR) == 0) ++dropped;
  }
  return dropped;
}

// Receives until `want` distinct bodies arrived (each acked) or 30 s passed; returns how many
// times each body came.
std::map<std::string, int> drain(Transport& t, const std::string& q, std::size_t want) {
  std::map<std::string, int> seen;
  const auto deadline = Clock::now() + 30s;
  while (seen.size() < want && Clock::now() < deadline) {
    auto got = t.receive(q, 16, 500ms);
    if (!got.ok()) continue;  // reconnecting
    for (const Delivery& d : *got) {
      ++seen[std::string(d.body.view())];
      (void)t.ack(d);
    }
  }
  return seen;
}

// The publisher's connection and the consumer's (opened by the first receive()).
constexpr int kConnections = 2;

// The hop's order: the output is confirmed, then the connection drops before the input's ack.
// The ack cannot reach the broker (it fails, or is written into the dead socket), so the input is
// delivered again, counted; the output stays. Then the next hop on the new connection works.
TEST_F(RabbitmqTransportTest, DropBetweenTheOutputsConfirmAndTheInputsAckLosesNothing) {
  auto t = make();
  const std::string in = queue("in"), out = queue("out");
  ASSERT_TRUE(t->ensure_queue(in).ok());
  ASSERT_TRUE(t->ensure_queue(out).ok());
  ASSERT_TRUE(t->send(in, "input").ok());
  Delivery first = receive_one(*t, in);
  ASSERT_EQ(first.body.view(), "input");
  EXPECT_EQ(first.delivery_count, 1u);
  ASSERT_TRUE(t->send(out, "output").ok());  // confirmed

  EXPECT_EQ(drop_connections_to(settings_.port), kConnections);
  (void)t->ack(first);  // may fail (the loss is known) or be lost with the socket: both are fine
  EXPECT_FALSE(t->ack(first).ok()) << "a delivery is acked once at most";

  Delivery again = receive_one(*t, in, 20s);
  EXPECT_EQ(again.body.view(), "input");
  EXPECT_EQ(again.delivery_count, 2u) << "the broker counts the return (quorum queue)";
  ASSERT_TRUE(t->send(out, "output-again").ok());
  ASSERT_TRUE(t->ack(again).ok());

  std::map<std::string, int> outputs = drain(*t, out, 2);
  EXPECT_EQ(outputs["output"], 1);
  EXPECT_EQ(outputs["output-again"], 1);
  auto left = t->receive(in, 1, 300ms);
  ASSERT_TRUE(left.ok()) << left.error().message;
  EXPECT_TRUE(left->empty()) << "the input was acked on the new connection";
}

// Publishes written and not confirmed when the connection drops are published again on the next
// connection: every send() that returned ok arrived (duplicates allowed), while receives and acks
// go on.
TEST_F(RabbitmqTransportTest, DropWhileFourThreadsForwardLosesNothing) {
  auto t = make();
  const std::string in = queue("in"), out = queue("out");
  ASSERT_TRUE(t->ensure_queue(in).ok());
  ASSERT_TRUE(t->ensure_queue(out).ok());
  constexpr int kMessages = 300;
  std::vector<std::string> bodies;
  for (int i = 0; i < kMessages; ++i) bodies.push_back(numbered("m-", i));
  std::vector<OutgoingMessage> fill;
  for (const std::string& body : bodies) fill.push_back(OutgoingMessage{in, body});
  for (const Status& st : t->send_many(fill)) ASSERT_TRUE(st.ok()) << st.message();

  // Four workers forward in -> out (send, then ack), as the sidecar's settling threads do.
  std::atomic<int> forwarded{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      while (!stop.load()) {
        auto got = t->receive(in, 8, 200ms);
        if (!got.ok() || got->empty()) continue;
        std::vector<OutgoingMessage> outputs;
        for (const Delivery& d : *got) outputs.push_back(OutgoingMessage{out, d.body.view()});
        std::vector<Status> sent = t->send_many(outputs);
        std::vector<const Delivery*> confirmed;
        for (std::size_t i = 0; i < sent.size(); ++i)
          if (sent[i].ok()) confirmed.push_back(&(*got)[i]);
        // An input whose output failed stays unacked: the broker delivers it again.
        for (const Status& st : t->ack_many(confirmed))
          if (st.ok()) ++forwarded;
      }
    });
  }
  const auto deadline = Clock::now() + 30s;
  while (forwarded.load() < kMessages / 3 && Clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(drop_connections_to(settings_.port), kConnections);
  while (forwarded.load() < kMessages && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  stop = true;
  for (std::thread& w : workers) w.join();

  std::map<std::string, int> outputs = drain(*t, out, kMessages);
  for (const std::string& body : bodies) EXPECT_GE(outputs[body], 1) << body << " was lost";
  int duplicates = 0;
  for (const auto& [body, times] : outputs) duplicates += times - 1;
  // What a drop may repeat: the deliveries held (prefetch) whose outputs were confirmed and
  // whose acks did not reach the broker.
  EXPECT_LE(duplicates, settings_.prefetch * 2);
  auto left = t->receive(in, 1, 300ms);
  ASSERT_TRUE(left.ok()) << left.error().message;
  EXPECT_TRUE(left->empty()) << "every input was acked";
}

}  // namespace
}  // namespace asya::transport
