// A relay between the transport and the test broker that can go silent without closing anything
// (freeze), and cut every connection it relays: a frozen broker, a broker that stops reading, a
// network partition, as the transport sees them. Used by rabbitmq_silent_broker_test.cpp and
// rabbitmq_blocked_peer_test.cpp.
#pragma once

#include <arpa/inet.h>
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

namespace asya::transport::rabbitmq_test {

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
  // Freezes, then closes every connection relayed so far (both sides): the transport sees its
  // connections drop, and its reconnects reach the kernel's accept queue and get no answer.
  void cut_and_freeze() {
    frozen_ = true;
    cut_ = true;
    while (cut_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Whether a connection waits in the accept queue (only while frozen: else it is accepted).
  bool has_pending_connection() const {
    pollfd p{listener_, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }

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
      if (cut_) {
        for (auto& [fd, peer] : peers_) ::close(fd);
        peers_.clear();
        cut_ = false;
      }
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
  std::atomic<bool> cut_{false};
  std::thread thread_;
};

}  // namespace asya::transport::rabbitmq_test
