#include "envelope/new_envelope.hpp"

#include <gtest/gtest.h>

#include "envelope/envelope.hpp"

namespace asya::envelope {
namespace {
using namespace std::chrono_literals;

TEST(NewEnvelope, GatewayShapeParsesBackWithEveryFieldAndThePayloadByteForByte) {
  NewEnvelope spec;
  spec.id = "job-1";
  spec.actors = {"prep", "infer"};
  spec.route_metadata_json = R"({"job_id":"job-1","tool":"ask"})";
  spec.headers = {{"traceparent", "00-abc-def-01"}};
  const auto deadline = std::chrono::sys_days{std::chrono::year{2030} / 1 / 2} + 3h + 250ms;
  spec.deadline = deadline;
  spec.payload_json = R"({"n": 1.50, "z": 1, "a": "\u00e9"})";
  auto text = new_envelope(spec);
  ASSERT_TRUE(text.ok()) << text.error().message;
  EXPECT_EQ(
      *text,
      R"({"id":"job-1","route":{"actors":["prep","infer"],"current":0,)"
      R"("metadata":{"job_id":"job-1","tool":"ask"}},"headers":{"traceparent":"00-abc-def-01"},)"
      R"("deadline":"2030-01-02T03:00:00.250Z","payload":{"n": 1.50, "z": 1, "a": "\u00e9"}})");
  auto parsed = parse(*text);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->id, "job-1");
  EXPECT_EQ(parsed->actors, (std::vector<std::string>{"prep", "infer"}));
  EXPECT_EQ(parsed->current, 0u);
  EXPECT_EQ(parsed->payload_raw, spec.payload_json);
  EXPECT_EQ(*parse_rfc3339(*parsed->deadline), deadline);
}

TEST(NewEnvelope, CliShapeLeavesOutEmptyPartsAndAnEmptyIdGetsAUuid) {
  NewEnvelope spec;
  spec.actors = {"echo"};
  spec.payload_json = "\"hi\"";
  auto text = new_envelope(spec);
  ASSERT_TRUE(text.ok()) << text.error().message;
  auto parsed = parse(*text);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->id.size(), 36u);
  EXPECT_EQ(parsed->id[14], '4');
  EXPECT_TRUE(parsed->headers_raw.empty());
  EXPECT_TRUE(parsed->route_metadata_raw.empty());
  EXPECT_FALSE(parsed->deadline.has_value());
  std::string expected = R"({"id":")";  // appended, not "a" + b: GCC 12 -Wrestrict false alarm
  expected += parsed->id;
  expected += R"(","route":{"actors":["echo"],"current":0},"payload":"hi"})";
  EXPECT_EQ(*text, expected);
  EXPECT_NE(*new_envelope(spec), *text);  // a new id each time
}

TEST(NewEnvelope, SentAtIsTheReservedHeaderInMicroseconds) {
  NewEnvelope spec;
  spec.id = "e";
  spec.actors = {"echo"};
  spec.payload_json = "1";
  spec.sent_at = std::chrono::sys_days{std::chrono::year{2030} / 1 / 2} + 3h + 250ms + 7us;
  EXPECT_EQ(*new_envelope(spec), R"({"id":"e","route":{"actors":["echo"],"current":0},)"
                                 R"("headers":{"asya-sent-at":"2030-01-02T03:00:00.250007Z"},)"
                                 R"("payload":1})");
  spec.headers = {{"traceparent", "t"}};
  EXPECT_NE(new_envelope(spec)->find(R"({"traceparent":"t","asya-sent-at":)"), std::string::npos);
}

TEST(NewEnvelope, HeaderKeysAndValuesAreEscaped) {
  NewEnvelope spec;
  spec.id = "a\"b";
  spec.actors = {"x"};
  spec.headers = {{"k\"1", "line\nbreak"}};
  spec.payload_json = "null";
  auto text = new_envelope(spec);
  ASSERT_TRUE(text.ok()) << text.error().message;
  auto parsed = parse(*text);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->id, "a\"b");
  EXPECT_EQ(parsed->headers_raw, R"({"k\"1":"line\nbreak"})");
}

NewEnvelope valid_spec() {
  return NewEnvelope{.id = std::string("i"),
                     .actors = {"ok"},
                     .route_metadata_json = {},
                     .headers = {},
                     .sent_at = std::nullopt,
                     .deadline = std::nullopt,
                     .payload_json = "1"};
}

TEST(NewEnvelope, RefusesWhatNoValidEnvelopeHoldsNamingTheField) {
  ASSERT_TRUE(new_envelope(valid_spec()).ok());
  NewEnvelope spec = valid_spec();
  spec.actors = {"ok", "Bad_Name"};
  auto bad_actor = new_envelope(spec);
  ASSERT_FALSE(bad_actor.ok());
  EXPECT_EQ(bad_actor.error().message.rfind(
                "route.actors[1]: \"Bad_Name\" is not a valid actor name (lowercase", 0),
            0u)
      << bad_actor.error().message;
  spec = valid_spec();
  spec.actors.clear();
  EXPECT_EQ(new_envelope(spec).error().message,
            "route.actors: expected at least one actor, got an empty route");
  spec = valid_spec();
  spec.id.resize(257, 'i');
  EXPECT_EQ(new_envelope(spec).error().message,
            "id: expected at most 256 bytes, got 257 bytes; use a shorter id");
  spec = valid_spec();
  spec.headers.emplace_back("asya-attempt", "2");
  EXPECT_EQ(new_envelope(spec).error().message,
            "headers.asya-attempt: keys starting with asya- are reserved for the system");
  spec = valid_spec();
  spec.payload_json = {};
  EXPECT_EQ(new_envelope(spec).error().message, "payload: expected a JSON value, got nothing");
}

}  // namespace
}  // namespace asya::envelope
