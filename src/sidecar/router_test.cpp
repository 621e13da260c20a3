// The router's decisions, free of I/O: where results, fan-outs, failures, retries, wrapped or
// poison messages and deadlines send a message, and the retry backoff. settle() and message size
// limits are router_settle_test.cpp.
#include "sidecar/router.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "envelope/build.hpp"
#include "envelope/envelope.hpp"
#include "sidecar/fake_transport.hpp"
#include "sidecar/router_test_support.hpp"

namespace asya::sidecar {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
using namespace router_test;
using testing::FakeTransport;

TEST(Router, SingleResultGoesToNextActorWithSameIdHeadersAndUnknownFields) {
  Router router(options_for("b"));
  Decision d = route(
      router, kInput,
      R"([{"payload":{"out":2},"route":{"actors":["a","b","c"],"current":2,"metadata":{"job":"j"}}}])");
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-c");
  EXPECT_EQ(d.sends[0].type, MessageType::kRoute);
  EXPECT_FALSE(d.sends[0].fanout_child);
  EXPECT_EQ(d.then, Then::kAck);
  EXPECT_EQ(d.status, ProcessedStatus::kSuccess);
  EXPECT_FALSE(d.failure);
  EXPECT_EQ(d.failure.label(), "");
  auto out = obj(d.sends[0].body);
  EXPECT_EQ(out["id"], "X");
  EXPECT_FALSE(out.contains("parent_id"));
  EXPECT_EQ(out["headers"].at("trace"), "t1");
  EXPECT_EQ(out["extra"].at("keep"), true);
  EXPECT_EQ(out["route"].at("current"), 2);
  EXPECT_NE(d.sends[0].body.find(R"("payload":{"out":2})"), std::string::npos);
}

TEST(Router, ResultPastTheLastActorGoesToHappyEnd) {
  Router router(options_for("b"));
  Decision d =
      route(router, kInput, R"([{"payload":1,"route":{"actors":["a","b","c"],"current":3}}])");
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-happy-end");
  EXPECT_EQ(d.sends[0].type, MessageType::kHappyEnd);
}

TEST(Router, QueuePrefixAppliesToEveryDestination) {
  RouterOptions o = options_for("b");
  o.queue_prefix = "dev-";
  o.happy_end_queue = "dev-happy-end";
  Router router(o);
  Decision d =
      route(router, kInput, R"([{"payload":1,"route":{"actors":["a","b","c"],"current":2}}])");
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "dev-c");
}

TEST(Router, FanOutOfThreeGivesSuffixedIdsAndParentIds) {
  Router router(options_for("b"));
  std::string r = R"({"payload":P,"route":{"actors":["a","b","c"],"current":2}})";
  auto item = [&](int n) { return std::string(r).replace(r.find('P'), 1, std::to_string(n)); };
  Decision d = route(router, kInput, "[" + item(0) + "," + item(1) + "," + item(2) + "]");
  ASSERT_EQ(d.sends.size(), 3u);
  const char* ids[] = {"X", "X-1-1", "X-1-2"};  // fanned out at hop 1
  for (int i = 0; i < 3; ++i) {
    auto out = obj(d.sends[i].body);
    EXPECT_EQ(out["id"], ids[i]);
    EXPECT_EQ(out["payload"], i);
    EXPECT_EQ(out["headers"].at("trace"), "t1");
    EXPECT_EQ(d.sends[i].queue, "asya-c");
    if (i == 0) {
      EXPECT_FALSE(out.contains("parent_id"));
      EXPECT_FALSE(d.sends[i].fanout_child);
    } else {
      EXPECT_EQ(out["parent_id"], "X");
      EXPECT_TRUE(d.sends[i].fanout_child);
      EXPECT_EQ(d.sends[i].id, ids[i]);
      EXPECT_EQ(d.sends[i].actors, (std::vector<std::string>{"a", "b", "c"}));
      EXPECT_EQ(d.sends[i].current, 2u);
    }
  }
}

TEST(Router, ParentIdIsCarriedForwardOnLaterHops) {
  Router router(options_for("b"));
  std::string input =
      R"({"id":"X-1","parent_id":"X","route":{"actors":["a","b"],"current":1},"payload":1})";
  Decision d = route(router, input, R"([{"payload":2,"route":{"actors":["a","b"],"current":2}}])");
  ASSERT_EQ(d.sends.size(), 1u);
  auto out = obj(d.sends[0].body);
  EXPECT_EQ(out["id"], "X-1");
  EXPECT_EQ(out["parent_id"], "X");
}

