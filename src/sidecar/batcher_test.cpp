#include "sidecar/batcher.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "sidecar/fake_transport.hpp"
#include "sidecar/socket_server_test_support.hpp"
#include "wire/frame.hpp"

namespace asya::sidecar {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::FakeTransport;

std::string envelope_for(const std::string& id, const std::string& extra = "") {
  return fmt::format(
      R"({{"id":"{}","route":{{"actors":["b","c"],"current":0}},{}"payload":{{"n":"{}"}}}})", id,
      extra, id);
}

RouterOptions router_options() {
  RouterOptions o;
  o.actor = "b";
  o.max_deliveries = 3;
  o.jitter = [] { return 0.0; };
  return o;
}

// A runtime stand-in on a real Unix socket: answers every request frame with answer(request)
// (one thread, connections in sequence), and records the requests.
class FakeBatchRuntime {
 public:
  using Answer = std::function<std::string(const std::string& request)>;
  FakeBatchRuntime(const fs::path& socket_path, Answer answer, bool declares_batch = true)
      : answer_(std::move(answer)), server_(socket_path, [this](int fd) { serve(fd); }) {
    std::ofstream(socket_path.parent_path() / "runtime-ready") << "123\n"
                                                               << (declares_batch ? "batch\n" : "");
  }
  std::vector<std::string> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void serve(int fd) {
    std::string request;
    while (wire::read_frame(fd, request, 1u << 20, 10'000).ok()) {
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(request);
      }
      if (!wire::write_frame(fd, answer_(request)).ok()) break;
    }
  }
  Answer answer_;
  std::mutex mutex_;
  std::vector<std::string> requests_;
  test_support::SocketServer server_;  // last: stops before the members serve() uses
};

class BatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("asya-batcher-{}-{}", ::getpid(), counter_.fetch_add(1));
    fs::create_directories(dir_);
    socket_ = dir_ / "rt.sock";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The ids of the envelopes of one batch request, in order.
  static std::vector<std::string> ids_of(const std::string& request) {
    std::vector<std::string> ids;
    const boost::json::value parsed = boost::json::parse(request);
    for (const auto& e : parsed.as_array()) ids.emplace_back(e.as_object().at("id").as_string());
    return ids;
  }

  wire::RuntimeClient client() { return wire::RuntimeClient({socket_.string(), 1u << 20}); }

  static inline std::atomic<int> counter_{0};
  fs::path dir_;
  fs::path socket_;
  FakeTransport transport_;
  Router router_{router_options()};
  wire::FrameBuffer scratch_;
};

TEST_F(BatcherTest, GatherTakesAtMostMaxSizeReadyMessages) {
  for (int i = 0; i < 10; ++i)
    transport_.queues["asya-b"].push_back(envelope_for(std::to_string(i)));
  auto batch = gather_batch(transport_, "asya-b", {4, 1s}, 0ms);
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->size(), 4u);
  EXPECT_EQ(transport_.queues["asya-b"].size(), 6u);
}

TEST_F(BatcherTest, GatherSendsALoneMessageWithoutWaitingForMore) {
  transport_.queues["asya-b"].push_back(envelope_for("alone"));
  // maxWait of a minute: a lone message must not wait for company that is not coming.
  auto started = std::chrono::steady_clock::now();
  double gathered = -1;
  auto batch = gather_batch(transport_, "asya-b", {32, 60s}, 0ms, &gathered);
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->size(), 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 30s);
  EXPECT_GE(gathered, 0.0);
  EXPECT_LT(gathered, 30.0);
}

TEST_F(BatcherTest, GatherOnAnEmptyQueueGivesAnEmptyBatch) {
  auto batch = gather_batch(transport_, "asya-b", {8, 10ms}, 0ms);
  ASSERT_TRUE(batch);
  EXPECT_TRUE(batch->empty());
}

// A queue that always has one more message ready, one per receive: the batch ends at maxWait.
class TrickleTransport : public FakeTransport {
 public:
  Result<std::vector<transport::Delivery>> receive(std::string_view queue, std::size_t,
                                                   std::chrono::milliseconds) override {
    std::this_thread::sleep_for(1ms);
    int n = ++received;
    return std::vector<transport::Delivery>{transport::Delivery{
        std::string(queue), envelope_for(std::to_string(n)), 1, std::to_string(n)}};
  }
  std::atomic<int> received{0};
};

TEST_F(BatcherTest, GatherStopsAtMaxWaitAfterTheFirstMessage) {
  TrickleTransport trickle;
  double gathered = 0;
  auto batch = gather_batch(trickle, "asya-b", {4096, 50ms}, 0ms, &gathered);
  ASSERT_TRUE(batch);
  EXPECT_GE(batch->size(), 2u);     // it did gather what kept arriving
  EXPECT_LT(batch->size(), 4096u);  // but stopped at maxWait, not at maxSize
  EXPECT_GE(gathered, 0.05);
}

