#include "common/otlp/export_settings.hpp"

#include <gtest/gtest.h>

namespace asya::otlp {
namespace {

Environment env(std::map<std::string, std::string, std::less<>> values) {
  return Environment(environment_with(
      std::move(values), [](std::string_view) { return std::optional<std::string>(); }));
}

std::string service_name(const ExportSettings& settings) {
  return std::get<std::string>(settings.resource.attributes.at(0).value);
}

TEST(ExportSettings, NoEndpointMeansNoCollector) {
  EXPECT_FALSE(read_export_settings(env({}), "asya-sidecar"));
  EXPECT_FALSE(read_export_settings(
      env({{"ASYA_OTLP_ENDPOINT", "http://c:4318"}, {"OTEL_SDK_DISABLED", "true"}}), "x"));
  EXPECT_FALSE(read_export_settings(
      env({{"ASYA_OTLP_ENDPOINT", "http://c:4318"}, {"OTEL_TRACES_EXPORTER", "none"}}), "x"));
}

TEST(ExportSettings, EndpointsFollowTheSpecificationsPathRules) {
  EXPECT_EQ(read_export_settings(env({{"ASYA_OTLP_ENDPOINT", "http://c:4318"}}), "x")->url,
            "http://c:4318/v1/traces");
  EXPECT_EQ(
      read_export_settings(env({{"ASYA_OTLP_ENDPOINT", "http://c:4318/v1/traces"}}), "x")->url,
      "http://c:4318/v1/traces");
  EXPECT_EQ(
      read_export_settings(env({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"}}), "x")->url,
      "http://c:4318/v1/traces");
  EXPECT_EQ(read_export_settings(env({{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://c/x"},
                                      {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://other"}}),
                                 "x")
                ->url,
            "https://c/x");
  EXPECT_EQ(read_export_settings(env({{"ASYA_OTLP_ENDPOINT", "http://asya:1"},
                                      {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://otel:2"}}),
                                 "x")
                ->url,
            "http://asya:1/v1/traces");
}

TEST(ExportSettings, HeadersServiceNameAndLimits) {
  auto settings =
      read_export_settings(env({{"ASYA_OTLP_ENDPOINT", "http://c:4318"},
                                {"OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%3Dcret, team = a%20b"},
                                {"OTEL_SERVICE_NAME", "pipeline-a"},
                                {"OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"},
                                {"OTEL_EXPORTER_OTLP_TIMEOUT", "2500"},
                                {"OTEL_BSP_MAX_QUEUE_SIZE", "100"},
                                {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1000"}}),
                           "asya-sidecar");
  ASSERT_TRUE(settings);
  ASSERT_EQ(settings->headers.size(), 2u);
  EXPECT_EQ(settings->headers[0], (std::pair<std::string, std::string>("api-key", "s=cret")));
  EXPECT_EQ(settings->headers[1], (std::pair<std::string, std::string>("team", "a b")));
  EXPECT_EQ(service_name(*settings), "pipeline-a");
  EXPECT_EQ(settings->resource.attributes.at(1).key, "deployment.environment");
  EXPECT_EQ(settings->timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(settings->max_queue_spans, 100u);
  EXPECT_EQ(settings->max_batch_spans, 100u);  // never more than the queue holds
  EXPECT_EQ(service_name(read_process_settings(env({}), "asya-gateway")), "asya-gateway");
}

TEST(ExportSettings, BadValuesNameTheVariableAndTheValue) {
  auto message = [](std::map<std::string, std::string, std::less<>> values) {
    try {
      (void)read_export_settings(env(std::move(values)), "x");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{"ASYA_OTLP_ENDPOINT", "collector:4318"}})
                .find("ASYA_OTLP_ENDPOINT=\"collector:4318\" is not an http(s) URL"),
            std::string::npos);
  EXPECT_NE(message({{"ASYA_OTLP_ENDPOINT", "http://c"}, {"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"}})
                .find("OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\" is not supported"),
            std::string::npos);
  EXPECT_NE(message({{"ASYA_OTLP_ENDPOINT", "http://c"}, {"OTEL_EXPORTER_OTLP_HEADERS", "a=1,b"}})
                .find("OTEL_EXPORTER_OTLP_HEADERS: entry \"b\" is not key=value"),
            std::string::npos);
  EXPECT_NE(message({{"ASYA_OTLP_ENDPOINT", "http://c"}, {"OTEL_EXPORTER_OTLP_HEADERS", "a=%zz"}})
                .find("entry \"a=%zz\""),
            std::string::npos);
  EXPECT_NE(message({{"ASYA_OTLP_ENDPOINT", "http://c"}, {"OTEL_BSP_MAX_QUEUE_SIZE", "0"}})
                .find("OTEL_BSP_MAX_QUEUE_SIZE"),
            std::string::npos);
}

}  // namespace
}  // namespace asya::otlp
