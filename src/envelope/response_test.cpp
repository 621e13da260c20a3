#include "envelope/response.hpp"

#include <gtest/gtest.h>

#include <string>

#include "envelope/envelope.hpp"

namespace asya::envelope {
namespace {

std::string ErrorOf(std::string_view body) {
  auto result = parse_response(body);
  EXPECT_FALSE(result.ok()) << "accepted: " << body;
  return result.ok() ? std::string() : result.error().message;
}

TEST(ParseResponse, OneResultKeepsRawFieldsAndParsesTheRoute) {
  std::string body =
      R"([{"payload": {"b":2, "a":1.50}, "route": {"actors":["a","b"],"current":1}, "headers": {"h":"v"}}])";
  auto result = parse_response(body);
  ASSERT_TRUE(result.ok()) << result.error().message;
  ASSERT_EQ(result->size(), 1u);
  const ResponseItem& item = (*result)[0];
  EXPECT_FALSE(item.is_error);
  EXPECT_EQ(item.payload_raw, R"({"b":2, "a":1.50})");
  EXPECT_EQ(item.route_raw, R"({"actors":["a","b"],"current":1})");
  EXPECT_EQ(item.headers_raw, R"({"h":"v"})");
  EXPECT_EQ(item.actors, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(item.current, 1u);
  EXPECT_GE(item.payload_raw.data(), body.data());
  EXPECT_LE(item.payload_raw.data() + item.payload_raw.size(), body.data() + body.size());
}

TEST(ParseResponse, FanOutKeepsOrderAndHeadersAreOptional) {
  auto result = parse_response(
      R"([{"payload":1,"route":{"actors":["a"],"current":1}},{"payload":2,"route":{"actors":["a","b"],"current":1}},{"route":{"actors":["c"]},"payload":[3]}])");
  ASSERT_TRUE(result.ok()) << result.error().message;
  ASSERT_EQ(result->size(), 3u);
  EXPECT_EQ((*result)[0].payload_raw, "1");
  EXPECT_EQ((*result)[1].payload_raw, "2");
  EXPECT_EQ((*result)[2].payload_raw, "[3]");
  EXPECT_EQ((*result)[2].current, 0u);
  for (const auto& item : *result) EXPECT_TRUE(item.headers_raw.empty());
}

TEST(ParseResponse, EmptyArrayIsNoOutputs) {
  auto result = parse_response(" [ ] ");
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_TRUE(result->empty());
}

TEST(ParseResponse, ErrorElementWithDetails) {
  std::string body =
      R"([{"error":"processing_error","details":{"message":"bad \"input\"","type":"ValueError","traceback":"line 1\nline 2"}}])";
  auto result = parse_response(body);
  ASSERT_TRUE(result.ok()) << result.error().message;
  ASSERT_EQ(result->size(), 1u);
  const ResponseItem& item = (*result)[0];
  EXPECT_TRUE(item.is_error);
  EXPECT_EQ(item.error_code, "processing_error");
  EXPECT_EQ(item.error_message, "bad \"input\"");
  EXPECT_EQ(item.error_type, "ValueError");
  EXPECT_EQ(item.error_traceback, "line 1\nline 2");
  EXPECT_EQ(item.details_raw,
            R"({"message":"bad \"input\"","type":"ValueError","traceback":"line 1\nline 2"})");
}

TEST(ParseResponse, ErrorWithoutDetailsAndNonStringDetailFields) {
  auto result = parse_response(
      R"([{"error":"msg_parsing_error"},{"error":"x","details":{"message":{"k":1},"type":3}},{"error":"y","details":"text"}])");
  ASSERT_TRUE(result.ok()) << result.error().message;
  ASSERT_EQ(result->size(), 3u);
  EXPECT_TRUE((*result)[0].is_error);
  EXPECT_EQ((*result)[0].error_message, "");
  EXPECT_TRUE((*result)[0].details_raw.empty());
  EXPECT_EQ((*result)[1].error_message, R"({"k":1})");
  EXPECT_EQ((*result)[1].error_type, "3");
  EXPECT_EQ((*result)[2].details_raw, "\"text\"");
}

