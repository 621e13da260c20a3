#include "envelope/envelope.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>

namespace asya::envelope {
namespace {

using namespace std::chrono_literals;

std::string Body(std::string_view extra_fields = "",
                 std::string_view route = R"({"actors":["a","b"]})",
                 std::string_view payload = R"({"x":1})") {
  std::string body = R"({"id":"e1","route":)";
  body += route;
  if (!extra_fields.empty()) {
    body += ',';
    body += extra_fields;
  }
  body += R"(,"payload":)";
  body += payload;
  body += '}';
  return body;
}

bool PointsInto(std::string_view view, std::string_view body) {
  return view.data() >= body.data() && view.data() + view.size() <= body.data() + body.size();
}

std::string ErrorOf(std::string_view body) {
  auto result = parse(body);
  EXPECT_FALSE(result.ok()) << "accepted: " << body;
  return result.ok() ? std::string() : result.error().message;
}

TEST(Parse, MinimalEnvelopeDefaultsCurrentToZero) {
  std::string body = Body();
  auto result = parse(body);
  ASSERT_TRUE(result.ok()) << result.error().message;
  const Envelope& e = *result;
  EXPECT_EQ(e.id, "e1");
  EXPECT_EQ(e.id_raw, "\"e1\"");
  EXPECT_EQ(e.actors, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(e.current, 0u);
  EXPECT_EQ(e.current_actor(), "a");
  EXPECT_FALSE(e.route_done());
  EXPECT_EQ(e.route_raw, R"({"actors":["a","b"]})");
  EXPECT_EQ(e.payload_raw, R"({"x":1})");
  EXPECT_TRUE(e.headers_raw.empty());
  EXPECT_TRUE(e.route_metadata_raw.empty());
  EXPECT_FALSE(e.parent_id.has_value());
  EXPECT_TRUE(e.parent_id_raw.empty());
  EXPECT_FALSE(e.deadline.has_value());
  EXPECT_TRUE(e.unknown_fields.empty());
}

TEST(Parse, AllFieldsAreViewsIntoTheOriginalBody) {
  std::string body =
      "{ \"id\" : \"caf\\u00e9\" ,\n \"parent_id\": \"p-1\", \"route\" : {\"actors\": [\"prep\", "
      "\"infer\", \"post\"], \"current\": 1, \"metadata\": {\"job\": \"j\"}} , \"headers\": "
      "{\"traceparent\": \"00-abc\"}, \"deadline\": \"2030-01-01T00:00:00Z\", \"payload\" :  "
      "[1, 2 ,3]  \t}";
  auto result = parse(body);
  ASSERT_TRUE(result.ok()) << result.error().message;
  const Envelope& e = *result;
  EXPECT_EQ(e.id, "caf\xC3\xA9");
  EXPECT_EQ(e.id_raw, "\"caf\\u00e9\"");
  EXPECT_EQ(e.parent_id, "p-1");
  EXPECT_EQ(e.parent_id_raw, "\"p-1\"");
  EXPECT_EQ(e.current, 1u);
  EXPECT_EQ(e.current_actor(), "infer");
  EXPECT_EQ(e.route_raw,
            R"({"actors": ["prep", "infer", "post"], "current": 1, "metadata": {"job": "j"}})");
  EXPECT_EQ(e.route_metadata_raw, R"({"job": "j"})");
  EXPECT_EQ(e.headers_raw, R"({"traceparent": "00-abc"})");
  EXPECT_EQ(e.deadline, "2030-01-01T00:00:00Z");
  EXPECT_EQ(e.deadline_raw, "\"2030-01-01T00:00:00Z\"");
  EXPECT_EQ(e.payload_raw, "[1, 2 ,3]");
  for (std::string_view view : {e.id_raw, e.parent_id_raw, e.route_raw, e.route_metadata_raw,
                                e.headers_raw, e.deadline_raw, e.payload_raw}) {
    EXPECT_TRUE(PointsInto(view, body)) << view;
  }
}

TEST(Parse, PayloadSurvivesByteForByte) {
  const std::string payloads[] = {
      R"({ "z" : 1 ,  "a":[ 123456789012345678901234567890 , 1.0e+300, -0.0, 1E-7 ] })",
      R"("caf\u00e9 \ud83d\ude00 \"quoted\" \\ \/ \n")",
      "\"raw utf-8: \xC3\xA9 \xF0\x9F\x98\x80\"",
      "123456789012345678901234567890",
      "1.0e+300",
      "-12.5E-3",
      "true",
      "false",
      "null",
      "[]",
      "{}",
      "[{\"b\":2,\"a\":1},\n\t{\"a\" : {\"deep\":[[[]]]}}]",
  };
  for (const std::string& payload : payloads) {
    std::string body = Body("", R"({"actors":["a"]})", payload);
    auto result = parse(body);
    ASSERT_TRUE(result.ok()) << payload << ": " << result.error().message;
    EXPECT_EQ(result->payload_raw, payload);
    EXPECT_TRUE(PointsInto(result->payload_raw, body));
  }
}

TEST(Parse, SyntaxInsideAPayloadContainerIsPassedOnUnchecked) {
  // PROTOCOL §1: the sidecar never parses the payload; the runtime rejects it if it is bad.
  for (std::string payload : {"[1 2]", "{\"a\":1,}", "[tru]"}) {
    std::string body = Body("", R"({"actors":["a"]})", payload);
    auto result = parse(body);
    ASSERT_TRUE(result.ok()) << payload << ": " << result.error().message;
    EXPECT_EQ(result->payload_raw, payload);
  }
  // A scalar payload is a single token and is checked.
  EXPECT_EQ(ErrorOf(Body("", R"({"actors":["a"]})", "tru")).rfind("body is not valid JSON", 0), 0u);
}

TEST(Parse, PayloadAsLastFieldWithTrailingWhitespaceIsTrimmed) {
  std::string body = "{\"payload\": 42 \n\n, \"id\":\"x\", \"route\":{\"actors\":[\"a\"]}}\n";
  auto result = parse(body);
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->payload_raw, "42");
}

TEST(Parse, UnknownFieldsAreKeptRawInOrder) {
  std::string body = Body(R"("zeta": {"k": [1, 2]}, "version" : 3, "alpha":"x\"y")");
  auto result = parse(body);
  ASSERT_TRUE(result.ok()) << result.error().message;
  ASSERT_EQ(result->unknown_fields.size(), 3u);
  EXPECT_EQ(result->unknown_fields[0].first, "\"zeta\"");
  EXPECT_EQ(result->unknown_fields[0].second, R"({"k": [1, 2]})");
  EXPECT_EQ(result->unknown_fields[1].first, "\"version\"");
  EXPECT_EQ(result->unknown_fields[1].second, "3");
  EXPECT_EQ(result->unknown_fields[2].first, "\"alpha\"");
  EXPECT_EQ(result->unknown_fields[2].second, R"("x\"y")");
}

TEST(Parse, EscapedKeysKeepTheirRawText) {
  std::string body = Body(R"("we\"ird\\key": 1)");
  auto result = parse(body);
  ASSERT_TRUE(result.ok()) << result.error().message;
  ASSERT_EQ(result->unknown_fields.size(), 1u);
  EXPECT_EQ(result->unknown_fields[0].first, R"("we\"ird\\key")");
}

TEST(Parse, CurrentEqualToLengthMeansRouteDone) {
  auto result = parse(Body("", R"({"actors":["a","b"],"current":2})"));
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_TRUE(result->route_done());
  EXPECT_EQ(result->current_actor(), "");
}

TEST(Parse, IdOfExactly256BytesIsAccepted) {
  std::string body =
      R"({"id":")" + std::string(256, 'x') + R"(","route":{"actors":["a"]},"payload":1})";
  auto result = parse(body);
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->id.size(), 256u);
}

