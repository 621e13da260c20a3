// The job store's spans in their two layouts (schema 9: one gateway_span_groups row per job and
// export; before: one gateway_spans row per span, still read), against SQLite (always) and
// PostgreSQL (when ASYA_TEST_DATABASE_URL is set, as tests/gateway/test_store.py does).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "gateway/store/job_store.hpp"
#include "gateway/store/test_database.hpp"
#include "gateway/store/test_ids.hpp"

namespace asya::gateway {
namespace {

using testing::TestDatabase;
using testing::unique_id;

const std::string kTrace = "0af7651916cd43dd8448eb211c80319c";

std::string hex_id(int n) {
  char id[17];
  std::snprintf(id, sizeof id, "%016x", n);
  return id;
}

SpanRecord span(const std::string& job, const std::string& span_id, std::int64_t start,
                std::string document = "") {
  if (document.empty()) document = R"({"span_id":")" + span_id + R"("})";
  return SpanRecord{job, kTrace, span_id, start, std::move(document)};
}

std::vector<std::string> span_ids(const std::vector<SpanRecord>& spans) {
  std::vector<std::string> out;
  for (const auto& s : spans) out.push_back(s.span_id);
  return out;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class SpanStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    db_ = std::make_unique<TestDatabase>(GetParam());
    if (db_->skipped())
      GTEST_SKIP() << "ASYA_TEST_DATABASE_URL not set (tests/gateway/test_store.py sets it)";
    store_ = db_->open();
  }
  void TearDown() override {
    store_.reset();
    db_.reset();
  }

  std::string create() {
    std::string id = unique_id("job");
    NewJob job;
    job.id = id;
    job.tool = "tool";
    job.actors = {"a"};
    job.route_json = R"({"actors":["a"],"current":0})";
    job.payload_json = "{}";
    Status status = store_->create(job);
    EXPECT_TRUE(status.ok()) << status.message();
    return id;
  }

  // A row as a gateway before schema 9 stored a span.
  void old_row(const std::string& job, const std::string& span_id, std::int64_t start,
               std::int64_t received_ms) {
    db_->run(
        "INSERT INTO gateway_spans(trace_id, span_id, job_id, start_ns, received_ms, "
        "document) VALUES ('" +
        kTrace + "', '" + span_id + "', '" + job + "', " + std::to_string(start) + ", " +
        std::to_string(received_ms) + ", '{\"span_id\":\"" + span_id + "\",\"old\":true}')");
  }

  long long group_rows(const std::string& job) {
    return db_->count("SELECT COUNT(*) FROM gateway_span_groups WHERE job_id = '" + job + "'");
  }

  std::vector<SpanRecord> spans_of(const std::string& job) {
    auto spans = store_->spans(job);
    EXPECT_TRUE(spans.ok()) << spans.error().message;
    return spans.ok() ? spans.value() : std::vector<SpanRecord>{};
  }

