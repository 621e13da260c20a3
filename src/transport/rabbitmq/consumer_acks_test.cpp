// Which acks the consumer writes when (consumer_acks.cpp: coalesce_acks, plan_acks), without a
// broker.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <vector>

#include "transport/rabbitmq/consumer.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The link thread's acks: the tags below the lowest one still held (floor) share one
// basic.ack(multiple) when there are two or more; the others are acked one by one.
TEST(RabbitmqAckTest, OnlyTheTagsBelowTheFloorShareAMultipleAck) {
  using rabbitmq::coalesce_acks;
  using Tags = std::vector<std::uint64_t>;
  EXPECT_EQ(coalesce_acks({3, 4, 5, 9}, 7), (std::pair<std::uint64_t, Tags>{5, {9}}));
  EXPECT_EQ(coalesce_acks({3, 4, 5}, UINT64_MAX), (std::pair<std::uint64_t, Tags>{5, {}}));
  // One tag below the floor: a plain ack (nothing to share).
  EXPECT_EQ(coalesce_acks({3, 8, 9}, 4), (std::pair<std::uint64_t, Tags>{0, {3, 8, 9}}));
  // The floor below every tag (an earlier delivery is still held): no multiple ack.
  EXPECT_EQ(coalesce_acks({3, 4, 5}, 2), (std::pair<std::uint64_t, Tags>{0, {3, 4, 5}}));
  EXPECT_EQ(coalesce_acks({}, 2), (std::pair<std::uint64_t, Tags>{0, {}}));
}

// Which acks go now (plan_acks): a lone message's at once; with other deliveries held, they wait
// until a quarter of the prefetch is settled (then those below the floor share one
// basic.ack(multiple)); those above the floor until half the prefetch is settled or 50 ms passed;
// while every prefetch slot is taken, every settled one at once.
TEST(RabbitmqAckTest, AcksWaitToBeWrittenTogetherWhileOtherDeliveriesAreHeld) {
  using rabbitmq::plan_acks;
  using Tags = std::vector<std::uint64_t>;
  const auto now = Clock::now();
  auto settled_at = [&](std::initializer_list<std::uint64_t> tags, Clock::duration ago) {
    std::map<std::uint64_t, Clock::time_point> settled;
    for (std::uint64_t tag : tags) settled[tag] = now - ago;
    return settled;
  };
  // A lone message (nothing else held): its ack goes at once, alone.
  auto lone = plan_acks(settled_at({7}, 0ms), UINT64_MAX, 10, 0, now, false);
  EXPECT_EQ(lone.multiple, 0u);
  EXPECT_EQ(lone.singles, (Tags{7}));
  // Others held, 3 of prefetch 64 settled, none old: nothing yet.
  auto early = plan_acks(settled_at({3, 4, 5}, 1ms), 6, 64, 10, now, false);
  EXPECT_EQ(early.multiple, 0u);
  EXPECT_TRUE(early.singles.empty());
  // A quarter of the prefetch settled: those below the floor as one multiple ack; the two above
  // it wait for the deliveries below them.
  auto quarter = plan_acks(settled_at({1, 2, 3, 4, 9, 10}, 1ms), 5, 24, 4, now, false);
  EXPECT_EQ(quarter.multiple, 4u);
  EXPECT_TRUE(quarter.singles.empty());
  // Half the prefetch settled: those above the floor go too (a slow message stalls nothing).
  auto half = plan_acks(settled_at({1, 2, 9, 10}, 1ms), 5, 8, 2, now, false);
  EXPECT_EQ(half.multiple, 2u);
  EXPECT_EQ(half.singles, (Tags{9, 10}));
  // Held 50 ms: written whatever the count.
  auto old = plan_acks(settled_at({9}, 60ms), 5, 64, 4, now, false);
  EXPECT_EQ(old.singles, (Tags{9}));
  // Closing: every one now.
  auto closing = plan_acks(settled_at({1, 2, 9}, 0ms), 5, 64, 4, now, true);
  EXPECT_EQ(closing.multiple, 2u);
  EXPECT_EQ(closing.singles, (Tags{9}));
}

// Every prefetch slot taken (held + settled = prefetch): the broker sends nothing more until an
// ack is written, so the settled ones go at once, below the floor as one multiple ack and above it
// singly; one slot free, they wait as before. Acking never covers a tag still held (the floor).
TEST(RabbitmqAckTest, AcksGoAtOnceWhenEveryPrefetchSlotIsTaken) {
  using rabbitmq::plan_acks;
  using Tags = std::vector<std::uint64_t>;
  const auto now = Clock::now();
  std::map<std::uint64_t, Clock::time_point> settled;
  for (std::uint64_t tag : {1, 2, 3, 9}) settled[tag] = now - 1ms;
  // Prefetch 64: 60 held (tags 4-8 and 10-64) + 4 settled.
  auto full = plan_acks(settled, 4, 64, 60, now, false);
  EXPECT_EQ(full.multiple, 3u);
  EXPECT_EQ(full.singles, (Tags{9}));
  for (std::uint64_t tag : full.singles) EXPECT_GT(tag, 3u);
  // One slot free (59 held): a quarter of the prefetch is not settled yet, nothing goes.
  auto room = plan_acks(settled, 4, 64, 59, now, false);
  EXPECT_EQ(room.multiple, 0u);
  EXPECT_TRUE(room.singles.empty());
  // Nothing below the floor, every slot taken: the one above it goes alone.
  std::map<std::uint64_t, Clock::time_point> above{{9, now}};
  auto lone_above = plan_acks(above, 4, 8, 7, now, false);
  EXPECT_EQ(lone_above.multiple, 0u);
  EXPECT_EQ(lone_above.singles, (Tags{9}));
}

}  // namespace
}  // namespace asya::transport
