#include "common/prometheus_text.hpp"

#include <cmath>

#include <gtest/gtest.h>

namespace asya {
namespace {

TEST(PrometheusText, ReadsNameLabelsAndValue) {
  auto sample = parse_prometheus_line(
      R"(asya_actor_messages_processed_total{queue="asya-echo",status="success"} 42)");
  ASSERT_TRUE(sample);
  EXPECT_EQ(sample->name, "asya_actor_messages_processed_total");
  EXPECT_EQ(sample->labels.size(), 2u);
  EXPECT_EQ(sample->label("queue"), "asya-echo");
  EXPECT_EQ(sample->label("status"), "success");
  EXPECT_FALSE(sample->label("missing"));
  EXPECT_EQ(sample->value, 42);
}

TEST(PrometheusText, UnescapesLabelValues) {
  auto sample = parse_prometheus_line(R"(m{a="quote \" backslash \\ newline \n end",b=""} 1)");
  ASSERT_TRUE(sample);
  EXPECT_EQ(sample->label("a"), "quote \" backslash \\ newline \n end");
  EXPECT_EQ(sample->label("b"), "");
}

TEST(PrometheusText, ALabelValueLookingLikeAnotherLabelIsOnlyThatLabelsValue) {
  auto sample = parse_prometheus_line(R"(m{queue="x\",status=\"success",status="error"} 3)");
  ASSERT_TRUE(sample);
  EXPECT_EQ(sample->label("queue"), R"(x",status="success)");
  EXPECT_EQ(sample->label("status"), "error");
}

TEST(PrometheusText, AcceptsNoLabelsTimestampsAndSpecialValues) {
  auto plain = parse_prometheus_line("up 1 1700000000000");
  ASSERT_TRUE(plain);
  EXPECT_TRUE(plain->labels.empty());
  EXPECT_EQ(plain->value, 1);
  auto exponent = parse_prometheus_line("m{} 1.5e3");
  ASSERT_TRUE(exponent);
  EXPECT_EQ(exponent->value, 1500);
  EXPECT_TRUE(std::isinf(parse_prometheus_line("m +Inf")->value));
  EXPECT_TRUE(std::isnan(parse_prometheus_line("m NaN")->value));
  auto trailing_comma = parse_prometheus_line(R"(m{a="1",} 2)");
  ASSERT_TRUE(trailing_comma);
  EXPECT_EQ(trailing_comma->label("a"), "1");
}

TEST(PrometheusText, RejectsCommentsBlanksAndJunk) {
  for (const char* line :
       {"", "   ", "# HELP m help text", "# TYPE m counter", "junk", "m", "m{a=\"1\"}",
        "m{a=\"1\" 2", "m{a=1} 2", "m{a=\"unclosed} 2", "m{a=\"1\",a=\"2\"} 2", "m 12abc",
        "m 1 notatimestamp", "9m 1", "m{a=\"bad \\q escape\"} 1", "m infinity"}) {
    EXPECT_FALSE(parse_prometheus_line(line)) << line;
  }
}

TEST(PrometheusText, ParsesAWholeExpositionSkippingWhatItCannotRead) {
  auto samples = parse_prometheus_text(
      "# HELP a_total Messages\n"
      "# TYPE a_total counter\n"
      "a_total{status=\"success\"} 5\r\n"
      "garbage line {{{\n"
      "\n"
      "a_total{status=\"error\"} 2\n"
      "b 7");
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[0].label("status"), "success");
  EXPECT_EQ(samples[0].value, 5);
  EXPECT_EQ(samples[1].label("status"), "error");
  EXPECT_EQ(samples[2].name, "b");
  EXPECT_EQ(samples[2].value, 7);
}

}  // namespace
}  // namespace asya
