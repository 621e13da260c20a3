#include "sidecar/config.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <initializer_list>
#include <string>
#include <utility>

#include "common/env.hpp"

namespace asya::sidecar {
namespace {

using namespace std::chrono_literals;

const char* const kVars[] = {"ASYA_ACTOR_NAME",
                             "ASYA_TRANSPORT",
                             "ASYA_SOCKET_PATH",
                             "ASYA_SOCKET_DIR",
                             "ASYA_SOCKET_NAME",
                             "ASYA_RUNTIME_TIMEOUT",
                             "ASYA_RUNTIME_READY_TIMEOUT",
                             "ASYA_ACTOR_HAPPY_END",
                             "ASYA_ACTOR_ERROR_END",
                             "ASYA_IS_END_ACTOR",
                             "ASYA_GATEWAY_URL",
                             "ASYA_GATEWAY_CARRY_WAIT",
                             "ASYA_LOG_LEVEL",
                             "ASYA_METRICS_ADDR",
                             "ASYA_CONCURRENCY",
                             "ASYA_MAX_DELIVERIES",
                             "ASYA_RETRY_MAX_ATTEMPTS",
                             "ASYA_RETRY_BACKOFF",
                             "ASYA_RETRY_BACKOFF_MAX",
                             "ASYA_RETRY_ON_PROCESSING_ERROR",
                             "ASYA_SHUTDOWN_GRACE",
                             "ASYA_MAX_MESSAGE_BYTES",
                             "ASYA_QUEUE_PREFIX",
                             "ASYA_RESULT_STORE",
                             "ASYA_VISIBILITY_TIMEOUT"};

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kVars) unsetenv(v);
    setenv("ASYA_ACTOR_NAME", "echo", 1);
  }
  void TearDown() override {
    for (const char* v : kVars) unsetenv(v);
  }
  // Sets `var`=`value` and returns the ConfigError message (empty when it loaded).
  std::string error_for(const char* var, const char* value) {
    setenv(var, value, 1);
    try {
      load_config();
    } catch (const ConfigError& e) {
      SetUp();
      return e.what();
    }
    SetUp();
    return "";
  }
};

// A gateway on this machine reached over its Unix socket (docs/gateway.md "Unix socket").
TEST_F(ConfigTest, AUnixGatewayUrlBecomesAnHttpUnixUrlOfThatSocket) {
  setenv("ASYA_GATEWAY_URL", "unix:/run/asya state/gateway.sock", 1);
  EXPECT_EQ(load_config().gateway_url, "http+unix://%2Frun%2Fasya%20state%2Fgateway.sock");
  for (const char* bad : {"unix:gateway.sock", "unix:",
                          "unix:/x/../../../../../../../../../../../../"
                          "../../../../../../../../../../../../../../../"
                          "../../../../../../../../gw.sock"}) {
    const std::string error = error_for("ASYA_GATEWAY_URL", bad);
    EXPECT_NE(error.find("after unix: must come the absolute path"), std::string::npos) << bad;
  }
  EXPECT_NE(error_for("ASYA_GATEWAY_URL", "ftp://gw").find("unix:/path/of/the/gateway.sock"),
            std::string::npos);
}

TEST_F(ConfigTest, DefaultsMatchTheDocumentation) {
  Config c = load_config();
  EXPECT_EQ(c.actor_name, "echo");
  EXPECT_EQ(c.transport, "sqlite");
  EXPECT_EQ(c.socket_path, "/var/run/asya/asya-runtime.sock");
  EXPECT_EQ(c.runtime_timeout, 5min);
  EXPECT_EQ(c.runtime_ready_timeout, 5min);
  EXPECT_EQ(c.happy_end, "happy-end");
  EXPECT_EQ(c.error_end, "error-end");
  EXPECT_FALSE(c.is_end_actor);
  EXPECT_EQ(c.gateway_url, "");
  EXPECT_EQ(c.gateway_carry_wait, 50ms);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.metrics_addr, "");
  EXPECT_EQ(c.concurrency, 1);
  EXPECT_EQ(c.max_deliveries, 5);
  EXPECT_EQ(c.retry_max_attempts, 1);
  EXPECT_EQ(c.retry_backoff, 1s);
  EXPECT_EQ(c.retry_backoff_max, 60s);
  EXPECT_FALSE(c.retry_on_processing_error);
  EXPECT_EQ(c.shutdown_grace, 30s);
  EXPECT_EQ(c.max_message_bytes, 256u << 20);
  EXPECT_EQ(c.queue_prefix, "asya-");
  EXPECT_EQ(c.result_store, "file://.asya/results");
  EXPECT_EQ(c.visibility_timeout, 30s);
  EXPECT_EQ(c.input_queue(), "asya-echo");
  EXPECT_EQ(c.happy_end_queue(), "asya-happy-end");
  EXPECT_EQ(c.error_end_queue(), "asya-error-end");
}