TEST(ParseResponse, AnElementIsAnErrorIffItHasANonEmptyErrorString) {
  auto result = parse_response(
      R"([{"error":"processing_error","payload":1,"route":{"actors":["BAD"]}},{"error":"","payload":2,"route":{"actors":["a"]}}])");
  ASSERT_TRUE(result.ok()) << result.error().message;
  ASSERT_EQ(result->size(), 2u);
  EXPECT_TRUE((*result)[0].is_error);
  EXPECT_FALSE((*result)[1].is_error);
  EXPECT_EQ((*result)[1].payload_raw, "2");
}

// Issue 11 item 3: junk after a valid answer was reported as "ended early ... near byte 0".
TEST(ParseResponseErrors, TrailingDataAfterAValidAnswerIsNamedWithItsPosition) {
  const std::string answer = R"([{"payload":{"s":"a]\"}"},"route":{"actors":["a"],"current":1}}])";
  EXPECT_EQ(ErrorOf(answer + "junk!"),
            "response has 5 bytes of trailing data after the JSON value at byte " +
                std::to_string(answer.size()) + ": junk!");
  EXPECT_EQ(ErrorOf(answer + " \n x"),
            "response has 4 bytes of trailing data after the JSON value at byte " +
                std::to_string(answer.size()) + ": x");
  // Whitespace after the value is fine; an invalid value before junk keeps the parser's message.
  EXPECT_TRUE(parse_response(answer + " \n").ok());
  EXPECT_EQ(ErrorOf("[1,}]x").rfind("response is not valid JSON", 0), 0u) << ErrorOf("[1,}]x");
}

TEST(ParseResponseErrors, NamesWhatIsWrong) {
  EXPECT_EQ(ErrorOf("not json").rfind("response is not valid JSON", 0), 0u) << ErrorOf("not json");
  EXPECT_EQ(ErrorOf("[1,").rfind("response is not valid JSON", 0), 0u) << ErrorOf("[1,");
  EXPECT_EQ(ErrorOf("[] []"),
            "response has 3 bytes of trailing data after the JSON value at byte 2: []");
  EXPECT_EQ(ErrorOf(R"({"payload":1})"),
            R"(response: expected a JSON array of results or errors, got {"payload":1})");
  EXPECT_EQ(ErrorOf("[42]").rfind("response element 0: expected an object", 0), 0u);
  EXPECT_EQ(ErrorOf(R"([{"route":{"actors":["a"]}}])"),
            R"(response element 0: a result needs "payload" and "route"; "payload" is missing)");
  EXPECT_EQ(ErrorOf(R"([{"payload":1,"route":{"actors":["a"]}},{"payload":1}])"),
            R"(response element 1: a result needs "payload" and "route"; "route" is missing)");
  EXPECT_EQ(
      ErrorOf(R"([{"error":null,"payload":1}])"),
      R"(response element 0: a result needs "payload" and "route"; "route" is missing (its "error" is null, not a non-empty string))");
  EXPECT_EQ(ErrorOf(R"([{"payload":1,"route":{"actors":["a","b"],"current":3}}])"),
            "response element 0: route.current: expected an integer from 0 to 2, got 3");
  EXPECT_EQ(ErrorOf(R"([{"payload":1,"route":{"actors":["happy-end"]}}])")
                .rfind(R"(response element 0: route.actors[0]: "happy-end" is an end actor)", 0),
            0u);
  EXPECT_EQ(
      ErrorOf(R"([{"payload":1,"route":"a"}])"),
      R"(response element 0: route: expected an object {"actors": [...], "current": n}, got "a")");
  EXPECT_EQ(ErrorOf(R"([{"payload":1,"route":{"actors":["a"]},"headers":[1]}])"),
            "response element 0: headers: expected an object, got [1]");
  EXPECT_EQ(ErrorOf(R"([{"payload":1,"payload":2,"route":{"actors":["a"]}}])"),
            "response element 0: payload: duplicate key (each field may appear only once)");
}