TEST(Parse, ActorNameOf63CharsIsAccepted) {
  std::string name(63, 'a');
  EXPECT_TRUE(parse(Body("", R"({"actors":[")" + name + R"("]})")).ok());
}

TEST(ParseErrors, BodyNotJson) {
  EXPECT_EQ(ErrorOf("nope").rfind("body is not valid JSON", 0), 0u) << ErrorOf("nope");
  EXPECT_EQ(ErrorOf("").rfind("body is not valid JSON", 0), 0u) << ErrorOf("");
  EXPECT_EQ(ErrorOf("{\"id\":\"a\"").rfind("body is not valid JSON", 0), 0u)
      << ErrorOf("{\"id\":\"a\"");
  EXPECT_EQ(ErrorOf(R"({"id":"a",})").rfind("body is not valid JSON", 0), 0u);
}

TEST(ParseErrors, BodyNotAnObject) {
  EXPECT_EQ(ErrorOf("[1,2]"), "body: expected a JSON object (an envelope), got [1,2]");
  EXPECT_EQ(ErrorOf("42"), "body: expected a JSON object (an envelope), got 42");
}

TEST(ParseErrors, InvalidUtf8) {
  std::string body = Body("", R"({"actors":["a"]})", "\"bad \xC3\x28 byte\"");
  EXPECT_EQ(ErrorOf(body).rfind("body is not valid JSON", 0), 0u) << ErrorOf(body);
  std::string overlong = Body("", R"({"actors":["a"]})", "\"\xC0\xAF\"");
  EXPECT_EQ(ErrorOf(overlong).rfind("body is not valid JSON", 0), 0u);
}

