// A reader of the Prometheus text exposition format (version 0.0.4), the format of every
// /metrics endpoint Asya serves: typed samples (name, labels, value) instead of matching text, so
// a reader is never fooled by a label value that looks like another label.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace asya {

struct PrometheusSample {
  std::string name;                           // metric name, e.g. asya_actor_messages_total
  std::map<std::string, std::string> labels;  // label values unescaped (\\, \", \n)
  double value = 0;                           // NaN and ±Inf are accepted

  // The value of label `key`, or nullopt when the sample has no such label.
  std::optional<std::string_view> label(std::string_view key) const;
};

// One sample line (`name{a="1",b="x"} 2.5 [timestamp]`), or nullopt when the line is a comment,
// blank, or not a valid sample (a reader of another process's output skips what it cannot read
// instead of guessing).
std::optional<PrometheusSample> parse_prometheus_line(std::string_view line);

// Every valid sample of an exposition, in order; comments, blank and malformed lines are skipped.
std::vector<PrometheusSample> parse_prometheus_text(std::string_view text);

}  // namespace asya
