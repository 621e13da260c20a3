#include "sidecar/join/join_progress.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <thread>

namespace asya::sidecar::join {
namespace {

using namespace std::chrono_literals;
using Clock = JoinProgress::Clock;

// Feeds `progress` the counts 1..count of `group`, `gap` apart from `start`; returns the counts
// reported.
std::vector<std::size_t> feed(JoinProgress& progress, const std::string& group, std::size_t count,
                              Clock::duration gap, Clock::time_point start = Clock::now()) {
  std::vector<std::size_t> reported;
  for (std::size_t stored = 1; stored <= count; ++stored)
    progress.on_stored(group, stored, count, start + gap * static_cast<int>(stored - 1),
                       [&] { reported.push_back(stored); });
  return reported;
}

TEST(JoinProgress, TheFirstBranchThenAtMostOneCountPerIntervalThenTheCompletingOne) {
  JoinProgress progress(250ms);
  // Branches 100 ms apart: 1 at 0 ms, 4 at 300 ms, 7 at 600 ms, ... and 20 (completes it).
  EXPECT_EQ(feed(progress, "g@0", 20, 100ms),
            (std::vector<std::size_t>{1, 4, 7, 10, 13, 16, 19, 20}));
}

TEST(JoinProgress, BranchesFurtherApartThanTheIntervalAreEachReported) {
  JoinProgress progress(250ms);
  std::vector<std::size_t> all(20);
  for (std::size_t i = 0; i < 20; ++i) all[i] = i + 1;
  EXPECT_EQ(feed(progress, "g@0", 20, 300ms), all);
}

TEST(JoinProgress, ATenThousandWayFanOutGivesAFewDozenReports) {
  JoinProgress progress(250ms);
  // 10,000 branches over 10 s: one report per 250 ms plus the completing one, not 10,000.
  auto reported = feed(progress, "wide@0", 10'000, 1ms);
  EXPECT_LE(reported.size(), 10'000u / 250 + 2);
  EXPECT_GE(reported.size(), 10'000u / 250);
  EXPECT_EQ(reported.back(), 10'000u);
  EXPECT_TRUE(std::is_sorted(reported.begin(), reported.end()));
}

TEST(JoinProgress, ALowerCountIsNeverReportedAfterAHigherOne) {
  JoinProgress progress(0ms);
  const auto now = Clock::now();
  int reports = 0;
  auto count = [&] { ++reports; };
  EXPECT_TRUE(progress.on_stored("g@0", 5, 20, now, count));
  EXPECT_FALSE(progress.on_stored("g@0", 4, 20, now + 1s, count));  // a worker that lost a race
  EXPECT_TRUE(progress.on_stored("g@0", 20, 20, now + 2s, count));
  EXPECT_FALSE(progress.on_stored("g@0", 19, 20, now + 3s, count));  // after the group completed
  EXPECT_EQ(reports, 2);
}

TEST(JoinProgress, RacingWorkersQueueTheirReportsInRisingOrder) {
  JoinProgress progress(0ms);
  constexpr std::size_t kCount = 4000;
  std::atomic<std::size_t> stored{0};
  std::mutex mutex;
  std::vector<std::size_t> queued;
  std::vector<std::thread> workers;
  for (int w = 0; w < 8; ++w) {
    workers.emplace_back([&] {
      for (;;) {
        const std::size_t mine = ++stored;  // the store's count after this worker's put
        if (mine > kCount) return;
        progress.on_stored("g@0", mine, kCount, Clock::now(), [&] {
          std::lock_guard lock(mutex);
          queued.push_back(mine);
        });
      }
    });
  }
  for (auto& t : workers) t.join();
  ASSERT_FALSE(queued.empty());
  EXPECT_TRUE(std::is_sorted(queued.begin(), queued.end()));
  EXPECT_EQ(std::adjacent_find(queued.begin(), queued.end()), queued.end());  // no repeats
  EXPECT_EQ(queued.back(), kCount);
}

TEST(JoinProgress, MemoryStaysBoundedByMaxGroups) {
  JoinProgress progress(250ms, 3);
  const auto now = Clock::now();
  for (int g = 0; g < 10; ++g) {
    std::string group("g");
    group.append(std::to_string(g)).append("@0");
    EXPECT_TRUE(progress.on_stored(group, 1, 5, now, [] {}));
  }
  EXPECT_LE(progress.groups(), 3u);
}

TEST(JoinProgress, TheBodyIsAProgressReportWithTheBranchCounts) {
  auto body =
      boost::json::parse(join_progress_body({"split", "score", "combine"}, 2, "job-1", 7, 20))
          .as_object();
  EXPECT_EQ(body.at("actors"), (boost::json::array{"split", "score", "combine"}));
  EXPECT_EQ(body.at("current_actor_idx"), 2);
  EXPECT_EQ(body.at("status"), "received");
  EXPECT_EQ(body.at("message"), "joined 7 of 20 branches of job-1");
  EXPECT_EQ(body.at("branches_joined"), 7);
  EXPECT_EQ(body.at("branches_total"), 20);
}

}  // namespace
}  // namespace asya::sidecar::join
