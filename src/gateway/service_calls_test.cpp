// Service::start_call under concurrency: calls that arrive while others are being written share
// one write (one BatchQueue batch: one JobStore::create_many, one Transport::send_many), each
// gets its own job and envelope, and one call's failure fails only that call. Real SQLite job
// store and SQLite transport on temporary files.
#include "gateway/service.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/json.hpp>

#include <filesystem>
#include <future>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gateway/store/test_ids.hpp"

namespace asya::gateway {
namespace {

namespace asio = boost::asio;

asio::awaitable<void> call_into(Service& service, const Tool& tool, std::string payload,
                                std::optional<Result<std::string>>* out) {
  // Named first: GCC 12 mishandles temporaries inside a co_await expression (service_impl.hpp).
  CallOrigin origin;
  Result<std::string> started = co_await service.start_call(tool, std::move(payload), origin);
  out->emplace(std::move(started));
}

class ServiceCallsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / testing::unique_id("asya-service-calls");
    std::filesystem::create_directories(dir_);
    Tool tool;
    tool.name = "echo";
    tool.actors = {"a"};
    tool.async = true;
    ToolsConfig tools;
    tools.tools.push_back(tool);
    transport::Options transport_options;
    transport_options.sqlite_path = (dir_ / "queues.db").string();
    transport_options.max_message_bytes = 4096;  // one call below goes over it
    auto transport = transport::make_transport("sqlite", transport_options);
    ServiceOptions options;
    options.blocking_threads = 1;  // the test holds it while the calls arrive
    service_ = std::make_unique<Service>(io_, options, std::move(tools),
                                         open_sqlite_job_store((dir_ / "gateway.db").string()),
                                         std::move(transport), metrics_);
    ASSERT_TRUE(service_->transport().ensure_queue("asya-a").ok());
  }
  void TearDown() override {
    service_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Runs the io_context until every result is set (or a generous deadline passed).
  void run_until_done(const std::vector<std::optional<Result<std::string>>>& results) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    auto done = [&] {
      for (const auto& r : results)
        if (!r) return false;
      return true;
    };
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(done()) << "calls did not finish within 60 s";
  }

  std::filesystem::path dir_;
  asio::io_context io_;
  Metrics metrics_;
  std::unique_ptr<Service> service_;
};

TEST_F(ServiceCallsTest, CallsArrivingTogetherShareOneWriteAndEachGetsItsJobAndEnvelope) {
  // Hold the only blocking thread, so the six calls queue up behind it.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  service_->in_background([released] { released.wait(); });
  const Tool& tool = service_->tools().tools.front();
  const std::string big = "{\"text\":\"" + std::string(6000, 'x') + "\"}";
  std::vector<std::optional<Result<std::string>>> results(6);
  for (std::size_t i = 0; i < results.size(); ++i) {
    std::string payload = i == 3 ? big : "{\"n\":" + std::to_string(i) + "}";
    asio::co_spawn(io_, call_into(*service_, tool, std::move(payload), &results[i]),
                   asio::detached);
  }
  io_.poll();  // every call is built and queued; none can be written yet
  EXPECT_EQ(service_->call_batches().items, 0u);
  release.set_value();
  run_until_done(results);

  auto batches = service_->call_batches();
  EXPECT_EQ(batches.batches, 1u);
  EXPECT_EQ(batches.largest_batch, 6u);
  // The oversized envelope failed its own call only, and its job says why.
  ASSERT_TRUE(results[3].has_value());
  ASSERT_FALSE(results[3]->ok());
  EXPECT_NE(results[3]->error().message.find("message_too_large"), std::string::npos)
      << results[3]->error().message;
  std::set<std::string> job_ids;
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (i == 3) continue;
    ASSERT_TRUE(results[i]->ok()) << i << ": " << results[i]->error().message;
    job_ids.insert(results[i]->value());
    auto job = service_->store().get(results[i]->value());
    ASSERT_TRUE(job.ok() && job.value().has_value());
    EXPECT_EQ(job.value()->status, JobStatus::pending);
    EXPECT_EQ(job.value()->payload_json, "{\"n\":" + std::to_string(i) + "}");
  }
  EXPECT_EQ(job_ids.size(), 5u);  // five distinct jobs
  auto failed =
      service_->store().list_jobs(JobFilter{JobStatus::failed, "", std::nullopt}, std::nullopt, 10);
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed.value().jobs.size(), 1u);
  EXPECT_NE(failed.value().jobs[0].error.find("publishing to asya-a failed"), std::string::npos);
  EXPECT_EQ(job_ids.count(failed.value().jobs[0].id), 0u);
  // Exactly the five envelopes are on the queue, one per job.
  auto delivered = service_->transport().receive("asya-a", 20, std::chrono::milliseconds(500));
  ASSERT_TRUE(delivered.ok());
  std::set<std::string> envelope_ids;
  for (const auto& d : delivered.value())
    envelope_ids.insert(std::string(boost::json::parse(d.body).at("id").as_string()));
  EXPECT_EQ(delivered.value().size(), 5u);
  EXPECT_EQ(envelope_ids, job_ids);
}

TEST_F(ServiceCallsTest, ALoneCallIsWrittenAtOnceInABatchOfItsOwn) {
  const Tool& tool = service_->tools().tools.front();
  std::vector<std::optional<Result<std::string>>> results(1);
  asio::co_spawn(io_, call_into(*service_, tool, "{\"n\":1}", &results[0]), asio::detached);
  run_until_done(results);
  ASSERT_TRUE(results[0]->ok()) << results[0]->error().message;
  EXPECT_EQ(service_->call_batches().batches, 1u);
  EXPECT_EQ(service_->call_batches().largest_batch, 1u);
  auto delivered = service_->transport().receive("asya-a", 5, std::chrono::milliseconds(500));
  ASSERT_TRUE(delivered.ok());
  ASSERT_EQ(delivered.value().size(), 1u);
}

}  // namespace
}  // namespace asya::gateway
