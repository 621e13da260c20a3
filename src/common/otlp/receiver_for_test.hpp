// A tiny OTLP/HTTP receiver for the exporter's tests: a real loopback socket, one thread, one
// request per connection (it answers with Connection: close). Records each request's path,
// headers and body, and answers `status` (settable).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace asya::otlp::testing {

struct ReceivedRequest {
  std::string head;  // request line and headers
  std::string body;
};

class Receiver {
 public:
  Receiver() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 16);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~Receiver() {
    stopping_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string url() const {
    std::string url = "http://127.0.0.1:";
    url += std::to_string(port_);
    url += "/v1/traces";
    return url;
  }
  void set_status(int status) { status_ = status; }
  std::vector<ReceivedRequest> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void run() {
    while (!stopping_) {
      int client = ::accept(fd_, nullptr, nullptr);
      if (client < 0) return;
      std::string data;
      char buffer[65536];
      std::size_t head_end = std::string::npos, length = 0;
      for (;;) {
        ssize_t n = ::recv(client, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        data.append(buffer, static_cast<std::size_t>(n));
        if (head_end == std::string::npos &&
            (head_end = data.find("\r\n\r\n")) != std::string::npos) {
          auto at = data.find("Content-Length:");
          if (at == std::string::npos) at = data.find("content-length:");
          if (at != std::string::npos && at < head_end) length = std::stoul(data.substr(at + 15));
        }
        if (head_end != std::string::npos && data.size() >= head_end + 4 + length) break;
      }
      if (head_end != std::string::npos) {
        std::lock_guard lock(mutex_);
        requests_.push_back({data.substr(0, head_end), data.substr(head_end + 4, length)});
      }
      std::string reply = "HTTP/1.1 ";
      reply += std::to_string(status_.load());
      reply += " X\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
      (void)::send(client, reply.data(), reply.size(), MSG_NOSIGNAL);
      ::close(client);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> status_{200};
  std::mutex mutex_;
  std::vector<ReceivedRequest> requests_;
  std::thread thread_;
};

}  // namespace asya::otlp::testing
