// The lines of the processes' log files, for `asya logs`: read with the process they came from,
// merged by time, and printed as JSON lines (each with a "process" field) or, with --pretty, as
// readable lines. Asya's processes log one JSON object per line with "ts"; a line that is not JSON
// (a handler's print, a traceback, a supervisor event) keeps its place after the line before it
// in its file, taking that line's time.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace asya::cli {

struct LogLine {
  std::string ts;         // "2026-12-06T10:00:00.123Z": the line's own, else the one before it
  std::string process;    // "chatty/0.sidecar", "gateway", "supervisor"
  std::string text;       // the line as written, without its line break
  bool json = false;      // `text` is a JSON object
  std::size_t order = 0;  // position in its file (kept among lines of one time)
};

// The complete lines of `text` (a trailing part without a line break is left out and its length
// returned in `partial`) from the file of `process`. `last_ts` is the time of the line before
// (updated), for lines without one; `next_order` numbers the lines (updated).
std::vector<LogLine> split_log_lines(std::string_view text, const std::string& process,
                                     std::string& last_ts, std::size_t& next_order,
                                     std::size_t& partial);

// Sorts by time; lines of one time keep their order within their file, and their files' order
// (stable).
void merge_by_time(std::vector<LogLine>& lines);

// One JSON object: the line with "process" added, or for a line that is not JSON
// {"ts"?, "process", "level": "info", "msg": <the line>}.
std::string json_line(const LogLine& line);

// "10:00:00.123 chatty/0.sidecar  WARN  message  id=abc key=value": the time, the process, the
// level, the message and the other fields (not ts, level, msg, component; actor only when the
// process does not name it).
std::string pretty_line(const LogLine& line);

}  // namespace asya::cli
