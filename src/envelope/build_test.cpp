#include "envelope/build.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <string>

namespace asya::envelope {
namespace {

namespace json = boost::json;

Envelope MustParse(std::string_view body) {
  auto result = parse(body);
  EXPECT_TRUE(result.ok()) << result.error().message << "\nbody: " << body.substr(0, 500);
  return result.ok() ? std::move(result).value() : Envelope{};
}

std::vector<ResponseItem> MustParseResponse(std::string_view body) {
  auto result = parse_response(body);
  EXPECT_TRUE(result.ok()) << result.error().message;
  return result.ok() ? std::move(result).value() : std::vector<ResponseItem>{};
}

json::object JsonObject(std::string_view text) {
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  EXPECT_FALSE(ec) << ec.message() << "\ntext: " << text.substr(0, 500);
  EXPECT_TRUE(value.is_object());
  return value.is_object() ? value.as_object() : json::object{};
}

const std::string kInput =
    R"({"id":"E","parent_id":"P","route":{"actors":["prep","infer","post"],"current":1,"metadata":{"job":"j1"}},)"
    R"("headers":{"traceparent":"00-t","priority":"high"},"deadline":"2030-01-01T00:00:00Z",)"
    R"("zeta":{"keep":[1,2]},"version":3,"payload":{"in":true}})";

TEST(OutputId, IsTheInputIdThenSuffixedWithTheHopAfterTheFirst) {
  Envelope first = MustParse(R"({"id":"E","route":{"actors":["a","b"]},"payload":1})");
  EXPECT_EQ(output_id(first, 0), "E");
  EXPECT_EQ(output_id(first, 1), "E-1");
  EXPECT_EQ(output_id(first, 12), "E-12");
  Envelope later = MustParse(R"({"id":"E","route":{"actors":["a","b"],"current":1},"payload":1})");
  EXPECT_EQ(output_id(later, 0), "E");
  EXPECT_EQ(output_id(later, 1), "E-1-1");
}

TEST(BuildOutput, SingleOutputKeepsIdParentHeadersDeadlineAndUnknownFields) {
  Envelope in = MustParse(kInput);
  auto items = MustParseResponse(
      R"([{"payload":{"out":1},"route":{"actors":["prep","infer","post"],"current":2,"metadata":{"job":"j1"}}}])");
  ASSERT_EQ(items.size(), 1u);
  std::string out = build_output(in, 0, items[0]);
  Envelope parsed = MustParse(out);
  EXPECT_EQ(parsed.id, "E");
  EXPECT_EQ(parsed.parent_id, "P");
  EXPECT_EQ(parsed.current, 2u);
  EXPECT_EQ(parsed.current_actor(), "post");
  EXPECT_EQ(parsed.route_raw, items[0].route_raw);
  EXPECT_EQ(parsed.headers_raw, R"({"traceparent":"00-t","priority":"high"})");
  EXPECT_EQ(parsed.deadline, "2030-01-01T00:00:00Z");
  EXPECT_EQ(parsed.payload_raw, R"({"out":1})");
  ASSERT_EQ(parsed.unknown_fields.size(), 2u);
  EXPECT_EQ(parsed.unknown_fields[0].first, "\"zeta\"");
  EXPECT_EQ(parsed.unknown_fields[0].second, R"({"keep":[1,2]})");
  EXPECT_EQ(parsed.unknown_fields[1].first, "\"version\"");
  EXPECT_EQ(parsed.unknown_fields[1].second, "3");
  JsonObject(out);
}

TEST(BuildOutput, NoParentIdWhenTheInputHadNone) {
  Envelope in = MustParse(R"({"id":"E","route":{"actors":["a","b"]},"payload":1})");
  auto items = MustParseResponse(R"([{"payload":2,"route":{"actors":["a","b"],"current":1}}])");
  std::string out = build_output(in, 0, items[0]);
  EXPECT_EQ(out, R"({"id":"E","route":{"actors":["a","b"],"current":1},"payload":2})");
  Envelope parsed = MustParse(out);
  EXPECT_FALSE(parsed.parent_id.has_value());
  EXPECT_TRUE(parsed.headers_raw.empty());
}

TEST(BuildOutput, FanOutOfThreeGivesSuffixedIdsAndParentIds) {
  Envelope in = MustParse(kInput);
  auto items =
      MustParseResponse(R"([{"payload":0,"route":{"actors":["prep","infer","post"],"current":2}},)"
                        R"({"payload":1,"route":{"actors":["prep","infer","post"],"current":2}},)"
                        R"({"payload":2,"route":{"actors":["prep","infer","post"],"current":2}}])");
  ASSERT_EQ(items.size(), 3u);
  const char* ids[] = {"E", "E-1-1", "E-1-2"};  // fanned out at hop 1
  const char* parents[] = {"P", "E", "E"};
  for (std::size_t i = 0; i < 3; ++i) {
    std::string body = build_output(in, i, items[i]);
    Envelope out = MustParse(body);
    EXPECT_EQ(out.id, ids[i]);
    EXPECT_EQ(out.parent_id, parents[i]);
    EXPECT_EQ(out.payload_raw, std::to_string(i));
    EXPECT_EQ(out.headers_raw, in.headers_raw);
  }
}

TEST(BuildOutput, FanOutChildrenWithoutInputParentGetTheInputIdAsParent) {
  Envelope in = MustParse(R"({"id":"X","route":{"actors":["a"]},"payload":1})");
  auto items = MustParseResponse(
      R"([{"payload":1,"route":{"actors":["a"],"current":1}},{"payload":2,"route":{"actors":["a"],"current":1}}])");
  Envelope first = MustParse(build_output(in, 0, items[0]));
  Envelope second = MustParse(build_output(in, 1, items[1]));
  EXPECT_FALSE(first.parent_id.has_value());
  EXPECT_EQ(second.id, "X-1");
  EXPECT_EQ(second.parent_id, "X");
}

TEST(BuildOutput, EscapedIdsStayValidJson) {
  Envelope in = MustParse(R"({"id":"a\"b\u00e9","route":{"actors":["a"]},"payload":1})");
  auto items = MustParseResponse(R"([{"payload":1,"route":{"actors":["a"]}}])");
  std::string first_body = build_output(in, 0, items[0]);
  Envelope first = MustParse(first_body);
  EXPECT_EQ(first.id_raw, R"("a\"b\u00e9")");  // raw text copied as sent
  Envelope child = MustParse(build_output(in, 1, items[0]));
  EXPECT_EQ(child.id, "a\"b\xC3\xA9-1");
  EXPECT_EQ(child.parent_id, "a\"b\xC3\xA9");
}

TEST(BuildOutputHead, HeadPayloadAndTailAreTheWholeOutputByteForByte) {
  // Every shape the head depends on: parent id or none, the item's headers, stamped fan-out
  // headers, deadline and unknown fields, a child's id, escaped ids.
  const std::string inputs[] = {
      kInput,
      R"({"id":"X","route":{"actors":["a"]},"payload":1})",
      R"({"id":"a\"b\u00e9","route":{"actors":["a","b"],"current":0},"payload":[1]})",
  };
  const std::string big(3u << 20, 'z');
  const std::string response =
      R"([{"payload":"big)" + big +
      R"(","route":{"actors":["a","b"],"current":1}},)"
      R"({"payload":{"k":[1,2,{"x":null}]},"route":{"actors":["a"]},"headers":{"new":"h"}}])";
  for (const std::string& text : inputs) {
    Envelope in = MustParse(text);
    auto items = MustParseResponse(response);
    ASSERT_EQ(items.size(), 2u);
    for (std::size_t i = 0; i < items.size(); ++i) {
      for (std::string_view stamped : {std::string_view(), std::string_view(R"({"f":1})")}) {
        const std::string whole = build_output(in, i, items[i], stamped);
        const std::string parts = build_output_head(in, i, items[i], stamped) +
                                  std::string(items[i].payload_raw) + std::string(kOutputTail);
        EXPECT_TRUE(whole == parts) << "input " << text.substr(0, 60) << ", output " << i;
        EXPECT_EQ(MustParse(parts).payload_raw, items[i].payload_raw);
      }
    }
  }
}

