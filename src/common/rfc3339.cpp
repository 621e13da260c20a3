#include "common/rfc3339.hpp"

#include <cstdint>

#include "common/excerpt.hpp"

namespace asya {
namespace {

bool read_digits(std::string_view text, std::size_t at, std::size_t count, int& value) {
  if (at + count > text.size()) return false;
  value = 0;
  for (std::size_t i = at; i < at + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    value = value * 10 + (text[i] - '0');
  }
  return true;
}

}  // namespace

Result<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text) {
  auto fail = [&]() {
    std::string message = excerpt(text);
    message.insert(0, 1, '"');
    message.append(
        "\" is not an RFC 3339 time (expected e.g. \"2026-11-29T12:00:00Z\" or "
        "\"2026-11-29T13:00:00.5+01:00\")");
    return Error{std::move(message)};
  };
  int year, month, day, hour, minute, second;
  // YYYY-MM-DDTHH:MM:SS
  if (!read_digits(text, 0, 4, year) || text.size() < 20 || text[4] != '-' ||
      !read_digits(text, 5, 2, month) || text[7] != '-' || !read_digits(text, 8, 2, day) ||
      (text[10] != 'T' && text[10] != 't' && text[10] != ' ') || !read_digits(text, 11, 2, hour) ||
      text[13] != ':' || !read_digits(text, 14, 2, minute) || text[16] != ':' ||
      !read_digits(text, 17, 2, second)) {
    return fail();
  }
  std::size_t at = 19;
  std::int64_t nanos = 0;
  if (text[at] == '.') {
    ++at;
    std::size_t digits = 0;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
      if (digits < 9) nanos = nanos * 10 + (text[at] - '0');
      ++digits;
      ++at;
    }
    if (digits == 0) return fail();
    for (std::size_t d = digits; d < 9; ++d) nanos *= 10;
  }
  int offset_minutes = 0;
  if (at < text.size() && (text[at] == 'Z' || text[at] == 'z')) {
    ++at;
  } else if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
    int offset_hour, offset_minute;
    if (!read_digits(text, at + 1, 2, offset_hour) || at + 3 >= text.size() ||
        text[at + 3] != ':' || !read_digits(text, at + 4, 2, offset_minute) || offset_hour > 23 ||
        offset_minute > 59) {
      return fail();
    }
    offset_minutes = (offset_hour * 60 + offset_minute) * (text[at] == '-' ? -1 : 1);
    at += 6;
  } else {
    return fail();
  }
  if (at != text.size()) return fail();
  using namespace std::chrono;
  const year_month_day date{std::chrono::year{year}, std::chrono::month{unsigned(month)},
                            std::chrono::day{unsigned(day)}};
  // Second 60 is a leap second (RFC 3339 allows it).
  if (!date.ok() || hour > 23 || minute > 59 || second > 60) return fail();
  const std::int64_t total_seconds =
      std::int64_t{sys_days{date}.time_since_epoch().count()} * 86400 + hour * 3600 + minute * 60 +
      second - offset_minutes * 60;
  // system_clock counts nanoseconds in 64 bits (years 1678..2261); clamp times outside it, so
  // "9999-12-31T23:59:59Z" means "never" instead of overflowing.
  using Clock = system_clock;
  constexpr std::int64_t kLimitSeconds =
      duration_cast<std::chrono::seconds>(Clock::duration::max()).count() - 1;
  if (total_seconds >= kLimitSeconds) return Clock::time_point::max();
  if (total_seconds <= -kLimitSeconds) return Clock::time_point::min();
  return Clock::time_point{duration_cast<Clock::duration>(std::chrono::seconds{total_seconds}) +
                           duration_cast<Clock::duration>(nanoseconds{nanos})};
}

std::string format_rfc3339(std::chrono::system_clock::time_point when, Rfc3339Precision precision) {
  using namespace std::chrono;
  const auto micros = floor<microseconds>(when);
  const auto days_part = floor<days>(micros);
  const year_month_day date{days_part};
  const hh_mm_ss<microseconds> time{micros - days_part};
  // Hand-formatted: this runs for every error-chain entry and snprintf is comparatively slow.
  char text[] = "0000-00-00T00:00:00.000000Z";
  auto put = [&text](std::size_t at, unsigned value, std::size_t digits) {
    for (std::size_t i = digits; i-- > 0; value /= 10) text[at + i] = char('0' + value % 10);
  };
  put(0, static_cast<unsigned>(int(date.year())), 4);
  put(5, unsigned(date.month()), 2);
  put(8, unsigned(date.day()), 2);
  put(11, static_cast<unsigned>(time.hours().count()), 2);
  put(14, static_cast<unsigned>(time.minutes().count()), 2);
  put(17, static_cast<unsigned>(time.seconds().count()), 2);
  if (precision == Rfc3339Precision::kSeconds) return std::string(text, 19) + "Z";
  const auto sub_micros = static_cast<unsigned>(time.subseconds().count());
  if (precision == Rfc3339Precision::kMicroseconds) {
    put(20, sub_micros, 6);
    return std::string(text, sizeof(text) - 1);
  }
  put(20, sub_micros / 1000, 3);
  return std::string(text, 23) + "Z";
}

}  // namespace asya
