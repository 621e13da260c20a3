#include "sidecar/settle_window.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
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

}  // namespace
}  // namespace asya::sidecar
