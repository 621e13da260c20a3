#include "gateway/batch_queue.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <vector>

namespace asya::gateway {
namespace {

// A poster that keeps the drains it is given, so the test decides when they run.
struct HeldDrains {
  std::vector<std::function<void()>> drains;
  void run_all() {
    while (!drains.empty()) {
      auto drain = std::move(drains.front());
      drains.erase(drains.begin());
      drain();
    }
  }
};

TEST(BatchQueue, ALoneItemIsPostedAtOnceAndRunsAlone) {
  HeldDrains held;
  std::vector<std::vector<int>> batches;
  BatchQueue<int> queue([&](std::function<void()> d) { held.drains.push_back(std::move(d)); },
                        [&](std::vector<int>& batch) { batches.push_back(batch); }, 8);
  queue.push(7);
  ASSERT_EQ(held.drains.size(), 1u);  // no timer: the drain is posted by push itself
  held.run_all();
  EXPECT_EQ(batches, (std::vector<std::vector<int>>{{7}}));
  EXPECT_EQ(queue.stats().batches, 1u);
}

TEST(BatchQueue, ItemsPushedWhileABatchRunsShareTheNextBatchInOrder) {
  HeldDrains held;
  std::vector<std::vector<int>> batches;
  BatchQueue<int>* self = nullptr;
  BatchQueue<int> queue([&](std::function<void()> d) { held.drains.push_back(std::move(d)); },
                        [&](std::vector<int>& batch) {
                          batches.push_back(batch);
                          // Calls arriving while the first batch is being written.
                          if (batches.size() == 1)
                            for (int i = 1; i <= 5; ++i) self->push(i);
                        },
                        32);
  self = &queue;
  queue.push(0);
  held.run_all();
  EXPECT_EQ(batches, (std::vector<std::vector<int>>{{0}, {1, 2, 3, 4, 5}}));
  auto stats = queue.stats();
  EXPECT_EQ(stats.items, 6u);
  EXPECT_EQ(stats.batches, 2u);
  EXPECT_EQ(stats.largest_batch, 5u);
}

TEST(BatchQueue, OneDrainServesEverythingQueuedBeforeItRunsAndSplitsAtTheLimit) {
  HeldDrains held;
  std::vector<std::vector<int>> batches;
  BatchQueue<int> queue([&](std::function<void()> d) { held.drains.push_back(std::move(d)); },
                        [&](std::vector<int>& batch) { batches.push_back(batch); }, 3);
  for (int i = 0; i < 7; ++i) queue.push(i);
  EXPECT_EQ(held.drains.size(), 1u);  // one drain for all of them
  held.run_all();
  EXPECT_EQ(batches, (std::vector<std::vector<int>>{{0, 1, 2}, {3, 4, 5}, {6}}));
  // Once drained, the next item starts a new drain.
  queue.push(9);
  EXPECT_EQ(held.drains.size(), 1u);
  held.run_all();
  EXPECT_EQ(batches.back(), std::vector<int>{9});
}

}  // namespace
}  // namespace asya::gateway
