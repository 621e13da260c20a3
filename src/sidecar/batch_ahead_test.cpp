#include "sidecar/batch_ahead.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "sidecar/batch_settler.hpp"
#include "sidecar/fake_transport.hpp"

namespace asya::sidecar {
namespace {

using testing::FakeTransport;

void fill(FakeTransport& transport, int count) {
  for (int i = 0; i < count; ++i) transport.queues["q"].push_back(fmt::format("m{}", i));
}

std::vector<const transport::Delivery*> registered(Slot& slot) {
  std::lock_guard lock(slot.mutex);
  std::vector<const transport::Delivery*> out;
  for (const transport::Delivery* d : slot.batch)
    if (d) out.push_back(d);
  return out;
}

BatchSettings settings(std::size_t max_size) {
  BatchSettings s;
  s.max_size = max_size;
  return s;
}

TEST(BatchAhead, LeasesUpToMaxSizeAndRegistersEachDeliveryInTheSlot) {
  FakeTransport transport;
  fill(transport, 6);
  Slot slot;
  StopState stop;
  BatchAhead ahead(transport, "q", settings(4), slot, stop);
  ahead.step()();
  auto leased = ahead.take();
  ASSERT_TRUE(leased);
  ASSERT_EQ(leased->deliveries.size(), 4u);
  EXPECT_EQ(leased->deliveries[0].body, "m0");
  EXPECT_EQ(leased->deliveries[3].body, "m3");
  EXPECT_EQ(transport.queues["q"].size(), 2u);  // the rest stays for the next batch
  // The slot points at the deliveries handed over (moved, not copied): the lease keeper extends
  // them and the shutdown path nacks them while the worker holds them.
  auto in_slot = registered(slot);
  ASSERT_EQ(in_slot.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(in_slot[i], &leased->deliveries[i]);
  EXPECT_FALSE(ahead.take());  // taken once
}

TEST(BatchAhead, TakeTopsUpWithWhatCameMeanwhileWithoutMovingTheRegisteredDeliveries) {
  FakeTransport transport;
  fill(transport, 2);
  Slot slot;
  StopState stop;
  BatchAhead ahead(transport, "q", settings(8), slot, stop);
  ahead.step()();
  auto in_slot = registered(slot);
  ASSERT_EQ(in_slot.size(), 2u);
  fill(transport, 10);  // arrived while the runtime worked
  auto leased = ahead.take();
  ASSERT_TRUE(leased);
  ASSERT_EQ(leased->deliveries.size(), 8u);  // up to max_size, no more
  EXPECT_EQ(leased->deliveries[1].body, "m1");
  EXPECT_EQ(leased->deliveries[2].body, "m0");  // the second fill's first
  // The registered pointers still point at the first two: topping up did not move them.
  EXPECT_EQ(in_slot[0], &leased->deliveries[0]);
  EXPECT_EQ(in_slot[1], &leased->deliveries[1]);
  EXPECT_EQ(registered(slot).size(), 2u);  // the added ones are the worker's to register
  EXPECT_EQ(transport.queues["q"].size(), 4u);
}

TEST(BatchAhead, LeasesNothingWhenTheQueueIsEmptyOrTheSidecarIsStopping) {
  FakeTransport transport;
  Slot slot;
  StopState stop;
  BatchAhead ahead(transport, "q", settings(4), slot, stop);
  ahead.step()();
  EXPECT_FALSE(ahead.take());  // nothing ready: the worker's own receive waits
  fill(transport, 3);
  stop.request(0);
  ahead.step()();
  EXPECT_FALSE(ahead.take());
  EXPECT_EQ(transport.queues["q"].size(), 3u);  // nothing leased
  EXPECT_TRUE(registered(slot).empty());
}

TEST(BatchAhead, ABatchNotTakenYetIsNeverReplaced) {
  FakeTransport transport;
  fill(transport, 8);
  Slot slot;
  StopState stop;
  BatchAhead ahead(transport, "q", settings(4), slot, stop);
  ahead.step()();
  ahead.step()();  // the worker did not take the first: nothing more is leased
  EXPECT_EQ(transport.queues["q"].size(), 4u);
  auto leased = ahead.take();
  ASSERT_TRUE(leased);
  EXPECT_EQ(leased->deliveries.front().body, "m0");
}

TEST(BatchAhead, GiveBackNacksWhatNobodyTookAndRemovesItFromTheSlot) {
  FakeTransport transport;
  fill(transport, 3);
  Slot slot;
  StopState stop;
  BatchAhead ahead(transport, "q", settings(4), slot, stop);
  ahead.step()();
  ahead.give_back();
  ASSERT_EQ(transport.nacked.size(), 3u);
  EXPECT_EQ(transport.nacked[0].first, "1");
  EXPECT_EQ(transport.nacked[2].first, "3");
  EXPECT_TRUE(registered(slot).empty());
  EXPECT_FALSE(ahead.take());
  ahead.give_back();  // nothing held: nothing more
  EXPECT_EQ(transport.nacked.size(), 3u);
}

TEST(BatchAhead, AnAbandonedSlotGetsNothingRegisteredAndNothingGivenBack) {
  // The shutdown path gave up on the worker (and exits the process): it already nacked what the
  // slot listed; what a late step leased comes back after its lease instead.
  FakeTransport transport;
  fill(transport, 2);
  Slot slot;
  slot.abandoned = true;
  StopState stop;
  BatchAhead ahead(transport, "q", settings(4), slot, stop);
  ahead.step()();
  EXPECT_TRUE(registered(slot).empty());
  ahead.give_back();
  EXPECT_TRUE(transport.nacked.empty());
}

TEST(BatchAhead, TheSettlerRunsTheHeldSettlingFirstThenTheLease) {
  // The worker's order (sidecar.cpp process_batch): the previous batch's settling is held until
  // the current batch is leased; then it runs, and after it the leasing of the next batch, both
  // on the settler's thread while the runtime works.
  FakeTransport transport;
  fill(transport, 4);
  Slot slot;
  StopState stop;
  BatchAhead ahead(transport, "q", settings(4), slot, stop);
  BackgroundSettler settler;
  std::vector<std::string> order;
  std::mutex order_mutex;
  settler.hold([&] {
    std::lock_guard lock(order_mutex);
    order.push_back("settle");
    EXPECT_EQ(transport.queues["q"].size(), 4u);  // not leased before the settling
  });
  auto lease = ahead.step();
  settler.release([&, lease] {
    lease();
    std::lock_guard lock(order_mutex);
    order.push_back("lease");
  });
  EXPECT_FALSE(settler.holding());
  settler.wait();
  EXPECT_EQ(order, (std::vector<std::string>{"settle", "lease"}));
  auto leased = ahead.take();
  ASSERT_TRUE(leased);
  EXPECT_EQ(leased->deliveries.size(), 4u);
}

TEST(BatchAhead, WithNothingHeldTheSettlerRunsTheLeaseAlone) {
  FakeTransport transport;
  fill(transport, 2);
  Slot slot;
  StopState stop;
  BatchAhead ahead(transport, "q", settings(4), slot, stop);
  BackgroundSettler settler;
  settler.release(ahead.step());
  settler.wait();
  auto leased = ahead.take();
  ASSERT_TRUE(leased);
  EXPECT_EQ(leased->deliveries.size(), 2u);
}

}  // namespace
}  // namespace asya::sidecar
