// The spans of one hop and the trace context its outputs carry, exported to a real loopback
// OTLP/HTTP receiver (common/otlp/receiver_for_test.hpp).
#include "sidecar/tracing.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <map>
#include <thread>

#include "common/otlp/receiver_for_test.hpp"
#include "envelope/build.hpp"
#include "sidecar/router_test_support.hpp"

namespace asya::sidecar {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
using router_test::delivery_of;
using router_test::options_for;

constexpr const char* kParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

std::string input_with(std::string_view headers) {
  return std::string(R"({"id":"X","route":{"actors":["a","b","c"],"current":1,)"
                     R"("metadata":{"job_id":"j1"}},"headers":)") +
         std::string(headers) + R"(,"payload":{"n":1}})";
}

TracingOptions options_to(std::string url) {
  TracingOptions options;
  options.actor = "b";
  options.replica = "host:1";
  if (!url.empty()) {
    otlp::ExportSettings collector;
    collector.url = std::move(url);
    collector.schedule_delay = 20ms;
    options.collector = collector;
  }
  return options;
}

// Every span the receiver got, by name.
std::multimap<std::string, json::object> received_spans(otlp::testing::Receiver& receiver) {
  std::multimap<std::string, json::object> spans;
  for (const auto& request : receiver.requests()) {
    json::value doc = json::parse(request.body);
    for (const auto& span :
         doc.at("resourceSpans").at(0).at("scopeSpans").at(0).at("spans").as_array())
      spans.emplace(std::string(span.at("name").as_string()), span.as_object());
  }
  return spans;
}

// The resource attributes of every request the receiver got (key -> string or intValue text),
// one map per request.
std::vector<std::map<std::string, std::string>> received_resources(
    otlp::testing::Receiver& receiver) {
  std::vector<std::map<std::string, std::string>> resources;
  for (const auto& request : receiver.requests()) {
    json::value doc = json::parse(request.body);
    auto& resource = resources.emplace_back();
    for (const auto& a : doc.at("resourceSpans").at(0).at("resource").at("attributes").as_array()) {
      const auto& value = a.at("value").as_object();
      resource[std::string(a.at("key").as_string())] =
          value.contains("stringValue") ? std::string(value.at("stringValue").as_string())
                                        : json::serialize(value);
    }
  }
  return resources;
}

std::string str(const json::value& value) {
  return std::string(value.as_string());
}

std::string attribute(const json::object& span, std::string_view key) {
  for (const auto& a : span.at("attributes").as_array()) {
    if (a.at("key").as_string() != key) continue;
    const auto& value = a.at("value").as_object();
    if (value.contains("stringValue")) return std::string(value.at("stringValue").as_string());
    if (value.contains("intValue")) return std::string(value.at("intValue").as_string());
  }
  return "<absent>";
}

TEST(Tracing, WithNoExporterNothingIsRecordedAndOutputsAreUnchanged) {
  Tracing tracing(options_to(""));
  Router router(options_for("b"));
  const std::string input = input_with(std::string(R"({"traceparent":")") + kParent + "\"}");
  Decision decision = router_test::route(
      router, input, R"([{"payload":1,"route":{"actors":["a","b","c"],"current":2}}])");
  const std::string before = decision.sends.at(0).body;
  auto delivery = delivery_of(input);
  auto parsed = envelope::parse(delivery.body);
  Hop hop(tracing, &*parsed, delivery, /*tracked=*/true);
  EXPECT_FALSE(hop.active());
  hop.stamp(decision);
  EXPECT_EQ(decision.sends.at(0).body, before);
}

TEST(Tracing, AHopIsAChildOfTheTraceparentAndEachOutputOfItsOwnPublishSpan) {
  otlp::testing::Receiver receiver;
  Tracing tracing(options_to(receiver.url()));
  Router router(options_for("b"));
  const std::string input = input_with(std::string(R"({"traceparent":")") + kParent +
                                       R"(","asya-sent-at":"2020-01-01T00:00:00.000000Z"})");
  auto delivery = delivery_of(input, 2);
  auto parsed = envelope::parse(delivery.body);
  std::string hop_span;
  std::vector<std::string> output_parents;
  {
    Hop hop(tracing, &*parsed, delivery, /*tracked=*/false);
    ASSERT_TRUE(hop.active());
    EXPECT_EQ(hop.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    hop_span = hop.span_id();
    auto started = std::chrono::steady_clock::now();
    Decision decision =
        router.after_runtime(*parsed, delivery, router_test::ok(),
                             R"([{"payload":1,"route":{"actors":["a","b","c"],"current":2}},)"
                             R"({"payload":2,"route":{"actors":["a","b","c"],"current":2}}])");
    record_runtime_call(started, 0.001, "ok");
    hop.stamp(decision);
    ASSERT_EQ(decision.sends.size(), 2u);
    for (const auto& out : decision.sends) {
      auto sent = envelope::parse(out.body);
      ASSERT_TRUE(sent) << out.body;
      auto headers = envelope::string_headers(*sent, {"traceparent", "asya-sent-at"});
      auto context = otlp::parse_traceparent(headers[0].value_or(""));
      ASSERT_TRUE(context) << out.body;
      EXPECT_EQ(context->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
      // asya-sent-at: RFC 3339 with microseconds, the instant of the stamp (written from a
      // per-second cache: the same text a full format gives).
      auto sent_at = parse_rfc3339(headers[1].value_or(""));
      ASSERT_TRUE(sent_at) << out.body;
      EXPECT_EQ(format_rfc3339(*sent_at, Rfc3339Precision::kMicroseconds), headers[1].value_or(""));
      EXPECT_LE(*sent_at, std::chrono::system_clock::now());
      EXPECT_GE(*sent_at, std::chrono::system_clock::now() - 60s);
      EXPECT_TRUE(sent->payload_raw == "1" || sent->payload_raw == "2") << out.body;
      output_parents.push_back(context->span_id);
      record_publish(out.queue, 0.0001, true);
    }
    record_settle(true, false);
  }
  EXPECT_NE(output_parents[0], output_parents[1]);
  tracing.stop(10s);
  auto spans = received_spans(receiver);
  ASSERT_EQ(spans.count("process b"), 1u);
  const json::object& hop = spans.find("process b")->second;
  EXPECT_EQ(str(hop.at("spanId")), hop_span);
  EXPECT_EQ(hop.at("parentSpanId"), "00f067aa0ba902b7");
  EXPECT_EQ(hop.at("kind"), 5);
  // The actor and replica are the process's: resource attributes of every request, not
  // attributes of each span.
  auto resources = received_resources(receiver);
  ASSERT_FALSE(resources.empty());
  for (const auto& resource : resources) {
    EXPECT_EQ(resource.at("asya.actor"), "b");
    EXPECT_EQ(resource.at("asya.replica"), "host:1");
  }
  EXPECT_EQ(attribute(hop, "asya.actor"), "<absent>");
  EXPECT_EQ(attribute(hop, "asya.replica"), "<absent>");
  EXPECT_EQ(attribute(hop, "asya.envelope_id"), "X");
  EXPECT_EQ(attribute(hop, "asya.job_id"), "j1");
  EXPECT_EQ(attribute(hop, "asya.delivery_count"), "2");
  EXPECT_EQ(attribute(hop, "asya.payload_bytes"), "7");
  EXPECT_EQ(attribute(hop, "asya.outcome"), "success");
  // The queue wait: from when the sender sent it (2020) to the receive (now), in milliseconds.
  EXPECT_GT(std::stoll(attribute(hop, "asya.queue_wait_ms")), 100'000'000'000LL);
  for (const char* name : {"runtime call", "ack"}) {
    ASSERT_EQ(spans.count(name), 1u) << name;
    EXPECT_EQ(str(spans.find(name)->second.at("parentSpanId")), hop_span) << name;
    // Each span of the hop names it, so a receiver can group them.
    EXPECT_EQ(attribute(spans.find(name)->second, "asya.actor"), "<absent>") << name;
    EXPECT_EQ(attribute(spans.find(name)->second, "asya.envelope_id"), "X") << name;
    EXPECT_EQ(attribute(spans.find(name)->second, "asya.job_id"), "j1") << name;
  }
  auto [first, last] = spans.equal_range("publish asya-c");
  std::vector<std::string> publish_ids;
  for (auto it = first; it != last; ++it) {
    EXPECT_EQ(str(it->second.at("parentSpanId")), hop_span);
    EXPECT_EQ(it->second.at("kind"), 4);
    publish_ids.push_back(std::string(it->second.at("spanId").as_string()));
  }
  std::sort(publish_ids.begin(), publish_ids.end());
  std::sort(output_parents.begin(), output_parents.end());
  EXPECT_EQ(publish_ids, output_parents);
}

TEST(Tracing, AnInvalidTraceparentStartsANewTrace) {
  otlp::testing::Receiver receiver;
  Tracing tracing(options_to(receiver.url()));
  const std::string input = input_with(R"({"traceparent":"00-abc-01"})");
  auto delivery = delivery_of(input);
  auto parsed = envelope::parse(delivery.body);
  {
    Hop hop(tracing, &*parsed, delivery, false);
    ASSERT_TRUE(hop.active());
    EXPECT_EQ(hop.trace_id().size(), 32u);
    hop.set_outcome("success", "");
  }
  tracing.stop(10s);
  auto spans = received_spans(receiver);
  ASSERT_EQ(spans.count("process b"), 1u);
  EXPECT_FALSE(spans.find("process b")->second.contains("parentSpanId"));
  EXPECT_EQ(attribute(spans.find("process b")->second, "asya.queue_wait_ms"), "<absent>");
}

TEST(Tracing, EachItemOfABatchIsAHopOfItsOwnTraceWithTheSharedRuntimeCall) {
  otlp::testing::Receiver receiver;
  Tracing tracing(options_to(receiver.url()));
  Router router(options_for("b"));
  const std::string traces[2] = {"4bf92f3577b34da6a3ce929d0e0e4736",
                                 "0af7651916cd43dd8448eb211c80319c"};
  std::vector<transport::Delivery> deliveries;
  for (const auto& trace : traces)
    deliveries.push_back(
        delivery_of(input_with(R"({"traceparent":"00-)" + trace + R"(-00f067aa0ba902b7-01"})")));
  std::vector<Result<envelope::Envelope>> parsed;
  for (const auto& delivery : deliveries) parsed.push_back(envelope::parse(delivery.body));
  std::vector<Decision> decisions;
  std::vector<std::string> hop_spans, output_parents;
  {
    BatchHops batch(tracing, 2);
    for (std::size_t i = 0; i < 2; ++i) batch.start(i, &*parsed[i], deliveries[i], false);
    ASSERT_TRUE(batch.active(0) && batch.active(1));
    const auto started = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < 2; ++i) {
      decisions.push_back(
          router.after_runtime(*parsed[i], deliveries[i], router_test::ok(),
                               R"([{"payload":1,"route":{"actors":["a","b","c"],"current":2}}])"));
      batch.runtime_call(i, started, 0.002, i == 0 ? "" : "processing_error", i, 2);
      batch.stamp(i, decisions[i]);
      hop_spans.emplace_back(batch.hop(i)->span_id());
      EXPECT_EQ(batch.hop(i)->trace_id(), traces[i]);
    }
    // Settled in the reverse order: each publish and ack finds its own item's hop.
    for (std::size_t i = 2; i-- > 0;) {
      const Outgoing& out = decisions[i].sends.at(0);
      auto sent = envelope::parse(out.body);
      ASSERT_TRUE(sent);
      auto context =
          otlp::parse_traceparent(envelope::string_headers(*sent, {"traceparent"})[0].value());
      ASSERT_TRUE(context);
      EXPECT_EQ(context->trace_id, traces[i]);
      output_parents.insert(output_parents.begin(), context->span_id);
      record_publish(out, 0.0001, true);
      record_settle(deliveries[i], true, false);
    }
  }
  // Outside the batch, nothing is recorded.
  record_runtime_call(std::chrono::steady_clock::now(), 0.001, "ok");
  tracing.stop(10s);
  auto spans = received_spans(receiver);
  ASSERT_EQ(spans.count("process b"), 2u);
  ASSERT_EQ(spans.count("runtime call"), 2u);
  ASSERT_EQ(spans.count("publish asya-c"), 2u);
  ASSERT_EQ(spans.count("ack"), 2u);
  for (const auto& [name, span] : spans) {
    const std::string trace = str(span.at("traceId"));
    const std::size_t i = trace == traces[0] ? 0 : 1;
    EXPECT_EQ(trace, traces[i]) << name;
    if (name == "process b") {
      EXPECT_EQ(str(span.at("spanId")), hop_spans[i]);
      EXPECT_EQ(str(span.at("parentSpanId")), "00f067aa0ba902b7");
      continue;
    }
    EXPECT_EQ(str(span.at("parentSpanId")), hop_spans[i]) << name;
    if (name == "runtime call") {
      EXPECT_EQ(attribute(span, "asya.batch_size"), "2");
      EXPECT_EQ(attribute(span, "asya.batch_index"), std::to_string(i));
      EXPECT_EQ(attribute(span, "asya.runtime_result"), i == 0 ? "ok" : "processing_error");
    }
    if (name == "publish asya-c") {
      EXPECT_EQ(str(span.at("spanId")), output_parents[i]);
    }
  }
}

// The outputs of a runtime's answer get their trace context as the router builds them (the hop is
// its OutputTrace): each fan-out child and a large output name their own publish span, and
// Hop::stamp leaves every body as it is (no second parse, no copy).
TEST(Tracing, OutputsTheRouterBuildsCarryTheirTraceContextWithoutBeingRebuilt) {
  otlp::testing::Receiver receiver;
  Tracing tracing(options_to(receiver.url()));
  Router router(options_for("b"));
  const std::string input = input_with(std::string(R"({"traceparent":")") + kParent +
                                       R"(","asya-sent-at":"2020-01-01T00:00:00.000000Z"})");
  auto delivery = delivery_of(input);
  auto parsed = envelope::parse(delivery.body);
  const std::string large(2u << 20, 'x');
  const std::string answer = R"([{"payload":1,"route":{"actors":["a","b","c"],"current":2}},)"
                             R"({"payload":")" +
                             large +
                             R"(","route":{"actors":["a","b","c"],"current":2}},)"
                             R"({"payload":3,"route":{"actors":["a","b"],"current":2}}])";
  std::vector<std::string> parents;
  std::string hop_span;
  {
    Hop hop(tracing, &*parsed, delivery, /*tracked=*/false);
    ASSERT_TRUE(hop.active());
    ASSERT_EQ(current_output_trace(), &hop);
    hop_span = hop.span_id();
    Decision decision =
        router.after_runtime(*parsed, delivery, router_test::ok(), answer, false, nullptr,
                             /*parts_above=*/1u << 20, &hop);
    ASSERT_EQ(decision.sends.size(), 3u);
    // The large output is kept in parts (its payload inside the answer), its trace context in
    // the head.
    ASSERT_TRUE(decision.sends[1].parts);
    EXPECT_NE(decision.sends[1].parts->head.find("traceparent"), std::string::npos);
    auto text = [](const Outgoing& out) { return out.parts ? out.parts->joined() : out.body; };
    auto buffer = [](const Outgoing& out) {
      return out.parts ? out.parts->head.data() : out.body.data();
    };
    std::vector<std::string> bodies;
    std::vector<const char*> buffers;
    for (const auto& out : decision.sends) {
      EXPECT_NE(out.trace_stamp, 0u);
      bodies.push_back(text(out));
      buffers.push_back(buffer(out));
    }
    hop.stamp(decision);
    EXPECT_TRUE(decision.sends[1].parts);  // not joined
    for (std::size_t i = 0; i < decision.sends.size(); ++i) {
      const Outgoing& out = decision.sends[i];
      EXPECT_EQ(buffer(out), buffers[i]) << "rebuilt: " << i;
      const std::string body = text(out);
      EXPECT_EQ(body, bodies[i]);
      auto sent = envelope::parse(body);
      ASSERT_TRUE(sent);
      auto headers = envelope::string_headers(*sent, {"traceparent", "asya-sent-at"});
      auto context = otlp::parse_traceparent(headers[0].value_or(""));
      ASSERT_TRUE(context) << i;
      EXPECT_EQ(context->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
      EXPECT_TRUE(context->sampled);
      ASSERT_TRUE(headers[1]);
      EXPECT_NE(*headers[1], "2020-01-01T00:00:00.000000Z");
      EXPECT_TRUE(parse_rfc3339(*headers[1]));
      parents.push_back(context->span_id);
      record_publish(out.queue, 0.0001, true);
    }
    const std::string large_body = text(decision.sends[1]);
    EXPECT_EQ(envelope::parse(large_body)->payload_raw.size(), large.size() + 2);
    record_settle(true, false);
  }
  tracing.stop(10s);
  auto spans = received_spans(receiver);
  std::vector<std::string> publish_ids;
  for (const auto& [name, span] : spans) {
    if (!name.starts_with("publish ")) continue;
    EXPECT_EQ(str(span.at("parentSpanId")), hop_span);
    EXPECT_FALSE(span.contains("status")) << name;  // every one confirmed
    publish_ids.push_back(str(span.at("spanId")));
  }
  std::sort(publish_ids.begin(), publish_ids.end());
  std::sort(parents.begin(), parents.end());
  EXPECT_EQ(publish_ids, parents);
  EXPECT_EQ(std::adjacent_find(parents.begin(), parents.end()), parents.end());  // all distinct
  EXPECT_EQ(spans.count("publish asya-c"), 2u);
  EXPECT_EQ(spans.count("publish asya-happy-end"), 1u);
}

