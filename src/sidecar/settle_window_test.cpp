#include "sidecar/settle_window.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace asya::sidecar {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<PendingSettle> item(int id) {
  auto pending = std::make_unique<PendingSettle>();
  pending->delivery.body = "message-" + std::to_string(id);
  return pending;
}

// A settle function that records what it settled and can be held until released.
struct Recorder {
  std::mutex mutex;
  std::condition_variable changed;
  std::map<std::string, int> settled;    // body -> times settled
  std::vector<std::size_t> batch_sizes;  // per call
  bool hold = false;                     // calls wait while set
  int calls_started = 0;

  SettleWindow::Settle settle() {
    return [this](std::span<PendingSettle* const> items) {
      std::unique_lock lock(mutex);
      ++calls_started;
      changed.notify_all();
      changed.wait(lock, [this] { return !hold; });
      batch_sizes.push_back(items.size());
      for (PendingSettle* p : items) ++settled[p->delivery.body];
    };
  }
  void release() {
    std::lock_guard lock(mutex);
    hold = false;
    changed.notify_all();
  }
  bool wait_calls(int n) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 30s, [&] { return calls_started >= n; });
  }
};

TEST(SettleWindow, EveryItemHandedOverIsSettledExactlyOnceAndDrainWaitsForAll) {
  Recorder recorder;
  SettleWindow window(recorder.settle(), 4, 64, 8);
  for (int i = 0; i < 500; ++i) window.submit(item(i));
  window.drain();
  EXPECT_TRUE(window.idle());
  EXPECT_EQ(window.pending(), 0u);
  std::lock_guard lock(recorder.mutex);
  ASSERT_EQ(recorder.settled.size(), 500u);
  for (const auto& [body, times] : recorder.settled) EXPECT_EQ(times, 1) << body;
  for (std::size_t size : recorder.batch_sizes) EXPECT_LE(size, 8u);
}

TEST(SettleWindow, ItemsWaitingWhileEveryThreadSettlesAreTakenTogether) {
  Recorder recorder;
  recorder.hold = true;
  SettleWindow window(recorder.settle(), 1, 64, 64);
  window.submit(item(0));
  ASSERT_TRUE(recorder.wait_calls(1));  // the only thread is busy with item 0
  for (int i = 1; i <= 5; ++i) window.submit(item(i));
  EXPECT_EQ(window.pending(), 6u);
  recorder.release();
  window.drain();
  std::lock_guard lock(recorder.mutex);
  ASSERT_EQ(recorder.batch_sizes.size(), 2u);
  EXPECT_EQ(recorder.batch_sizes[0], 1u);
  EXPECT_EQ(recorder.batch_sizes[1], 5u);  // one send_many / ack_many for the five
}

TEST(SettleWindow, SubmitWaitsForRoomBeyondMaxPending) {
  Recorder recorder;
  recorder.hold = true;
  SettleWindow window(recorder.settle(), 2, 3, 64);
  for (int i = 0; i < 3; ++i) window.submit(item(i));
  std::atomic<bool> fourth_in{false};
  std::thread producer([&] {
    window.submit(item(3));
    fourth_in = true;
  });
  ASSERT_TRUE(recorder.wait_calls(1));
  EXPECT_EQ(window.pending(), 3u);  // the fourth is not taken while three are pending
  EXPECT_FALSE(fourth_in);
  recorder.release();
  producer.join();
  EXPECT_TRUE(fourth_in);
  window.drain();
  std::lock_guard lock(recorder.mutex);
  EXPECT_EQ(recorder.settled.size(), 4u);
}

