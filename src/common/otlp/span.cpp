#include "common/otlp/span.hpp"

#include <array>

#include "common/random_id.hpp"

namespace asya::otlp {
namespace {

// 1 for the lowercase hex digits '0'-'9' and 'a'-'f', 0 for every other byte.
constexpr auto kLowerHex = [] {
  std::array<unsigned char, 256> table{};
  for (int c = '0'; c <= '9'; ++c) table[c] = 1;
  for (int c = 'a'; c <= 'f'; ++c) table[c] = 1;
  return table;
}();

// One table look-up per character (a sidecar reads a traceparent per message).
bool lower_hex(std::string_view text) {
  unsigned all = 1;
  for (char c : text) all &= kLowerHex[static_cast<unsigned char>(c)];
  return all != 0;
}

bool all_zero(std::string_view text) {
  return text.find_first_not_of('0') == std::string::npos;
}

std::string nonzero_hex(std::size_t digits) {
  std::string id = random_hex(digits);
  if (all_zero(id)) id.back() = '1';
  return id;
}

}  // namespace

std::uint64_t unix_nanos(std::chrono::system_clock::time_point when) {
  auto nanos =
      std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
  return nanos < 0 ? 0 : static_cast<std::uint64_t>(nanos);
}

bool parse_traceparent_into(std::string_view value, TraceIdText& trace_id, SpanIdText& span_id,
                            bool& sampled) {
  // version "-" trace-id "-" parent-id "-" trace-flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55.
  if (value.size() < 55 || value[2] != '-' || value[35] != '-' || value[52] != '-') return false;
  std::string_view version = value.substr(0, 2), trace = value.substr(3, 32),
                   span = value.substr(36, 16), flags = value.substr(53, 2);
  if (!lower_hex(version) || version == "ff" || !lower_hex(trace) || !lower_hex(span) ||
      !lower_hex(flags) || all_zero(trace) || all_zero(span))
    return false;
  if (value.size() > 55 && (version == "00" || value[55] != '-')) return false;
  trace.copy(trace_id.digits, sizeof trace_id.digits);
  span.copy(span_id.digits, sizeof span_id.digits);
  const int flag_bits = (flags[1] >= 'a' ? flags[1] - 'a' + 10 : flags[1] - '0');
  sampled = (flag_bits & 1) != 0;
  return true;
}

std::optional<TraceContext> parse_traceparent(std::string_view value) {
  TraceIdText trace;
  SpanIdText span;
  TraceContext context;
  if (!parse_traceparent_into(value, trace, span, context.sampled)) return {};
  context.trace_id.assign(trace.view());
  context.span_id.assign(span.view());
  return context;
}

std::string format_traceparent(const TraceContext& context) {
  return "00-" + context.trace_id + "-" + context.span_id + (context.sampled ? "-01" : "-00");
}

std::string new_trace_id() {
  return nonzero_hex(32);
}
std::string new_span_id() {
  return nonzero_hex(16);
}

TraceIdText new_trace_id_text() {
  TraceIdText id;
  random_hex_into(id.digits, sizeof id.digits);
  if (all_zero(id.view())) id.digits[sizeof id.digits - 1] = '1';
  return id;
}

SpanIdText new_span_id_text() {
  SpanIdText id;
  random_hex_into(id.digits, sizeof id.digits);
  if (all_zero(id.view())) id.digits[sizeof id.digits - 1] = '1';
  return id;
}

}  // namespace asya::otlp