TEST(Router, HeadersReturnedByTheRuntimeReplaceTheInputHeaders) {
  Router router(options_for("b"));
  Decision d = route(
      router, kInput,
      R"([{"payload":1,"route":{"actors":["a","b","c"],"current":2},"headers":{"h":"new"}}])");
  auto out = obj(d.sends[0].body);
  EXPECT_EQ(out["headers"].as_object().size(), 1u);
  EXPECT_EQ(out["headers"].at("h"), "new");
}

TEST(Router, AbortSendsTheInputUnchangedToHappyEnd) {
  Router router(options_for("b"));
  Decision d = route(router, kInput, "[]");
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-happy-end");
  EXPECT_EQ(d.sends[0].body, kInput);
  EXPECT_EQ(d.status, ProcessedStatus::kSuccess);
}

TEST(Router, ProcessingErrorGoesToErrorEndWithDetailsAndOriginalPayload) {
  Router router(options_for("b"));
  Decision d = route(
      router, kInput,
      R"([{"error":"processing_error","details":{"message":"boom","type":"ValueError","traceback":"tb"}}])");
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-error-end");
  EXPECT_EQ(d.sends[0].type, MessageType::kErrorEnd);
  EXPECT_EQ(d.status, ProcessedStatus::kError);
  EXPECT_EQ(d.failure.code(), FailureCode::kProcessingError);
  EXPECT_EQ(d.then, Then::kAck);
  auto out = obj(d.sends[0].body);
  EXPECT_EQ(out["id"], "X");
  EXPECT_EQ(out["route"].at("current"), 1);
  EXPECT_EQ(out["headers"].at("trace"), "t1");
  auto& payload = out["payload"].as_object();
  EXPECT_EQ(payload["error"], "processing_error");
  EXPECT_EQ(payload["actor"], "b");
  EXPECT_EQ(payload["details"].at("message"), "boom");
  EXPECT_EQ(payload["details"].at("type"), "ValueError");
  EXPECT_EQ(payload["details"].at("traceback"), "tb");
  EXPECT_NE(d.sends[0].body.find(R"("original_payload":{"n":1.50,"s":"\u00e9"})"),
            std::string::npos)
      << d.sends[0].body;
  auto& chain = out["headers"].at("asya-error-chain").as_array();
  ASSERT_EQ(chain.size(), 1u);
  EXPECT_EQ(chain[0].at("actor"), "b");
  EXPECT_EQ(chain[0].at("error"), "processing_error");
}

TEST(Router, UnknownRuntimeErrorCodeIsKeptVerbatim) {
  RouterOptions o = options_for("b");
  o.retry_max_attempts = 3;
  o.retry_on_processing_error = true;
  Router router(o);
  Decision d = route(router, kInput, R"([{"error":"my_own_code","details":{"message":"m"}}])");
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-error-end");  // not retryable
  EXPECT_EQ(d.status, ProcessedStatus::kError);
  EXPECT_EQ(d.failure.code(), FailureCode::kOther);
  EXPECT_EQ(d.failure.label(), "my_own_code");  // the metric label and log text
  EXPECT_EQ(obj(d.sends[0].body)["payload"].at("error"), "my_own_code");
}

TEST(Router, ProcessingErrorIsNotRetriedUnlessOptedIn) {
  RouterOptions o = options_for("b");
  o.retry_max_attempts = 3;
  Router router(o);
  Decision d = route(router, kInput, R"([{"error":"processing_error","details":{"message":"m"}}])");
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-error-end");
  EXPECT_FALSE(d.retried);
}

TEST(Router, RetryableFailureIsReenqueuedWithNextAttemptAndDelay) {
  RouterOptions o = options_for("b");
  o.retry_max_attempts = 3;
  o.retry_on_processing_error = true;
  o.retry_backoff = 1000ms;
  Router router(o);
  Decision d = route(router, kInput, R"([{"error":"processing_error","details":{"message":"m"}}])");
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-b");
  EXPECT_EQ(d.sends[0].type, MessageType::kRetry);
  EXPECT_EQ(d.sends[0].delay, 500ms);  // 1s with jitter factor 0.5
  EXPECT_TRUE(d.retried);
  EXPECT_EQ(d.status, ProcessedStatus::kRetry);
  EXPECT_EQ(d.then, Then::kAck);
  auto out = obj(d.sends[0].body);
  EXPECT_EQ(out["id"], "X");
  EXPECT_EQ(out["headers"].at("asya-attempt"), 2);
  EXPECT_EQ(out["headers"].at("trace"), "t1");
  EXPECT_EQ(out["route"].at("current"), 1);
}

