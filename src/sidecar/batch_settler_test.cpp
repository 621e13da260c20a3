#include "sidecar/batch_settler.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "sidecar/batch_runner.hpp"
#include "sidecar/fake_transport.hpp"

namespace asya::sidecar {
namespace {

using namespace std::chrono_literals;

TEST(BackgroundSettler, RunReturnsAtOnceAndTheJobRunsOnAnotherThread) {
  BackgroundSettler settler;
  std::promise<void> release;
  auto released = release.get_future().share();
  std::atomic<bool> done{false};
  std::thread::id ran_on;
  settler.run([&] {
    ran_on = std::this_thread::get_id();
    released.wait();
    done = true;
  });
  EXPECT_FALSE(done);  // run() did not wait for the job
  release.set_value();
  settler.wait();
  EXPECT_TRUE(done);
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST(BackgroundSettler, AHeldJobStartsOnlyWhenReleased) {
  BackgroundSettler settler;
  std::atomic<bool> started{false};
  settler.hold([&] { started = true; });
  EXPECT_TRUE(settler.holding());
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(started);  // held: the worker leases the next batch first
  settler.release();
  EXPECT_FALSE(settler.holding());
  settler.wait();
  EXPECT_TRUE(started);
}

TEST(BackgroundSettler, WaitAndDestructionReleaseAHeldJob) {
  std::atomic<int> ran{0};
  {
    BackgroundSettler settler;
    settler.hold([&] { ++ran; });
    settler.wait();
    EXPECT_EQ(ran, 1);
    settler.hold([&] { ++ran; });
  }
  EXPECT_EQ(ran, 2);
}

TEST(BackgroundSettler, JobsRunOneAtATimeInOrder) {
  BackgroundSettler settler;
  std::vector<int> order;
  std::atomic<int> running{0};
  std::atomic<int> most{0};
  for (int i = 0; i < 20; ++i) {
    auto job = [&, i] {
      most = std::max(most.load(), ++running);
      std::this_thread::sleep_for(1ms);
      order.push_back(i);  // safe: one job at a time, and run() waits for the previous one
      --running;
    };
    if (i % 2)
      settler.run(job);
    else
      settler.hold(job);  // released by the next run() or hold()
  }
  settler.wait();
  EXPECT_EQ(most, 1);
  ASSERT_EQ(order.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
}

TEST(BackgroundSettler, DestructionWaitsForTheJobInProgress) {
  std::atomic<bool> done{false};
  {
    BackgroundSettler settler;
    settler.run([&] {
      std::this_thread::sleep_for(20ms);
      done = true;
    });
  }
  EXPECT_TRUE(done);
}

// run_batch's hand-over: which batches may be settled in the background.
class RunBatchDefer : public ::testing::Test {
 protected:
  static RouterOptions options() {
    RouterOptions o;
    o.actor = "b";
    o.max_deliveries = 3;
    o.jitter = [] { return 0.0; };
    return o;
  }
  static std::string envelope_for(const std::string& id) {
    return fmt::format(R"({{"id":"{}","route":{{"actors":["b","c"],"current":0}},"payload":1}})",
                       id);
  }
  struct Handed {
    int jobs = 0;
    bool background = false;
    std::vector<std::string> settled;   // receipts given to settle, in order
    std::vector<std::string> finished;  // receipts given to finish, in order
  };
  Handed run(std::vector<transport::Delivery>& deliveries) {
    Handed handed;
    BatchSteps steps;
    steps.tracked = [](const envelope::Envelope&) { return false; };
    steps.before_call = [](const envelope::Envelope&, bool) { return std::optional<Decision>(); };
    steps.after_call = [](const envelope::Envelope&, Decision&, double, bool) {};
    steps.settle = [&](std::span<const SettleItem> items) {
      for (const SettleItem& item : items) handed.settled.push_back(item.delivery->receipt);
    };
    steps.finish = [&](const transport::Delivery& d, const envelope::Envelope*, const Decision&,
                       bool) { handed.finished.push_back(d.receipt); };
    std::function<void()> kept;
    steps.defer = [&](std::function<void()> job, bool background) {
      ++handed.jobs;
      handed.background = background;
      kept = std::move(job);
    };
    wire::RuntimeClient client(
        wire::RuntimeClientOptions{(dir_ / "asya-nothing-listens.sock").string(), 1u << 20});
    run_batch(router_, client, deliveries, scratch_, 1s, 0, metrics_, batch_metrics_, steps);
    EXPECT_TRUE(handed.settled.empty());  // nothing settled before the job runs
    if (kept) kept();  // the job owns what it settles: run_batch has returned by now
    return handed;
  }

  std::filesystem::path dir_ = std::filesystem::temp_directory_path();
  Router router_{options()};
  wire::FrameBuffer scratch_;
  Metrics metrics_{"asya-b", "fake"};
  BatchMetrics batch_metrics_{"asya-b"};
};

TEST_F(RunBatchDefer, ABatchDecidedWithoutTheRuntimeMayBeSettledInTheBackground) {
  std::vector<transport::Delivery> deliveries;
  deliveries.push_back({"asya-b", envelope_for("p1"), 4, "p1"});  // poison: max_deliveries 3
  deliveries.push_back({"asya-b", "not json", 1, "garbage"});
  Handed handed = run(deliveries);
  EXPECT_EQ(handed.jobs, 1);
  EXPECT_TRUE(handed.background);
  EXPECT_EQ(handed.settled, (std::vector<std::string>{"p1", "garbage"}));
  EXPECT_EQ(handed.finished, (std::vector<std::string>{"p1", "garbage"}));
}

TEST_F(RunBatchDefer, AnUnavailableRuntimeKeepsTheSettlingOnTheWorker) {
  std::vector<transport::Delivery> deliveries;
  deliveries.push_back({"asya-b", envelope_for("a"), 1, "a"});
  deliveries.push_back({"asya-b", envelope_for("b"), 1, "b"});
  Handed handed = run(deliveries);
  EXPECT_EQ(handed.jobs, 1);
  EXPECT_FALSE(handed.background);  // the worker must wait for the runtime before going on
  EXPECT_EQ(handed.settled, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(handed.finished, (std::vector<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace asya::sidecar
