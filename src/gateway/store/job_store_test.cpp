// The same suite runs against SQLite (always) and PostgreSQL (when ASYA_TEST_DATABASE_URL is set;
// tests/gateway/test_store.py starts a real PostgreSQL 15 and runs this binary against it).
#include "gateway/store/job_store.hpp"
#include "gateway/store/test_ids.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <vector>

#include "common/env.hpp"

namespace asya::gateway {
namespace {

using testing::unique_id;

class JobStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      path_ = std::filesystem::temp_directory_path() / (unique_id("asya-jobs") + ".db");
      store_ = open_sqlite_job_store(path_.string());
    } else {
      const char* url = std::getenv("ASYA_TEST_DATABASE_URL");
      if (!url || !*url)
        GTEST_SKIP() << "ASYA_TEST_DATABASE_URL not set (tests/gateway/test_store.py sets it)";
      store_ = open_postgres_job_store(url);
    }
  }
  void TearDown() override {
    store_.reset();
    if (!path_.empty()) {
      std::filesystem::remove(path_);
      std::filesystem::remove(path_.string() + "-wal");
      std::filesystem::remove(path_.string() + "-shm");
    }
  }

  std::string create(std::vector<std::string> actors = {"prep", "infer", "post"},
                     std::optional<Clock::time_point> deadline = std::nullopt) {
    std::string id = unique_id("job");
    NewJob job{id,
               "tool",
               std::move(actors),
               R"({"actors":["prep"],"current":0})",
               R"({"text":"hi"})",
               deadline,
               "",
               false,
               std::nullopt};
    Status status = store_->create(job);
    EXPECT_TRUE(status.ok()) << status.message();
    return id;
  }

  ChangeResult progress(const std::string& id, int index, const std::string& state) {
    auto r = store_->progress(ProgressReport{id, {}, index, state, ""});
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.value();
  }

  ChangeResult finish(const std::string& id, JobStatus status, const std::string& result = "",
                      const std::string& error = "") {
    FinalReport report;
    report.envelope_id = id;
    report.status = status;
    report.result_json = result;
    report.error = error;
    auto r = store_->finish(report);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.value();
  }

  // A second store on the same database, as another gateway replica has.
  std::unique_ptr<JobStore> open_again() {
    if (GetParam() == "sqlite") return open_sqlite_job_store(path_.string());
    return open_postgres_job_store(std::getenv("ASYA_TEST_DATABASE_URL"));
  }

  Job get(const std::string& id) {
    auto r = store_->get(id);
    EXPECT_TRUE(r.ok() && r.value().has_value());
    return *r.value();
  }

  std::filesystem::path path_;
  std::unique_ptr<JobStore> store_;
};

TEST_P(JobStoreTest, NewJobIsPendingWithOneUpdate) {
  std::string id = create();
  Job job = get(id);
  EXPECT_EQ(job.status, JobStatus::pending);
  EXPECT_EQ(job.progress_percent, 0);
  EXPECT_EQ(job.payload_json, R"({"text":"hi"})");
  auto updates = store_->updates(id, 0);
  ASSERT_TRUE(updates.ok());
  ASSERT_EQ(updates.value().size(), 1u);
  EXPECT_EQ(updates.value()[0].sequence, 1);
  EXPECT_FALSE(
      store_->create(NewJob{id, "tool", {"a"}, "{}", "{}", std::nullopt, "", false, std::nullopt})
          .ok());
}

TEST_P(JobStoreTest, ProgressFollowsTheProtocolFormulaAndNeverDecreases) {
  std::string id = create();
  EXPECT_EQ(progress(id, 0, "received").progress_percent, 3);     // (0*100+10)/3
  EXPECT_EQ(progress(id, 0, "processing").progress_percent, 16);  // (0*100+50)/3
  EXPECT_EQ(get(id).status, JobStatus::running);
  EXPECT_EQ(progress(id, 1, "completed").progress_percent, 66);  // (1*100+100)/3
  EXPECT_EQ(progress(id, 0, "received").progress_percent, 66);   // late, lower: kept
  EXPECT_EQ(progress(id, 2, "completed").progress_percent, 99);  // 100 only at final
  Job job = get(id);
  EXPECT_EQ(job.current_actor_idx, 2);
  EXPECT_EQ(job.actors_completed, 3);
  auto f = finish(id, JobStatus::succeeded, R"({"answer":42})");
  EXPECT_EQ(f.outcome, Outcome::applied);
  EXPECT_EQ(f.progress_percent, 100);
  EXPECT_TRUE(f.job_final);
  job = get(id);
  EXPECT_EQ(job.status, JobStatus::succeeded);
  EXPECT_EQ(job.result_json, R"({"answer":42})");
}