TEST(Router, LastAttemptGoesToErrorEnd) {
  RouterOptions o = options_for("b");
  o.retry_max_attempts = 2;
  o.retry_on_processing_error = true;
  Router router(o);
  std::string input =
      R"({"id":"X","route":{"actors":["b"]},"headers":{"asya-attempt":2},"payload":1})";
  Decision d = route(router, input, R"([{"error":"processing_error","details":{"message":"m"}}])");
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-error-end");
  EXPECT_FALSE(d.retried);
}

TEST(Router, RuntimeTimeoutGoesToErrorEndAndMarksTheRuntimeUnhealthy) {
  Router router(options_for("b"));
  Decision d = route(router, kInput, "", {wire::CallStatus::kTimeout, "timed out after 1s"});
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-error-end");
  EXPECT_EQ(obj(d.sends[0].body)["payload"].at("error"), "runtime_timeout");
  EXPECT_EQ(d.then, Then::kAck);
  EXPECT_TRUE(d.runtime_unhealthy);
  EXPECT_EQ(d.failure.code(), FailureCode::kRuntimeTimeout);
}

TEST(Router, RuntimeTimeoutIsRetriedWhenAttemptsRemain) {
  RouterOptions o = options_for("b");
  o.retry_max_attempts = 2;
  Router router(o);
  Decision d = route(router, kInput, "", {wire::CallStatus::kTimeout, "timed out"});
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-b");
  EXPECT_TRUE(d.retried);
  EXPECT_TRUE(d.runtime_unhealthy);
}

TEST(Router, RuntimeUnavailableNacksWithBackoffAndWaitsForTheRuntime) {
  RouterOptions o = options_for("b");
  o.retry_backoff = 1000ms;
  Router router(o);
  Decision d = route(router, kInput, "", {wire::CallStatus::kUnavailable, "connection reset"}, 3);
  EXPECT_TRUE(d.sends.empty());
  EXPECT_EQ(d.then, Then::kNack);
  EXPECT_EQ(d.nack_delay, 2000ms);  // 4s nominal for the third delivery, jitter 0.5
  EXPECT_TRUE(d.wait_for_runtime);
  EXPECT_EQ(d.failure.code(), FailureCode::kRuntimeUnavailable);
  EXPECT_EQ(d.status, ProcessedStatus::kRequeued);
}

TEST(Router, BadResponseIsARuntimeProtocolError) {
  Router router(options_for("b"));
  for (const char* response : {"not json", "{}", R"([{"foo":1}])"}) {
    Decision d = route(router, kInput, response);
    ASSERT_EQ(d.sends.size(), 1u) << response;
    EXPECT_EQ(d.sends[0].queue, "asya-error-end");
    EXPECT_EQ(obj(d.sends[0].body)["payload"].at("error"), "runtime_protocol_error") << response;
  }
  Decision d = route(router, kInput, "", {wire::CallStatus::kProtocol, "truncated frame"});
  EXPECT_EQ(obj(d.sends[0].body)["payload"].at("error"), "runtime_protocol_error");
}

// PROTOCOL §3: "payload_unchanged" stands for the input's payload as received, byte for byte.
TEST(Router, PayloadUnchangedCarriesTheInputPayloadAsReceived) {
  Router router(options_for("b"));
  Decision d = route(router, kInput,
                     R"([{"payload_unchanged":true,"route":{"actors":["a","b","c"],"current":2}},)"
                     R"({"payload_unchanged":true,"route":{"actors":["a","b","c"],"current":2}}])");
  ASSERT_EQ(d.sends.size(), 2u);
  for (const auto& send : d.sends) {
    EXPECT_EQ(send.queue, "asya-c");
    EXPECT_NE(send.body.find(R"("payload":{"n":1.50,"s":"\u00e9"})"), std::string::npos)
        << send.body;
    EXPECT_EQ(send.body.find("payload_unchanged"), std::string::npos) << send.body;
  }
  EXPECT_EQ(obj(d.sends[1].body)["id"], "X-1-1");
}