TEST(ParseErrors, TrailingContentAfterTheObject) {
  std::string body = Body() + " {}";
  EXPECT_EQ(ErrorOf(body).rfind("body is not valid JSON", 0), 0u) << ErrorOf(body);
}

TEST(ParseErrors, Id) {
  const std::string expected = "id: expected a non-empty string of at most 256 bytes, got ";
  EXPECT_EQ(ErrorOf(R"({"id":42,"route":{"actors":["a"]},"payload":1})"), expected + "42");
  EXPECT_EQ(ErrorOf(R"({"id":"","route":{"actors":["a"]},"payload":1})"), expected + "\"\"");
  EXPECT_EQ(ErrorOf(R"({"id":null,"route":{"actors":["a"]},"payload":1})"), expected + "null");
  std::string long_id =
      R"({"id":")" + std::string(257, 'x') + R"(","route":{"actors":["a"]},"payload":1})";
  EXPECT_EQ(ErrorOf(long_id), expected + "a string of 257 bytes");
  EXPECT_EQ(ErrorOf(R"({"route":{"actors":["a"]},"payload":1})"),
            "id: missing (expected a non-empty string of at most 256 bytes)");
}

TEST(ParseErrors, Route) {
  EXPECT_EQ(ErrorOf(R"({"id":"a","payload":1})").rfind("route: missing", 0), 0u);
  EXPECT_EQ(ErrorOf(Body("", R"("prep")")),
            R"(route: expected an object {"actors": [...], "current": n}, got "prep")");
  EXPECT_EQ(ErrorOf(Body("", R"({"current":0})")).rfind("route.actors: missing", 0), 0u);
  EXPECT_EQ(ErrorOf(Body("", R"({"actors":[]})")),
            "route.actors: expected a non-empty array of actor names "
            "([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 chars), got []");
  EXPECT_EQ(ErrorOf(Body("", R"({"actors":"a"})")).rfind("route.actors: expected", 0), 0u);
  EXPECT_EQ(ErrorOf(Body("", R"({"actors":["a","Bad_Name"]})")),
            "route.actors[1]: expected an actor name ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 "
            "chars), got \"Bad_Name\"");
  EXPECT_EQ(ErrorOf(Body("", R"({"actors":[7]})")).rfind("route.actors[0]: expected", 0), 0u);
  EXPECT_EQ(ErrorOf(Body("", R"({"actors":["-a"]})")).rfind("route.actors[0]: expected", 0), 0u);
  EXPECT_EQ(ErrorOf(Body("", R"({"actors":[")" + std::string(64, 'a') + R"("]})"))
                .rfind("route.actors[0]: expected", 0),
            0u);
  EXPECT_EQ(ErrorOf(Body("", R"({"actors":["a","happy-end"]})"))
                .rfind(R"(route.actors[1]: "happy-end" is an end actor)", 0),
            0u);
  EXPECT_EQ(ErrorOf(Body("", R"({"actors":["error-end"]})"))
                .rfind(R"(route.actors[0]: "error-end" is an end actor)", 0),
            0u);
  EXPECT_EQ(ErrorOf(Body("", R"({"actors":["a","b","c"],"current":7})")),
            "route.current: expected an integer from 0 to 3, got 7");
  EXPECT_EQ(ErrorOf(Body("", R"({"actors":["a"],"current":-1})")),
            "route.current: expected an integer from 0 to 1, got -1");
  EXPECT_EQ(ErrorOf(Body("", R"({"actors":["a"],"current":1.0})")),
            "route.current: expected an integer from 0 to 1, got 1.0");
  EXPECT_EQ(ErrorOf(Body("", R"({"actors":["a"],"current":"0"})")),
            "route.current: expected an integer from 0 to 1, got \"0\"");
  EXPECT_EQ(ErrorOf(Body("", R"({"actors":["a"],"current":99999999999999999999999})")),
            "route.current: expected an integer from 0 to 1, got 99999999999999999999999");
  EXPECT_EQ(ErrorOf(Body("", R"({"actors":["a"],"metadata":[1]})")),
            "route.metadata: expected an object, got [1]");
}