// Like SQS: at most 10 messages per receive call, whatever is asked.
class TenPerCallTransport : public FakeTransport {
 public:
  Result<std::vector<transport::Delivery>> receive(std::string_view queue, std::size_t max_messages,
                                                   std::chrono::milliseconds wait) override {
    ++calls;
    return FakeTransport::receive(queue, std::min<std::size_t>(max_messages, 10), wait);
  }
  int calls = 0;
};

TEST_F(BatcherTest, GatherFillsABatchLargerThanOneReceiveWithSeveralCalls) {
  TenPerCallTransport capped;
  for (int i = 0; i < 40; ++i) capped.queues["asya-b"].push_back(envelope_for(std::to_string(i)));
  auto batch = gather_batch(capped, "asya-b", {25, 10s}, 0ms);
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->size(), 25u);
  EXPECT_EQ(capped.calls, 3);  // 10 + 10 + 5
  EXPECT_EQ(capped.queues["asya-b"].size(), 15u);
}

TEST_F(BatcherTest, PartialFailureDecidesEachItemFromItsOwnAnswer) {
  FakeBatchRuntime runtime(socket_, [](const std::string&) {
    return std::string(R"([[{"payload":{"ok":0},"route":{"actors":["b","c"],"current":1}}],)"
                       R"([{"error":"processing_error","details":{"message":"bad item",)"
                       R"("type":"ValueError","traceback":"tb"}}],)"
                       R"([],)"
                       R"([{"payload":1,"route":{"actors":["b","c"],"current":1}},)"
                       R"({"payload":2,"route":{"actors":["b","c"],"current":1}}]])");
  });
  std::vector<transport::Delivery> deliveries;
  for (const char* id : {"ok", "bad", "abort", "fan"})
    deliveries.push_back({"asya-b", envelope_for(id), 1, id});
  auto items = prepare_batch(router_, deliveries, scratch_, std::chrono::system_clock::now());
  auto c = client();
  ASSERT_TRUE(c.wait_ready(5s));
  BatchCall call = call_batch(router_, c, items, scratch_, 10s);
  EXPECT_EQ(call.sent, 4u);
  EXPECT_EQ(call.status, wire::CallStatus::kOk);
  ASSERT_EQ(runtime.requests().size(), 1u);
  EXPECT_EQ(ids_of(runtime.requests()[0]), (std::vector<std::string>{"ok", "bad", "abort", "fan"}));

  // Settled one by one: every input acked after its own outputs.
  for (auto& item : items)
    router_.settle(transport_, *item.delivery, item.envelope(), *item.decision);
  EXPECT_EQ(transport_.acked, (std::vector<std::string>{"ok", "bad", "abort", "fan"}));
  ASSERT_EQ(transport_.sent.size(), 5u);
  EXPECT_EQ(transport_.sent[0].queue, "asya-c");
  EXPECT_EQ(transport_.sent[1].queue, "asya-error-end");
  auto error = boost::json::parse(transport_.sent[1].body).as_object();
  EXPECT_EQ(error.at("id").as_string(), "bad");
  EXPECT_EQ(error.at("payload").at("error").as_string(), "processing_error");
  EXPECT_EQ(error.at("payload").at("details").at("type").as_string(), "ValueError");
  EXPECT_EQ(error.at("payload").at("details").at("message").as_string(), "bad item");
  EXPECT_EQ(transport_.sent[2].queue, "asya-happy-end");
  EXPECT_EQ(boost::json::parse(transport_.sent[2].body).at("id").as_string(), "abort");
  EXPECT_EQ(boost::json::parse(transport_.sent[3].body).at("id").as_string(), "fan");
  EXPECT_EQ(boost::json::parse(transport_.sent[4].body).at("id").as_string(), "fan-1");
  EXPECT_EQ(items[1].decision->failure, FailureCode::kProcessingError);
  EXPECT_FALSE(items[0].decision->failure);
}

TEST_F(BatcherTest, ExpiredAndPoisonItemsNeverReachTheRuntime) {
  FakeBatchRuntime runtime(socket_, [](const std::string& request) {
    std::string answer = "[";
    const boost::json::value parsed = boost::json::parse(request);
    for (std::size_t i = 0; i < parsed.as_array().size(); ++i)
      answer += std::string(i ? "," : "") + "[]";
    return answer + "]";
  });
  std::vector<transport::Delivery> deliveries;
  deliveries.push_back({"asya-b", envelope_for("fresh"), 1, "fresh"});
  deliveries.push_back(
      {"asya-b", envelope_for("expired", R"("deadline":"2000-01-01T00:00:00Z",)"), 1, "expired"});
  deliveries.push_back({"asya-b", envelope_for("poison"), 4, "poison"});  // max_deliveries 3
  deliveries.push_back({"asya-b", "not json", 1, "garbage"});
  auto items = prepare_batch(router_, deliveries, scratch_, std::chrono::system_clock::now());
  auto c = client();
  ASSERT_TRUE(c.wait_ready(5s));
  BatchCall call = call_batch(router_, c, items, scratch_, 10s);
  EXPECT_EQ(call.sent, 1u);
  ASSERT_EQ(runtime.requests().size(), 1u);
  EXPECT_EQ(ids_of(runtime.requests()[0]), std::vector<std::string>{"fresh"});
  EXPECT_FALSE(items[0].decision->failure);
  EXPECT_EQ(items[1].decision->failure, FailureCode::kDeadlineExceeded);
  EXPECT_EQ(items[2].decision->failure, FailureCode::kMaxDeliveriesExceeded);
  EXPECT_EQ(items[3].decision->failure, FailureCode::kMsgParsingError);
}

