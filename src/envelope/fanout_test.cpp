// Fan-out group data (PROTOCOL §4a): child ids, frames pushed and read, failed branches.
#include "envelope/fanout.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <set>

namespace asya::envelope {
namespace {

namespace json = boost::json;

// `text` must outlive the Envelope (its views point into it).
Envelope must_parse(const std::string& text) {
  auto r = parse(text);
  EXPECT_TRUE(r.ok()) << (r ? "" : r.error().message);
  return r ? *r : Envelope{};
}

TEST(FanoutIds, RepeatedAndNestedFanOutsNeverRepeatAnId) {
  // N fans out at hop 0, then N and N-1 fan out again at hop 1 (the defect of the old scheme gave
  // N-1 twice).
  std::set<std::string> ids;
  for (std::size_t i = 0; i < 3; ++i) ids.insert(fanout_child_id("N", 0, i));
  for (const std::string& parent : {std::string("N"), std::string("N-1"), std::string("N-2")})
    for (std::size_t i = 1; i < 3; ++i)
      EXPECT_TRUE(ids.insert(fanout_child_id(parent, 1, i)).second);
  EXPECT_EQ(fanout_child_id("N", 0, 2), "N-2");
  EXPECT_EQ(fanout_child_id("N", 1, 2), "N-1-2");
  EXPECT_EQ(fanout_child_id("N", 1, 0), "N");
}

TEST(FanoutIds, ALongIdIsHashedWithinTheLimitAndStaysUnique) {
  const std::string id(250, 'x');
  const std::string a = fanout_child_id(id, 3, 1), b = fanout_child_id(id, 3, 2);
  EXPECT_LE(a.size(), kMaxIdBytes);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.substr(0, 200), id.substr(0, 200));
  EXPECT_EQ(a, fanout_child_id(id, 3, 1));  // deterministic: a redelivery gives the same id
}

TEST(FanoutFrames, AreAppendedReadBackAndRemovedKeepingOtherHeaders) {
  const std::string text =
      R"({"id":"E","parent_id":"P","route":{"actors":["a","b"],"current":0},"headers":{"x":1.50},"payload":1})";
  Envelope in = must_parse(text);
  std::string headers = fanout_child_headers(in, "", 2, 5);
  auto frames = fanout_frames(headers);
  ASSERT_TRUE(frames.ok());
  ASSERT_EQ(frames->size(), 1u);
  EXPECT_EQ((*frames)[0].group, "E@0");
  EXPECT_EQ((*frames)[0].index, 2u);
  EXPECT_EQ((*frames)[0].count, 5u);
  EXPECT_EQ((*frames)[0].parent_id, "P");
  EXPECT_EQ(headers.find("\"x\":1.50"), 1u);  // byte for byte
  EXPECT_EQ(fanout_source_id((*frames)[0].group), "E");
  EXPECT_EQ(with_fanout_frames(headers, {}), R"({"x":1.50})");
  EXPECT_EQ(with_fanout_frames(R"({"asya-fanout":[]})", {}), "");
}

TEST(FanoutFrames, MalformedFramesAreNamed) {
  auto r = fanout_frames(R"({"asya-fanout":[{"group":"g","index":7,"count":5}]})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "asya-fanout[0]: index 7 is not below count 5");
  r = fanout_frames(R"({"asya-fanout":"x"})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "asya-fanout: expected an array of fan-out frames");
}

TEST(FailedBranch, GoesOnTowardsTheJoinWithTheErrorPayloadAndTheFrameMarked) {
  const std::string parent_text = R"({"id":"E","route":{"actors":["s","w","j"]},"payload":1})";
  Envelope parent = must_parse(parent_text);
  const std::string headers = fanout_child_headers(parent, "", 1, 3);
  const std::string text =
      R"({"id":"E-1","parent_id":"E","route":{"actors":["s","w","j"],"current":1},"headers":)" +
      headers + R"(,"payload":{"v":1}})";
  Envelope branch = must_parse(text);
  auto body =
      build_failed_branch(branch, "w", ErrorInfo{"processing_error", "boom", "ValueError", ""});
  ASSERT_TRUE(body.has_value());
  json::object out = json::parse(*body).as_object();
  EXPECT_EQ(out["route"].at("current"), 2);
  EXPECT_EQ(out["payload"].at("error"), "processing_error");
  EXPECT_EQ(out["payload"].at("original_payload").at("v"), 1);
  EXPECT_EQ(out["headers"].at("asya-fanout").at(0).at("failed"), true);
  // No actor after the failing one: an ordinary error.
  const std::string last_text =
      R"({"id":"E-1","route":{"actors":["s","w"],"current":1},"headers":)" + headers +
      R"(,"payload":1})";
  Envelope last = must_parse(last_text);
  EXPECT_FALSE(build_failed_branch(last, "w", ErrorInfo{"processing_error", "", "", ""}));
}

}  // namespace
}  // namespace asya::envelope
