#include "gateway/traces/otlp_json.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cmath>
#include <memory>

#include "common/json_text.hpp"

namespace asya::gateway::traces {
namespace {

namespace json = boost::json;

// The span's document as the store keeps it, parsed (it must be one JSON object).
json::object document_of(const ReceivedSpan& span, std::string_view job_id = {}) {
  json::value doc = json::parse(span.document_text(job_id));
  EXPECT_TRUE(doc.is_object());
  return doc.is_object() ? doc.as_object() : json::object();
}

// Written as the OTLP specification's JSON examples are (hex ids, int64 as strings).
const char* kExport = R"({
  "resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "asya-sidecar"}},
                                {"key": "asya.replica", "value": {"intValue": "2"}}]},
    "scopeSpans": [{
      "scope": {"name": "asya"},
      "spans": [{
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "EEE19B7EC3C1B174",
        "parentSpanId": "EEE19B7EC3C1B173",
        "name": "process prep",
        "kind": 5,
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": "1544712661500000000",
        "attributes": [
          {"key": "asya.actor", "value": {"stringValue": "prep"}},
          {"key": "asya.job_id", "value": {"stringValue": "job-1"}},
          {"key": "asya.envelope_id", "value": {"stringValue": "job-1-1"}},
          {"key": "asya.delivery_count", "value": {"intValue": 1}},
          {"key": "asya.queue_wait_ms", "value": {"doubleValue": 12.5}},
          {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"boolValue": true}]}}}
        ],
        "status": {"code": "STATUS_CODE_ERROR", "message": "boom"}
      }, {
        "traceId": "not-hex",
        "spanId": "EEE19B7EC3C1B175",
        "startTimeUnixNano": "1", "endTimeUnixNano": "2"
      }, {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b176",
        "startTimeUnixNano": "20", "endTimeUnixNano": "10"
      }]
    }]
  }]
})";

// A sidecar exports its actor and replica as resource attributes (docs/tracing.md), not in each
// span: every span document still names them, each from its own request part's resource.
TEST(OtlpJson, TheActorAndReplicaOfTheResourceAreInEverySpanDocument) {
  auto part = [](const char* actor, const char* replica, const char* span_id) {
    return std::string(R"({"resource":{"attributes":[)"
                       R"({"key":"service.name","value":{"stringValue":"asya-sidecar"}},)"
                       R"({"key":"asya.actor","value":{"stringValue":")") +
           actor + R"("}},{"key":"asya.replica","value":{"stringValue":")" + replica +
           R"("}}]},"scopeSpans":[{"scope":{"name":"asya"},"spans":[{)"
           R"("traceId":"5b8efff798038103d269b633813fc60c","spanId":")" +
           span_id +
           R"(","name":"ack","kind":1,"startTimeUnixNano":"10","endTimeUnixNano":"20",)"
           R"("attributes":[{"key":"asya.envelope_id","value":{"stringValue":"e1"}}]}]}]})";
  };
  const std::string body = R"({"resourceSpans":[)" + part("prep", "host-a:7", "eee19b7ec3c1b174") +
                           "," + part("infer", "host-b:9", "eee19b7ec3c1b175") + "]}";
  auto parsed = parse_export_request(body);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  ASSERT_EQ(parsed.value().spans.size(), 2u);
  const json::object first = document_of(parsed.value().spans[0]);
  const json::object second = document_of(parsed.value().spans[1]);
  EXPECT_EQ(first.at("actor"), "prep");
  EXPECT_EQ(first.at("replica"), "host-a:7");
  EXPECT_EQ(first.at("envelope_id"), "e1");
  EXPECT_EQ(first.at("resource").at("asya.actor"), "prep");
  EXPECT_FALSE(first.at("attributes").as_object().contains("asya.actor"));
  EXPECT_EQ(second.at("actor"), "infer");
  EXPECT_EQ(second.at("replica"), "host-b:9");
}