  std::unique_ptr<TestDatabase> db_;
  std::unique_ptr<JobStore> store_;
};

TEST_P(SpanStoreTest, OneExportIsOneRowPerJobAndReadsBackAsBefore) {
  std::string a = create();
  std::string b = create();
  // Interleaved, out of start order, as an exporter's batch holds several messages' spans.
  auto write =
      store_->add_spans({span(a, hex_id(3), 30), span(b, hex_id(9), 5), span(a, hex_id(1), 10),
                         span(a, hex_id(2), 10), span(b, hex_id(8), 6)},
                        SpanLimits{}, Clock::now());
  ASSERT_TRUE(write.ok()) << write.error().message;
  EXPECT_EQ(write.value().stored, 5u);
  EXPECT_EQ(group_rows(a), 1);
  EXPECT_EQ(group_rows(b), 1);
  EXPECT_EQ(db_->count("SELECT COUNT(*) FROM gateway_spans"), 0);
  auto spans = spans_of(a);
  EXPECT_EQ(span_ids(spans), (std::vector<std::string>{hex_id(1), hex_id(2), hex_id(3)}));
  EXPECT_EQ(spans[0].document, R"({"span_id":")" + hex_id(1) + R"("})");
  EXPECT_EQ(spans[0].trace_id, kTrace);
  EXPECT_EQ(spans[0].job_id, a);
  EXPECT_EQ(spans[2].start_unix_nano, 30);
  EXPECT_EQ(span_ids(spans_of(b)), (std::vector<std::string>{hex_id(9), hex_id(8)}));
}

TEST_P(SpanStoreTest, OldRowsAndGroupsReadAsOneListDeduplicateAndShareTheCapAndRetention) {
  std::string job = create();
  old_row(job, hex_id(2), 20, now_ms());
  old_row(job, hex_id(4), 40, now_ms());
  SpanLimits limits;
  limits.max_spans_per_job = 5;
  // hex 2 is an old row, hex 1 arrives twice in one export: two duplicates, three new spans.
  auto write = store_->add_spans({span(job, hex_id(2), 20), span(job, hex_id(1), 10),
                                  span(job, hex_id(3), 30), span(job, hex_id(1), 10)},
                                 limits, Clock::now());
  ASSERT_TRUE(write.ok()) << write.error().message;
  EXPECT_EQ(write.value().stored, 2u);
  EXPECT_EQ(write.value().duplicates, 2u);
  // One more fits (4 stored of 5); a retried old span of a full job is over the limit, as before.
  write = store_->add_spans(
      {span(job, hex_id(5), 50), span(job, hex_id(6), 60), span(job, hex_id(4), 40)}, limits,
      Clock::now());
  ASSERT_TRUE(write.ok()) << write.error().message;
  EXPECT_EQ(write.value().stored, 1u);
  EXPECT_EQ(write.value().over_limit, 2u);
  EXPECT_EQ(write.value().duplicates, 0u);
  auto spans = spans_of(job);
  EXPECT_EQ(span_ids(spans),
            (std::vector<std::string>{hex_id(1), hex_id(2), hex_id(3), hex_id(4), hex_id(5)}));
  EXPECT_EQ(spans[1].document, R"({"span_id":")" + hex_id(2) + R"(","old":true})");
  EXPECT_EQ(spans[0].document, R"({"span_id":")" + hex_id(1) + R"("})");

  // Retention removes both layouts by when they were received (a new store prunes at once).
  std::string other = create();
  old_row(other, hex_id(7), 70, now_ms() - 3 * 3600 * 1000);
  old_row(other, hex_id(8), 80, now_ms());
  ASSERT_TRUE(
      store_->add_spans({span(other, hex_id(9), 90)}, limits, Clock::now() - std::chrono::hours(3))
          .ok());
  ASSERT_TRUE(store_->add_spans({span(other, hex_id(10), 100)}, limits, Clock::now()).ok());
  EXPECT_EQ(span_ids(spans_of(other)).size(), 4u);
  SpanLimits hour = limits;
  hour.retention = std::chrono::hours(1);
  store_ = db_->open();
  ASSERT_TRUE(store_->add_spans({}, hour, Clock::now()).ok());
  EXPECT_EQ(span_ids(spans_of(other)), (std::vector<std::string>{hex_id(8), hex_id(10)}));
  EXPECT_EQ(span_ids(spans_of(job)).size(), 5u);
}

// During a rolling upgrade on PostgreSQL an older replica (no lock, its own table) may store a span
// a newer one stored in a group at the same time: it is answered once.
TEST_P(SpanStoreTest, ASpanInBothLayoutsIsAnsweredOnce) {
  std::string job = create();
  ASSERT_TRUE(store_
                  ->add_spans({span(job, hex_id(1), 10), span(job, hex_id(2), 20)}, SpanLimits{},
                              Clock::now())
                  .ok());
  old_row(job, hex_id(2), 20, now_ms());
  auto spans = spans_of(job);
  EXPECT_EQ(span_ids(spans), (std::vector<std::string>{hex_id(1), hex_id(2)}));
}

TEST_P(SpanStoreTest, AHugeExportIsStoredWholeInFewRowsAndItsRetryStoresNothing) {
  std::string job = create();
  SpanLimits limits;
  limits.max_spans_per_job = 5000;
  std::vector<SpanRecord> spans;
  const std::string padding(1500, 'p');
  for (int i = 1; i <= 3000; ++i)
    spans.push_back(span(job, hex_id(i), 3001 - i,
                         R"({"span_id":")" + hex_id(i) + R"(","pad":")" + padding + R"("})"));
  auto write = store_->add_spans(spans, limits, Clock::now());
  ASSERT_TRUE(write.ok()) << write.error().message;
  EXPECT_EQ(write.value().stored, 3000u);
  // ~4.6 MB of documents: a handful of rows of at most ~1 MiB, not one per span.
  long long rows = group_rows(job);
  EXPECT_GE(rows, 5);
  EXPECT_LE(rows, 6);
  auto back = spans_of(job);
  ASSERT_EQ(back.size(), 3000u);
  for (std::size_t i = 0; i < back.size(); ++i) {
    ASSERT_EQ(back[i].span_id, hex_id(3000 - static_cast<int>(i)));
    ASSERT_EQ(back[i].document, spans[2999 - i].document);
  }
  write = store_->add_spans(spans, limits, Clock::now());
  ASSERT_TRUE(write.ok()) << write.error().message;
  EXPECT_EQ(write.value().duplicates, 3000u);
  EXPECT_EQ(write.value().stored, 0u);
  EXPECT_EQ(group_rows(job), rows);
}

TEST_P(SpanStoreTest, TwoReplicasStoringTheSameExportStoreEachSpanOnce) {
  std::string job = create();
  std::vector<SpanRecord> spans;
  for (int i = 1; i <= 40; ++i) spans.push_back(span(job, hex_id(i), i));
  auto second = db_->open();
  std::vector<SpanWrite> writes(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      // Each thread sends the export from its own offset, so the writers overlap in part.
      std::vector<SpanRecord> mine(spans.begin() + (t * 5) % 40, spans.end());
      mine.insert(mine.end(), spans.begin(), spans.begin() + (t * 5) % 40);
      auto write = (t % 2 ? *second : *store_).add_spans(mine, SpanLimits{}, Clock::now());
      EXPECT_TRUE(write.ok()) << write.error().message;
      if (write.ok()) writes[t] = write.value();
    });
  }
  for (auto& thread : threads) thread.join();
  std::size_t stored = 0, duplicates = 0;
  for (const auto& w : writes) {
    stored += w.stored;
    duplicates += w.duplicates;
  }
  EXPECT_EQ(stored, 40u);
  EXPECT_EQ(duplicates, 7u * 40u);
  EXPECT_EQ(spans_of(job).size(), 40u);
}

