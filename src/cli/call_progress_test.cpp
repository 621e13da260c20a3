#include "cli/call_progress.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace asya::cli {
namespace {

ProgressEvent event(const char* json_text) {
  return ProgressEvent::from_json(boost::json::parse(json_text).as_object());
}

const char* kProcessingScore =
    R"({"status":"running","progress_percent":30,"current_actor_idx":1,"envelope_state":
        "processing","actor":"score","actors":["split","score","collect"],
        "message":"processing in score"})";

TEST(ProgressLines, NameTheActorAndItsPlaceInTheRoute) {
  EXPECT_EQ(plain_progress_line(event(kProcessingScore)),
            "progress 30% [2/3 score] processing in score");
  EXPECT_EQ(bar_progress_line(event(kProcessingScore)),
            "[#########.....................] 30% 2/3 score processing");
  auto done = event(R"({"status":"succeeded","progress_percent":100,"envelope_state":"succeeded",
                        "actor":"collect","current_actor_idx":2,"message":"succeeded"})");
  EXPECT_EQ(plain_progress_line(done), "progress 100% succeeded");
  auto failed = event(R"j({"status":"failed","progress_percent":40,"envelope_state":"failed",
      "actor":"score","message":"failed: KeyError: 'x' (processing_error in actor \"score\")"})j");
  EXPECT_EQ(plain_progress_line(failed),
            R"(progress 40% failed: KeyError: 'x' (processing_error in actor "score"))");
  EXPECT_EQ(bar_progress_line(failed), "[############..................] 40% failed");
}

TEST(ProgressOrder, ReplayedAndBackwardEventsAreNotShown) {
  ProgressOrder order;
  auto at = [](int percent, int index, const char* state) {
    ProgressEvent e;
    e.status = "running";
    e.percent = percent;
    e.actor_index = index;
    e.state = state;
    return e;
  };
  EXPECT_TRUE(order.accept(1, at(0, 0, "created")));
  EXPECT_TRUE(order.accept(2, at(22, 1, "received")));
  EXPECT_FALSE(order.accept(3, at(22, 0, "completed")));  // an earlier actor, reported late
  EXPECT_FALSE(order.accept(4, at(10, 0, "processing")));
  EXPECT_TRUE(order.accept(5, at(30, 1, "processing")));
  EXPECT_FALSE(order.accept(2, at(40, 2, "received")));  // a replayed id
  EXPECT_EQ(order.last_sequence(), 5);
  ProgressEvent final_event = at(30, 1, "failed");
  final_event.status = "failed";
  EXPECT_TRUE(order.accept(6, final_event));
}

}  // namespace
}  // namespace asya::cli
