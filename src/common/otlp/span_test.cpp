#include "common/otlp/span.hpp"

#include <gtest/gtest.h>

namespace asya::otlp {
namespace {

TEST(Traceparent, ParsesTheW3cExample) {
  auto context = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_TRUE(context);
  EXPECT_EQ(context->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(context->span_id, "00f067aa0ba902b7");
  EXPECT_TRUE(context->sampled);
  EXPECT_FALSE(
      parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")->sampled);
}

TEST(Traceparent, RefusesWhatTheSpecificationRefuses) {
  EXPECT_FALSE(parse_traceparent(""));
  EXPECT_FALSE(parse_traceparent("00-abc-01"));
  EXPECT_FALSE(parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
  EXPECT_FALSE(parse_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"));
  EXPECT_FALSE(parse_traceparent("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  // A later version may carry more fields.
  EXPECT_TRUE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"));
}

TEST(Traceparent, FormatRoundTripsNewIds) {
  TraceContext context{new_trace_id(), new_span_id(), true};
  EXPECT_EQ(context.trace_id.size(), 32u);
  EXPECT_EQ(context.span_id.size(), 16u);
  auto parsed = parse_traceparent(format_traceparent(context));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->trace_id, context.trace_id);
  EXPECT_EQ(parsed->span_id, context.span_id);
  EXPECT_NE(new_span_id(), new_span_id());
}

TEST(Traceparent, ParsesIntoFixedBuffersAndLeavesThemAloneOnARefusal) {
  TraceIdText trace = new_trace_id_text();
  SpanIdText span = new_span_id_text();
  bool sampled = false;
  ASSERT_TRUE(parse_traceparent_into("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                     trace, span, sampled));
  EXPECT_EQ(trace.view(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(span.view(), "00f067aa0ba902b7");
  EXPECT_TRUE(sampled);
  EXPECT_FALSE(parse_traceparent_into("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-00",
                                      trace, span, sampled));
  EXPECT_EQ(span.view(), "00f067aa0ba902b7");
  EXPECT_TRUE(sampled);
  const TraceIdText fresh = new_trace_id_text();
  EXPECT_TRUE(parse_traceparent("00-" + std::string(fresh.view()) + "-00f067aa0ba902b7-01"));
  EXPECT_NE(new_trace_id_text().view(), fresh.view());
}

TEST(UnixNanos, CountsNanosecondsSinceTheEpoch) {
  using namespace std::chrono;
  EXPECT_EQ(unix_nanos(system_clock::time_point(seconds(2))), 2'000'000'000u);
  EXPECT_EQ(unix_nanos(system_clock::time_point(-seconds(2))), 0u);
}

}  // namespace
}  // namespace asya::otlp