// An envelope-mode handler may change the route's future and headers and still answer
// "payload_unchanged": the new route and headers with the input's payload; an error element beside
// it ignores its own "payload_unchanged"; a route that rewrites the past stays a protocol error.
TEST(Router, PayloadUnchangedWithAChangedRouteTakesTheNewRouteAndTheInputsPayload) {
  Router router(options_for("b"));
  Decision d = route(router, kInput,
                     R"([{"payload_unchanged":true,"headers":{"trace":"t2"},)"
                     R"("route":{"actors":["a","b","x","y"],"current":2}},)"
                     R"({"error":"boom","message":"m","payload_unchanged":true}])");
  ASSERT_EQ(d.sends.size(), 2u);
  EXPECT_EQ(d.sends[0].queue, "asya-x");
  auto out = obj(d.sends[0].body);
  EXPECT_NE(d.sends[0].body.find(R"("payload":{"n":1.50,"s":"\u00e9"})"), std::string::npos)
      << d.sends[0].body;
  EXPECT_EQ(out["route"].at("actors").as_array().size(), 4u);
  EXPECT_EQ(out["headers"].at("trace"), "t2");
  EXPECT_EQ(d.sends[1].queue, "asya-error-end");
  d = route(router, kInput,
            R"([{"payload_unchanged":true,"route":{"actors":["z","b","c"],"current":2}}])");
  EXPECT_EQ(d.failure, FailureCode::kRuntimeProtocolError);
  EXPECT_NE(d.failure_message.find("does not continue this message's route"), std::string::npos)
      << d.failure_message;
}

TEST(Router, PayloadUnchangedIsAProtocolErrorWhereItIsNotAccepted) {
  RouterOptions options = options_for("b");
  options.accept_payload_unchanged = false;  // a join actor's
  Router router(options);
  Decision d =
      route(router, kInput,
            R"([{"payload_unchanged":true,"route":{"actors":["a","b","c"],"current":2}}])");
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-error-end");
  EXPECT_EQ(d.failure, FailureCode::kRuntimeProtocolError);
  EXPECT_NE(d.failure_message.find("\"payload_unchanged\" is not accepted by actor b"),
            std::string::npos)
      << d.failure_message;
  // Both or neither: the parser's message, as any bad answer.
  d = route(
      Router(options_for("b")), kInput,
      R"([{"payload":1,"payload_unchanged":true,"route":{"actors":["a","b","c"],"current":2}}])");
  EXPECT_EQ(d.failure, FailureCode::kRuntimeProtocolError);
  EXPECT_NE(d.failure_message.find("has both \"payload\" and \"payload_unchanged\": true"),
            std::string::npos)
      << d.failure_message;
}

// Issue 11 item 1: an answer whose route does not continue the request's cannot be its answer.
TEST(Router, AnswerThatDoesNotContinueTheRequestsRouteIsARuntimeProtocolError) {
  Router router(options_for("b"));
  Decision d =
      route(router, kInput, R"([{"payload":1,"route":{"actors":["a","x","c"],"current":2}}])");
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-error-end");
  EXPECT_EQ(d.failure.code(), FailureCode::kRuntimeProtocolError);
  EXPECT_NE(d.failure_message.find(R"(route.actors ["a","x","c"] does not start with the )"
                                   R"(request's route.actors[0..1] ["a","b"])"),
            std::string::npos)
      << d.failure_message;
  // The future may change (envelope mode), and error elements carry no route.
  d = route(router, kInput, R"([{"payload":1,"route":{"actors":["a","b","z"],"current":2}}])");
  EXPECT_EQ(d.status, ProcessedStatus::kSuccess);
  d = route(router, kInput, R"([{"payload":1,"route":{"actors":["a"],"current":1}}])");
  EXPECT_EQ(d.failure.code(), FailureCode::kRuntimeProtocolError);
}

TEST(Router, RuntimeProtocolErrorIsRetriedWhileAttemptsAreLeft) {
  RouterOptions o = options_for("b");
  o.retry_max_attempts = 2;
  Router router(o);
  Decision d = route(router, kInput, "", {wire::CallStatus::kProtocol, "bytes after the answer"});
  EXPECT_EQ(d.status, ProcessedStatus::kRetry);
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-b");
  d = route(router, kInput, "not json");
  EXPECT_EQ(d.status, ProcessedStatus::kRetry);
  EXPECT_EQ(d.failure.code(), FailureCode::kRuntimeProtocolError);
}

std::optional<Decision> early(const Router& router, const std::string& body,
                              std::uint32_t count = 1) {
  auto delivery = delivery_of(body, count);
  auto parsed = envelope::parse(delivery.body);
  auto d = router.before_runtime(delivery, parsed, std::chrono::system_clock::now());
  if (d) {
    for (auto& s : d->sends) (void)s;  // bodies are owned strings; views are not kept
  }
  return d;
}

