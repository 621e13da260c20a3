#include "local/autoscaler.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace asya::local {
namespace {

using namespace std::chrono_literals;

manifest::Scaling policy(int min, int max, int queue_length, int activation,
                         std::chrono::milliseconds cooldown) {
  manifest::Scaling s;
  s.min_replicas = min;
  s.max_replicas = max;
  s.queue_length = queue_length;
  s.activation_queue_length = activation;
  s.cooldown_period = cooldown;
  return s;
}

class AutoscalerTest : public ::testing::Test {
 protected:
  Autoscaler::Clock::time_point now = Autoscaler::Clock::time_point{} + 1h;
};

TEST_F(AutoscalerTest, DesiredIsCeilOfMessagesOverQueueLengthClampedToMax) {
  Autoscaler a(policy(0, 4, 5, 0, 30s));
  EXPECT_EQ(a.desired(0, 1, now), 1);
  EXPECT_EQ(a.desired(1, 6, now), 2);
  EXPECT_EQ(a.desired(2, 10, now), 2);
  EXPECT_EQ(a.desired(2, 11, now), 3);
  EXPECT_EQ(a.desired(3, 1000, now), 4);
}

TEST_F(AutoscalerTest, StaysAtZeroUntilMessagesExceedActivationQueueLength) {
  Autoscaler a(policy(0, 4, 5, 3, 30s));
  EXPECT_EQ(a.desired(0, 0, now), 0);
  EXPECT_EQ(a.desired(0, 3, now), 0);
  EXPECT_FALSE(a.active());
  EXPECT_EQ(a.desired(0, 4, now), 1);
  EXPECT_TRUE(a.active());
}

TEST_F(AutoscalerTest, ScalesToZeroOnlyAfterCooldownWithoutWork) {
  Autoscaler a(policy(0, 4, 5, 0, 30s));
  EXPECT_EQ(a.desired(0, 20, now), 1);  // KEDA's activation: one replica, the HPA takes it on
  now += 1s;
  EXPECT_EQ(a.desired(1, 20, now), 4);
  now += 1s;
  EXPECT_EQ(a.desired(4, 0, now), 4);  // window still remembers 4
  now += 29s;
  // Exactly the cooldown since the last work: the window no longer holds the 4, so the HPA scales
  // down to its minimum of one (the 4 were reached within the minute, from 1); KEDA waits until
  // the cooldown has passed.
  EXPECT_EQ(a.desired(4, 0, now), 1);
  now += 1ms;
  EXPECT_EQ(a.desired(1, 0, now), 0);  // more than 30 s since the last work
}

TEST_F(AutoscalerTest, InFlightWorkKeepsReplicasAlive) {
  Autoscaler a(policy(0, 2, 5, 0, 10s));
  EXPECT_EQ(a.desired(0, 1, now), 1);
  for (int i = 0; i < 5; ++i) {
    now += 5s;
    EXPECT_EQ(a.desired(1, 1, now), 1);  // one message in flight: active
  }
  now += 10s + 1ms;
  EXPECT_EQ(a.desired(1, 0, now), 0);
}

// One observation per step: advance the clock, observe `messages`, expect `replicas`.
struct Step {
  std::chrono::milliseconds advance;
  std::uint64_t messages;
  int replicas;
};

void run(Autoscaler& a, Autoscaler::Clock::time_point& now, const std::vector<Step>& steps) {
  int current = 0;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    now += steps[i].advance;
    current = a.desired(current, steps[i].messages, now);
    EXPECT_EQ(current, steps[i].replicas)
        << "step " << i << " (" << steps[i].messages << " messages)";
  }
}

TEST_F(AutoscalerTest, ScaleUpAddsFourPodsOrDoublesPerFifteenSecondsWhicheverIsMore) {
  Autoscaler a(policy(0, 40, 1, 0, 300s));
  run(a, now,
      {{0s, 100, 1},    // KEDA's activation
       {15s, 100, 5},   // +4 beats +100 % of 1
       {5s, 100, 5},    // within the same 15 s: 5 is all the period allows
       {10s, 100, 10},  // a new period: +100 % of 5 beats +4
       {15s, 100, 20},
       {15s, 100, 40},    // the max
       {15s, 100, 40}});  // never above maxReplicas
}

TEST_F(AutoscalerTest, ScaleDownWaitsForTheWindowThenHalvesAtMostPerMinute) {
  Autoscaler a(policy(0, 16, 1, 0, 30s));
  run(a, now,
      {{0s, 16, 1},
       {15s, 16, 5},
       {15s, 16, 10},
       {15s, 16, 16},
       {60s, 16, 16},  // a minute at 16: the scale-ups are older than every period
       {15s, 3, 16},   // the window remembers 16
       {15s, 3, 8},    // the window holds only 3s now: -50 %
       {15s, 3, 8},    // within the same minute: no further step
       {45s, 3, 4},    // a minute after the last step: -50 % again
       {60s, 3, 3}});  // the recommendation
}

TEST_F(AutoscalerTest, AShortDipWithinTheWindowKeepsTheReplicas) {
  Autoscaler a(policy(0, 10, 1, 0, 60s));
  run(a, now, {{0s, 4, 1}, {15s, 4, 4}, {15s, 1, 4}, {15s, 4, 4}, {15s, 1, 4}});
}

TEST_F(AutoscalerTest, AReplicaBelowTheRecommendationIsNotPushedUpToAnOlderPeak) {
  // The HPA's stabilization keeps the current count when it lies between the recommendation and
  // the window's peak: the peak only holds replicas up, it does not add any.
  Autoscaler a(policy(0, 40, 1, 0, 120s));
  run(a, now, {{0s, 40, 1}, {15s, 40, 5}, {15s, 3, 5}, {15s, 3, 5}});
}

TEST_F(AutoscalerTest, NeverBelowMinReplicas) {
  Autoscaler a(policy(2, 5, 5, 0, 1s));
  EXPECT_EQ(a.desired(0, 0, now), 2);
  EXPECT_EQ(a.desired(2, 0, now), 2);
  now += 1h;
  EXPECT_EQ(a.desired(2, 0, now), 2);
  EXPECT_EQ(a.desired(2, 30, now), 5);
}

TEST_F(AutoscalerTest, ZeroCooldownScalesToZeroAtOnce) {
  Autoscaler a(policy(0, 3, 5, 0, 0s));
  EXPECT_EQ(a.desired(0, 12, now), 1);
  EXPECT_EQ(a.desired(1, 12, now), 3);
  now += 1ms;
  EXPECT_EQ(a.desired(3, 0, now), 0);
}

}  // namespace
}  // namespace asya::local
