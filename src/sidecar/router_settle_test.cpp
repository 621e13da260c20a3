// Router::settle() with the in-memory transport (acks only after every output was sent, nacks on
// a failed send) and message size limits: outputs over the transport's limit, error envelopes
// that must be truncated to fit. Decisions alone are router_test.cpp.
#include "sidecar/router.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "envelope/envelope.hpp"
#include "sidecar/fake_transport.hpp"
#include "sidecar/router_test_support.hpp"

namespace asya::sidecar {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
using namespace router_test;
using testing::FakeTransport;

TEST(Router, OversizeResponseFrameIsMessageTooLarge) {
  Router router(options_for("b"));
  Decision d =
      route(router, kInput, "",
            {wire::CallStatus::kProtocol, "frame of 999 bytes exceeds ASYA_MAX_MESSAGE_BYTES=10",
             /*too_large=*/true});
  EXPECT_EQ(obj(d.sends[0].body)["payload"].at("error"), "message_too_large");
}

TEST(Router, OutputLargerThanTheTransportLimitGoesToErrorEnd) {
  RouterOptions o = options_for("b");
  o.max_message_bytes = 300;
  Router router(o);
  std::string big(400, 'x');
  Decision d =
      route(router, kInput,
            R"([{"payload":")" + big + R"(","route":{"actors":["a","b","c"],"current":2}}])");
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-error-end");
  EXPECT_EQ(obj(d.sends[0].body)["payload"].at("error"), "message_too_large");
  EXPECT_NE(std::string(obj(d.sends[0].body)["payload"].at("details").at("message").as_string())
                .find("(ASYA_MAX_MESSAGE_BYTES)"),
            std::string::npos);
}
TEST(RouterSettle, AcksOnlyAfterEveryOutputWasSent) {
  Router router(options_for("b"));
  FakeTransport t;
  auto delivery = delivery_of(kInput);
  auto parsed = envelope::parse(delivery.body);
  std::string r = R"({"payload":1,"route":{"actors":["a","b","c"],"current":2}})";
  Decision d = router.after_runtime(*parsed, delivery, ok(), "[" + r + "," + r + "]");
  std::vector<std::string> announced;
  SendHooks hooks;
  hooks.before_send = [&](const Outgoing& o) {
    if (o.fanout_child) announced.push_back(o.id);
  };
  Settlement s = router.settle(t, delivery, &*parsed, d, hooks);
  EXPECT_EQ(s.sent, 2u);
  EXPECT_TRUE(s.acked);
  EXPECT_EQ(t.acked, std::vector<std::string>{"r1"});
  EXPECT_TRUE(t.nacked.empty());
  EXPECT_EQ(t.queues["asya-c"].size(), 2u);
  EXPECT_EQ(announced, std::vector<std::string>{"X-1-1"});  // fanned out at hop 1
}

// A decision to ack goes to the transport's one step (outputs and ack together) when it has one;
// the hooks still see every output.
TEST(RouterSettle, AnAckDecisionIsSettledInOneStepWhenTheTransportHasOne) {
  Router router(options_for("b"));
  FakeTransport t;
  t.one_step = true;
  auto delivery = delivery_of(kInput);
  auto parsed = envelope::parse(delivery.body);
  std::string r = R"({"payload":1,"route":{"actors":["a","b","c"],"current":2}})";
  Decision d = router.after_runtime(*parsed, delivery, ok(), "[" + r + "," + r + "]");
  std::vector<std::string> observed;
  SendHooks hooks;
  hooks.after_send = [&](const Outgoing& o, double, const Status& st) {
    if (st.ok()) observed.push_back(o.queue);
  };
  Settlement s = router.settle(t, delivery, &*parsed, d, hooks);
  EXPECT_EQ(t.one_step_calls, 1);
  EXPECT_EQ(s.sent, 2u);
  EXPECT_TRUE(s.acked);
  EXPECT_TRUE(s.error.empty()) << s.error;
  EXPECT_EQ(t.acked, std::vector<std::string>{"r1"});
  EXPECT_EQ(t.queues["asya-c"].size(), 2u);
  EXPECT_EQ(observed, (std::vector<std::string>{"asya-c", "asya-c"}));
}

// When the one step does nothing (nullopt), the ordinary steps settle the message; and a
// before_send hook, a nack decision or an output over the transport's limit never take it.
TEST(RouterSettle, TheOrdinaryStepsSettleWhatTheOneStepDoesNotTake) {
  Router router(options_for("b"));
  auto delivery = delivery_of(kInput);
  auto parsed = envelope::parse(delivery.body);
  std::string r = R"({"payload":1,"route":{"actors":["a","b","c"],"current":2}})";
  Decision d = router.after_runtime(*parsed, delivery, ok(), "[" + r + "," + r + "]");
  {
    FakeTransport t;
    t.one_step = true;
    t.one_step_declines = true;
    Settlement s = router.settle(t, delivery, &*parsed, d);
    EXPECT_EQ(t.one_step_calls, 1);
    EXPECT_EQ(s.sent, 2u);
    EXPECT_TRUE(s.acked);
    EXPECT_EQ(t.sent.size(), 2u) << "each output sent once, by the ordinary steps";
    EXPECT_EQ(t.acked, std::vector<std::string>{"r1"});
  }
  {
    FakeTransport t;
    t.one_step = true;
    SendHooks hooks;
    hooks.before_send = [](const Outgoing&) {};
    Settlement s = router.settle(t, delivery, &*parsed, d, hooks);
    EXPECT_EQ(t.one_step_calls, 0);
    EXPECT_TRUE(s.acked);
  }
  {
    FakeTransport t;
    t.one_step = true;
    Decision nack = d;
    nack.then = Then::kNack;
    Settlement s = router.settle(t, delivery, &*parsed, nack);
    EXPECT_EQ(t.one_step_calls, 0);
    EXPECT_TRUE(s.nacked);
  }
  {
    FakeTransport t;
    t.one_step = true;
    t.max_bytes = 10;  // below the outputs: they go to error-end the ordinary way
    Settlement s = router.settle(t, delivery, &*parsed, d);
    EXPECT_EQ(t.one_step_calls, 0);
    EXPECT_TRUE(s.too_large);
  }
}

TEST(RouterSettle, FailedSendNacksAndStopsWithoutAck) {
  Router router(options_for("b"));
  FakeTransport t;
  t.fail_send_number = 2;
  auto delivery = delivery_of(kInput);
  auto parsed = envelope::parse(delivery.body);
  std::string r = R"({"payload":1,"route":{"actors":["a","b","c"],"current":2}})";
  Decision d = router.after_runtime(*parsed, delivery, ok(), "[" + r + "," + r + "," + r + "]");
  Settlement s = router.settle(t, delivery, &*parsed, d);
  EXPECT_EQ(s.sent, 1u);
  EXPECT_FALSE(s.acked);
  EXPECT_TRUE(s.nacked);
  EXPECT_TRUE(t.acked.empty());
  ASSERT_EQ(t.nacked.size(), 1u);
  EXPECT_EQ(t.sent.size(), 1u);  // the third output was not attempted
  EXPECT_NE(s.error.find("disk full"), std::string::npos);
}

TEST(RouterSettle, NackDecisionNacksWithItsDelay) {
  Router router(options_for("b"));
  FakeTransport t;
  auto delivery = delivery_of(kInput);
  Decision d;
  d.then = Then::kNack;
  d.nack_delay = 1234ms;
  Settlement s = router.settle(t, delivery, nullptr, d);
  EXPECT_TRUE(s.nacked);
  ASSERT_EQ(t.nacked.size(), 1u);
  EXPECT_EQ(t.nacked[0].second, 1234ms);
}

TEST(RouterSettle, OutputRefusedAsTooLargeBecomesAnErrorEndMessage) {
  Router router(options_for("b"));
  FakeTransport t;
  t.max_bytes = 600;
  auto delivery = delivery_of(kInput);
  auto parsed = envelope::parse(delivery.body);
  std::string big(700, 'y');
  Decision d = router.after_runtime(
      *parsed, delivery, ok(),
      R"([{"payload":")" + big + R"(","route":{"actors":["a","b","c"],"current":2}}])");
  Settlement s = router.settle(t, delivery, &*parsed, d);
  EXPECT_TRUE(s.too_large);
  EXPECT_TRUE(s.acked);
  ASSERT_EQ(t.sent.size(), 1u);
  EXPECT_EQ(t.sent[0].queue, "asya-error-end");
  EXPECT_EQ(obj(t.sent[0].body)["payload"].at("error"), "message_too_large");
}

// An input close to the limit: its error envelope (which embeds original_payload) would not fit.
std::string big_input(std::size_t payload_chars) {
  return R"({"id":"Z","route":{"actors":["a","b","c"],"current":1},"headers":{"trace":"t1"},)"
         R"("payload":{"data":")" +
         std::string(payload_chars, 'p') + R"("}})";
}
const std::string kFailure =
    R"([{"error":"processing_error","details":{"message":"boom","type":"ValueError","traceback":"tb"}}])";