TEST(Router, UnparseableBodyIsWrappedAndSentToErrorEndOnce) {
  Router router(options_for("b"));
  auto d = early(router, "this is { not json");
  ASSERT_TRUE(d);
  ASSERT_EQ(d->sends.size(), 1u);
  EXPECT_EQ(d->sends[0].queue, "asya-error-end");
  EXPECT_EQ(d->then, Then::kAck);
  EXPECT_EQ(d->failure.code(), FailureCode::kMsgParsingError);
  auto out = obj(d->sends[0].body);
  EXPECT_TRUE(out["id"].as_string().starts_with("unparseable-"));
  EXPECT_EQ(out["payload"].at("error"), "msg_parsing_error");
  EXPECT_EQ(out["payload"].at("raw"), "this is { not json");
  // Redelivery of the same body gets the same id.
  EXPECT_EQ(obj(early(router, "this is { not json")->sends[0].body)["id"], out["id"]);
}

TEST(Router, EnvelopeWithoutIdIsWrapped) {
  Router router(options_for("b"));
  auto d = early(router, R"({"route":{"actors":["b"]},"payload":1})");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->sends[0].queue, "asya-error-end");
  EXPECT_EQ(d->failure.code(), FailureCode::kMsgParsingError);
  EXPECT_TRUE(obj(d->sends[0].body)["id"].as_string().starts_with("unparseable-"));
}

TEST(Router, RouteMismatchGoesToErrorEnd) {
  Router router(options_for("z"));
  auto d = early(router, kInput);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->failure.code(), FailureCode::kRouteMismatch);
  auto out = obj(d->sends[0].body);
  EXPECT_EQ(out["id"], "X");
  EXPECT_EQ(out["payload"].at("error"), "route_mismatch");
  EXPECT_EQ(out["payload"].at("actor"), "z");
}

TEST(Router, FinishedRouteIsARouteMismatch) {
  Router router(options_for("b"));
  auto d = early(router, R"({"id":"X","route":{"actors":["b"],"current":1},"payload":1})");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->failure.code(), FailureCode::kRouteMismatch);
}

TEST(Router, PassedDeadlineSkipsTheRuntime) {
  Router router(options_for("b"));
  auto d =
      early(router,
            R"({"id":"X","route":{"actors":["b"]},"deadline":"2000-01-01T00:00:00Z","payload":1})");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->failure.code(), FailureCode::kDeadlineExceeded);
  EXPECT_EQ(d->sends[0].queue, "asya-error-end");
  EXPECT_EQ(obj(d->sends[0].body)["deadline"], "2000-01-01T00:00:00Z");
  EXPECT_FALSE(early(
      router,
      R"({"id":"X","route":{"actors":["b"]},"deadline":"2999-01-01T00:00:00Z","payload":1})"));
}

TEST(Router, DeliveriesBeyondTheLimitArePoison) {
  RouterOptions o = options_for("b");
  o.max_deliveries = 5;
  Router router(o);
  EXPECT_FALSE(early(router, kInput, 5));
  auto d = early(router, kInput, 6);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->failure.code(), FailureCode::kMaxDeliveriesExceeded);
  EXPECT_EQ(obj(d->sends[0].body)["payload"].at("error"), "max_deliveries_exceeded");
}

TEST(Router, ValidEnvelopeForThisActorCallsTheRuntime) {
  EXPECT_FALSE(early(Router(options_for("b")), kInput));
}

TEST(Router, BackoffDoublesWithJitterAndIsCapped) {
  RouterOptions o = options_for("b");
  o.retry_backoff = 100ms;
  o.retry_backoff_max = 1000ms;
  double jitter = 0.0;
  o.jitter = [&] { return jitter; };
  Router router(o);
  EXPECT_EQ(router.backoff(1), 50ms);
  EXPECT_EQ(router.backoff(2), 100ms);
  EXPECT_EQ(router.backoff(3), 200ms);
  EXPECT_EQ(router.backoff(10), 500ms);
  jitter = 0.999;
  EXPECT_GE(router.backoff(10), 990ms);
  EXPECT_LE(router.backoff(10), 1000ms);
  EXPECT_LE(router.backoff(1000), 1000ms);
}

// settle() with the in-memory transport.

}  // namespace
}  // namespace asya::sidecar
