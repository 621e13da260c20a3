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

// A span written field by field is the span the encoder writes for the same Span value.
TEST(OtlpJson, ASpanWriterWritesWhatTheEncoderWritesForTheSameSpan) {
  Span span = sample_span();
  span.name = "publish \"q\"\n";
  span.attributes = {{"asya.actor", std::string("pr\"ep\\")},
                     {"asya.envelope_id", std::string("e\x01")},
                     {"asya.delivery_count", std::int64_t{-7}},
                     {"asya.output_envelope_id", std::string("o")}};
  std::string shared;
  append_attribute(shared, "asya.actor", "pr\"ep\\");
  append_attribute(shared, "asya.envelope_id", "e\x01");
  EncodedSpans written;
  SpanWriter writer(written);
  writer
      .begin(span.trace_id, span.span_id, span.parent_span_id, "publish ", "\"q\"\n", span.kind,
             span.start_unix_nano, span.end_unix_nano)
      .attributes(shared)
      .attribute("asya.delivery_count", std::int64_t{-7})
      .attribute("asya.output_envelope_id", "o")
      .end(span.status, span.status_message);
  EXPECT_EQ(written.count, 1u);
  Resource r;
  json::value from_writer = json::parse(export_request_json_from(r, {written}));
  json::value from_span = json::parse(export_request_json(r, {span}));
  EXPECT_EQ(from_writer, from_span) << written.json;

  // Several spans in one part (a hop's): comma-separated, each the encoder's.
  SpanWriter(written)
      .begin(span.trace_id, span.span_id, span.parent_span_id, "publish ", "\"q\"\n", span.kind,
             span.start_unix_nano, span.end_unix_nano)
      .attributes(shared)
      .attribute("asya.delivery_count", std::int64_t{-7})
      .attribute("asya.output_envelope_id", "o")
      .end(span.status, span.status_message);
  EXPECT_EQ(written.count, 2u);
  EXPECT_EQ(json::parse(export_request_json_from(r, {written})),
            json::parse(export_request_json(r, {span, span})))
      << written.json;

  // Long text is checked eight bytes at a time: what needs escaping anywhere in it is escaped.
  const std::string long_text = std::string("0123456789abcdef\"ghijklmnop\x1f qrstuvwxyz\\") +
                                "\xc3\xa9t\xc3\xa9 and more plain text" + "\n";
  EncodedSpans long_span;
  SpanWriter(long_span)
      .begin(span.trace_id, span.span_id, {}, long_text, long_text, SpanKind::kInternal, 1, 2)
      .attribute("k", long_text)
      .end();
  json::object decoded = json::parse(export_request_json_from(r, {long_span}))
                             .at("resourceSpans")
                             .at(0)
                             .at("scopeSpans")
                             .at(0)
                             .at("spans")
                             .at(0)
                             .as_object();
  EXPECT_EQ(decoded.at("name").as_string(), long_text + long_text);
  EXPECT_EQ(decoded.at("attributes").at(0).at("value").at("stringValue").as_string(), long_text);

  // No attributes, no parent, no status: each left out as the encoder leaves it out.
  EncodedSpans bare;
  SpanWriter(bare)
      .begin(span.trace_id, span.span_id, {}, "ack", {}, SpanKind::kInternal, 5, 3)
      .attributes({})
      .end();
  json::object root = json::parse(export_request_json_from(r, {bare}))
                          .at("resourceSpans")
                          .at(0)
                          .at("scopeSpans")
                          .at(0)
                          .at("spans")
                          .at(0)
                          .as_object();
  EXPECT_FALSE(root.contains("parentSpanId"));
  EXPECT_FALSE(root.contains("status"));
  EXPECT_TRUE(root.at("attributes").as_array().empty());
  EXPECT_EQ(root.at("endTimeUnixNano"), "5");  // never before the start
}