TEST(SettleWindow, AbandonReturnsTheItemsNotStartedAndTheOneInProgressFinishes) {
  Recorder recorder;
  recorder.hold = true;
  SettleWindow window(recorder.settle(), 1, 64, 64);
  window.submit(item(0));
  ASSERT_TRUE(recorder.wait_calls(1));
  for (int i = 1; i <= 3; ++i) window.submit(item(i));
  std::vector<std::unique_ptr<PendingSettle>> returned = window.abandon();
  ASSERT_EQ(returned.size(), 3u);
  std::vector<std::string> bodies;
  for (const auto& p : returned) bodies.push_back(p->delivery.body);
  EXPECT_EQ(bodies, (std::vector<std::string>{"message-1", "message-2", "message-3"}));
  window.submit(item(4));  // after abandon: kept, never settled, and submit does not block
  recorder.release();
  window.drain();
  std::lock_guard lock(recorder.mutex);
  EXPECT_EQ(recorder.settled.size(), 1u);
  EXPECT_EQ(recorder.settled.count("message-0"), 1u);
}

TEST(SettleWindow, ANewThreadStartsWhenEveryThreadIsBusy) {
  Recorder recorder;
  recorder.hold = true;
  SettleWindow window(recorder.settle(), 3, 64, 64);
  window.submit(item(0));
  ASSERT_TRUE(recorder.wait_calls(1));
  window.submit(item(1));
  ASSERT_TRUE(recorder.wait_calls(2));  // not waiting behind item 0's settle
  window.submit(item(2));
  ASSERT_TRUE(recorder.wait_calls(3));
  recorder.release();
  window.drain();
  std::lock_guard lock(recorder.mutex);
  EXPECT_EQ(recorder.settled.size(), 3u);
}

// Two-step settling whose batches become ready when the test says (a transport's confirms).
struct Pipeline {
  struct Batch final : SettleWindow::Started {
    Pipeline* owner = nullptr;
    int number = 0;
    std::vector<std::string> bodies;
    std::function<void()> poke;
    bool ready() override {
      std::lock_guard lock(owner->mutex);
      return owner->confirmed.count(number) > 0;
    }
    void finish() override {
      std::lock_guard lock(owner->mutex);
      owner->finished.push_back(number);
      for (const std::string& body : bodies) ++owner->acked[body];
      owner->changed.notify_all();
    }
  };
  std::mutex mutex;
  std::condition_variable changed;
  // Per batch started, in start order (the batches are the window's, gone once finished).
  std::vector<std::vector<std::string>> started;
  std::vector<std::function<void()>> pokes;
  std::set<int> confirmed;           // batches whose outputs are "confirmed"
  std::vector<int> finished;         // batch numbers, in finish order
  std::map<std::string, int> acked;  // body -> times finished
  SettleWindow::Start start() {
    return [this](std::span<PendingSettle* const> items, std::function<void()> poke) {
      auto batch = std::make_unique<Batch>();
      batch->owner = this;
      batch->poke = std::move(poke);
      for (PendingSettle* p : items) batch->bodies.push_back(p->delivery.body);
      std::lock_guard lock(mutex);
      batch->number = static_cast<int>(started.size());
      started.push_back(batch->bodies);
      pokes.push_back(batch->poke);
      changed.notify_all();
      return std::unique_ptr<SettleWindow::Started>(std::move(batch));
    };
  }
  bool wait_started(std::size_t n) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 30s, [&] { return started.size() >= n; });
  }
  bool wait_bodies(std::size_t n) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 30s, [&] {
      std::size_t bodies = 0;
      for (const auto& batch : started) bodies += batch.size();
      return bodies >= n;
    });
  }
  // Marks batch `number` confirmed and calls its poke as a transport would (no lock held).
  void confirm(int number) {
    std::function<void()> poke;
    {
      std::lock_guard lock(mutex);
      confirmed.insert(number);
      poke = pokes[static_cast<std::size_t>(number)];
    }
    poke();
  }
};

