// Replaying what error-end stored: the error envelope of build_error() turns back into the
// envelope the failing actor received.
#include "envelope/replay.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

#include "envelope/build.hpp"

namespace asya::envelope {
namespace {

namespace json = boost::json;

// An input at actor "infer" (current 1) that failed there, with a retry already counted.
const std::string kInput =
    R"({"id":"E","parent_id":"P","route":{"actors":["prep","infer","post"],"current":1,)"
    R"("metadata":{"job_id":"j1"}},"headers":{"traceparent":"00-t","asya-attempt":3},)"
    R"("deadline":"2000-01-01T00:00:00Z","zeta":[1],"payload":{"n":1.50,"s":"\u00e9"}})";

std::string failed_text(const std::string& input = kInput) {
  auto in = parse(input);
  EXPECT_TRUE(in.ok());
  return build_error(*in, "infer",
                     ErrorInfo{"processing_error", "no key 'x'", "KeyError", "Traceback..."});
}

json::object object_of(const std::string& text) {
  return json::parse(text).as_object();
}

TEST(ReadFailed, GivesErrorActorTypeMessageAndTheOriginalPayloadBytes) {
  std::string stored = failed_text();
  auto failed = read_failed(stored);
  ASSERT_TRUE(failed.ok()) << failed.error().message;
  EXPECT_EQ(failed->envelope.id, "E");
  EXPECT_EQ(failed->error, "processing_error");
  EXPECT_EQ(failed->failed_actor, "infer");
  EXPECT_EQ(failed->error_type, "KeyError");
  EXPECT_EQ(failed->error_message, "no key 'x'");
  EXPECT_EQ(failed->original_payload_raw, R"({"n":1.50,"s":"\u00e9"})");
}

TEST(BuildReplay, RestartsAtTheFailedActorWithTheOriginalPayloadAndAFreshAttemptBudget) {
  std::string stored = failed_text();
  auto failed = read_failed(stored);
  ASSERT_TRUE(failed.ok());
  auto replay = build_replay(*failed, {});
  ASSERT_TRUE(replay.ok()) << replay.error().message;
  EXPECT_EQ(replay->actor, "infer");
  EXPECT_EQ(replay->current, 1u);
  EXPECT_EQ(replay->replays, 1);
  // The payload is spliced byte for byte (1.50 keeps its spelling).
  EXPECT_NE(replay->body.find(R"("payload":{"n":1.50,"s":"\u00e9"}})"), std::string::npos)
      << replay->body;
  auto parsed = parse(replay->body);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message << "\n" << replay->body;
  EXPECT_EQ(parsed->id, "E");
  EXPECT_EQ(parsed->parent_id.value_or(""), "P");
  EXPECT_EQ(parsed->current, 1u);
  EXPECT_EQ(parsed->route_metadata_raw, R"({"job_id":"j1"})");
  EXPECT_FALSE(parsed->deadline.has_value()) << "the passed deadline is dropped";
  auto headers = object_of(std::string(parsed->headers_raw));
  EXPECT_FALSE(headers.contains("asya-attempt"));
  EXPECT_EQ(headers.at("asya-replays").as_int64(), 1);
  EXPECT_EQ(headers.at("traceparent").as_string(), "00-t");
  ASSERT_TRUE(headers.contains("asya-error-chain")) << "the failure history is kept";
  EXPECT_EQ(headers.at("asya-error-chain").as_array().size(), 1u);
  auto whole = object_of(replay->body);
  EXPECT_EQ(whole.at("zeta"), json::value(json::array{1})) << "unknown fields are kept";
}

TEST(BuildReplay, ASecondReplayCountsTwoAndANewDeadlineIsSet) {
  std::string stored = failed_text();
  auto failed = read_failed(stored);
  ASSERT_TRUE(failed.ok());
  auto first = build_replay(*failed, {});
  ASSERT_TRUE(first.ok());
  std::string stored_again = failed_text(first->body);  // it failed again
  auto failed_again = read_failed(stored_again);
  ASSERT_TRUE(failed_again.ok());
  ReplayOptions options;
  options.deadline = std::chrono::system_clock::time_point(std::chrono::seconds(4102444800));
  auto second = build_replay(*failed_again, options);
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second->replays, 2);
  auto parsed = parse(second->body);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->deadline.value_or(""), "2100-01-01T00:00:00.000Z");
  auto headers = object_of(std::string(parsed->headers_raw));
  EXPECT_EQ(headers.at("asya-replays").as_int64(), 2);
  EXPECT_EQ(headers.at("asya-error-chain").as_array().size(), 2u);
}

TEST(BuildReplay, FromAnotherActorOfTheRouteStartsThere) {
  std::string stored = failed_text();
  auto failed = read_failed(stored);
  ASSERT_TRUE(failed.ok());
  ReplayOptions from_prep;
  from_prep.from_actor = "prep";
  auto replay = build_replay(*failed, from_prep);
  ASSERT_TRUE(replay.ok()) << replay.error().message;
  EXPECT_EQ(replay->actor, "prep");
  EXPECT_EQ(replay->current, 0u);
  ReplayOptions from_post;
  from_post.from_actor = "post";
  auto later = build_replay(*failed, from_post);
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->current, 2u);
}

TEST(BuildReplay, AnActorThatRepeatsIsTakenNearestBeforeTheFailure) {
  std::string input = R"({"id":"R","route":{"actors":["a","b","a","c"],"current":3},"payload":1})";
  auto in = parse(input);
  ASSERT_TRUE(in.ok());
  std::string stored = build_error(*in, "c", ErrorInfo{"processing_error", "m", "T", ""});
  auto failed = read_failed(stored);
  ASSERT_TRUE(failed.ok());
  ReplayOptions from_a;
  from_a.from_actor = "a";
  auto replay = build_replay(*failed, from_a);
  ASSERT_TRUE(replay.ok());
  EXPECT_EQ(replay->current, 2u);
}

TEST(BuildReplay, AnActorOutsideTheRouteIsRefusedListingTheRoute) {
  std::string stored = failed_text();
  auto failed = read_failed(stored);
  ASSERT_TRUE(failed.ok());
  ReplayOptions options;
  options.from_actor = "nobody";
  auto replay = build_replay(*failed, options);
  ASSERT_FALSE(replay.ok());
  EXPECT_NE(replay.error().message.find("\"nobody\" is not in the route of envelope E"),
            std::string::npos)
      << replay.error().message;
  EXPECT_NE(replay.error().message.find("prep -> infer -> post"), std::string::npos);
}

TEST(BuildReplay, AStoredBodyThatWasNotAnEnvelopeCannotBeReplayed) {
  std::string stored = wrap_unparseable("not json", "echo", "body is not valid JSON");
  auto failed = read_failed(stored);
  ASSERT_TRUE(failed.ok()) << failed.error().message;
  EXPECT_EQ(failed->error, "msg_parsing_error");
  auto replay = build_replay(*failed, {});
  ASSERT_FALSE(replay.ok());
  EXPECT_NE(replay.error().message.find("cannot be replayed"), std::string::npos)
      << replay.error().message;
}

}  // namespace
}  // namespace asya::envelope