TEST(ParseErrors, OtherFields) {
  EXPECT_EQ(ErrorOf(Body(R"("headers":["x"])")), R"(headers: expected an object, got ["x"])");
  EXPECT_EQ(
      ErrorOf(Body(R"("deadline":"tomorrow")")),
      R"(deadline: expected an RFC 3339 time such as "2026-11-29T12:00:00Z", got "tomorrow")");
  EXPECT_EQ(
      ErrorOf(Body(R"("deadline":1700000000)")),
      R"(deadline: expected an RFC 3339 time such as "2026-11-29T12:00:00Z", got 1700000000)");
  EXPECT_EQ(ErrorOf(Body(R"("parent_id":5)")), "parent_id: expected a string, got 5");
  EXPECT_EQ(ErrorOf(R"({"id":"a","route":{"actors":["a"]}})"),
            "payload: missing (expected any JSON value)");
}

TEST(ParseErrors, DuplicateKeys) {
  EXPECT_EQ(ErrorOf(R"({"id":"a","id":"b","route":{"actors":["a"]},"payload":1})"),
            "id: duplicate key (each field may appear only once)");
  // An escaped spelling of the same key is the same key.
  EXPECT_EQ(ErrorOf(R"({"id":"a","\u0069d":"b","route":{"actors":["a"]},"payload":1})"),
            "id: duplicate key (each field may appear only once)");
  EXPECT_EQ(ErrorOf(Body(R"("payload":2)")),
            "payload: duplicate key (each field may appear only once)");
  EXPECT_EQ(ErrorOf(Body(R"("x":1,"y":2,"x":3)")),
            "x: duplicate key (each field may appear only once)");
  std::string many;  // more keys than the duplicate check keeps inline
  for (int i = 0; i < 20; ++i) many += "\"k" + std::to_string(i) + "\":1,";
  EXPECT_TRUE(parse(Body(many + R"("k20":1)")).ok());
  EXPECT_EQ(ErrorOf(Body(many + R"("k7":2)")),
            "k7: duplicate key (each field may appear only once)");
  EXPECT_EQ(ErrorOf(Body("", R"({"actors":["a"],"current":0,"current":1})")),
            "route.current: duplicate key (each field may appear only once)");
}

TEST(ParseErrors, LongValuesAreShortenedInMessages) {
  std::string message = ErrorOf(Body(R"("headers":")" + std::string(1000, 'h') + "\""));
  EXPECT_LT(message.size(), 200u);
  EXPECT_NE(message.find("(1002 bytes)"), std::string::npos) << message;
}

TEST(ValidActorName, FollowsTheDnsLabelRule) {
  EXPECT_TRUE(valid_actor_name("a"));
  EXPECT_TRUE(valid_actor_name("prep-2"));
  EXPECT_TRUE(valid_actor_name("0"));
  EXPECT_TRUE(valid_actor_name(std::string(63, 'z')));
  EXPECT_FALSE(valid_actor_name(""));
  EXPECT_FALSE(valid_actor_name(std::string(64, 'z')));
  EXPECT_FALSE(valid_actor_name("-a"));
  EXPECT_FALSE(valid_actor_name("a-"));
  EXPECT_FALSE(valid_actor_name("A"));
  EXPECT_FALSE(valid_actor_name("a_b"));
  EXPECT_FALSE(valid_actor_name("a.b"));
}

std::chrono::system_clock::time_point Utc(int y, unsigned m, unsigned d, int hh, int mm, int ss) {
  using namespace std::chrono;
  return sys_days{year{y} / month{m} / day{d}} + hours{hh} + minutes{mm} + seconds{ss};
}

TEST(Deadline, PassedAtOrAfterTheDeadlineOnly) {
  auto result = parse(Body(R"("deadline":"2030-01-01T00:00:00Z")"));
  ASSERT_TRUE(result.ok()) << result.error().message;
  auto deadline = Utc(2030, 1, 1, 0, 0, 0);
  EXPECT_FALSE(deadline_passed(*result, deadline - 1ms));
  EXPECT_TRUE(deadline_passed(*result, deadline));
  EXPECT_TRUE(deadline_passed(*result, deadline + 1h));

  auto without = parse(Body());
  ASSERT_TRUE(without.ok());
  EXPECT_FALSE(deadline_passed(*without, std::chrono::system_clock::time_point::max()));
}