TEST_F(ConfigTest, GatewayCarryWaitIsADurationAndZeroTurnsItOff) {
  setenv("ASYA_GATEWAY_CARRY_WAIT", "0", 1);
  EXPECT_EQ(load_config().gateway_carry_wait, 0ms);
  setenv("ASYA_GATEWAY_CARRY_WAIT", "200ms", 1);
  EXPECT_EQ(load_config().gateway_carry_wait, 200ms);
  std::string error = error_for("ASYA_GATEWAY_CARRY_WAIT", "soon");
  EXPECT_NE(error.find("ASYA_GATEWAY_CARRY_WAIT"), std::string::npos) << error;
  EXPECT_NE(error.find("soon"), std::string::npos) << error;
}

TEST_F(ConfigTest, ReadsEveryVariable) {
  setenv("ASYA_TRANSPORT", "rabbitmq", 1);
  setenv("ASYA_SOCKET_DIR", "/tmp/x/", 1);
  setenv("ASYA_RUNTIME_TIMEOUT", "300ms", 1);
  setenv("ASYA_RUNTIME_READY_TIMEOUT", "1m30s", 1);
  setenv("ASYA_GATEWAY_URL", "http://gw:8080/", 1);
  setenv("ASYA_LOG_LEVEL", "debug", 1);
  setenv("ASYA_METRICS_ADDR", ":9090", 1);
  setenv("ASYA_CONCURRENCY", "4", 1);
  setenv("ASYA_MAX_DELIVERIES", "7", 1);
  setenv("ASYA_RETRY_MAX_ATTEMPTS", "3", 1);
  setenv("ASYA_RETRY_BACKOFF", "200ms", 1);
  setenv("ASYA_RETRY_BACKOFF_MAX", "2s", 1);
  setenv("ASYA_RETRY_ON_PROCESSING_ERROR", "true", 1);
  setenv("ASYA_SHUTDOWN_GRACE", "5s", 1);
  setenv("ASYA_MAX_MESSAGE_BYTES", "64MiB", 1);
  setenv("ASYA_QUEUE_PREFIX", "dev-", 1);
  setenv("ASYA_RESULT_STORE", "file:///tmp/results", 1);
  Config c = load_config();
  EXPECT_EQ(c.transport, "rabbitmq");
  EXPECT_EQ(c.socket_path, "/tmp/x/asya-runtime.sock");
  EXPECT_EQ(c.runtime_timeout, 300ms);
  EXPECT_EQ(c.runtime_ready_timeout, 90s);
  EXPECT_EQ(c.gateway_url, "http://gw:8080");
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.metrics_addr, ":9090");
  EXPECT_EQ(c.concurrency, 4);
  EXPECT_EQ(c.max_deliveries, 7);
  EXPECT_EQ(c.retry_max_attempts, 3);
  EXPECT_EQ(c.retry_backoff, 200ms);
  EXPECT_EQ(c.retry_backoff_max, 2s);
  EXPECT_TRUE(c.retry_on_processing_error);
  EXPECT_EQ(c.shutdown_grace, 5s);
  EXPECT_EQ(c.max_message_bytes, 64u << 20);
  EXPECT_EQ(c.input_queue(), "dev-echo");
  EXPECT_EQ(c.error_end_queue(), "dev-error-end");
  EXPECT_EQ(c.result_store, "file:///tmp/results");
  EXPECT_EQ(c.visibility_timeout, 30s);
}

TEST_F(ConfigTest, SocketPathWinsOverSocketDir) {
  setenv("ASYA_SOCKET_DIR", "/tmp/x", 1);
  setenv("ASYA_SOCKET_PATH", "/run/r.sock", 1);
  EXPECT_EQ(load_config().socket_path, "/run/r.sock");
}

