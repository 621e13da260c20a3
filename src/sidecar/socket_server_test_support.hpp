// Test support: a runtime stand-in's listening side on a real Unix socket. It listens on
// `socket_path` and serves the accepted connections one after another on one thread with
// `serve(fd)`, closing each afterwards; the destructor stops accepting and joins the thread.
// Declare it as the last member of a class whose state `serve` uses, so it stops first.
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>
#include <utility>

namespace asya::sidecar::test_support {

class SocketServer {
 public:
  SocketServer(const std::filesystem::path& socket_path, std::function<void(int fd)> serve)
      : serve_(std::move(serve)) {
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, socket_path.c_str());
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listen_fd_, 16), 0);
    thread_ = std::thread([this] {
      for (;;) {
        int fd = ::accept(listen_fd_, nullptr, nullptr);
        if (fd < 0) return;
        serve_(fd);
        ::close(fd);
      }
    });
  }
  ~SocketServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    ::close(listen_fd_);
  }
  SocketServer(const SocketServer&) = delete;
  SocketServer& operator=(const SocketServer&) = delete;

 private:
  std::function<void(int fd)> serve_;
  int listen_fd_ = -1;
  std::thread thread_;
};

}  // namespace asya::sidecar::test_support
