#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>

#include "common/env.hpp"
#include "common/test_temp_dir.hpp"
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

// The lookup of `values` only (nothing from the process environment).
EnvironmentLookup only(std::map<std::string, std::string, std::less<>> values) {
  return environment_with(std::move(values),
                          [](std::string_view) -> std::optional<std::string> { return {}; });
}

TEST(TransportRegistry, CheckSettingsNamesABadSqliteValueWithoutCreatingTheDatabase) {
  Options options;
  options.environment =
      only({{"ASYA_SQLITE_BUSY_TIMEOUT", "5sec"}, {"ASYA_SQLITE_PATH", "/nonexistent/q.db"}});
  try {
    check_transport_settings("sqlite", options);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("ASYA_SQLITE_BUSY_TIMEOUT=\"5sec\""), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists("/nonexistent/q.db"));
  options.environment = only({{"ASYA_SQLITE_BUSY_TIMEOUT", "5s"}});
  EXPECT_NO_THROW(check_transport_settings("sqlite", options));
}

TEST(TransportRegistry, CheckSettingsOfRabbitmqContactsNoBroker) {
  auto names = transport_names();
  if (std::find(names.begin(), names.end(), "rabbitmq") == names.end())
    GTEST_SKIP() << "built without RabbitMQ";
  Options options;
  // Nothing listens on port 1: a check that connected would fail or hang.
  options.environment = only({{"ASYA_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:1/%2F"}});
  EXPECT_NO_THROW(check_transport_settings("rabbitmq", options));
  options.environment = only({{"ASYA_RABBITMQ_PREFETCH", "0"}});
  EXPECT_THROW(check_transport_settings("rabbitmq", options), ConfigError);
}

TEST(TransportRegistry, CheckSettingsRefusesAnUnknownTransportName) {
  EXPECT_THROW(check_transport_settings("kafka", Options{}), ConfigError);
}

using asya::test::TempDir;

// Sends and receives one message: the transport works.
void expect_round_trip(Transport& t) {
  ASSERT_TRUE(t.send("asya-x", "hello").ok());
  auto got = t.receive("asya-x", 1, std::chrono::milliseconds(0));
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(got->front().body, "hello");
}

TEST(TransportRegistry, MakeTransportCreatesSqliteFromTheInjectedEnvironment) {
  TempDir dir;
  std::string path = (dir.path / "nested/dir/queues.db").string();
  Options options;
  options.environment = environment_with({{"ASYA_SQLITE_PATH", path}}, nullptr);
  {
    auto t = make_transport("sqlite", options);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->name(), "sqlite");
    expect_round_trip(*t);
  }
  EXPECT_TRUE(std::filesystem::exists(path));
}

TEST(TransportRegistry, ExplicitSqlitePathWinsOverTheEnvironmentWithoutSetenv) {
  TempDir dir;
  std::string from_environment = (dir.path / "env/queues.db").string();
  std::string explicit_path = (dir.path / "explicit/queues.db").string();
  Options options;
  options.environment = environment_with({{"ASYA_SQLITE_PATH", from_environment}});
  options.sqlite_path = explicit_path;
  {
    auto t = make_transport("sqlite", options);
    expect_round_trip(*t);
  }
  EXPECT_TRUE(std::filesystem::exists(explicit_path));
  EXPECT_FALSE(std::filesystem::exists(from_environment));
  EXPECT_FALSE(::getenv("ASYA_SQLITE_PATH") && ::getenv("ASYA_SQLITE_PATH") == explicit_path)
      << "the path reached the transport through the process environment";
}

TEST(TransportRegistry, InvalidSqliteSettingIsAConfigErrorNamingTheVariable) {
  Options options;
  options.environment = environment_with({{"ASYA_SQLITE_SYNCHRONOUS", "sometimes"}}, nullptr);
  try {
    (void)make_transport("sqlite", options);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("ASYA_SQLITE_SYNCHRONOUS"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("sometimes"), std::string::npos) << e.what();
  }
}

TEST(TransportRegistry, EveryBuiltInReadsItsVariablesFromTheInjectedEnvironment) {
  // Each built-in refuses a bad value that exists only in the injected lookup, naming it.
  const std::map<std::string, std::pair<std::string, std::string>> bad = {
      {"sqlite", {"ASYA_SQLITE_POLL_INTERVAL", "0"}},
      {"rabbitmq", {"ASYA_RABBITMQ_QUEUE_TYPE", "stream"}},
      {"sqs", {"ASYA_SQS_WAIT_TIME_SECONDS", "21"}}};
  int checked = 0;
  for (const std::string& name : transport_names()) {
    auto it = bad.find(name);
    if (it == bad.end()) continue;  // registered by another test
    const auto& [variable, value] = it->second;
    Options options;
    options.environment = environment_with({{variable, value},
                                            {"ASYA_SQS_ENDPOINT", "http://127.0.0.1:1"},
                                            {"AWS_ACCESS_KEY_ID", "a"},
                                            {"AWS_SECRET_ACCESS_KEY", "b"}},
                                           nullptr);
    try {
      (void)make_transport(name, options);
      ADD_FAILURE() << name << " accepted " << variable << "=" << value;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(variable), std::string::npos)
          << name << ": " << e.what();
    }
    ++checked;
  }
  EXPECT_GE(checked, 1);
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
