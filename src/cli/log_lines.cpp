#include "cli/log_lines.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>

#include <fmt/format.h>

#include "common/json_text.hpp"

namespace asya::cli {

namespace json = boost::json;

namespace {

// The line as a JSON object, or null when it is not one.
json::value parse_object(std::string_view text) {
  if (text.empty() || text.front() != '{') return nullptr;
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  if (ec || !value.is_object()) return nullptr;
  return value;
}

std::string string_field(const json::object& object, std::string_view key) {
  const json::value* v = object.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

}  // namespace

std::vector<LogLine> split_log_lines(std::string_view text, const std::string& process,
                                     std::string& last_ts, std::size_t& next_order,
                                     std::size_t& partial) {
  std::vector<LogLine> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) break;
    std::string_view raw = text.substr(start, end - start);
    start = end + 1;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    if (raw.empty()) continue;
    LogLine line;
    line.process = process;
    line.text = std::string(raw);
    json::value object = parse_object(raw);
    if (object.is_object()) {
      line.json = true;
      std::string ts = string_field(object.as_object(), "ts");
      if (!ts.empty()) last_ts = ts;
    }
    line.ts = last_ts;
    line.order = next_order++;
    out.push_back(std::move(line));
  }
  partial = text.size() - start;
  return out;
}

void merge_by_time(std::vector<LogLine>& lines) {
  std::stable_sort(lines.begin(), lines.end(),
                   [](const LogLine& a, const LogLine& b) { return a.ts < b.ts; });
}

std::string json_line(const LogLine& line) {
  std::string process = to_json_text(json::value(line.process));
  if (line.json) return "{\"process\":" + process + "," + line.text.substr(1);
  json::object object;
  if (!line.ts.empty()) object["ts"] = line.ts;
  object["process"] = line.process;
  object["level"] = "info";
  object["msg"] = line.text;
  return to_json_text(object);
}

std::string pretty_line(const LogLine& line) {
  // "2026-12-06T10:00:00.123Z" -> "10:00:00.123"
  std::string time = line.ts.size() >= 23 ? line.ts.substr(11, 12) : std::string(12, ' ');
  if (!line.json) return fmt::format("{} {:<18} {:<5} {}", time, line.process, "", line.text);
  json::object object = parse_object(line.text).as_object();
  std::string level = string_field(object, "level");
  for (auto& c : level) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string out =
      fmt::format("{} {:<18} {:<5} {}", time, line.process, level, string_field(object, "msg"));
  for (const auto& field : object) {
    std::string_view key = field.key();
    if (key == "ts" || key == "level" || key == "msg" || key == "component") continue;
    if (key == "actor" && field.value().is_string() &&
        line.process.starts_with(std::string(field.value().as_string()) + "/"))
      continue;
    std::string value = field.value().is_string() ? std::string(field.value().as_string())
                                                  : to_json_text(field.value());
    if (value.find(' ') != std::string::npos || value.empty())
      value = to_json_text(json::value(value));
    out += fmt::format("  {}={}", key, value);
  }
  return out;
}

}  // namespace asya::cli
