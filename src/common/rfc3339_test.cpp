#include "common/rfc3339.hpp"

#include <gtest/gtest.h>

namespace asya {
namespace {
using namespace std::chrono_literals;

std::chrono::system_clock::time_point Utc(int y, unsigned m, unsigned d, int hh, int mm, int ss) {
  using namespace std::chrono;
  return sys_days{year{y} / month{m} / day{d}} + hours{hh} + minutes{mm} + seconds{ss};
}

TEST(Rfc3339, ParsesUtcFractionsAndOffsets) {
  auto base = Utc(2026, 11, 29, 12, 0, 0);
  EXPECT_EQ(*parse_rfc3339("2026-11-29T12:00:00Z"), base);
  EXPECT_EQ(*parse_rfc3339("2026-11-29t12:00:00z"), base);
  EXPECT_EQ(*parse_rfc3339("2026-11-29T12:00:00.250Z"), base + 250ms);
  EXPECT_EQ(*parse_rfc3339("2026-11-29T12:00:00.123456789123Z"), base + 123456789ns);
  EXPECT_EQ(*parse_rfc3339("2026-11-29T13:30:00+01:30"), base);
  EXPECT_EQ(*parse_rfc3339("2026-11-29T07:00:00-05:00"), base);
  EXPECT_EQ(*parse_rfc3339("2024-02-29T00:00:00Z"), Utc(2024, 2, 29, 0, 0, 0));
}

TEST(Rfc3339, RejectsMalformedTimesNamingTheText) {
  for (const char* text :
       {"", "2026-11-29", "2026-11-29T12:00:00", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
        "2026-11-29T24:00:00Z", "2026-11-29T12:60:00Z", "2026-11-29T12:00:00.Z",
        "2026-11-29T12:00:00+0100", "2026-11-29T12:00:00Zjunk", "26-11-29T12:00:00Z",
        "2026-11-29T12:00:00+24:00"}) {
    auto result = parse_rfc3339(text);
    ASSERT_FALSE(result.ok()) << text;
    EXPECT_NE(result.error().message.find(std::string("\"") + text + "\""), std::string::npos)
        << result.error().message;
  }
}

TEST(Rfc3339, FarFutureClampsInsteadOfOverflowing) {
  auto result = parse_rfc3339("9999-12-31T23:59:59Z");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, std::chrono::system_clock::time_point::max());
  EXPECT_EQ(*parse_rfc3339("0001-01-01T00:00:00Z"), std::chrono::system_clock::time_point::min());
}

TEST(Rfc3339, FormatIsUtcWithMillisecondsAndRoundTrips) {
  auto when = Utc(2026, 11, 29, 12, 0, 5) + 42ms + 999us;
  EXPECT_EQ(format_rfc3339(when), "2026-11-29T12:00:05.042Z");
  EXPECT_EQ(*parse_rfc3339(format_rfc3339(when)), Utc(2026, 11, 29, 12, 0, 5) + 42ms);
  EXPECT_EQ(format_rfc3339(Utc(1969, 12, 31, 23, 59, 59)), "1969-12-31T23:59:59.000Z");
}

TEST(Rfc3339, MicrosecondsPrecisionKeepsSixDigitsAndRoundTrips) {
  auto when = Utc(2026, 11, 29, 12, 0, 5) + 42ms + 7us + 900ns;
  EXPECT_EQ(format_rfc3339(when, Rfc3339Precision::kMicroseconds), "2026-11-29T12:00:05.042007Z");
  EXPECT_EQ(*parse_rfc3339(format_rfc3339(when, Rfc3339Precision::kMicroseconds)),
            Utc(2026, 11, 29, 12, 0, 5) + 42ms + 7us);
  EXPECT_EQ(format_rfc3339(Utc(1969, 12, 31, 23, 59, 59) + 1us, Rfc3339Precision::kMicroseconds),
            "1969-12-31T23:59:59.000001Z");
}

TEST(Rfc3339, SecondsPrecisionDropsTheFraction) {
  auto when = Utc(2026, 11, 29, 12, 0, 5) + 999ms;
  EXPECT_EQ(format_rfc3339(when, Rfc3339Precision::kSeconds), "2026-11-29T12:00:05Z");
  EXPECT_EQ(*parse_rfc3339(format_rfc3339(when, Rfc3339Precision::kSeconds)),
            Utc(2026, 11, 29, 12, 0, 5));
}

TEST(Rfc3339, ALongMalformedTextIsShortenedInTheMessage) {
  auto result = parse_rfc3339(std::string(500, '9'));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message.find("... (500 bytes)\" is not an RFC 3339 time"),
            std::string::npos)
      << result.error().message;
}

}  // namespace
}  // namespace asya
