// settle_batch(): the outputs of every item in one send_many, then the acks of the items whose
// outputs all succeeded in one ack_many; a failed send nacks only its own item; a decision to nack
// and an output refused as too large are settled for their item alone.
#include "sidecar/batch_settle.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <span>

#include "envelope/envelope.hpp"
#include "sidecar/fake_transport.hpp"
#include "sidecar/router_test_support.hpp"

namespace asya::sidecar {
namespace {

using namespace std::chrono_literals;
using namespace router_test;
using testing::FakeTransport;

// Counts the multi-message calls (each still runs the default loop over send/ack).
class CountingTransport : public FakeTransport {
 public:
  std::vector<Status> send_many(std::span<const transport::OutgoingMessage> messages) override {
    ++send_many_calls;
    return Transport::send_many(messages);
  }
  std::vector<Status> ack_many(std::span<const transport::Delivery* const> deliveries) override {
    ++ack_many_calls;
    return Transport::ack_many(deliveries);
  }
  int send_many_calls = 0;
  int ack_many_calls = 0;
};

// Three parsed inputs of actor b with receipts r1..r3, each answered with `outputs` results.
struct Batch {
  explicit Batch(const Router& router, std::size_t outputs = 1) {
    std::string r = R"({"payload":1,"route":{"actors":["a","b","c"],"current":2}})";
    std::string response = "[";
    for (std::size_t k = 0; k < outputs; ++k) {
      if (k > 0) response += ',';
      response += r;
    }
    response += "]";
    for (int i = 0; i < 3; ++i) {
      deliveries.push_back(delivery_of(kInput));
      deliveries.back().receipt.assign(1, 'r');
      deliveries.back().receipt += std::to_string(i + 1);
    }
    for (auto& d : deliveries) parsed.push_back(*envelope::parse(d.body));
    for (int i = 0; i < 3; ++i)
      decisions.push_back(router.after_runtime(parsed[i], deliveries[i], ok(), response));
  }
  std::vector<SettleItem> items() {
    std::vector<SettleItem> out;
    for (int i = 0; i < 3; ++i)
      out.push_back(SettleItem{&deliveries[i], &parsed[i], &decisions[i]});
    return out;
  }
  std::vector<transport::Delivery> deliveries;
  std::vector<envelope::Envelope> parsed;
  std::vector<Decision> decisions;
};

TEST(SettleBatch, SendsEveryOutputInOneCallThenAcksEveryItemInOne) {
  Router router(options_for("b"));
  CountingTransport t;
  Batch b(router, 2);
  std::vector<SettleItem> items = b.items();
  std::vector<Settlement> s = settle_batch(router, t, items);
  ASSERT_EQ(s.size(), 3u);
  for (const Settlement& one : s) {
    EXPECT_EQ(one.sent, 2u);
    EXPECT_TRUE(one.acked);
    EXPECT_TRUE(one.error.empty()) << one.error;
  }
  EXPECT_EQ(t.send_many_calls, 1);
  EXPECT_EQ(t.ack_many_calls, 1);
  EXPECT_EQ(t.sent.size(), 6u);
  EXPECT_EQ(t.acked, (std::vector<std::string>{"r1", "r2", "r3"}));
  EXPECT_TRUE(t.nacked.empty());
}

// The third send (item 2's first output) fails: item 2 is nacked with its backoff, and only
// items 1 and 3 are acked; item 2's other output stays sent (at-least-once).
TEST(SettleBatch, AFailedSendNacksOnlyItsOwnItem) {
  Router router(options_for("b"));
  CountingTransport t;
  t.fail_send_number = 3;
  Batch b(router, 2);
  std::vector<SettleItem> items = b.items();
  std::vector<Settlement> s = settle_batch(router, t, items);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_TRUE(s[0].acked);
  EXPECT_FALSE(s[1].acked);
  EXPECT_TRUE(s[1].nacked);
  EXPECT_EQ(s[1].sent, 1u);
  EXPECT_EQ(s[1].error, "send to asya-c failed: disk full");
  EXPECT_TRUE(s[2].acked);
  EXPECT_EQ(t.acked, (std::vector<std::string>{"r1", "r3"}));
  ASSERT_EQ(t.nacked.size(), 1u);
  EXPECT_EQ(t.nacked[0].first, "r2");
  EXPECT_EQ(t.nacked[0].second, router.backoff(1));
}

// Item 1 is decided to be nacked (runtime unavailable); item 2's output is refused as too large
// and goes to error-end instead; item 3 is acked with the shared call.
TEST(SettleBatch, NacksAndTooLargeOutputsAreSettledForTheirItemAlone) {
  Router router(options_for("b"));
  CountingTransport t;
  t.max_bytes = 600;
  Batch b(router);
  b.decisions[0] = router.after_runtime(b.parsed[0], b.deliveries[0],
                                        {wire::CallStatus::kUnavailable, "gone"}, "");
  std::string big(700, 'y');
  b.decisions[1] = router.after_runtime(
      b.parsed[1], b.deliveries[1], ok(),
      R"([{"payload":")" + big + R"(","route":{"actors":["a","b","c"],"current":2}}])");
  std::vector<SettleItem> items = b.items();
  std::vector<Settlement> s = settle_batch(router, t, items);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_TRUE(s[0].nacked);
  EXPECT_FALSE(s[0].acked);
  EXPECT_TRUE(s[1].too_large);
  EXPECT_TRUE(s[1].acked);
  EXPECT_TRUE(s[2].acked);
  ASSERT_EQ(t.nacked.size(), 1u);
  EXPECT_EQ(t.nacked[0].first, "r1");
  // r2 is settled alone (error-end, then its ack) before the shared ack of r3.
  EXPECT_EQ(t.acked, (std::vector<std::string>{"r2", "r3"}));
  ASSERT_EQ(t.sent.size(), 2u);
  EXPECT_EQ(t.sent[0].queue, "asya-c");
  EXPECT_EQ(t.sent[1].queue, "asya-error-end");
  EXPECT_EQ(obj(t.sent[1].body)["payload"].at("error"), "message_too_large");
}

// A transport that settles together (SQLite): its send_then_ack_many steps are recorded; a step
// numbered `decline_step` (1-based over all steps) is declined (nullopt, nothing done).
class SettlesTogetherTransport : public CountingTransport {
 public:
  SettlesTogetherTransport() { one_step = true; }
  bool settles_together() const override { return true; }
  std::vector<std::optional<Status>> send_then_ack_many(
      std::span<const SendThenAck> steps) override {
    ++many_calls;
    std::vector<std::optional<Status>> out;
    for (const SendThenAck& step : steps) {
      if (++steps_seen == decline_step) {
        out.push_back(std::nullopt);
        continue;
      }
      out.push_back(send_then_ack(step.messages, *step.delivery));
    }
    return out;
  }
  int many_calls = 0;
  int steps_seen = 0;
  int decline_step = 0;
};

// Items 2 and 3 (to ack) go as two steps of one send_then_ack_many; item 1, decided to be nacked,
// is settled alone; nothing goes through send_many/ack_many.
TEST(SettleBatch, OnATransportThatSettlesTogetherItemsToAckAreStepsOfOneSharedCall) {
  Router router(options_for("b"));
  SettlesTogetherTransport t;
  Batch b(router, 2);
  b.decisions[0] = router.after_runtime(b.parsed[0], b.deliveries[0],
                                        {wire::CallStatus::kUnavailable, "gone"}, "");
  std::vector<SettleItem> items = b.items();
  std::vector<Settlement> s = settle_batch(router, t, items);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_TRUE(s[0].nacked);
  EXPECT_FALSE(s[0].acked);
  for (int i : {1, 2}) {
    EXPECT_TRUE(s[i].acked) << i;
    EXPECT_EQ(s[i].sent, 2u) << i;
    EXPECT_TRUE(s[i].error.empty()) << s[i].error;
  }
  EXPECT_EQ(t.many_calls, 1);
  EXPECT_EQ(t.steps_seen, 2);
  EXPECT_EQ(t.send_many_calls, 0);
  EXPECT_EQ(t.ack_many_calls, 0);
  EXPECT_EQ(t.acked, (std::vector<std::string>{"r2", "r3"}));
  ASSERT_EQ(t.nacked.size(), 1u);
  EXPECT_EQ(t.nacked[0].first, "r1");
  EXPECT_EQ(t.sent.size(), 4u);
}

// A step the transport declines (nothing done) is settled the ordinary way: every item is acked
// once, after its outputs.
TEST(SettleBatch, AStepTheTransportDeclinesIsSettledTheOrdinaryWay) {
  Router router(options_for("b"));
  SettlesTogetherTransport t;
  t.decline_step = 2;
  Batch b(router);
  std::vector<SettleItem> items = b.items();
  std::vector<Settlement> s = settle_batch(router, t, items);
  ASSERT_EQ(s.size(), 3u);
  for (const Settlement& one : s) {
    EXPECT_TRUE(one.acked);
    EXPECT_EQ(one.sent, 1u);
  }
  EXPECT_EQ(t.many_calls, 1);
  std::vector<std::string> acked = t.acked;
  std::sort(acked.begin(), acked.end());
  EXPECT_EQ(acked, (std::vector<std::string>{"r1", "r2", "r3"}));
  EXPECT_EQ(t.sent.size(), 3u);
}

TEST(SettleBatch, ASingleItemIsSettledByTheRouterAlone) {
  Router router(options_for("b"));
  CountingTransport t;
  Batch b(router);
  std::vector<SettleItem> items = b.items();
  std::vector<Settlement> s = settle_batch(router, t, std::span<const SettleItem>(items.data(), 1));
  ASSERT_EQ(s.size(), 1u);
  EXPECT_TRUE(s[0].acked);
  EXPECT_EQ(t.send_many_calls, 0);
  EXPECT_EQ(t.ack_many_calls, 0);
  EXPECT_EQ(t.acked, (std::vector<std::string>{"r1"}));
}

}  // namespace
}  // namespace asya::sidecar