TEST_F(BatcherTest, NothingToSendMakesNoCall) {
  FakeBatchRuntime runtime(socket_, [](const std::string&) { return std::string("[]"); });
  std::vector<transport::Delivery> deliveries;
  deliveries.push_back({"asya-b", envelope_for("poison"), 9, "poison"});
  auto items = prepare_batch(router_, deliveries, scratch_, std::chrono::system_clock::now());
  auto c = client();
  BatchCall call = call_batch(router_, c, items, scratch_, 10s);
  EXPECT_EQ(call.sent, 0u);
  EXPECT_TRUE(runtime.requests().empty());
}

TEST_F(BatcherTest, AnAnswerOfTheWrongLengthFailsEveryItemNamingBothLengths) {
  FakeBatchRuntime runtime(socket_, [](const std::string&) { return std::string("[[]]"); });
  std::vector<transport::Delivery> deliveries;
  deliveries.push_back({"asya-b", envelope_for("a"), 1, "a"});
  deliveries.push_back({"asya-b", envelope_for("b"), 1, "b"});
  auto items = prepare_batch(router_, deliveries, scratch_, std::chrono::system_clock::now());
  auto c = client();
  ASSERT_TRUE(c.wait_ready(5s));
  BatchCall call = call_batch(router_, c, items, scratch_, 10s);
  EXPECT_EQ(call.status, wire::CallStatus::kProtocol);
  EXPECT_NE(call.error.find("1 answers for a request of 2"), std::string::npos) << call.error;
  for (auto& item : items) {
    EXPECT_EQ(item.decision->failure, FailureCode::kRuntimeProtocolError);
    ASSERT_EQ(item.decision->sends.size(), 1u);
    EXPECT_EQ(item.decision->sends[0].queue, "asya-error-end");
  }
}

TEST_F(BatcherTest, ARuntimeTimeoutFailsEveryItemAsRuntimeTimeout) {
  FakeBatchRuntime runtime(socket_, [](const std::string&) {
    std::this_thread::sleep_for(500ms);
    return std::string("[[],[]]");
  });
  std::vector<transport::Delivery> deliveries;
  deliveries.push_back({"asya-b", envelope_for("a"), 1, "a"});
  deliveries.push_back({"asya-b", envelope_for("b"), 1, "b"});
  auto items = prepare_batch(router_, deliveries, scratch_, std::chrono::system_clock::now());
  auto c = client();
  ASSERT_TRUE(c.wait_ready(5s));
  BatchCall call = call_batch(router_, c, items, scratch_, 50ms);
  EXPECT_EQ(call.status, wire::CallStatus::kTimeout);
  for (auto& item : items) {
    EXPECT_EQ(item.decision->failure, FailureCode::kRuntimeTimeout);
    EXPECT_TRUE(item.decision->runtime_unhealthy);
  }
}

TEST_F(BatcherTest, AnUnavailableRuntimeNacksEveryItem) {
  std::vector<transport::Delivery> deliveries;
  deliveries.push_back({"asya-b", envelope_for("a"), 1, "a"});
  deliveries.push_back({"asya-b", envelope_for("b"), 1, "b"});
  auto items = prepare_batch(router_, deliveries, scratch_, std::chrono::system_clock::now());
  auto c = client();  // nothing listens
  BatchCall call = call_batch(router_, c, items, scratch_, 1s);
  EXPECT_EQ(call.status, wire::CallStatus::kUnavailable);
  for (auto& item : items) {
    EXPECT_EQ(item.decision->then, Then::kNack);
    EXPECT_TRUE(item.decision->wait_for_runtime);
  }
}

TEST_F(BatcherTest, StartCheckRefusesARuntimeThatDoesNotDeclareBatches) {
  FakeBatchRuntime plain(
      socket_, [](const std::string&) { return std::string("[]"); }, false);
  Status refused = check_runtime_takes_batches(socket_.string(), {8, 10ms});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.message().find("does not accept batches"), std::string::npos);
  EXPECT_NE(refused.message().find("ASYA_BATCH_MAX_SIZE=8"), std::string::npos);
  EXPECT_TRUE(check_runtime_takes_batches(socket_.string(), {1, 10ms}));  // batching off
}

TEST_F(BatcherTest, StartCheckAcceptsARuntimeThatDeclaresBatches) {
  FakeBatchRuntime batching(socket_, [](const std::string&) { return std::string("[]"); });
  EXPECT_TRUE(check_runtime_takes_batches(socket_.string(), {8, 10ms}));
}

}  // namespace
}  // namespace asya::sidecar