TEST(BuildOutput, HeadersAreReplacedWhenTheItemHasThemElseKept) {
  Envelope in = MustParse(kInput);
  auto items = MustParseResponse(
      R"([{"payload":1,"route":{"actors":["a"]},"headers":{"new":"h"}},{"payload":2,"route":{"actors":["a"]}}])");
  EXPECT_EQ(MustParse(build_output(in, 0, items[0])).headers_raw, R"({"new":"h"})");
  EXPECT_EQ(MustParse(build_output(in, 1, items[1])).headers_raw, in.headers_raw);
}

TEST(BuildOutput, PayloadSurvivesByteForByteThroughParseResponseAndBuild) {
  const std::string payloads[] = {
      R"({ "z" : 1 ,  "a":[ 123456789012345678901234567890 , 1.0e+300 ] ,"m":{ } })",
      R"("caf\u00e9 and \ud83d\ude00 and \"q\" \\")",
      "\"raw \xC3\xA9 \xF0\x9F\x98\x80\"",
      "123456789012345678901234567890",
      "1.0e+300",
      "[\n  1,\n\t2\r\n]",
      "null",
  };
  for (const std::string& payload : payloads) {
    std::string input = R"({"id":"E","route":{"actors":["a","b"]},"payload":)" + payload + "}";
    Envelope in = MustParse(input);
    EXPECT_EQ(in.payload_raw, payload);
    std::string response =
        R"([{"route":{"actors":["a","b"],"current":1},"payload":   )" + payload + "\n}]";
    auto items = MustParseResponse(response);
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].payload_raw, payload);
    std::string out = build_output(in, 0, items[0]);
    EXPECT_NE(out.find(payload), std::string::npos);
    EXPECT_EQ(MustParse(out).payload_raw, payload);
    // The error path carries it too.
    std::string error = build_error(in, "a", ErrorInfo{"processing_error", "m", "T", ""});
    EXPECT_NE(error.find("\"original_payload\":" + payload + "}"), std::string::npos) << error;
  }
}

