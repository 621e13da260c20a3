// The broker fixture of the RabbitMQ transport tests (rabbitmq_transport_test.cpp: messaging;
// rabbitmq_connection_test.cpp: settings, connection failures, broker restart). Tests of the
// fixture run against the broker at ASYA_TEST_RABBITMQ_URL and skip when it is unset
// (tests/transport/test_rabbitmq.py starts a broker and runs the test binary with it); each test
// gets its own queue name prefix.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "transport/rabbitmq/rabbitmq_transport.hpp"

namespace asya::transport::rabbitmq_test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// "<prefix><n>" (written out: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string).
inline std::string numbered(std::string prefix, int n) {
  prefix += std::to_string(n);
  return prefix;
}

class RabbitmqTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* url = std::getenv("ASYA_TEST_RABBITMQ_URL");
    if (url == nullptr) GTEST_SKIP() << "ASYA_TEST_RABBITMQ_URL is not set (no broker)";
    settings_.apply_url(url);
    std::random_device rd;
    prefix_ = numbered("t", static_cast<int>(rd() % 1000000)) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + "-";
  }

  std::unique_ptr<Transport> make(RabbitmqSettings settings, Options options = {}) {
    return make_rabbitmq_transport(options, settings);
  }
  std::unique_ptr<Transport> make() { return make(settings_); }

  std::string queue(const std::string& name) { return prefix_ + name; }

  Delivery receive_one(Transport& t, const std::string& q, std::chrono::milliseconds wait = 10s) {
    auto got = t.receive(q, 1, wait);
    EXPECT_TRUE(got.ok()) << got.error().message;
    if (!got.ok() || got->size() != 1) {
      ADD_FAILURE() << "expected one message on " << q;
      return Delivery{};
    }
    return got->front();
  }

  QueueStats stats(Transport& t, const std::string& q) {
    auto s = t.stats(q);
    EXPECT_TRUE(s.ok()) << s.error().message;
    return s.ok() ? *s : QueueStats{};
  }

  RabbitmqSettings settings_;
  std::string prefix_;
};

}  // namespace asya::transport::rabbitmq_test