TEST_P(JobStoreTest, FinalNeverChangesAndLateProgressIsIgnored) {
  std::string id = create();
  progress(id, 0, "processing");
  finish(id, JobStatus::failed, "", "boom");
  EXPECT_EQ(progress(id, 2, "completed").outcome, Outcome::ignored);
  EXPECT_EQ(finish(id, JobStatus::failed, "", "boom").outcome, Outcome::duplicate);
  EXPECT_EQ(finish(id, JobStatus::succeeded, "1").outcome, Outcome::conflict);
  auto failed = store_->fail(id, "timed out");
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed.value().outcome, Outcome::ignored);
  Job job = get(id);
  EXPECT_EQ(job.status, JobStatus::failed);
  EXPECT_EQ(job.error, "boom");
  EXPECT_EQ(job.progress_percent, 16);
}

TEST_P(JobStoreTest, ABatchOfReportsIsAppliedInOrderWithOneResultEach) {
  std::string a = create();
  std::string b = create({"one"});
  FinalReport b_final;
  b_final.envelope_id = b;
  b_final.status = JobStatus::succeeded;
  b_final.result_json = "[1, 2.50]";
  FinalReport b_conflict = b_final;
  b_conflict.status = JobStatus::failed;
  std::vector<SidecarReport> reports{
      ProgressReport{a, {}, 0, "processing", ""},
      ProgressReport{a, {}, 1, "completed", ""},
      ProgressReport{a, {}, 0, "completed", ""},  // behind: ignored, as alone
      ProgressReport{"nobody", {}, 0, "processing", ""},
      b_final,
      ProgressReport{b, {}, 0, "processing", ""},  // after the final status: ignored
      b_conflict,
  };
  auto results = store_->apply(reports);
  ASSERT_EQ(results.size(), reports.size());
  for (const auto& r : results) ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(results[0].value().progress_percent, 16);
  EXPECT_EQ(results[1].value().progress_percent, 66);
  EXPECT_EQ(results[2].value().outcome, Outcome::ignored);
  EXPECT_EQ(results[3].value().outcome, Outcome::not_found);
  EXPECT_EQ(results[4].value().outcome, Outcome::applied);
  EXPECT_TRUE(results[4].value().job_final);
  EXPECT_EQ(results[5].value().outcome, Outcome::ignored);
  EXPECT_EQ(results[6].value().outcome, Outcome::conflict);
  Job job_a = get(a);
  EXPECT_EQ(job_a.progress_percent, 66);
  EXPECT_EQ(job_a.current_actor_idx, 1);
  Job job_b = get(b);
  EXPECT_EQ(job_b.status, JobStatus::succeeded);
  EXPECT_EQ(job_b.result_json, "[1, 2.50]");
  // Each applied report is an update of its job, in the batch's order.
  auto updates = store_->updates(a, 0);
  ASSERT_TRUE(updates.ok());
  ASSERT_EQ(updates.value().size(), 3u);
  EXPECT_EQ(updates.value()[1].envelope_state, "processing");
  EXPECT_EQ(updates.value()[2].envelope_state, "completed");
}

TEST_P(JobStoreTest, UpdatesHaveSequenceNumbersForResume) {
  std::string id = create();
  progress(id, 0, "received");
  progress(id, 0, "processing");
  finish(id, JobStatus::succeeded, "\"done\"");
  auto all = store_->updates(id, 0);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all.value().size(), 4u);
  for (std::size_t i = 0; i < 4; ++i)
    EXPECT_EQ(all.value()[i].sequence, static_cast<std::int64_t>(i + 1));
  EXPECT_EQ(all.value()[1].envelope_state, "received");
  EXPECT_EQ(all.value()[1].actor, "prep");
  EXPECT_EQ(all.value()[3].status, JobStatus::succeeded);
  EXPECT_EQ(all.value()[3].result_json, "\"done\"");
  auto tail = store_->updates(id, 2);
  ASSERT_TRUE(tail.ok());
  ASSERT_EQ(tail.value().size(), 2u);
  EXPECT_EQ(tail.value()[0].sequence, 3);
}

