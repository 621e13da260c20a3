#include "local/autoscaler.hpp"

#include <gtest/gtest.h>

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
  EXPECT_EQ(a.desired(0, 20, now), 4);
  now += 1s;
  EXPECT_EQ(a.desired(4, 0, now), 4);  // window still remembers 4
  now += 29s - 1ms;
  EXPECT_EQ(a.desired(4, 0, now), 4);  // 1 ms short of the cooldown
  now += 1ms;
  EXPECT_EQ(a.desired(4, 0, now), 0);  // 30 s since the last work
}

TEST_F(AutoscalerTest, InFlightWorkKeepsReplicasAlive) {
  Autoscaler a(policy(0, 2, 5, 0, 10s));
  EXPECT_EQ(a.desired(0, 1, now), 1);
  for (int i = 0; i < 5; ++i) {
    now += 5s;
    EXPECT_EQ(a.desired(1, 1, now), 1);  // one message in flight: active
  }
  now += 10s;
  EXPECT_EQ(a.desired(1, 0, now), 0);
}

TEST_F(AutoscalerTest, ScaleUpIsImmediateScaleDownFollowsTheWindow) {
  Autoscaler a(policy(0, 10, 1, 0, 10s));
  EXPECT_EQ(a.desired(0, 2, now), 2);
  now += 1s;
  EXPECT_EQ(a.desired(2, 8, now), 8);
  now += 1s;
  EXPECT_EQ(a.desired(8, 3, now), 8);
  now += 10s;
  EXPECT_EQ(a.desired(8, 3, now), 3);
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
  EXPECT_EQ(a.desired(0, 12, now), 3);
  now += 1ms;
  EXPECT_EQ(a.desired(3, 0, now), 0);
}

}  // namespace
}  // namespace asya::local