TEST(BuildError, HasTheDocumentedShape) {
  Envelope in = MustParse(kInput);
  auto before = std::chrono::system_clock::now();
  std::string out = build_error(
      in, "infer",
      ErrorInfo{"processing_error", "bad \"value\"\n", "ValueError", "Traceback:\n  line 1"});
  auto after = std::chrono::system_clock::now();

  Envelope parsed = MustParse(out);
  EXPECT_EQ(parsed.id, "E");
  EXPECT_EQ(parsed.parent_id, "P");
  EXPECT_EQ(parsed.route_raw, in.route_raw);  // current still at the failing actor
  EXPECT_EQ(parsed.current_actor(), "infer");
  EXPECT_EQ(parsed.deadline, "2030-01-01T00:00:00Z");
  ASSERT_EQ(parsed.unknown_fields.size(), 2u);

  json::object doc = JsonObject(out);
  const json::object& headers = doc.at("headers").as_object();
  EXPECT_EQ(headers.at("traceparent"), "00-t");
  EXPECT_EQ(headers.at("priority"), "high");
  const json::array& chain = headers.at("asya-error-chain").as_array();
  ASSERT_EQ(chain.size(), 1u);
  EXPECT_EQ(chain[0].at("actor"), "infer");
  EXPECT_EQ(chain[0].at("error"), "processing_error");
  auto at = parse_rfc3339(std::string(chain[0].at("at").as_string()));
  ASSERT_TRUE(at.ok());
  EXPECT_GE(*at, std::chrono::floor<std::chrono::milliseconds>(before));
  EXPECT_LE(*at, after);

  const json::object& payload = doc.at("payload").as_object();
  EXPECT_EQ(payload.at("error"), "processing_error");
  EXPECT_EQ(payload.at("actor"), "infer");
  const json::object& details = payload.at("details").as_object();
  EXPECT_EQ(details.at("message"), "bad \"value\"\n");
  EXPECT_EQ(details.at("type"), "ValueError");
  EXPECT_EQ(details.at("traceback"), "Traceback:\n  line 1");
  EXPECT_EQ(payload.at("original_payload"), json::parse(R"({"in":true})"));
  EXPECT_EQ(payload.size(), 4u);
}