TEST_P(JobStoreTest, UnknownIdsAreNotFound) {
  auto r = store_->get("no-such-job");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.value().has_value());
  EXPECT_EQ(store_->progress(ProgressReport{"no-such-job", {}, 0, "received", ""}).value().outcome,
            Outcome::not_found);
  EXPECT_EQ(store_->add_branch(BranchReport{"x-1", "no-such-job", {}, 0}).value().outcome,
            Outcome::not_found);
  EXPECT_TRUE(store_->updates("no-such-job", 0).value().empty());
}

TEST_P(JobStoreTest, FanOutFinishesWhenEveryBranchEndedWithResultsInOrder) {
  std::string id = create({"split", "work"});
  progress(id, 0, "processing");
  EXPECT_EQ(store_->add_branch(BranchReport{id + "-2", id, {"split", "work"}, 1}).value().outcome,
            Outcome::applied);
  EXPECT_EQ(store_->add_branch(BranchReport{id + "-1", id, {"split", "work"}, 1}).value().outcome,
            Outcome::applied);
  EXPECT_EQ(store_->add_branch(BranchReport{id + "-1", id, {"split", "work"}, 1}).value().outcome,
            Outcome::duplicate);
  EXPECT_FALSE(finish(id + "-2", JobStatus::succeeded, "2").job_final);
  progress(id + "-1", 1, "processing");
  EXPECT_FALSE(finish(id, JobStatus::succeeded, "0").job_final);
  EXPECT_EQ(get(id).status, JobStatus::running);
  EXPECT_EQ(get(id + "-1").id, id);  // a branch id finds its job
  auto last = finish(id + "-1", JobStatus::succeeded, "1");
  EXPECT_TRUE(last.job_final);
  Job job = get(id);
  EXPECT_EQ(job.status, JobStatus::succeeded);
  EXPECT_EQ(job.result_json, "[0,1,2]");
  ASSERT_EQ(job.branches.size(), 3u);
  EXPECT_EQ(job.branches[1].id, id + "-1");
}

TEST_P(JobStoreTest, AJoinedFanOutFinishesOnceWithTheJoinsOneResult) {
  // PROTOCOL §4a: the join consumed branches 1 and 2; the envelope that fanned out goes on as the
  // join's output and its final is the job's one result.
  std::string id = create({"split", "work", "join"});
  for (const char* child : {"-1", "-2"})
    ASSERT_EQ(store_->add_branch(BranchReport{id + child, id, {"split", "work", "join"}, 1})
                  .value()
                  .outcome,
              Outcome::applied);
  auto joined = store_->join(JoinReport{id, {id + "-1", id + "-2"}, 3, 0, 0});
  ASSERT_TRUE(joined.ok());
  EXPECT_EQ(joined.value().outcome, Outcome::applied);
  EXPECT_FALSE(joined.value().job_final);
  EXPECT_EQ(get(id).message, "joined 3 of 3 branches of " + id);
  EXPECT_EQ(store_->join(JoinReport{id, {id + "-1", id + "-2"}, 3, 0, 0}).value().outcome,
            Outcome::duplicate);
  auto last = finish(id, JobStatus::succeeded, "{\"sum\":3}");
  EXPECT_TRUE(last.job_final);
  Job job = get(id);
  EXPECT_EQ(job.status, JobStatus::succeeded);
  EXPECT_EQ(job.result_json, "{\"sum\":3}");
  ASSERT_EQ(job.branches.size(), 1u);
}

TEST_P(JobStoreTest, AJoinReportedAfterTheOutputEndedMakesTheJobFinal) {
  std::string id = create({"split", "join"});
  ASSERT_EQ(store_->add_branch(BranchReport{id + "-1", id, {"split", "join"}, 1}).value().outcome,
            Outcome::applied);
  EXPECT_FALSE(finish(id, JobStatus::succeeded, "7").job_final);  // the join report was late
  auto joined = store_->join(JoinReport{id, {id + "-1"}, 2, 0, 0});
  EXPECT_TRUE(joined.value().job_final);
  EXPECT_EQ(get(id).result_json, "7");
}

