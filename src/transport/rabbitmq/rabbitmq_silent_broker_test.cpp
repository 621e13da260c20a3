// A broker that goes silent with the connection still open (a frozen host, a network partition):
// the transport talks to the test broker through a relay that can stop relaying without closing
// anything, so only the AMQP heartbeat can tell. The end-to-end version, with the broker's VM
// frozen by SIGSTOP under a real sidecar, is tests/sidecar/test_rabbitmq_silent_broker.py.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "transport/rabbitmq/rabbitmq_test_fixture.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using rabbitmq_test::Clock;
using rabbitmq_test::RabbitmqTransportTest;

// Relays TCP connections from a local port to host:port. While frozen it neither accepts nor
// moves a byte, and keeps every socket open: to its clients the broker has gone silent.
class FreezableRelay {
 public:
  FreezableRelay(const std::string& host, int port) : host_(host), port_(port) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener_, 16) != 0)
      throw std::runtime_error("relay: cannot listen");
    socklen_t length = sizeof address;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    local_port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~FreezableRelay() {
    stop_ = true;
    thread_.join();
    for (auto& [fd, peer] : peers_) ::close(fd);
    ::close(listener_);
  }
  int port() const { return local_port_; }
  void freeze(bool on) { frozen_ = on; }

 private:
  int connect_upstream() {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(host_.c_str(), std::to_string(port_).c_str(), &hints, &found) != 0) return -1;
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) != 0) {
      ::close(fd);
      fd = -1;
    }
    ::freeaddrinfo(found);
    return fd;
  }

  void close_pair(int fd) {
    int peer = peers_[fd];
    peers_.erase(fd);
    peers_.erase(peer);
    ::close(fd);
    ::close(peer);
  }

  void run() {
    while (!stop_) {
      if (frozen_) {
        ::poll(nullptr, 0, 10);
        continue;
      }
      std::vector<pollfd> fds{{listener_, POLLIN, 0}};
      for (auto& [fd, peer] : peers_) fds.push_back({fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 10) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        int client = ::accept(listener_, nullptr, nullptr);
        int upstream = client >= 0 ? connect_upstream() : -1;
        if (upstream >= 0) {
          peers_[client] = upstream;
          peers_[upstream] = client;
        } else if (client >= 0) {
          ::close(client);
        }
      }
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (!fds[i].revents || !peers_.count(fds[i].fd)) continue;
        char buffer[65536];
        ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
        bool ok = n > 0;
        for (ssize_t sent = 0; ok && sent < n;) {
          ssize_t w = ::write(peers_[fds[i].fd], buffer + sent, n - sent);
          ok = w > 0;
          sent += ok ? w : 0;
        }
        if (!ok) close_pair(fds[i].fd);
      }
    }
  }

  std::string host_;
  int port_;
  int listener_ = -1;
  int local_port_ = 0;
  std::map<int, int> peers_;  // both directions; touched by the relay thread only
  std::atomic<bool> stop_{false};
  std::atomic<bool> frozen_{false};
  std::thread thread_;
};

// A send while the broker is silent fails after the confirm timeout naming the missed heartbeat
// (not a bare "heartbeat timeout"); once the broker answers again the transport reconnects by
// itself, and what was confirmed before and sent after all arrives (the failed send's message may
// too: its bytes may reach the broker before the close, at-least-once).
TEST_F(RabbitmqTransportTest, SilentBrokerIsNamedByTheMissedHeartbeatAndTheLinkRecovers) {
  FreezableRelay relay(settings_.host, settings_.port);
  RabbitmqSettings through_relay = settings_;
  through_relay.host = "127.0.0.1";
  through_relay.port = relay.port();
  through_relay.heartbeat = 1s;
  // Longer than two heartbeats, shorter than the handshake of a reconnect attempt to the silent
  // broker (it waits rpc_timeout): the last error is still the lost heartbeat.
  through_relay.confirm_timeout = 6s;
  through_relay.rpc_timeout = 10s;
  auto producer = make(through_relay);
  const std::string q = queue("silent");
  ASSERT_TRUE(producer->ensure_queue(q).ok());
  ASSERT_TRUE(producer->send(q, "before").ok());

  relay.freeze(true);
  Status during = producer->send(q, "during");
  ASSERT_FALSE(during.ok());
  EXPECT_NE(during.message().find("no heartbeat from the broker for 2 s"), std::string::npos)
      << during.message();
  relay.freeze(false);

  Status after = Status::Ok();
  const auto deadline = Clock::now() + 90s;
  do {
    after = producer->send(q, "after");
  } while (!after.ok() && Clock::now() < deadline);
  ASSERT_TRUE(after.ok()) << after.message();

  auto consumer = make();  // straight to the broker
  std::map<std::string, int> arrived;
  const auto collect_deadline = Clock::now() + 60s;
  while ((!arrived.count("before") || !arrived.count("after")) && Clock::now() < collect_deadline) {
    auto got = consumer->receive(q, 10, 500ms);
    ASSERT_TRUE(got.ok()) << got.error().message;
    for (auto& d : *got) {
      ++arrived[d.body];
      ASSERT_TRUE(consumer->ack(d).ok());
    }
  }
  EXPECT_EQ(arrived.count("before"), 1u);
  EXPECT_EQ(arrived.count("after"), 1u);
  for (auto& [body, n] : arrived)
    EXPECT_TRUE(body == "before" || body == "during" || body == "after") << body;
}

}  // namespace
}  // namespace asya::transport