TEST(ParseResponse, PayloadUnchangedStandsForThePayload) {
  auto result = parse_response(
      R"([{"payload_unchanged":true,"route":{"actors":["a","b"],"current":1},"fanout":true},{"payload":2,"payload_unchanged":false,"route":{"actors":["a"],"current":1}}])");
  ASSERT_TRUE(result.ok()) << result.error().message;
  ASSERT_EQ(result->size(), 2u);
  EXPECT_TRUE((*result)[0].payload_unchanged);
  EXPECT_TRUE((*result)[0].payload_raw.empty());
  EXPECT_TRUE((*result)[0].fanout);
  EXPECT_EQ((*result)[0].current, 1u);
  EXPECT_FALSE((*result)[1].payload_unchanged);
  EXPECT_EQ((*result)[1].payload_raw, "2");
  // An error element's other fields do not matter.
  auto error = parse_response(R"([{"error":"processing_error","payload_unchanged":"x"}])");
  ASSERT_TRUE(error.ok()) << error.error().message;
  EXPECT_FALSE((*error)[0].payload_unchanged);
}

TEST(ParseResponseErrors, PayloadUnchangedBothNeitherOrNotABoolean) {
  EXPECT_EQ(ErrorOf(R"([{"payload":1,"payload_unchanged":true,"route":{"actors":["a"]}}])"),
            R"(response element 0: has both "payload" and "payload_unchanged": true; a result )"
            R"(carries exactly one of them (the payload, or true when it is the request's own))");
  EXPECT_EQ(
      ErrorOf(R"([{"payload_unchanged":false,"route":{"actors":["a"]}}])"),
      R"(response element 0: a result needs "payload" and "route"; "payload" is missing )"
      R"(("payload_unchanged": false does not stand for it; true means the request's payload))");
  EXPECT_EQ(ErrorOf(R"([{"route":{"actors":["a"]}}])"),
            R"(response element 0: a result needs "payload" and "route"; "payload" is missing)");
  EXPECT_EQ(ErrorOf(R"([{"payload_unchanged":1,"route":{"actors":["a"]}}])"),
            "response element 0: payload_unchanged: expected true or false, got 1");
  EXPECT_EQ(ErrorOf(R"([{"payload_unchanged":"true","route":{"actors":["a"]}}])"),
            R"(response element 0: payload_unchanged: expected true or false, got "true")");
  EXPECT_EQ(ErrorOf(R"([{"payload_unchanged":true}])"),
            R"(response element 0: a result needs "payload" and "route"; "route" is missing)");
  EXPECT_EQ(
      ErrorOf(R"([{"payload_unchanged":true,"payload_unchanged":true,"route":{"actors":["a"]}}])"),
      "response element 0: payload_unchanged: duplicate key (each field may appear only once)");
}

// parse_response_padded iterates the body in place (the bytes after it only need to be readable)
// and gives what parse_response gives, errors included.
TEST(ParseResponsePadded, SameAsParseResponse) {
  const std::string bodies[] = {
      R"([{"payload": {"b":2, "a":1.50}, "route": {"actors":["a","b"],"current":1}, "headers": {"h":"v"}}])",
      R"([{"payload":1,"route":{"actors":["a"]}},{"error":"processing_error","details":{"message":"m"}}])",
      "[]",
      "[1,",
      R"([{"payload":12)",
      "not json",
      R"([{"payload":1,"route":{"actors":["a","b"],"current":3}}])",
  };
  for (const std::string& text : bodies) {
    std::string storage = text + std::string(kParsePadding, '9');
    std::string_view body(storage.data(), text.size());
    auto expected = parse_response(text);
    auto got = parse_response_padded(body);
    ASSERT_EQ(got.ok(), expected.ok()) << text;
    if (!expected.ok()) {
      EXPECT_EQ(got.error().message, expected.error().message) << text;
      continue;
    }
    ASSERT_EQ(got->size(), expected->size());
    for (std::size_t i = 0; i < got->size(); ++i) {
      const ResponseItem& a = (*got)[i];
      const ResponseItem& b = (*expected)[i];
      EXPECT_EQ(a.is_error, b.is_error);
      EXPECT_EQ(a.payload_raw, b.payload_raw);
      EXPECT_EQ(a.route_raw, b.route_raw);
      EXPECT_EQ(a.headers_raw, b.headers_raw);
      EXPECT_EQ(a.actors, b.actors);
      EXPECT_EQ(a.current, b.current);
      EXPECT_EQ(a.error_code, b.error_code);
      EXPECT_EQ(a.error_message, b.error_message);
      if (!a.payload_raw.empty()) {
        EXPECT_GE(a.payload_raw.data(), body.data());
        EXPECT_LE(a.payload_raw.data() + a.payload_raw.size(), body.data() + body.size());
      }
    }
  }
}

}  // namespace
}  // namespace asya::envelope
