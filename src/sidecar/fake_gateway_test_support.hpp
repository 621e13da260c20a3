// A small stand-in gateway for the GatewayReporter's tests (report_batching_test.cpp,
// report_carry_test.cpp): an HTTP server that records every request and can hold its answers back
// (a busy gateway). Test support only.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sidecar/gateway_reporter.hpp"
#include "sidecar/report_batch.hpp"

namespace asya::sidecar::test_support {

using namespace std::chrono_literals;

struct Seen {
  std::string path;
  std::string body;
  std::vector<std::string> batch_ids;  // ids of a batch request, in order
};

// Answers single reports 200 {"status":"ok"}, batches {"results": [...]} with the status
// `item_status(id)` gives each report (`batch_status` other than 200: that status for the whole
// request instead) and checks (paths ending in /check) with `check_answer(body)`. While held,
// requests are read and recorded but not answered.
class FakeGateway {
 public:
  FakeGateway() {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(fd_, 64), 0);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeGateway() {
    release();
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void hold() {
    std::lock_guard lock(mutex_);
    held_ = true;
  }
  void release() {
    {
      std::lock_guard lock(mutex_);
      held_ = false;
    }
    cv_.notify_all();
  }
  std::vector<Seen> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  // Waits (generously) until `count` requests arrived.
  bool wait_for_requests(std::size_t count) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, 30s, [&] { return seen_.size() >= count; });
  }
  std::function<int(const std::string& id)> item_status = [](const std::string&) { return 200; };
  std::atomic<int> batch_status{200};
  // Set before the first request: the answer to a check, given its body.
  std::function<std::string(const std::string& body)> check_answer = [](const std::string& body) {
    return body.find("\"reports\"") == std::string::npos
               ? std::string(R"({"cancelled":false})")
               : std::string(R"({"cancelled":false,"reports":"accepted"})");
  };

 private:
  void serve() {
    for (;;) {
      int client = accept(fd_, nullptr, nullptr);
      if (client < 0) return;
      handle(client);
      close(client);
    }
  }
  void handle(int client) {
    std::string request;
    char buf[65536];
    std::size_t end;
    while ((end = request.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = recv(client, buf, sizeof buf, 0);
      if (n <= 0) return;
      request.append(buf, static_cast<std::size_t>(n));
    }
    std::size_t length = 0;
    auto at = request.find("Content-Length: ");
    if (at != std::string::npos && at < end) length = std::stoul(request.substr(at + 16));
    while (request.size() < end + 4 + length) {
      ssize_t n = recv(client, buf, sizeof buf, 0);
      if (n <= 0) return;
      request.append(buf, static_cast<std::size_t>(n));
    }
    Seen seen;
    const std::size_t path_start = request.find(' ') + 1;
    seen.path = request.substr(path_start, request.find(' ', path_start) - path_start);
    seen.body = request.substr(end + 4, length);
    int status = 200;
    std::string answer = R"({"status":"ok"})";
    if (seen.path.ends_with("/check")) answer = check_answer(seen.body);
    if (seen.path == kReportBatchPath) {
      simdjson::dom::parser parser;
      simdjson::dom::array items;
      EXPECT_FALSE(parser.parse(seen.body).get(items)) << seen.body;
      answer = R"({"results":[)";
      for (simdjson::dom::element item : items) {
        std::string_view id;
        EXPECT_FALSE(item["id"].get(id));
        seen.batch_ids.emplace_back(id);
        if (answer.back() != '[') answer += ',';
        answer += "{\"status\":" + std::to_string(item_status(std::string(id))) +
                  R"(,"answer":{"error":"test"}})";
      }
      answer += "]}";
      status = batch_status.load();
      if (status != 200) answer = R"({"error":"no batches here"})";
    }
    {
      std::unique_lock lock(mutex_);
      seen_.push_back(seen);
      cv_.notify_all();
      cv_.wait(lock, [&] { return !held_; });
    }
    std::string response = "HTTP/1.1 " + std::to_string(status) +
                           " X\r\nConnection: close\r\nContent-Type: application/json\r\n"
                           "Content-Length: " +
                           std::to_string(answer.size()) + "\r\n\r\n" + answer;
    send(client, response.data(), response.size(), MSG_NOSIGNAL);
  }

  int fd_ = socket(AF_INET, SOCK_STREAM, 0);
  int port_ = 0;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool held_ = false;
  std::vector<Seen> seen_;
  std::thread thread_;
};

// What a reporter under test counted through its on_sent / on_dropped callbacks.
struct Counts {
  std::atomic<int> sent{0};
  std::atomic<int> dropped{0};
};

// A reporter's options for a stand-in gateway at `url`: a held request is answered late, not
// retried (20 s timeout); retries come quickly; outcomes are counted in `counts`.
inline GatewayReporterOptions reporter_options(
    const std::string& url, Counts& counts,
    std::chrono::milliseconds carry_wait = GatewayReporterOptions{}.carry_wait) {
  GatewayReporterOptions o;
  o.base_url = url;
  o.timeout = 20s;
  o.retry_delay = 10ms;
  o.carry_wait = carry_wait;
  o.on_sent = [&counts] { ++counts.sent; };
  o.on_dropped = [&counts] { ++counts.dropped; };
  return o;
}

// An actor's `completed` report of envelope `id` (the reports these tests send).
inline std::string completed_report(const std::string& id) {
  return progress_body({"a"}, 0, "completed", "completed " + id, 1);
}

}  // namespace asya::sidecar::test_support