TEST(JsonString, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(json_string("plain"), "\"plain\"");
  EXPECT_EQ(json_string("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(json_string("\n\r\t\b\f"), R"("\n\r\t\b\f")");
  EXPECT_EQ(json_string(std::string_view("\x01\x1f\0", 3)), R"("\u0001\u001f\u0000")");
  EXPECT_EQ(json_string("caf\xC3\xA9 \xF0\x9F\x98\x80"), "\"caf\xC3\xA9 \xF0\x9F\x98\x80\"");
}

TEST(JsonString, ReplacesInvalidUtf8) {
  EXPECT_EQ(json_string("a\xFF"
                        "b"),
            "\"a\xEF\xBF\xBD"
            "b\"");
  EXPECT_EQ(json_string("\xC3"), "\"\xEF\xBF\xBD\"");
  // A surrogate encoded in UTF-8 is invalid; a valid sequence after it is kept.
  EXPECT_EQ(json_string("\xED\xA0\x80\xC3\xA9"),
            "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xC3\xA9\"");
}

TEST(Parse, IsThreadSafe) {
  auto work = [](std::string id, bool* ok) {
    std::string body = R"({"id":")" + id + R"(","route":{"actors":["a"]},"payload":[1,2,3]})";
    *ok = true;
    for (int i = 0; i < 2000; ++i) {
      auto result = parse(body);
      if (!result.ok() || result->id != id || result->payload_raw != "[1,2,3]") *ok = false;
    }
  };
  bool ok1 = false, ok2 = false;
  std::thread t1(work, "first", &ok1), t2(work, "second-id", &ok2);
  t1.join();
  t2.join();
  EXPECT_TRUE(ok1);
  EXPECT_TRUE(ok2);
}

TEST(Parse, LargeBodyThenSmallBodyBothWork) {
  std::string payload = "\"" + std::string(20u << 20, 'p') + "\"";
  std::string big = Body("", R"({"actors":["a"]})", payload);
  auto first = parse(big);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->payload_raw.size(), payload.size());
  std::string small = Body();
  auto second = parse(small);
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second->payload_raw, R"({"x":1})");
}

// parse(body, padded_copy): the caller's padded copy is iterated in place (garbage after the text
// included: only its readability matters), the views point into `body`, and the results and error
// messages are the same as parse(body).
TEST(ParseWithPaddedCopy, SameResultsWithViewsIntoTheOriginal) {
  const std::string bodies[] = {
      Body(R"("parent_id":"p","headers":{"h":[1,2]},"deadline":"2030-01-01T00:00:00Z","x-y":7)",
           R"({"actors":["a","b"],"current":1,"metadata":{"m":1}})", R"("payload text")"),
      Body("", R"({"actors":["a"]})", "12345"),
      R"({"id":"e1","route":{"actors":["a"]},"payload":12)",
      R"({"id":"e1","route":{"actors":["a"]},"payload":tru)",
      "[1,2]",
      "",
      R"({"id":42,"route":{"actors":["a"]},"payload":1})",
  };
  for (const std::string& body : bodies) {
    std::string copy = body + std::string(kParsePadding, '7');
    auto expected = parse(body);
    auto got = parse(body, copy.data());
    ASSERT_EQ(got.ok(), expected.ok()) << body;
    if (!expected.ok()) {
      EXPECT_EQ(got.error().message, expected.error().message) << body;
      continue;
    }
    EXPECT_EQ(got->id, expected->id);
    EXPECT_EQ(got->parent_id, expected->parent_id);
    EXPECT_EQ(got->actors, expected->actors);
    EXPECT_EQ(got->current, expected->current);
    EXPECT_EQ(got->deadline, expected->deadline);
    for (std::string_view view : {got->id_raw, got->route_raw, got->route_metadata_raw,
                                  got->headers_raw, got->deadline_raw, got->payload_raw}) {
      if (!view.empty()) {
        EXPECT_TRUE(PointsInto(view, body)) << view;
      }
    }
    EXPECT_EQ(got->payload_raw, expected->payload_raw);
    EXPECT_EQ(got->headers_raw, expected->headers_raw);
    EXPECT_EQ(got->route_metadata_raw, expected->route_metadata_raw);
    EXPECT_EQ(got->unknown_fields, expected->unknown_fields);
    // The copy can be reused at once: nothing points into it.
    copy.assign(copy.size(), 'z');
    EXPECT_EQ(got->payload_raw, expected->payload_raw);
  }
}

}  // namespace
}  // namespace asya::envelope