TEST(BuildError, WithoutHeadersCreatesTheChain) {
  Envelope in = MustParse(R"({"id":"E","route":{"actors":["a"]},"payload":[1]})");
  std::string out = build_error(in, "a", ErrorInfo{"runtime_timeout", "", "runtime_timeout", ""});
  json::object doc = JsonObject(out);
  EXPECT_EQ(doc.at("headers").as_object().size(), 1u);
  EXPECT_EQ(doc.at("headers").at("asya-error-chain").as_array().size(), 1u);
  EXPECT_FALSE(doc.contains("parent_id"));
  EXPECT_FALSE(doc.contains("deadline"));
  EXPECT_TRUE(MustParse(out).route_raw == in.route_raw);
}

TEST(BuildError, ChainKeepsTheMostRecentTenOldestDropped) {
  std::string body =
      R"({"id":"E","route":{"actors":["a"]},"payload":1,"headers":{"x":1,"asya-error-chain":[)";
  for (int i = 0; i < 10; ++i) {
    if (i) body += ',';
    body += R"({"actor":"a","error":"e)" + std::to_string(i) + R"(","at":"2020-01-01T00:00:00Z"})";
  }
  body += R"(],"y":2}})";
  std::string current = body;
  for (int round = 0; round < 2; ++round) {
    Envelope in = MustParse(current);
    current = build_error(in, "a", ErrorInfo{"new" + std::to_string(round), "", "", ""});
  }
  json::object doc = JsonObject(current);
  const json::object& headers = doc.at("headers").as_object();
  EXPECT_EQ(headers.at("x"), 1);
  EXPECT_EQ(headers.at("y"), 2);
  const json::array& chain = headers.at("asya-error-chain").as_array();
  ASSERT_EQ(chain.size(), 10u);
  EXPECT_EQ(chain[0].at("error"), "e2");
  EXPECT_EQ(chain[7].at("error"), "e9");
  EXPECT_EQ(chain[8].at("error"), "new0");
  EXPECT_EQ(chain[9].at("error"), "new1");
}

TEST(BuildError, ErrorOutputItselfParsesAndCanErrorAgain) {
  Envelope in = MustParse(kInput);
  std::string first = build_error(in, "infer", ErrorInfo{"runtime_unavailable", "", "", ""});
  Envelope again = MustParse(first);
  std::string second = build_error(again, "infer", ErrorInfo{"runtime_timeout", "", "", ""});
  json::object doc = JsonObject(second);
  EXPECT_EQ(doc.at("headers").at("asya-error-chain").as_array().size(), 2u);
  // The first error envelope's payload is the original payload of the second.
  EXPECT_EQ(doc.at("payload").at("original_payload").at("error"), "runtime_unavailable");
}

TEST(Attempt, DefaultsToOneAndWithAttemptReplacesOnlyThatHeader) {
  Envelope in = MustParse(kInput);
  EXPECT_EQ(attempt_of(in), 1);
  std::string retried = with_attempt(in, 2);
  Envelope parsed = MustParse(retried);
  EXPECT_EQ(attempt_of(parsed), 2);
  EXPECT_EQ(parsed.id, "E");
  EXPECT_EQ(parsed.parent_id, "P");
  EXPECT_EQ(parsed.route_raw, in.route_raw);
  EXPECT_EQ(parsed.payload_raw, in.payload_raw);
  EXPECT_EQ(parsed.deadline, in.deadline);
  EXPECT_EQ(parsed.unknown_fields.size(), 2u);
  EXPECT_EQ(parsed.headers_raw, R"({"traceparent":"00-t","priority":"high","asya-attempt":2})");

  std::string third_body = with_attempt(parsed, 3);
  Envelope third = MustParse(third_body);
  EXPECT_EQ(attempt_of(third), 3);
  EXPECT_EQ(third.headers_raw, R"({"traceparent":"00-t","priority":"high","asya-attempt":3})");
}

