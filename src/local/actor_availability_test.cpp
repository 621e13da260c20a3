#include "local/actor_availability.hpp"

#include <gtest/gtest.h>

namespace asya::local {
namespace {

StatusActor actor(const std::string& name, ActorActivity state = ActorActivity::kRunning) {
  StatusActor a;
  a.name = name;
  a.state = state;
  a.end_actor = name == "happy-end" || name == "error-end";
  return a;
}

StatusDocument status_with(std::vector<StatusActor> actors) {
  StatusDocument doc;
  doc.state_dir = "/work/.asya";
  doc.actors = std::move(actors);
  return doc;
}

TEST(ActorAvailability, RunningIdleAndStartingActorsCanTakeAMessage) {
  auto status = status_with({actor("happy-end"), actor("a"), actor("b", ActorActivity::kIdle),
                             actor("c", ActorActivity::kStarting)});
  EXPECT_FALSE(find_unavailable_actor(status, {"a", "b", "c"}, false).has_value());
}

TEST(ActorAvailability, AnUnknownActorIsNamedWithTheActorsThatRunUnlessForced) {
  auto status =
      status_with({actor("happy-end"), actor("error-end"), actor("split"), actor("count")});
  auto got = find_unavailable_actor(status, {"split", "nobody"}, false);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->actor, "nobody");
  EXPECT_EQ(got->reason, Unavailability::kUnknown);
  EXPECT_NE(got->message.find("unknown actor \"nobody\""), std::string::npos) << got->message;
  EXPECT_NE(got->message.find("runs only split, count;"), std::string::npos) << got->message;
  EXPECT_NE(got->message.find("--force"), std::string::npos);
  EXPECT_FALSE(find_unavailable_actor(status, {"split", "nobody"}, true).has_value());
}

TEST(ActorAvailability, EndActorsAreNoTargets) {
  auto status = status_with({actor("happy-end"), actor("a")});
  auto got = find_unavailable_actor(status, {"happy-end"}, false);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->reason, Unavailability::kUnknown);
}

TEST(ActorAvailability, ACrashLoopingActorIsRefusedEvenWhenForcedWithItsLastCrash) {
  auto broken = actor("model", ActorActivity::kCrashLooping);
  broken.crash_streak = 3;
  broken.restarts = 4;
  broken.last_crash = "runtime exited with status 1 (see /work/.asya/logs/model/0.runtime.log)";
  broken.last_crash_output = {"RuntimeError: no GPU"};
  auto status = status_with({actor("prep"), broken});
  for (bool force : {false, true}) {
    auto got = find_unavailable_actor(status, {"prep", "model"}, force);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->actor, "model");
    EXPECT_EQ(got->reason, Unavailability::kCrashLooping);
    EXPECT_NE(got->message.find("actor \"model\" is crash-looping (3 quick crashes in a row, 4 "
                                "restarts)"),
              std::string::npos)
        << got->message;
    EXPECT_NE(got->message.find("last crash: runtime exited with status 1"), std::string::npos);
    EXPECT_NE(got->message.find("| RuntimeError: no GPU"), std::string::npos);
    EXPECT_NE(got->message.find("asya logs model"), std::string::npos);
  }
}

TEST(ActorAvailability, ACrashLoopingActorWithAReadyReplicaAgainTakesMessages) {
  auto recovering = actor("full", ActorActivity::kCrashLooping);
  recovering.crash_streak = 6;
  recovering.replicas.ready = 1;  // the disk was freed; the state clears after 10 s of running
  EXPECT_FALSE(find_unavailable_actor(status_with({recovering}), {"full"}, false).has_value());
}

}  // namespace
}  // namespace asya::local