TEST(Router, ErrorEnvelopeOverTheLimitCarriesATruncatedOriginalPayload) {
  RouterOptions o = options_for("b");
  o.max_message_bytes = 1000;
  Router router(o);
  std::string input = big_input(950);
  Decision d = route(router, input, kFailure);
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-error-end");
  EXPECT_LE(d.sends[0].body.size(), 1000u);
  auto out = obj(d.sends[0].body);
  auto& payload = out["payload"].as_object();
  EXPECT_EQ(payload.at("error"), "processing_error");
  EXPECT_EQ(payload.at("original_payload"), json::parse(R"({"truncated":true,"size_bytes":961})"));
  std::string message(payload.at("details").at("message").as_string());
  EXPECT_TRUE(message.starts_with("boom")) << message;
  EXPECT_NE(message.find("original_payload of 961 bytes replaced"), std::string::npos) << message;
  EXPECT_NE(message.find("limit of 1000 bytes"), std::string::npos) << message;
  EXPECT_EQ(out["headers"].at("trace"), "t1");
  EXPECT_EQ(out["id"], "Z");
}

TEST(Router, ErrorEnvelopeUnderTheLimitKeepsTheOriginalPayload) {
  RouterOptions o = options_for("b");
  o.max_message_bytes = 4000;
  Router router(o);
  Decision d = route(router, big_input(950), kFailure);
  EXPECT_EQ(obj(d.sends[0].body)["payload"].at("original_payload").at("data").as_string().size(),
            950u);
}