// An answer whose outputs were stamped as built but replaced by another decision (an output over
// the transport's limit sends the input to error-end): only what is sent gets a publish span.
TEST(Tracing, OutputsStampedButNotSentGetNoPublishSpan) {
  otlp::testing::Receiver receiver;
  Tracing tracing(options_to(receiver.url()));
  RouterOptions options = options_for("b");
  options.max_message_bytes = 400;
  Router router(options);
  const std::string input = input_with(std::string(R"({"traceparent":")") + kParent + "\"}");
  auto delivery = delivery_of(input);
  auto parsed = envelope::parse(delivery.body);
  {
    Hop hop(tracing, &*parsed, delivery, false);
    Decision decision = router.after_runtime(
        *parsed, delivery, router_test::ok(),
        R"([{"payload":1,"route":{"actors":["a","b","c"],"current":2}},{"payload":")" +
            std::string(500, 'y') + R"(","route":{"actors":["a","b","c"],"current":2}}])",
        false, nullptr, 0, &hop);
    ASSERT_EQ(decision.sends.size(), 1u);
    EXPECT_EQ(decision.sends[0].queue, "asya-error-end");
    hop.stamp(decision);  // the error envelope is stamped the other way
    auto sent = envelope::parse(decision.sends[0].body);
    ASSERT_TRUE(sent);
    auto context =
        otlp::parse_traceparent(envelope::string_headers(*sent, {"traceparent"})[0].value_or(""));
    ASSERT_TRUE(context);
    record_publish(decision.sends[0].queue, 0.0001, true);
    record_settle(true, false);
  }
  tracing.stop(10s);
  auto spans = received_spans(receiver);
  std::size_t publishes = 0;
  for (const auto& [name, span] : spans)
    if (name.starts_with("publish ")) ++publishes;
  EXPECT_EQ(publishes, 1u);
  EXPECT_EQ(spans.count("publish asya-error-end"), 1u);
}

}  // namespace
}  // namespace asya::sidecar
