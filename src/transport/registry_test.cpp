#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "common/env.hpp"
#include "transport/transport.hpp"

namespace asya::transport {
namespace {

TEST(TransportRegistry, BuiltInSqliteIsRegisteredWithoutAnyStaticInitialiser) {
  auto names = transport_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "sqlite"), names.end());
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
}

TEST(TransportRegistry, UnknownNameThrowsConfigErrorListingTheKnownOnes) {
  try {
    (void)make_transport("kafka", Options{});
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("ASYA_TRANSPORT=\"kafka\" is not a known transport"), std::string::npos)
        << message;
    EXPECT_NE(message.find("use one of "), std::string::npos) << message;
    EXPECT_NE(message.find("sqlite"), std::string::npos) << message;
  }
}

TEST(TransportRegistry, MakeTransportCreatesSqliteFromTheEnvironment) {
  char pattern[] = "/tmp/asya-registry-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  std::string path = std::string(pattern) + "/nested/dir/queues.db";
  setenv("ASYA_SQLITE_PATH", path.c_str(), 1);
  {
    auto t = make_transport("sqlite", Options{});
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->name(), "sqlite");
    ASSERT_TRUE(t->send("asya-x", "hello").ok());
    auto got = t->receive("asya-x", 1, std::chrono::milliseconds(0));
    ASSERT_TRUE(got.ok()) << got.error().message;
    ASSERT_EQ(got->size(), 1u);
    EXPECT_EQ(got->front().body, "hello");
  }
  EXPECT_TRUE(std::filesystem::exists(path));
  unsetenv("ASYA_SQLITE_PATH");
  std::filesystem::remove_all(pattern);
}

TEST(TransportRegistry, InvalidSqliteSettingIsAConfigErrorNamingTheVariable) {
  setenv("ASYA_SQLITE_SYNCHRONOUS", "sometimes", 1);
  try {
    (void)make_transport("sqlite", Options{});
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("ASYA_SQLITE_SYNCHRONOUS"), std::string::npos) << e.what();
  }
  unsetenv("ASYA_SQLITE_SYNCHRONOUS");
}

class Dummy : public Transport {
 public:
  std::string_view name() const override { return "dummy"; }
  Status ensure_queue(std::string_view) override { return Status::Ok(); }
  Result<std::vector<Delivery>> receive(std::string_view, std::size_t,
                                        std::chrono::milliseconds) override {
    return std::vector<Delivery>{};
  }
  Status send(std::string_view, std::string_view, std::chrono::milliseconds) override {
    return Status::Ok();
  }
  Status ack(const Delivery&) override { return Status::Ok(); }
  Status nack(const Delivery&, std::chrono::milliseconds) override { return Status::Ok(); }
  Status extend_lease(const Delivery&, std::chrono::milliseconds) override { return Status::Ok(); }
  Result<QueueStats> stats(std::string_view) override { return QueueStats{}; }
  Result<std::vector<std::string>> list_queues() override { return std::vector<std::string>{}; }
  std::size_t max_message_bytes() const override { return 1; }
  void interrupt() override {}
  void close() override {}
};

TEST(TransportRegistry, RegisteredFactoryIsFoundByName) {
  register_transport("dummy", [](const Options&) { return std::make_unique<Dummy>(); });
  auto t = make_transport("dummy", Options{});
  EXPECT_EQ(t->name(), "dummy");
  auto names = transport_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "dummy"), names.end());
}

}  // namespace
}  // namespace asya::transport
