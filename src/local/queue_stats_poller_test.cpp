#include "local/queue_stats_poller.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "transport/sqlite/sqlite_transport.hpp"

namespace asya::local {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Waits for `condition` up to `timeout`; returns whether it became true.
template <typename Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout = 20s) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return condition();
}

TEST(QueueStatsPoller, ReadsEachQueueOfARealTransport) {
  fs::path dir = fs::temp_directory_path() / ("stats-poller-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  transport::SqliteSettings settings;
  settings.path = (dir / "q.db").string();
  auto sender = transport::make_sqlite_transport(transport::Options{}, settings);
  ASSERT_TRUE(sender->ensure_queue("asya-a"));
  ASSERT_TRUE(sender->send("asya-a", "{}"));
  ASSERT_TRUE(sender->send("asya-a", "{}"));
  QueueStatsPoller poller(
      [settings] { return transport::make_sqlite_transport(transport::Options{}, settings); },
      {{"asya-a", 50ms}, {"asya-b", 50ms}}, 2s);
  EXPECT_FALSE(poller.latest("asya-a").ok());  // nothing read yet
  poller.start();
  ASSERT_TRUE(eventually([&] { return poller.latest("asya-a").ok(); }));
  EXPECT_EQ(poller.latest("asya-a").stats.ready, 2u);
  ASSERT_TRUE(sender->send("asya-a", "{}"));
  EXPECT_TRUE(eventually([&] { return poller.latest("asya-a").stats.ready == 3; }));
  EXPECT_TRUE(eventually([&] { return poller.latest("asya-b").ok(); }));
  poller.stop(5s);
  sender->close();
  fs::remove_all(dir);
}

// A transport whose stats() hangs until released: a broker that does not answer (RabbitMQ waits
// up to ASYA_RABBITMQ_CONFIRM_TIMEOUT in such a call); nothing real can hang on demand.
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool open = false;
  int calls = 0;
};

class HangingTransport : public transport::Transport {
 public:
  explicit HangingTransport(std::shared_ptr<Gate> gate) : gate_(std::move(gate)) {}
  std::string_view name() const override { return "hanging"; }
  Status ensure_queue(std::string_view) override { return Status::Ok(); }
  Result<std::vector<transport::Delivery>> receive(std::string_view, std::size_t,
                                                   std::chrono::milliseconds) override {
    return std::vector<transport::Delivery>{};
  }
  Status send(std::string_view, std::string_view, std::chrono::milliseconds) override {
    return Status::Ok();
  }
  Status ack(const transport::Delivery&) override { return Status::Ok(); }
  Status nack(const transport::Delivery&, std::chrono::milliseconds) override {
    return Status::Ok();
  }
  Status extend_lease(const transport::Delivery&, std::chrono::milliseconds) override {
    return Status::Ok();
  }
  Result<transport::QueueStats> stats(std::string_view) override {
    std::unique_lock lock(gate_->mutex);
    ++gate_->calls;
    gate_->cv.notify_all();
    gate_->cv.wait(lock, [&] { return gate_->open; });
    transport::QueueStats s;
    s.ready = 7;
    return s;
  }
  Result<std::vector<std::string>> list_queues() override { return std::vector<std::string>{}; }
  std::size_t max_message_bytes() const override { return 1024; }
  void interrupt() override {}
  void close() override {}

 private:
  std::shared_ptr<Gate> gate_;
};

TEST(QueueStatsPoller, AHangingTransportNeverBlocksLatestOrStopAndIsReportedAfterTheTimeout) {
  auto gate = std::make_shared<Gate>();
  auto poller = std::make_unique<QueueStatsPoller>(
      [gate] { return std::make_unique<HangingTransport>(gate); },
      std::vector<QueueStatsPoller::Queue>{{"asya-a", 10ms}}, 200ms);
  poller->start();
  {
    std::unique_lock lock(gate->mutex);
    ASSERT_TRUE(gate->cv.wait_for(lock, 20s, [&] { return gate->calls == 1; }));
  }
  auto started = Clock::now();
  EXPECT_TRUE(eventually([&] { return !poller->latest("asya-a").error.empty(); }));
  auto sample = poller->latest("asya-a");
  EXPECT_FALSE(sample.ok());
  EXPECT_NE(sample.error.find("no answer from the transport for"), std::string::npos)
      << sample.error;
  EXPECT_NE(sample.error.find("(reading asya-a)"), std::string::npos) << sample.error;
  // stop() returns after its wait although the call still hangs.
  poller->stop(50ms);
  poller.reset();
  EXPECT_LT(Clock::now() - started, 15s);
  {
    std::lock_guard lock(gate->mutex);
    gate->open = true;
  }
  gate->cv.notify_all();  // the detached thread finishes its call and ends on its own
}

TEST(QueueStatsPoller, AnAnswerAfterAHangMakesTheStatsCurrentAgain) {
  auto gate = std::make_shared<Gate>();
  QueueStatsPoller poller([gate] { return std::make_unique<HangingTransport>(gate); },
                          {{"asya-a", 10ms}}, 100ms);
  poller.start();
  EXPECT_TRUE(eventually([&] { return !poller.latest("asya-a").error.empty(); }));
  {
    std::lock_guard lock(gate->mutex);
    gate->open = true;
  }
  gate->cv.notify_all();
  ASSERT_TRUE(eventually([&] { return poller.latest("asya-a").ok(); }));
  EXPECT_EQ(poller.latest("asya-a").stats.ready, 7u);
  poller.stop(5s);
}

}  // namespace
}  // namespace asya::local