TEST(SettleWindow, AThreadStartsTheNextBatchWhileItsFirstWaitsAndFinishesThemInOrder) {
  Pipeline pipeline;
  SettleWindow window(pipeline.start(), 1, 64, 64, 8);
  window.submit(item(0));
  ASSERT_TRUE(pipeline.wait_started(1));
  // Batch 0 is not confirmed: the one thread still starts what is handed over meanwhile.
  for (int i = 1; i <= 4; ++i) window.submit(item(i));
  ASSERT_TRUE(pipeline.wait_bodies(5));
  EXPECT_EQ(window.pending(), 5u);
  std::size_t batches;
  {
    std::lock_guard lock(pipeline.mutex);
    batches = pipeline.started.size();
    EXPECT_TRUE(pipeline.finished.empty());  // nothing acked: nothing is confirmed
  }
  ASSERT_GE(batches, 2u);
  // The later batches are confirmed first: nothing is acked before batch 0 is, then in order.
  for (int b = static_cast<int>(batches) - 1; b >= 0; --b) pipeline.confirm(b);
  window.drain();
  std::lock_guard lock(pipeline.mutex);
  std::vector<int> in_order(batches);
  for (std::size_t b = 0; b < batches; ++b) in_order[b] = static_cast<int>(b);
  EXPECT_EQ(pipeline.finished, in_order);
  ASSERT_EQ(pipeline.acked.size(), 5u);
  for (const auto& [body, times] : pipeline.acked) EXPECT_EQ(times, 1) << body;
}

TEST(SettleWindow, AThreadStartsNoMoreThanItsBatchesUntilTheOldestIsFinished) {
  Pipeline pipeline;
  SettleWindow window(pipeline.start(), 1, 64, 64, 2);
  window.submit(item(0));
  ASSERT_TRUE(pipeline.wait_started(1));
  window.submit(item(1));
  ASSERT_TRUE(pipeline.wait_started(2));
  window.submit(item(2));  // waits: two batches are started and neither is finished
  pipeline.confirm(1);     // the second being ready does not let a third start
  pipeline.confirm(0);
  ASSERT_TRUE(pipeline.wait_started(3));
  {
    std::lock_guard lock(pipeline.mutex);
    // Batch 2 started only once batch 0 was finished.
    ASSERT_FALSE(pipeline.finished.empty());
    EXPECT_EQ(pipeline.finished.front(), 0);
  }
  pipeline.confirm(2);
  window.drain();
  std::lock_guard lock(pipeline.mutex);
  EXPECT_EQ(pipeline.finished, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(pipeline.acked.size(), 3u);
}

TEST(SettleWindow, WithABatchInFlightTheNextStartsOnlyOnceMinBatchItemsWait) {
  Pipeline pipeline;
  SettleWindow window(pipeline.start(), 1, 64, 64, 8, /*min_batch=*/3);
  window.submit(item(0));
  ASSERT_TRUE(pipeline.wait_started(1));
  window.submit(item(1));
  window.submit(item(2));
  window.submit(item(3));  // the third waiting: a batch of the three starts
  ASSERT_TRUE(pipeline.wait_started(2));
  window.submit(item(4));  // one waiting: it waits while batches are in flight
  pipeline.confirm(0);
  pipeline.confirm(1);
  ASSERT_TRUE(pipeline.wait_started(3));  // nothing in flight: item 4 starts alone
  {
    std::lock_guard lock(pipeline.mutex);
    EXPECT_EQ(pipeline.finished, (std::vector<int>{0, 1}));
  }
  pipeline.confirm(2);
  window.drain();
  std::lock_guard lock(pipeline.mutex);
  ASSERT_EQ(pipeline.started.size(), 3u);
  EXPECT_EQ(pipeline.started[1], (std::vector<std::string>{"message-1", "message-2", "message-3"}));
  EXPECT_EQ(pipeline.started[2], (std::vector<std::string>{"message-4"}));
  EXPECT_EQ(pipeline.finished, (std::vector<int>{0, 1, 2}));
}

TEST(SettleWindow, AStartedBatchIsFinishedEvenWhenNobodyPokesIt) {
  // A transport that gives up on its sends without saying so is asked again (within 200 ms).
  Pipeline pipeline;
  SettleWindow window(pipeline.start(), 1, 64, 64, 4);
  window.submit(item(0));
  ASSERT_TRUE(pipeline.wait_started(1));
  {
    std::lock_guard lock(pipeline.mutex);
    pipeline.confirmed.insert(0);  // ready, but no poke
  }
  window.drain();
  std::lock_guard lock(pipeline.mutex);
  EXPECT_EQ(pipeline.finished, (std::vector<int>{0}));
}

}  // namespace
}  // namespace asya::sidecar
