// The cancellation feed's answers as the sidecar reads them (PROTOCOL §7 GET
// /envelopes/cancellations), the job id it looks up, and a feed that never reached a gateway.
#include "sidecar/cancel_feed.hpp"

#include <gtest/gtest.h>

namespace asya::sidecar {
namespace {

TEST(CancelFeedAnswer, ReadsPositionJobsAndFlags) {
  std::string why;
  auto answer = read_feed_answer(
      R"({"next_after": 42, "cancelled": ["a", "b"], "more": true, "reset": false, "x": 1})", why);
  ASSERT_TRUE(answer) << why;
  EXPECT_EQ(answer->next_after, 42);
  EXPECT_EQ(answer->cancelled, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(answer->more);
  EXPECT_FALSE(answer->reset);
  auto minimal = read_feed_answer(R"({"next_after": 0, "cancelled": []})", why);
  ASSERT_TRUE(minimal) << why;
  EXPECT_TRUE(minimal->cancelled.empty());
  EXPECT_FALSE(minimal->more);
}

TEST(CancelFeedAnswer, RejectsWhatIsNoFeedAnswerAndSaysWhy) {
  struct Case {
    const char* body;
    const char* why;
  };
  for (const Case& c : {
           Case{"<html>gateway</html>", "not JSON"},
           Case{"[1, 2]", "not a JSON object"},
           Case{R"({"cancelled": []})", "\"next_after\" is missing"},
           Case{R"({"next_after": -3, "cancelled": []})",
                "\"next_after\" is missing or not an integer >= 0"},
           Case{R"({"next_after": "7", "cancelled": []})", "\"next_after\""},
           Case{R"({"next_after": 7})", "\"cancelled\" is missing or not an array"},
           Case{R"({"next_after": 7, "cancelled": {"a": 1}})", "\"cancelled\" is missing"},
           Case{R"({"next_after": 7, "cancelled": ["a", 3]})", "not a non-empty string"},
           Case{R"({"next_after": 7, "cancelled": [""]})", "not a non-empty string"},
           Case{R"({"next_after": 7, "cancelled": [], "more": "yes"})",
                "\"more\" is not a boolean"},
       }) {
    std::string why;
    EXPECT_FALSE(read_feed_answer(c.body, why)) << c.body;
    EXPECT_NE(why.find(c.why), std::string::npos) << c.body << " -> " << why;
  }
}

TEST(CancelFeedJobId, IsTheStringJobIdOfTheRouteMetadata) {
  EXPECT_EQ(gateway_job_id(R"({"tool":"t","job_id":"5e6f-1"})"), "5e6f-1");
  EXPECT_EQ(gateway_job_id(R"({"job_id":"a\"b"})"), "a\"b");
  EXPECT_EQ(gateway_job_id(""), "");
  EXPECT_EQ(gateway_job_id(R"({"tool":"t"})"), "");
  EXPECT_EQ(gateway_job_id(R"({"job_id":12})"), "");
  EXPECT_EQ(gateway_job_id(R"({"job_id":)"), "");
}

TEST(CancelFeed, WithoutAGatewayItIsNotLiveAndKnowsNothing) {
  CancelFeedOptions options;
  options.base_url = "http://127.0.0.1:1";  // nothing listens there
  options.retry_delay = std::chrono::milliseconds(10);
  CancelFeed feed(options);
  EXPECT_FALSE(feed.live());
  EXPECT_EQ(feed.job("any"), CancelFeed::Knowledge::unknown);
  feed.stop();
  EXPECT_FALSE(feed.live());
}

}  // namespace
}  // namespace asya::sidecar