TEST(Attempt, NonPositiveOrNonIntegerCountsAsOne) {
  for (const char* value : {"0", "-2", "\"3\"", "1.5", "null", "99999999999"}) {
    std::string body =
        std::string(
            R"({"id":"E","route":{"actors":["a"]},"payload":1,"headers":{"asya-attempt":)") +
        value + "}}";
    Envelope in = MustParse(body);
    EXPECT_EQ(attempt_of(in), 1) << value;
  }
  Envelope without_headers = MustParse(R"({"id":"E","route":{"actors":["a"]},"payload":1})");
  EXPECT_EQ(attempt_of(without_headers), 1);
  EXPECT_EQ(MustParse(with_attempt(without_headers, 4)).headers_raw, R"({"asya-attempt":4})");
}

TEST(WrapUnparseable, IsAnEnvelopeRoutedToTheActorWithAStableId) {
  std::string body = "this is {not json \"at all\"\n\x01";
  std::string out = wrap_unparseable(body, "infer", "body is not valid JSON: x");
  Envelope parsed = MustParse(out);
  EXPECT_EQ(parsed.id.rfind("unparseable-", 0), 0u);
  EXPECT_EQ(parsed.id.size(), std::string("unparseable-").size() + 16);
  EXPECT_EQ(parsed.actors, std::vector<std::string>{"infer"});
  EXPECT_EQ(parsed.current, 0u);
  EXPECT_EQ(parsed.current_actor(), "infer");
  json::object doc = JsonObject(out);
  const json::object& payload = doc.at("payload").as_object();
  EXPECT_EQ(payload.at("error"), "msg_parsing_error");
  EXPECT_EQ(payload.at("message"), "body is not valid JSON: x");
  EXPECT_EQ(payload.at("actor"), "infer");
  EXPECT_EQ(std::string_view(payload.at("raw").as_string()), body);

  EXPECT_EQ(MustParse(wrap_unparseable(body, "infer", "other reason")).id, parsed.id);
  EXPECT_NE(MustParse(wrap_unparseable(body + " ", "infer", "x")).id, parsed.id);
}

TEST(WrapUnparseable, RawIsTheFirst64KibAndNeverSplitsUtf8) {
  // 65535 ASCII bytes then "é" (2 bytes): the 64 KiB cut falls inside the sequence.
  std::string body = std::string(65535, 'a') + "\xC3\xA9" + std::string(1000, 'b');
  json::object doc = JsonObject(wrap_unparseable(body, "a", "why"));
  EXPECT_EQ(doc.at("payload").at("raw").as_string(), std::string(65535, 'a'));

  std::string exact = std::string(65534, 'a') + "\xC3\xA9" + "tail";
  doc = JsonObject(wrap_unparseable(exact, "a", "why"));
  EXPECT_EQ(doc.at("payload").at("raw").as_string(), std::string(65534, 'a') + "\xC3\xA9");

  // A 4-byte sequence cut after its second byte.
  std::string emoji = std::string(65534, 'a') + "\xF0\x9F\x98\x80";
  doc = JsonObject(wrap_unparseable(emoji, "a", "why"));
  EXPECT_EQ(doc.at("payload").at("raw").as_string(), std::string(65534, 'a'));
}