TEST_F(ConfigTest, EndActorModeIsAutomaticForTheEndActorNames) {
  setenv("ASYA_ACTOR_NAME", "happy-end", 1);
  EXPECT_TRUE(load_config().is_end_actor);
  EXPECT_FALSE(load_config().is_error_end());
  setenv("ASYA_ACTOR_NAME", "error-end", 1);
  EXPECT_TRUE(load_config().is_end_actor);
  EXPECT_TRUE(load_config().is_error_end());
  setenv("ASYA_ACTOR_NAME", "echo", 1);
  setenv("ASYA_IS_END_ACTOR", "true", 1);
  EXPECT_TRUE(load_config().is_end_actor);
}

TEST_F(ConfigTest, VisibilityTimeoutIsShortWhateverTheRuntimeTimeout) {
  setenv("ASYA_RUNTIME_TIMEOUT", "2h", 1);
  EXPECT_EQ(load_config().visibility_timeout, 30s);  // extended while the runtime works
  setenv("ASYA_VISIBILITY_TIMEOUT", "3s", 1);
  EXPECT_EQ(load_config().visibility_timeout, 3s);
}

TEST_F(ConfigTest, EndActorsHaveAShorterLease) {
  setenv("ASYA_ACTOR_NAME", "happy-end", 1);
  EXPECT_EQ(load_config().visibility_timeout, 10s);
  setenv("ASYA_ACTOR_NAME", "error-end", 1);
  EXPECT_EQ(load_config().visibility_timeout, 10s);
  setenv("ASYA_VISIBILITY_TIMEOUT", "1m", 1);
  EXPECT_EQ(load_config().visibility_timeout, 1min);
}

TEST_F(ConfigTest, ActorNameIsRequired) {
  unsetenv("ASYA_ACTOR_NAME");
  EXPECT_THROW(load_config(), ConfigError);
}

TEST_F(ConfigTest, InvalidValuesNameTheVariableTheValueAndWhatIsAccepted) {
  struct Case {
    const char* var;
    const char* value;
    const char* accepted;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"ASYA_ACTOR_NAME", "Bad_Name", "lowercase"},
           {"ASYA_RUNTIME_TIMEOUT", "5 minutes", "300ms"},
           {"ASYA_RUNTIME_TIMEOUT", "0", "positive"},
           {"ASYA_RUNTIME_READY_TIMEOUT", "soon", "30s"},
           {"ASYA_ACTOR_HAPPY_END", "Happy", "lowercase"},
           {"ASYA_IS_END_ACTOR", "maybe", "true or false"},
           {"ASYA_GATEWAY_URL", "gw:8080", "http://"},
           {"ASYA_LOG_LEVEL", "loud", "debug"},
           {"ASYA_METRICS_ADDR", "9090", ":port"},
           {"ASYA_METRICS_ADDR", ":99999", ":port"},
           {"ASYA_CONCURRENCY", "0", "from 1 to"},
           {"ASYA_CONCURRENCY", "four", "from 1 to"},
           {"ASYA_MAX_DELIVERIES", "-1", "from 1 to"},
           {"ASYA_RETRY_MAX_ATTEMPTS", "x", "from 1 to"},
           {"ASYA_RETRY_BACKOFF", "1 s", "300ms"},
           {"ASYA_RETRY_BACKOFF_MAX", "10ms", "at least"},
           {"ASYA_RETRY_ON_PROCESSING_ERROR", "sometimes", "true or false"},
           {"ASYA_SHUTDOWN_GRACE", "long", "30s"},
           {"ASYA_MAX_MESSAGE_BYTES", "huge", "MiB"},
           {"ASYA_MAX_MESSAGE_BYTES", "10", "1KiB"},
           {"ASYA_RESULT_STORE", "/tmp/dir", "file:///"},
           {"ASYA_RESULT_STORE", "/tmp/dir", "s3://bucket/prefix"},
           {"ASYA_RESULT_STORE", "s3:///prefix", "s3://bucket/prefix"},
           {"ASYA_VISIBILITY_TIMEOUT", "forever", "30s"},
       }) {
    std::string message = error_for(c.var, c.value);
    EXPECT_NE(message.find(c.var), std::string::npos) << c.var << ": " << message;
    EXPECT_NE(message.find(c.value), std::string::npos) << c.var << ": " << message;
    EXPECT_NE(message.find(c.accepted), std::string::npos) << c.var << ": " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST_F(ConfigTest, HelpListsEveryVariable) {
  std::string help = help_text();
  for (const char* v : kVars) {
    if (std::string(v) == "ASYA_SOCKET_NAME") continue;
    EXPECT_NE(help.find(v), std::string::npos) << v;
  }
}

}  // namespace
}  // namespace asya::sidecar