TEST_P(JobStoreTest, ABranchReportedBeforeItsAnnouncementIsAdopted) {
  // PROTOCOL §7: when an announcement failed or is still queued, the branch's own reports may
  // come first; the job must still wait for that branch.
  std::string id = create({"split", "work"});
  EXPECT_EQ(progress(id + "-2", 1, "processing").outcome, Outcome::applied);
  EXPECT_FALSE(finish(id, JobStatus::succeeded, "0").job_final);
  EXPECT_EQ(get(id + "-2").id, id);
  auto last = finish(id + "-2", JobStatus::succeeded, "2");
  EXPECT_TRUE(last.job_final);
  EXPECT_EQ(get(id).result_json, "[0,2]");
  // The late announcement is then a duplicate; a report for an unknown branch of a final job is
  // ignored; an id that is no branch of any job stays unknown.
  EXPECT_EQ(store_->add_branch(BranchReport{id + "-2", id, {"split", "work"}, 1}).value().outcome,
            Outcome::duplicate);
  EXPECT_EQ(finish(id + "-3", JobStatus::succeeded, "3").outcome, Outcome::ignored);
  EXPECT_EQ(get(id).result_json, "[0,2]");
  EXPECT_EQ(progress("nobody-1", 0, "received").outcome, Outcome::not_found);
  EXPECT_EQ(progress(id + "-x", 0, "received").outcome, Outcome::not_found);

  std::string other = create({"split", "work"});
  EXPECT_FALSE(finish(other + "-1-1", JobStatus::failed, "", "boom").job_final);  // nested
  EXPECT_TRUE(finish(other, JobStatus::succeeded, "0").job_final);
  EXPECT_EQ(get(other).status, JobStatus::failed);
}

TEST_P(JobStoreTest, FanOutWithAFailedBranchFails) {
  std::string id = create({"split"});
  store_->add_branch(BranchReport{id + "-1", id, {"split"}, 1}).value();
  finish(id, JobStatus::succeeded, "0");
  finish(id + "-1", JobStatus::failed, "", "processing_error: bad");
  Job job = get(id);
  EXPECT_EQ(job.status, JobStatus::failed);
  EXPECT_EQ(job.error, "processing_error: bad");
}

TEST_P(JobStoreTest, ExpireFailsJobsPastTheirDeadlineOnly) {
  auto now = Clock::now();
  std::string late = create({"a"}, now - std::chrono::seconds(1));
  std::string future = create({"a"}, now + std::chrono::hours(1));
  std::string done = create({"a"}, now - std::chrono::seconds(1));
  finish(done, JobStatus::succeeded, "1");
  auto expired = store_->expire(now);
  ASSERT_TRUE(expired.ok()) << expired.error().message;
  const auto& ids = expired.value();
  EXPECT_NE(std::find(ids.begin(), ids.end(), late), ids.end());
  EXPECT_EQ(std::find(ids.begin(), ids.end(), future), ids.end());
  EXPECT_EQ(std::find(ids.begin(), ids.end(), done), ids.end());
  EXPECT_EQ(get(late).status, JobStatus::failed);
  EXPECT_EQ(get(late).error, "timed out");
  EXPECT_EQ(get(future).status, JobStatus::pending);
  EXPECT_EQ(get(done).status, JobStatus::succeeded);
}

