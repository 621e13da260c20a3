#include "gateway/span_writer.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asya::gateway {
namespace {

otlp::Span span_named(const std::string& name) {
  otlp::Span span;
  span.name = name;
  return span;
}

otlp::Span span_numbered(const char* prefix, int number) {
  otlp::Span span;
  span.name = prefix;
  span.name.append(std::to_string(number));
  return span;
}

// A sink that records its batches and can be held inside its first call until released.
class HeldSink {
 public:
  explicit HeldSink(bool hold_first) : holding_(hold_first) {}

  SpanWriter::Sink sink() {
    return [this](std::vector<otlp::Span> batch) {
      std::unique_lock lock(mutex_);
      ++calls_entered_;
      changed_.notify_all();
      changed_.wait(lock, [&] { return !holding_; });
      std::vector<std::string> names;
      for (const auto& s : batch) names.push_back(s.name);
      batches_.push_back(std::move(names));
    };
  }
  void wait_entered(int calls) {
    std::unique_lock lock(mutex_);
    ASSERT_TRUE(
        changed_.wait_for(lock, std::chrono::seconds(30), [&] { return calls_entered_ >= calls; }));
  }
  void release() {
    std::lock_guard lock(mutex_);
    holding_ = false;
    changed_.notify_all();
  }
  std::vector<std::vector<std::string>> batches() {
    std::lock_guard lock(mutex_);
    return batches_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool holding_;
  int calls_entered_ = 0;
  std::vector<std::vector<std::string>> batches_;
};

std::size_t total(const std::vector<std::vector<std::string>>& batches) {
  std::size_t n = 0;
  for (const auto& b : batches) n += b.size();
  return n;
}

TEST(SpanWriter, SpansWaitingWhileTheSinkWritesGoTogetherInTheNextBatch) {
  HeldSink sink(true);
  SpanWriter writer(sink.sink(), std::chrono::milliseconds(0));
  ASSERT_TRUE(writer.add(span_named("first")));
  sink.wait_entered(1);  // the writer is inside the sink with the first span
  for (int i = 0; i < 99; ++i) ASSERT_TRUE(writer.add(span_numbered("s", i)));
  sink.release();
  writer.flush();
  auto batches = sink.batches();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0], std::vector<std::string>{"first"});
  ASSERT_EQ(batches[1].size(), 99u);
  EXPECT_EQ(batches[1].front(), "s0");
  EXPECT_EQ(batches[1].back(), "s98");
  EXPECT_EQ(writer.dropped(), 0u);
}

TEST(SpanWriter, FlushReturnsOnlyAfterEverySpanAddedBeforeItWasWritten) {
  HeldSink sink(false);
  SpanWriter writer(sink.sink());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&writer, t] {
      for (int i = 0; i < 500; ++i) writer.add(span_numbered(t % 2 ? "odd" : "even", i));
    });
  }
  for (auto& t : threads) t.join();
  writer.flush();
  auto batches = sink.batches();
  EXPECT_EQ(total(batches), 2000u);
  for (const auto& b : batches) EXPECT_LE(b.size(), SpanWriter::kMaxBatch);
}

TEST(SpanWriter, SpansOfALingerWindowShareABatchAndFlushEndsTheWindow) {
  HeldSink sink(false);
  SpanWriter writer(sink.sink(), std::chrono::hours(1));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(writer.add(span_numbered("s", i)));
  writer.flush();  // does not wait for the hour
  auto batches = sink.batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0], (std::vector<std::string>{"s0", "s1", "s2", "s3", "s4"}));
}

TEST(SpanWriter, SpansAreWrittenAfterTheLingerWithoutAFlush) {
  HeldSink sink(false);
  SpanWriter writer(sink.sink(), std::chrono::milliseconds(20));
  ASSERT_TRUE(writer.add(span_named("alone")));
  sink.wait_entered(1);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (sink.batches().empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(sink.batches(), (std::vector<std::vector<std::string>>{{"alone"}}));
}

TEST(SpanWriter, DropsSpansBeyondMaxPendingAndCountsThem) {
  HeldSink sink(true);
  SpanWriter writer(sink.sink(), std::chrono::milliseconds(0), 10);
  ASSERT_TRUE(writer.add(span_named("first")));
  sink.wait_entered(1);
  int accepted = 0;
  for (int i = 0; i < 15; ++i) accepted += writer.add(span_named("s")) ? 1 : 0;
  EXPECT_EQ(accepted, 10);
  EXPECT_EQ(writer.dropped(), 5u);
  sink.release();
  writer.flush();
  EXPECT_EQ(total(sink.batches()), 11u);
}

TEST(SpanWriter, StopWritesWhatIsPendingAndLaterSpansAreDropped) {
  HeldSink sink(true);
  SpanWriter writer(sink.sink(), std::chrono::milliseconds(0));
  ASSERT_TRUE(writer.add(span_named("first")));
  sink.wait_entered(1);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(writer.add(span_named("s")));
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // stop() is waiting by now
    sink.release();
  });
  writer.stop();
  releaser.join();
  EXPECT_EQ(total(sink.batches()), 6u);
  EXPECT_FALSE(writer.add(span_named("late")));
  writer.flush();  // returns at once after stop()
  EXPECT_EQ(total(sink.batches()), 6u);
}

TEST(SpanWriter, ASinkThatThrowsDoesNotStopTheWriter) {
  int calls = 0;
  std::vector<std::string> written;
  std::mutex mutex;
  SpanWriter writer([&](std::vector<otlp::Span> batch) {
    std::lock_guard lock(mutex);
    if (++calls == 1) throw std::runtime_error("store down");
    for (const auto& s : batch) written.push_back(s.name);
  });
  writer.add(span_named("lost"));
  writer.flush();
  writer.add(span_named("kept"));
  writer.flush();
  std::lock_guard lock(mutex);
  EXPECT_EQ(written, std::vector<std::string>{"kept"});
}

}  // namespace
}  // namespace asya::gateway
