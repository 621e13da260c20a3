#include "common/prometheus_text.hpp"

#include <cmath>
#include <cstdlib>

namespace asya {
namespace {

bool name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool name_char(char c) {
  return name_start(c) || (c >= '0' && c <= '9');
}

// Reads a metric or label name at `pos`; empty when there is none.
std::string read_name(std::string_view line, std::size_t& pos, bool allow_colon) {
  std::size_t begin = pos;
  if (pos >= line.size() || !name_start(line[pos]) || (!allow_colon && line[pos] == ':')) return {};
  while (pos < line.size() && name_char(line[pos]) && (allow_colon || line[pos] != ':')) ++pos;
  return std::string(line.substr(begin, pos - begin));
}

void skip_blanks(std::string_view line, std::size_t& pos) {
  while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) ++pos;
}

// Reads `"value"` at `pos` (escapes \\, \" and \n); false when it is not a closed quoted string.
bool read_quoted(std::string_view line, std::size_t& pos, std::string& out) {
  if (pos >= line.size() || line[pos] != '"') return false;
  ++pos;
  while (pos < line.size()) {
    char c = line[pos++];
    if (c == '"') return true;
    if (c != '\\') {
      out += c;
      continue;
    }
    if (pos >= line.size()) return false;
    char escaped = line[pos++];
    if (escaped == 'n')
      out += '\n';
    else if (escaped == '\\' || escaped == '"')
      out += escaped;
    else
      return false;
  }
  return false;
}

std::optional<double> read_value(std::string_view text) {
  if (text.empty()) return std::nullopt;
  if (text == "+Inf" || text == "Inf") return HUGE_VAL;
  if (text == "-Inf") return -HUGE_VAL;
  if (text == "NaN") return std::nan("");
  std::string copy(text);
  char* end = nullptr;
  double value = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || std::isnan(value) || std::isinf(value))
    return std::nullopt;  // strtod also takes "nan(…)", "infinity", hex: not the format's
  return value;
}

}  // namespace

std::optional<std::string_view> PrometheusSample::label(std::string_view key) const {
  auto it = labels.find(std::string(key));
  if (it == labels.end()) return std::nullopt;
  return std::string_view(it->second);
}

std::optional<PrometheusSample> parse_prometheus_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::size_t pos = 0;
  skip_blanks(line, pos);
  if (pos >= line.size() || line[pos] == '#') return std::nullopt;
  PrometheusSample sample;
  sample.name = read_name(line, pos, true);
  if (sample.name.empty()) return std::nullopt;
  if (pos < line.size() && line[pos] == '{') {
    ++pos;
    while (true) {
      skip_blanks(line, pos);
      if (pos < line.size() && line[pos] == '}') {
        ++pos;
        break;
      }
      std::string key = read_name(line, pos, false);
      if (key.empty()) return std::nullopt;
      skip_blanks(line, pos);
      if (pos >= line.size() || line[pos] != '=') return std::nullopt;
      ++pos;
      skip_blanks(line, pos);
      std::string value;
      if (!read_quoted(line, pos, value)) return std::nullopt;
      if (!sample.labels.emplace(std::move(key), std::move(value)).second)
        return std::nullopt;  // a label given twice: not a valid sample
      skip_blanks(line, pos);
      if (pos < line.size() && line[pos] == ',') {
        ++pos;
        continue;
      }
      if (pos < line.size() && line[pos] == '}') {
        ++pos;
        break;
      }
      return std::nullopt;
    }
  }
  // The value, then an optional integer timestamp.
  if (pos >= line.size() || (line[pos] != ' ' && line[pos] != '\t')) return std::nullopt;
  skip_blanks(line, pos);
  std::size_t value_end = line.find_first_of(" \t", pos);
  auto value = read_value(line.substr(
      pos, value_end == std::string_view::npos ? std::string_view::npos : value_end - pos));
  if (!value) return std::nullopt;
  sample.value = *value;
  if (value_end != std::string_view::npos) {
    pos = value_end;
    skip_blanks(line, pos);
    std::string_view rest = line.substr(pos);
    if (!rest.empty()) {
      std::size_t i = rest[0] == '-' ? 1 : 0;
      if (i == rest.size()) return std::nullopt;
      for (; i < rest.size(); ++i)
        if (rest[i] < '0' || rest[i] > '9') return std::nullopt;
    }
  }
  return sample;
}

std::vector<PrometheusSample> parse_prometheus_text(std::string_view text) {
  std::vector<PrometheusSample> samples;
  while (!text.empty()) {
    std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    if (auto sample = parse_prometheus_line(line)) samples.push_back(std::move(*sample));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return samples;
}

}  // namespace asya