TEST_P(JobStoreTest, ConcurrentReportsFromManyThreadsKeepTheRules) {
  std::string id = create({"a", "b", "c", "d"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        auto r = store_->progress(ProgressReport{id, {}, (t + i) % 4, "processing", ""});
        EXPECT_TRUE(r.ok());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  // Reports behind the job's actor are ignored, so fewer than 80 progress Updates are recorded;
  // those that are move forward only.
  auto updates = store_->updates(id, 0).value();
  ASSERT_GE(updates.size(), 2u);
  ASSERT_LE(updates.size(), 81u);
  int previous = 0, previous_actor = 0;
  for (std::size_t i = 0; i < updates.size(); ++i) {
    EXPECT_EQ(updates[i].sequence, static_cast<std::int64_t>(i + 1));
    EXPECT_GE(updates[i].progress_percent, previous);
    EXPECT_GE(updates[i].current_actor_idx, previous_actor);
    previous = updates[i].progress_percent;
    previous_actor = updates[i].current_actor_idx;
  }
  EXPECT_EQ(get(id).current_actor_idx, 3);
}

// Concurrent creates share transactions (group commit, transaction_group.hpp): every one that
// returned ok is there for another replica, and a duplicate id in the same batch fails alone.
TEST_P(JobStoreTest, ConcurrentCreatesAreAllDurableAndADuplicateFailsAlone) {
  std::string taken = create({"a"});
  constexpr int kThreads = 8, kPerThread = 15;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::atomic<int> duplicates_refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string id = i == kPerThread / 2 ? taken : unique_id("group");
        NewJob job{id,          "tool",       {"a", "b"}, R"({"actors":["a","b"],"current":0})",
                   "{}",        std::nullopt, "",         false,
                   std::nullopt};
        Status status = store_->create(job);
        if (id == taken) {
          EXPECT_FALSE(status.ok());
          if (!status.ok() && status.message().find("exists already") != std::string::npos)
            ++duplicates_refused;
          continue;
        }
        EXPECT_TRUE(status.ok()) << status.message();
        ids[t].push_back(id);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(duplicates_refused.load(), kThreads);
  auto other = open_again();
  for (const auto& list : ids) {
    for (const std::string& id : list) {
      auto job = other->get(id);
      ASSERT_TRUE(job.ok() && job.value().has_value()) << id;
      EXPECT_EQ(job.value()->status, JobStatus::pending);
      EXPECT_EQ(other->updates(id, 0).value().size(), 1u) << id;
    }
  }
  EXPECT_EQ(get(taken).actors, (std::vector<std::string>{"a"}));
}

TEST_P(JobStoreTest, LateReportsOfAnEarlierActorNeverMoveTheJobBack) {
  // Each actor's sidecar reports on its own connection: actor b's "received" can reach the
  // gateway before actor a's "processing" and "completed".
  std::string id = create({"a", "b", "c"});
  EXPECT_EQ(progress(id, 0, "received").outcome, Outcome::applied);
  EXPECT_EQ(progress(id, 1, "received").outcome, Outcome::applied);
  EXPECT_EQ(progress(id, 0, "processing").outcome, Outcome::ignored);
  EXPECT_EQ(progress(id, 0, "completed").outcome, Outcome::ignored);
  EXPECT_EQ(progress(id, 1, "processing").outcome, Outcome::applied);
  EXPECT_EQ(progress(id, 1, "completed").outcome, Outcome::applied);
  // A completed actor does not go back to processing; another replica's repeat of "completed"
  // (a redelivery) is still recorded.
  EXPECT_EQ(progress(id, 1, "processing").outcome, Outcome::ignored);
  EXPECT_EQ(progress(id, 1, "completed").outcome, Outcome::applied);
  Job job = get(id);
  EXPECT_EQ(job.current_actor_idx, 1);
  EXPECT_EQ(job.actors_completed, 2);
  auto updates = store_->updates(id, 0).value();
  std::vector<std::string> seen;
  for (const auto& u : updates) seen.push_back(u.envelope_state + " " + u.actor);
  EXPECT_EQ(seen, (std::vector<std::string>{"pending a", "received a", "received b", "processing b",
                                            "completed b", "completed b"}));
}

TEST_P(JobStoreTest, AFailedJobKeepsTheFailingActorAndItsErrorDetails) {
  std::string id = create({"split", "score"});
  store_->add_branch(BranchReport{id + "-1", id, {"split", "score"}, 1}).value();
  // The failing branch ends first; the job fails only when the other branch ended too.
  FinalReport failed;
  failed.envelope_id = id + "-1";
  failed.status = JobStatus::failed;
  failed.error = "processing_error";
  failed.error_details_json = R"({"message":"'text'","type":"KeyError","traceback":"tb"})";
  failed.current_actor_idx = 1;
  EXPECT_FALSE(store_->finish(failed).value().job_final);
  FinalReport ok;
  ok.envelope_id = id;
  ok.status = JobStatus::succeeded;
  ok.result_json = "1";
  ok.current_actor_idx = 2;
  EXPECT_TRUE(store_->finish(ok).value().job_final);
  Job job = get(id);
  EXPECT_EQ(job.status, JobStatus::failed);
  EXPECT_EQ(job.error, "processing_error");
  EXPECT_EQ(job.failed_actor, "score");
  EXPECT_EQ(job.error_details_json, failed.error_details_json);
  EXPECT_EQ(job.message, R"(failed: KeyError: 'text' (processing_error in actor "score"))");
  auto updates = store_->updates(id, 0).value();
  EXPECT_EQ(updates.back().message, job.message);
}

TEST_P(JobStoreTest, FinishedJobsSurviveReopening) {
  if (GetParam() != "sqlite") {
    std::string id = create({"a"});
    finish(id, JobStatus::succeeded, "7");
    store_ = open_postgres_job_store(std::getenv("ASYA_TEST_DATABASE_URL"));
    EXPECT_EQ(get(id).result_json, "7");
    return;
  }
  std::string id = create({"a"});
  finish(id, JobStatus::succeeded, "7");
  store_ = open_sqlite_job_store(path_.string());
  EXPECT_EQ(get(id).result_json, "7");
  EXPECT_EQ(store_->updates(id, 0).value().size(), 2u);
}

TEST_P(JobStoreTest, McpSessionsAreSharedByEveryStoreOnTheDatabase) {
  auto replica = open_again();
  std::string id = unique_id("session");
  auto now = Clock::now();
  std::chrono::milliseconds hour = std::chrono::hours(1);
  ASSERT_TRUE(store_->create_session(id, "2025-06-18", now).ok());
  auto used = replica->use_session(id, now + std::chrono::seconds(5), hour);
  ASSERT_TRUE(used.ok()) << used.error().message;
  EXPECT_EQ(used.value().state, SessionUse::State::active);
  EXPECT_EQ(used.value().protocol_version, "2025-06-18");
  auto ended = replica->end_session(id);
  ASSERT_TRUE(ended.ok()) << ended.error().message;
  EXPECT_TRUE(ended.value());
  EXPECT_EQ(store_->use_session(id, now, hour).value().state, SessionUse::State::unknown);
  EXPECT_FALSE(store_->end_session(id).value());
  EXPECT_EQ(store_->use_session("never-created", now, hour).value().state,
            SessionUse::State::unknown);
}

TEST_P(JobStoreTest, McpSessionsExpireWhenUnusedForTheTimeout) {
  auto replica = open_again();
  std::string busy = unique_id("busy");
  std::string idle = unique_id("idle");
  auto t0 = Clock::now();
  std::chrono::milliseconds timeout(1000);
  auto at = [&](int ms) { return t0 + std::chrono::milliseconds(ms); };
  ASSERT_TRUE(store_->create_session(busy, "2025-03-26", t0).ok());
  ASSERT_TRUE(store_->create_session(idle, "2025-03-26", t0).ok());
  // Each use within the timeout keeps the session (on either replica).
  for (int ms : {600, 1200, 1800, 2400}) {
    auto& store = ms % 1200 == 0 ? store_ : replica;
    EXPECT_EQ(store->use_session(busy, at(ms), timeout).value().state, SessionUse::State::active)
        << ms;
  }
  EXPECT_EQ(replica->use_session(idle, at(1000), timeout).value().state,
            SessionUse::State::expired);
  EXPECT_EQ(store_->use_session(idle, at(1001), timeout).value().state, SessionUse::State::unknown);
  // The sweep removes what nobody used for the timeout and counts the rest.
  std::string fresh = unique_id("fresh");
  ASSERT_TRUE(store_->create_session(fresh, "2025-03-26", at(3000)).ok());
  auto left = replica->sweep_sessions(at(3500), timeout);
  ASSERT_TRUE(left.ok()) << left.error().message;
  EXPECT_EQ(store_->use_session(busy, at(3500), timeout).value().state, SessionUse::State::unknown);
  EXPECT_EQ(store_->use_session(fresh, at(3500), timeout).value().state, SessionUse::State::active);
  auto none = store_->sweep_sessions(at(3500) + std::chrono::hours(24 * 365 * 10), timeout);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none.value(), 0);
  EXPECT_GE(left.value(), 1);
}

TEST_P(JobStoreTest, CancelEndsAJobForGoodAndLaterReportsSayItWasCancelled) {
  std::string id = create();
  progress(id, 0, "completed");
  auto cancelled = store_->cancel(id, "cancelled by the client");
  ASSERT_TRUE(cancelled.ok()) << cancelled.error().message;
  EXPECT_EQ(cancelled.value().outcome, Outcome::applied);
  EXPECT_TRUE(cancelled.value().job_final);
  EXPECT_EQ(cancelled.value().job_status, JobStatus::cancelled);
  // The next actor's report is ignored and tells the sidecar the job was cancelled.
  ChangeResult late = progress(id, 1, "received");
  EXPECT_EQ(late.outcome, Outcome::ignored);
  EXPECT_EQ(late.job_status, JobStatus::cancelled);
  EXPECT_EQ(finish(id, JobStatus::succeeded, "1").outcome, Outcome::ignored);
  auto again = store_->cancel(id, "twice");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value().outcome, Outcome::ignored);
  Job job = get(id);
  EXPECT_EQ(job.status, JobStatus::cancelled);
  EXPECT_EQ(job.error, "cancelled by the client");
  auto updates = store_->updates(id, 0);
  ASSERT_TRUE(updates.ok());
  EXPECT_EQ(updates.value().back().status, JobStatus::cancelled);
  auto unknown = store_->cancel(unique_id("nope"), "x");
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown.value().outcome, Outcome::not_found);
  // A finished job is not cancelled.
  std::string done = create();
  finish(done, JobStatus::succeeded, "2");
  auto late_cancel = store_->cancel(done, "too late");
  ASSERT_TRUE(late_cancel.ok());
  EXPECT_EQ(late_cancel.value().outcome, Outcome::ignored);
  EXPECT_EQ(late_cancel.value().job_status, JobStatus::succeeded);
}