TEST(OtlpJson, ASpanBecomesADocumentWithItsAsyaAttributesOnTop) {
  auto parsed = parse_export_request(kExport);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  ASSERT_EQ(parsed.value().spans.size(), 1u);
  const ReceivedSpan& span = parsed.value().spans[0];
  EXPECT_EQ(span.trace_id, "5b8efff798038103d269b633813fc60c");
  EXPECT_EQ(span.span_id, "eee19b7ec3c1b174");
  EXPECT_EQ(span.start_unix_nano, 1544712660000000000);
  EXPECT_EQ(span.job_id, "job-1");
  EXPECT_EQ(span.envelope_id, "job-1-1");
  const json::object doc = document_of(span);
  EXPECT_EQ(doc.at("parent_span_id"), "eee19b7ec3c1b173");
  EXPECT_EQ(doc.at("kind"), "consumer");
  EXPECT_EQ(doc.at("name"), "process prep");
  EXPECT_EQ(doc.at("start_time_unix_nano"), "1544712660000000000");
  EXPECT_DOUBLE_EQ(doc.at("duration_ms").as_double(), 1500.0);
  EXPECT_EQ(doc.at("actor"), "prep");
  EXPECT_EQ(doc.at("replica"), 2);  // from the resource
  EXPECT_EQ(doc.at("delivery_count"), 1);
  EXPECT_DOUBLE_EQ(doc.at("queue_wait_ms").as_double(), 12.5);
  EXPECT_EQ(doc.at("status").at("code"), "error");
  EXPECT_EQ(doc.at("status").at("message"), "boom");
  EXPECT_EQ(doc.at("attributes").at("tags"), json::parse(R"(["a", true])"));
  EXPECT_EQ(doc.at("resource").at("service.name"), "asya-sidecar");
}

TEST(OtlpJson, SpansWithBadIdsOrTimesAreRejectedWithTheirPlace) {
  auto parsed = parse_export_request(kExport);
  ASSERT_TRUE(parsed.ok());
  ASSERT_EQ(parsed.value().rejected.size(), 2u);
  EXPECT_EQ(parsed.value().rejected[0].reason,
            "resourceSpans[0].scopeSpans[0].spans[1]: traceId must be 32 hex digits, not all "
            "zero, got \"not-hex\"");
  EXPECT_NE(parsed.value().rejected[1].reason.find("spans[2]: endTimeUnixNano"), std::string::npos)
      << parsed.value().rejected[1].reason;
}

TEST(OtlpJson, ARequestOfTheWrongShapeIsAnError) {
  EXPECT_EQ(parse_export_request("{").error().message.rfind("body is not valid JSON", 0), 0u);
  EXPECT_EQ(parse_export_request(R"({"resourceSpans": {}})").error().message,
            "resourceSpans must be an array, got {}");
  EXPECT_EQ(parse_export_request(R"({"resourceSpans": [{"scopeSpans": 3}]})").error().message,
            "resourceSpans[0].scopeSpans must be an array, got 3");
  auto empty = parse_export_request("{}");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty.value().spans.empty());
}

TEST(OtlpJson, AnyValuesBecomePlainJson) {
  EXPECT_EQ(any_value_to_json(json::parse(R"({"intValue": "-42"})")), -42);
  EXPECT_EQ(any_value_to_json(json::parse(R"({"kvlistValue": {"values": [{"key": "k",
            "value": {"stringValue": "v"}}]}})")),
            json::parse(R"({"k": "v"})"));
  EXPECT_TRUE(any_value_to_json(json::parse("{}")).is_null());
}

// The gateway's own call span skips the OTLP JSON text (received_span): its document must be the
// one the receiver reads back from that text, field for field and in the same order.
TEST(ReceivedSpan, IsTheDocumentTheReceiverReadsBackFromTheSpansOtlpJson) {
  otlp::Resource resource;
  resource.attributes = {{"service.name", std::string("asya-gateway")},
                         {"asya.replica", std::int64_t{3}}};
  otlp::Span published;
  published.trace_id = "5b8efff798038103d269b633813fc60c";
  published.span_id = "eee19b7ec3c1b174";
  published.name = "call echo";
  published.kind = otlp::SpanKind::kServer;
  published.start_unix_nano = 1544712660000000000u;
  published.end_unix_nano = 1544712661500000123u;
  published.attributes = {{"asya.tool", std::string("echo")},
                          {"asya.job_id", std::string("job-1")},
                          {"asya.envelope_id", std::string("job-1")},
                          {"asya.outcome", std::string("published")},
                          {"asya.payload_bytes", std::int64_t{42}},
                          {"ratio", 0.25},
                          {"not.a.number", std::nan("")},
                          {"flag", true}};
  otlp::Span failed = published;
  failed.span_id = "eee19b7ec3c1b175";
  failed.parent_span_id = "eee19b7ec3c1b174";
  failed.kind = otlp::SpanKind::kProducer;
  failed.status = otlp::StatusCode::kError;
  failed.status_message = "publishing to asya-echo failed: \"queue\" gone";
  failed.shared_attributes = std::make_shared<const std::vector<otlp::Attribute>>(
      std::vector<otlp::Attribute>{{"asya.actor", std::string("echo")}, {"flag", false}});
  otlp::Span ok = published;
  ok.span_id = "eee19b7ec3c1b176";
  ok.status = otlp::StatusCode::kOk;

  std::vector<otlp::Span> spans{published, failed, ok};
  auto read_back = parse_export_request(otlp::export_request_json(resource, spans));
  ASSERT_TRUE(read_back.ok()) << read_back.error().message;
  ASSERT_EQ(read_back.value().spans.size(), spans.size());
  const auto resource_json = span_resource(resource);
  for (std::size_t i = 0; i < spans.size(); ++i) {
    ReceivedSpan direct = received_span(spans[i], resource_json);
    const ReceivedSpan& expected = read_back.value().spans[i];
    EXPECT_EQ(direct.document_text(), expected.document_text()) << i;
    EXPECT_EQ(direct.document_text("job-9"), expected.document_text("job-9")) << i;
    EXPECT_EQ(direct.trace_id, expected.trace_id);
    EXPECT_EQ(direct.span_id, expected.span_id);
    EXPECT_EQ(direct.start_unix_nano, expected.start_unix_nano);
    EXPECT_EQ(direct.job_id, "job-1");
    EXPECT_EQ(direct.envelope_id, "job-1");
  }
}