TEST(RouterSettle, ErrorEnvelopeRefusedAsTooLargeIsRebuiltTruncatedAndAcked) {
  Router router(options_for("b"));  // believes the limit is 256 MiB; the transport's is 1000
  FakeTransport t;
  t.max_bytes = 1000;
  std::string input = big_input(950);
  auto delivery = delivery_of(input);
  auto parsed = envelope::parse(delivery.body);
  Decision d = router.after_runtime(*parsed, delivery, ok(), kFailure);
  ASSERT_GT(d.sends[0].body.size(), 1000u);
  Settlement s = router.settle(t, delivery, &*parsed, d);
  EXPECT_TRUE(s.acked);
  EXPECT_TRUE(s.error.empty()) << s.error;
  ASSERT_EQ(t.sent.size(), 1u);
  EXPECT_EQ(t.sent[0].queue, "asya-error-end");
  auto payload = obj(t.sent[0].body)["payload"].as_object();
  EXPECT_EQ(payload.at("original_payload").at("truncated"), true);
  EXPECT_EQ(payload.at("original_payload").at("size_bytes"), 961);
  EXPECT_TRUE(t.nacked.empty());
}

TEST(RouterSettle, TooLargeOutputOfATooLargeInputStillReachesErrorEnd) {
  Router router(options_for("b"));
  FakeTransport t;
  t.max_bytes = 1000;
  std::string input = big_input(950);
  auto delivery = delivery_of(input);
  auto parsed = envelope::parse(delivery.body);
  std::string big(1200, 'y');
  Decision d = router.after_runtime(
      *parsed, delivery, ok(),
      R"([{"payload":")" + big + R"(","route":{"actors":["a","b","c"],"current":2}}])");
  Settlement s = router.settle(t, delivery, &*parsed, d);
  EXPECT_TRUE(s.acked) << s.error;
  EXPECT_TRUE(s.too_large);
  ASSERT_EQ(t.sent.size(), 1u);
  auto payload = obj(t.sent[0].body)["payload"].as_object();
  EXPECT_EQ(payload.at("error"), "message_too_large");
  EXPECT_EQ(payload.at("original_payload").at("truncated"), true);
}

TEST(Router, ErrorEnvelopeWithHugeHeadersDropsThemToFit) {
  RouterOptions o = options_for("b");
  o.max_message_bytes = 700;
  Router router(o);
  std::string input = R"({"id":"H","route":{"actors":["a","b"],"current":1},"headers":{"big":")" +
                      std::string(800, 'h') + R"("},"payload":{"v":1}})";
  Decision d = route(router, input, kFailure);
  EXPECT_LE(d.sends[0].body.size(), 700u);
  auto out = obj(d.sends[0].body);
  EXPECT_FALSE(out["headers"].as_object().contains("big"));
  EXPECT_NE(std::string(out["payload"].at("details").at("message").as_string())
                .find("headers and unknown fields dropped"),
            std::string::npos);
}

}  // namespace
}  // namespace asya::sidecar