TEST_P(JobStoreTest, TasksAreListedPerOwnerInPagesAcrossReplicas) {
  std::string alice = unique_id("alice");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    NewJob job{unique_id("task"), "tool", {"a"}, "{}", "{}", std::nullopt, "", false, std::nullopt};
    job.owner = alice;
    job.task = true;
    job.ttl_ms = 60000;
    ASSERT_TRUE(store_->create(job).ok());
    ids.push_back(job.id);
  }
  NewJob other{unique_id("task"), "tool", {"a"}, "{}", "{}", std::nullopt, "", false, std::nullopt};
  other.owner = unique_id("bob");
  other.task = true;
  ASSERT_TRUE(store_->create(other).ok());
  NewJob not_a_task{unique_id("job"), "tool", {"a"}, "{}",        "{}",
                    std::nullopt,     "",     false, std::nullopt};
  not_a_task.owner = alice;
  ASSERT_TRUE(store_->create(not_a_task).ok());

  auto replica = open_again();  // another gateway replica pages through the same list
  std::vector<std::string> seen;
  std::optional<TaskCursor> cursor;
  int pages = 0;
  do {
    auto page = (pages % 2 ? replica : store_)->list_tasks(alice, cursor, 2);
    ASSERT_TRUE(page.ok()) << page.error().message;
    for (const auto& job : page.value().tasks) {
      seen.push_back(job.id);
      EXPECT_TRUE(job.task);
      EXPECT_EQ(job.owner, alice);
      EXPECT_EQ(job.ttl_ms, 60000);
    }
    cursor = page.value().next;
    ++pages;
  } while (cursor && pages < 10);
  EXPECT_EQ(pages, 3);
  std::vector<std::string> expected = ids;
  std::vector<std::string> sorted_seen = seen;
  std::sort(expected.begin(), expected.end());
  std::sort(sorted_seen.begin(), sorted_seen.end());
  EXPECT_EQ(sorted_seen, expected);
}

INSTANTIATE_TEST_SUITE_P(Stores, JobStoreTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace asya::gateway