// The job the gateway placed a span in is its document's "job_id", in the place of the attribute
// when the span had one, among the Asya fields when it had none; the rest is unchanged.
TEST(ReceivedSpan, TheJobItWasPlacedInIsItsDocumentsJobId) {
  auto parsed = parse_export_request(kExport);
  ASSERT_TRUE(parsed.ok());
  const ReceivedSpan& span = parsed.value().spans[0];
  const json::object own = document_of(span);
  const json::object placed = document_of(span, "job-2");
  EXPECT_EQ(own.at("job_id"), "job-1");
  EXPECT_EQ(placed.at("job_id"), "job-2");
  EXPECT_EQ(placed.at("attributes").at("asya.job_id"), "job-1");  // the attribute as sent
  json::object rest = placed;
  rest["job_id"] = "job-1";
  EXPECT_EQ(rest, own);
  // The same field order with the job replaced as without.
  std::string text = span.document_text("job-2");
  EXPECT_LT(text.find("\"envelope_id\""), text.find("\"job_id\""));
  EXPECT_LT(text.find("\"job_id\""), text.find("\"delivery_count\""));

  const std::string no_job =
      R"({"resourceSpans":[{"scopeSpans":[{"spans":[{)"
      R"("traceId":"5b8efff798038103d269b633813fc60c",)"
      R"("spanId":"eee19b7ec3c1b174","name":"runtime call",)"
      R"("startTimeUnixNano":"10","endTimeUnixNano":"20",)"
      R"("attributes":[{"key":"asya.delivery_count","value":{"intValue":2}}])"
      R"(}]}]}]})";
  auto child = parse_export_request(no_job);
  ASSERT_TRUE(child.ok());
  ASSERT_EQ(child.value().spans.size(), 1u);
  EXPECT_FALSE(document_of(child.value().spans[0]).contains("job_id"));
  const json::object child_placed = document_of(child.value().spans[0], "job-3");
  EXPECT_EQ(child_placed.at("job_id"), "job-3");
  EXPECT_EQ(child_placed.at("delivery_count"), 2);
  EXPECT_EQ(child_placed.at("resource"), json::object());
  text = child.value().spans[0].document_text("job-3");
  EXPECT_LT(text.find("\"job_id\""), text.find("\"delivery_count\""));
}

