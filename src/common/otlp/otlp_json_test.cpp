// The encoding checked against the OTLP specification's JSON rules (opentelemetry-proto
// docs/specification.md, "JSON Protobuf Encoding"): lowerCamelCase field names, hex ids, enums as
// integers, 64-bit integers as decimal strings, absent fields left out.
#include "common/otlp/otlp_json.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <regex>

namespace asya::otlp {
namespace {

namespace json = boost::json;

Span sample_span() {
  Span span;
  span.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  span.span_id = "00f067aa0ba902b7";
  span.parent_span_id = "53995c3f42cd8ad8";
  span.name = "process \"prep\"";
  span.kind = SpanKind::kConsumer;
  span.start_unix_nano = 1'764'000'000'123'456'789ull;
  span.end_unix_nano = 1'764'000'000'223'456'789ull;
  span.attributes = {{"asya.actor", std::string("prep")},
                     {"asya.delivery_count", std::int64_t{9'007'199'254'740'993}},
                     {"asya.queue_wait_ms", 1.5},
                     {"asya.retried", false}};
  span.status = StatusCode::kError;
  span.status_message = "processing_error";
  return span;
}

json::object encoded_span(const Span& span, json::object* resource = nullptr) {
  Resource r;
  r.attributes = {{"service.name", std::string("asya-sidecar")}};
  r.scope_version = "1.2.3";
  json::value doc = json::parse(export_request_json(r, {span}));
  const auto& resource_spans = doc.at("resourceSpans").as_array();
  EXPECT_EQ(resource_spans.size(), 1u);
  if (resource) *resource = resource_spans[0].at("resource").as_object();
  const auto& scope_spans = resource_spans[0].at("scopeSpans").as_array();
  EXPECT_EQ(scope_spans[0].at("scope").at("name"), "asya");
  EXPECT_EQ(scope_spans[0].at("scope").at("version"), "1.2.3");
  return scope_spans[0].at("spans").as_array().at(0).as_object();
}

TEST(OtlpJson, SpanFieldsHaveTheSpecifiedNamesAndTypes) {
  json::object resource;
  json::object span = encoded_span(sample_span(), &resource);
  EXPECT_EQ(span.at("traceId"), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(span.at("spanId"), "00f067aa0ba902b7");
  EXPECT_EQ(span.at("parentSpanId"), "53995c3f42cd8ad8");
  EXPECT_EQ(span.at("name"), "process \"prep\"");
  // Enums are integers; int64/fixed64 are decimal strings.
  EXPECT_EQ(span.at("kind"), 5);
  EXPECT_EQ(span.at("startTimeUnixNano"), "1764000000123456789");
  EXPECT_EQ(span.at("endTimeUnixNano"), "1764000000223456789");
  EXPECT_EQ(span.at("status").at("code"), 2);
  EXPECT_EQ(span.at("status").at("message"), "processing_error");
  const auto& attributes = span.at("attributes").as_array();
  ASSERT_EQ(attributes.size(), 4u);
  EXPECT_EQ(attributes[0].at("key"), "asya.actor");
  EXPECT_EQ(attributes[0].at("value").at("stringValue"), "prep");
  // Beyond 2^53: a string keeps every digit.
  EXPECT_EQ(attributes[1].at("value").at("intValue"), "9007199254740993");
  EXPECT_EQ(attributes[2].at("value").at("doubleValue").as_double(), 1.5);
  EXPECT_EQ(attributes[3].at("value").at("boolValue"), false);
  EXPECT_EQ(resource.at("attributes").at(0).at("key"), "service.name");
  EXPECT_EQ(resource.at("attributes").at(0).at("value").at("stringValue"), "asya-sidecar");
  // Only the fields of the specification.
  for (const auto& field : span)
    EXPECT_TRUE(std::regex_match(std::string(field.key()),
                                 std::regex("traceId|spanId|parentSpanId|name|kind|"
                                            "startTimeUnixNano|endTimeUnixNano|attributes|status")))
        << field.key();
}

TEST(OtlpJson, AbsentParentAndUnsetStatusAreLeftOut) {
  Span span = sample_span();
  span.parent_span_id.clear();
  span.status = StatusCode::kUnset;
  span.status_message.clear();
  json::object encoded = encoded_span(span);
  EXPECT_FALSE(encoded.contains("parentSpanId"));
  EXPECT_FALSE(encoded.contains("status"));
}

TEST(OtlpJson, NonFiniteDoublesAreTheProtobufJsonStrings) {
  Span span = sample_span();
  span.attributes = {{"a", std::numeric_limits<double>::quiet_NaN()},
                     {"b", std::numeric_limits<double>::infinity()}};
  json::object encoded = encoded_span(span);
  EXPECT_EQ(encoded.at("attributes").at(0).at("value").at("doubleValue"), "NaN");
  EXPECT_EQ(encoded.at("attributes").at(1).at("value").at("doubleValue"), "Infinity");
}

TEST(OtlpJson, NoSpansIsStillOneValidRequest) {
  json::value doc = json::parse(export_request_json(Resource{}, {}));
  EXPECT_TRUE(doc.at("resourceSpans").at(0).at("scopeSpans").at(0).at("spans").as_array().empty());
}

}  // namespace
}  // namespace asya::otlp