TEST(WrapUnparseable, InvalidUtf8IsReplacedSoTheOutputIsValidJson) {
  std::string body = "{\"id\": \"\xFF\xFE\", \xC3\x28 \xED\xA0\x80}";
  std::string out = wrap_unparseable(body, "a", "body is not valid JSON: bad \xFF utf-8");
  json::object doc = JsonObject(out);  // Boost.JSON rejects invalid UTF-8 too
  EXPECT_EQ(MustParse(out).current_actor(), "a");
  EXPECT_NE(std::string(doc.at("payload").at("raw").as_string()).find("\xEF\xBF\xBD"),
            std::string::npos);
}

TEST(BuildOutput, HundredMegabytePayloadIsByteIdentical) {
  // ~100 MB of records with numbers, escapes and odd spacing.
  std::string payload;
  payload.reserve(100u << 20);
  payload += "[";
  const std::string record =
      R"({"n": 123456789012345678901234567890, "f":1.0e+300 , "s":"caf\u00e9 \ud83d\ude00 \"q\"", "e": {}},)"
      "\n";
  while (payload.size() + record.size() < (100u << 20)) payload += record;
  payload += "0]";
  ASSERT_GE(payload.size(), 99u << 20);

  std::string input = R"({"id":"big","route":{"actors":["a","b"]},"payload":)" + payload + "}";
  Envelope in = MustParse(input);
  ASSERT_EQ(in.payload_raw.size(), payload.size());
  EXPECT_TRUE(in.payload_raw == payload);

  std::string response =
      R"([{"route":{"actors":["a","b"],"current":1},"payload":)" + payload + "}]";
  auto items = MustParseResponse(response);
  ASSERT_EQ(items.size(), 1u);
  std::string out = build_output(in, 0, items[0]);
  EXPECT_EQ(
      out.size(),
      payload.size() +
          std::string_view(R"({"id":"big","route":{"actors":["a","b"],"current":1},"payload":})")
              .size());
  Envelope parsed = MustParse(out);
  ASSERT_EQ(parsed.payload_raw.size(), payload.size());
  EXPECT_TRUE(parsed.payload_raw == payload);
}

}  // namespace
}  // namespace asya::envelope

namespace asya::envelope {
namespace {

TEST(WithStringHeaders, ReplacesInPlaceAppendsNewOnesAndKeepsEveryOtherByte) {
  const std::string body = kInput;
  std::string out = with_string_headers(MustParse(body), body,
                                        {{"traceparent", "00-new"}, {"asya-sent-at", "T"}});
  EXPECT_EQ(
      out,
      R"({"id":"E","parent_id":"P","route":{"actors":["prep","infer","post"],"current":1,"metadata":{"job":"j1"}},)"
      R"("headers":{"traceparent":"00-new","priority":"high","asya-sent-at":"T"},"deadline":"2030-01-01T00:00:00Z",)"
      R"("zeta":{"keep":[1,2]},"version":3,"payload":{"in":true}})");
}

TEST(StringHeaders, ReadsPlainStringValuesByName) {
  const std::string body =
      R"({"id":"E","route":{"actors":["a"]},"headers":{"traceparent":"00-x","n":3,"e":"a\"b"},"payload":1})";
  auto values = string_headers(MustParse(body), {"traceparent", "n", "e", "absent"});
  ASSERT_EQ(values.size(), 4u);
  EXPECT_EQ(values[0], "00-x");
  EXPECT_FALSE(values[1]);
  EXPECT_FALSE(values[2]);
  EXPECT_FALSE(values[3]);
}

TEST(WithStringHeaders, AddsAHeadersObjectWhenThereIsNone) {
  const std::string body = R"({"id":"E","route":{"actors":["a"]},"payload":[1, 2.50]})";
  std::string out = with_string_headers(MustParse(body), body, {{"traceparent", "00-\"q\""}});
  Envelope parsed = MustParse(out);
  EXPECT_EQ(parsed.headers_raw, R"({"traceparent":"00-\"q\""})");
  EXPECT_EQ(parsed.payload_raw, "[1, 2.50]");
  EXPECT_EQ(parsed.id, "E");
}

}  // namespace
}  // namespace asya::envelope