// Text written piecewise must stay valid JSON for any content: quotes, backslashes, control
// characters and non-ASCII in names, status messages, attribute keys and values; a repeated
// attribute key keeps one field (its last value), as a JSON object would.
TEST(ReceivedSpan, HostileTextStaysOneValidDocument) {
  const std::string nasty = "q\\\"uote\\\\ back\\n\\u0001 \\u00e9 </script>";
  const std::string body =
      R"({"resourceSpans":[{"resource":{"attributes":[{"key":"k\"r","value":{"stringValue":")" +
      nasty +
      R"("}}]},"scopeSpans":[{"spans":[{)"
      R"("traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",)"
      R"("name":")" +
      nasty +
      R"(","startTimeUnixNano":"10","endTimeUnixNano":"20",)"
      R"("status":{"code":2,"message":")" +
      nasty + R"("},"attributes":[{"key":"a\"b","value":{"stringValue":")" + nasty +
      R"("}},{"key":"dup","value":{"intValue":1}},{"key":"dup","value":{"intValue":2}},)"
      R"({"key":"asya.job_id","value":{"stringValue":")" +
      nasty + R"("}}]}]}]}]})";
  auto parsed = parse_export_request(body);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  ASSERT_EQ(parsed.value().spans.size(), 1u);
  const ReceivedSpan& span = parsed.value().spans[0];
  const std::string expected = json::value_to<std::string>(json::parse("\"" + nasty + "\""));
  EXPECT_EQ(span.job_id, expected);
  for (std::string_view job : {std::string_view(), std::string_view("j\"ob\n")}) {
    const json::object doc = document_of(span, job);
    EXPECT_EQ(doc.at("name"), expected.c_str());
    EXPECT_EQ(doc.at("status").at("message"), expected.c_str());
    EXPECT_EQ(doc.at("attributes").at("a\"b"), expected.c_str());
    EXPECT_EQ(doc.at("resource").at("k\"r"), expected.c_str());
    EXPECT_EQ(doc.at("attributes").at("dup"), 2);
    EXPECT_EQ(doc.at("attributes").as_object().size(), 3u);
    EXPECT_EQ(doc.at("job_id"), (job.empty() ? expected : std::string(job)).c_str());
  }
}

// The attributes are read in place from the request (no object built per span): the text is what
// the json::object the gateway used to copy them into wrote (keys in first-seen order, a repeated
// key with its last value, AnyValues converted by any_value_to_json), for a long list with repeats
// past the point where the reader indexes it, odd values, and the Asya fields read from them.
TEST(OtlpJson, AttributesReadInPlaceWriteWhatTheirObjectWrote) {
  json::array list;
  json::object expected;
  auto add = [&](const std::string& key, json::value any_value, bool with_value = true) {
    json::object kv{{"key", key}};
    if (with_value) kv["value"] = any_value;
    list.push_back(kv);
    expected[key] = with_value ? any_value_to_json(any_value) : json::value(nullptr);
  };
  for (int i = 0; i < 40; ++i) add("k" + std::to_string(i % 25), {{"intValue", std::to_string(i)}});
  add("asya.job_id", {{"intValue", "not a number"}});
  add("asya.envelope_id", {{"stringValue", 42}});
  add("asya.actor", {{"doubleValue", 0.1}});
  add("asya.replica", {{"boolValue", true}}, false);
  add("asya.outcome",
      {{"kvlistValue",
        {{"values", json::array{{{"key", "a"}, {"value", {{"stringValue", "\"x\n"}}}}}}}}});
  add("asya.delivery_count",
      {{"arrayValue", {{"values", json::array{{{"intValue", 7}}, {{"doubleValue", "NaN"}}}}}}});
  add("k3", {{"stringValue", "last \xc3\xa9 </script>"}});
  add("k\"quoted\x01", {{"bytesValue", "AAE="}});
  add("asya.payload_bytes", json::value("not an object"));
  json::object span{{"traceId", "5b8efff798038103d269b633813fc60c"},
                    {"spanId", "eee19b7ec3c1b174"},
                    {"startTimeUnixNano", "10"},
                    {"endTimeUnixNano", "20"},
                    {"attributes", list}};
  json::object request{
      {"resourceSpans",
       json::array{{{"scopeSpans", json::array{{{"spans", json::array{span}}}}}}}}};
  auto parsed = parse_export_request(json::serialize(request));
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  ASSERT_EQ(parsed.value().spans.size(), 1u);
  const ReceivedSpan& received = parsed.value().spans[0];
  json::object doc = document_of(received);
  EXPECT_EQ(json::serialize(doc.at("attributes")), json::serialize(expected));
  std::string text = received.document_text();
  std::string attributes_text;
  append_json_text(attributes_text, expected);
  EXPECT_NE(text.find(",\"attributes\":" + attributes_text + ","), std::string::npos) << text;
  EXPECT_EQ(received.job_id, "not a number");
  EXPECT_EQ(received.envelope_id, "42");
  EXPECT_EQ(doc.at("actor"), json::value(0.1));
  EXPECT_EQ(doc.at("replica"), json::value(nullptr));
  EXPECT_EQ(doc.at("payload_bytes"), json::value(nullptr));
  EXPECT_EQ(doc.at("delivery_count"), (json::array{7, "NaN"}));
  EXPECT_EQ(doc.at("outcome"), (json::object{{"a", "\"x\n"}}));
}

}  // namespace
}  // namespace asya::gateway::traces