TEST_P(SpanStoreTest, ADamagedGroupRowIsAnErrorNamingItsJob) {
  std::string job = create();
  ASSERT_TRUE(store_
                  ->add_spans({span(job, hex_id(1), 1), span(job, hex_id(2), 2)}, SpanLimits{},
                              Clock::now())
                  .ok());
  db_->run("UPDATE gateway_span_groups SET documents = '[{}]' WHERE job_id = '" + job + "'");
  auto spans = store_->spans(job);
  ASSERT_FALSE(spans.ok());
  EXPECT_NE(spans.error().message.find("span group of job \"" + job + "\""), std::string::npos)
      << spans.error().message;
  db_->run("UPDATE gateway_span_groups SET span_index = 'garbage' WHERE job_id = '" + job + "'");
  auto write = store_->add_spans({span(job, hex_id(3), 3)}, SpanLimits{}, Clock::now());
  ASSERT_FALSE(write.ok());
  EXPECT_NE(write.error().message.find("is damaged"), std::string::npos) << write.error().message;
}

TEST_P(SpanStoreTest, IdsAGroupCannotHoldAreRefusedAndNothingIsStored) {
  std::string job = create();
  auto write = store_->add_spans({span(job, hex_id(1), 1), span(job, "not hex", 2)}, SpanLimits{},
                                 Clock::now());
  ASSERT_FALSE(write.ok());
  EXPECT_NE(write.error().message.find("span \"not hex\""), std::string::npos)
      << write.error().message;
  EXPECT_TRUE(spans_of(job).empty());
}

INSTANTIATE_TEST_SUITE_P(Stores, SpanStoreTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace asya::gateway