// Text with nothing to escape takes the writers' fast paths (one size check per attribute or
// span head): the same encoding, for lists of several attributes and several spans.
TEST(OtlpJson, PlainTextTakesTheFastPathsAndWritesTheSameEncoding) {
  Span span = sample_span();
  span.name = "process t-two";
  span.attributes = {{"asya.envelope_id", std::string("5e6fdb2d-1d6b-4e91-baef-73e825434e7b")},
                     {"asya.delivery_count", std::int64_t{1}},
                     {"asya.job_id", std::string("j1")},
                     {"asya.payload_bytes", std::int64_t{-42}},
                     {"messaging.destination.name", std::string("asya-t-two")},
                     {"asya.outcome", std::string("success")},
                     {"asya.route_index", std::int64_t{9'223'372'036'854'775'807}}};
  // Integers around the writer's 8-digit steps.
  const std::int64_t steps[] = {0,
                                99'999'999,
                                100'000'000,
                                1'000'000'007,
                                9'999'999'999'999'999,
                                10'000'000'000'000'000,
                                100'000'000'000'000'001};
  for (std::int64_t step : steps) span.attributes.push_back({"n", step});
  std::string common;
  append_attribute(common, "asya.envelope_id", "5e6fdb2d-1d6b-4e91-baef-73e825434e7b");
  append_attribute(common, "asya.delivery_count", std::int64_t{1});
  append_attribute(common, "asya.job_id", "j1");
  append_attribute(common, "asya.payload_bytes", std::int64_t{-42});
  EncodedSpans written;
  for (int i = 0; i < 3; ++i)
    SpanWriter(written)
        .begin(span.trace_id, span.span_id, span.parent_span_id, "process ", "t-two", span.kind,
               span.start_unix_nano, span.end_unix_nano)
        .attributes(common)
        .attribute("messaging.destination.name", "asya-t-two")
        .attribute("asya.outcome", "success")
        .attribute("asya.route_index", std::int64_t{9'223'372'036'854'775'807})
        .attribute("n", steps[0])
        .attribute("n", steps[1])
        .attribute("n", steps[2])
        .attribute("n", steps[3])
        .attribute("n", steps[4])
        .attribute("n", steps[5])
        .attribute("n", steps[6])
        .end(span.status, span.status_message);
  EXPECT_EQ(written.count, 3u);
  Resource r;
  EXPECT_EQ(json::parse(export_request_json_from(r, {written})),
            json::parse(export_request_json(r, {span, span, span})))
      << written.json;

  // Plain text longer than the writers' stack buffer is written straight into the string.
  const std::string long_plain(1000, 'q');
  Span long_span = sample_span();
  long_span.name = "publish " + long_plain;
  long_span.attributes = {{"k", long_plain}};
  long_span.status = StatusCode::kUnset;
  EncodedSpans long_written;
  SpanWriter(long_written)
      .begin(long_span.trace_id, long_span.span_id, long_span.parent_span_id, "publish ",
             long_plain, long_span.kind, long_span.start_unix_nano, long_span.end_unix_nano)
      .attribute("k", long_plain)
      .end();
  EXPECT_EQ(json::parse(export_request_json_from(r, {long_written})),
            json::parse(export_request_json(r, {long_span})));
}

std::vector<std::string> names_in(const Resource& r, const std::vector<EncodedSpans>& parts) {
  std::vector<std::string> names;
  json::value doc = json::parse(export_request_json_from(r, parts));
  for (const auto& span :
       doc.at("resourceSpans").at(0).at("scopeSpans").at(0).at("spans").as_array())
    names.emplace_back(span.at("name").as_string());
  return names;
}

TEST(OtlpJson, EncodedSpansSplitAtSpanBoundariesEvenWithSpanTextInsideStrings) {
  EncodedSpans all;
  for (int i = 0; i < 5; ++i) {
    Span span = sample_span();
    span.name = std::to_string(i);
    // A string value holding what a span's opening looks like: escaped, so never a boundary.
    span.attributes = {{"text", std::string(R"(},{"traceId":"x")")}};
    append_encoded(all, span);
  }
  ASSERT_EQ(all.count, 5u);
  EncodedSpans first = split_encoded(all, 2);
  EXPECT_EQ(first.count, 2u);
  EXPECT_EQ(all.count, 3u);
  Resource r;
  EXPECT_EQ(names_in(r, {first}), (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(names_in(r, {all}), (std::vector<std::string>{"2", "3", "4"}));
  EXPECT_EQ(names_in(r, {first, EncodedSpans{}, all}),
            (std::vector<std::string>{"0", "1", "2", "3", "4"}));
}

}  // namespace
}  // namespace asya::otlp
