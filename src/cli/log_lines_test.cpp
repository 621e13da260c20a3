// `asya logs`: lines of several processes' files merged by time, JSON with "process", --pretty.
#include "cli/log_lines.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

namespace asya::cli {
namespace {

namespace json = boost::json;

std::vector<LogLine> split(std::string_view text, const std::string& process,
                           std::size_t* partial_out = nullptr) {
  std::string last_ts;
  std::size_t order = 0, partial = 0;
  auto lines = split_log_lines(text, process, last_ts, order, partial);
  if (partial_out) *partial_out = partial;
  return lines;
}

TEST(LogLines, MergeByTimeInterleavesFilesAndKeepsPlainLinesAfterTheirPredecessor) {
  auto sidecar =
      split(R"({"ts":"2026-12-06T10:00:00.100Z","level":"info","component":"sidecar","msg":"s1"})"
            "\n"
            R"({"ts":"2026-12-06T10:00:00.300Z","level":"warn","component":"sidecar","msg":"s2"})"
            "\n",
            "echo/0.sidecar");
  auto runtime =
      split(R"({"ts":"2026-12-06T10:00:00.200Z","level":"info","component":"runtime","msg":"r1"})"
            "\n"
            "Traceback (most recent call last):\n"
            R"({"ts":"2026-12-06T10:00:00.400Z","level":"error","component":"runtime","msg":"r2"})"
            "\n",
            "echo/0.runtime");
  std::vector<LogLine> all = runtime;
  all.insert(all.end(), sidecar.begin(), sidecar.end());
  merge_by_time(all);
  std::vector<std::string> order;
  for (const auto& l : all) order.push_back(l.process + ":" + l.text.substr(0, 12));
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all[0].process, "echo/0.sidecar");
  EXPECT_EQ(all[1].process, "echo/0.runtime");
  EXPECT_EQ(all[2].text, "Traceback (most recent call last):") << "stays after r1";
  EXPECT_EQ(all[2].ts, "2026-12-06T10:00:00.200Z");
  EXPECT_EQ(all[3].process, "echo/0.sidecar");
  EXPECT_EQ(all[4].process, "echo/0.runtime");
}

TEST(LogLines, AnUnfinishedLastLineIsLeftForLater) {
  std::size_t partial = 0;
  auto lines = split("one\ntwo-without-end", "p", &partial);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].text, "one");
  EXPECT_EQ(partial, std::string("two-without-end").size());
}

TEST(LogLines, JsonLineGetsTheProcessAndPlainLinesAreWrapped) {
  auto lines = split(R"({"ts":"2026-12-06T10:00:00.100Z","level":"info","msg":"hi","id":"E1"})"
                     "\n"
                     "printed by a handler {\"n\": 1}\n",
                     "echo/1.runtime");
  ASSERT_EQ(lines.size(), 2u);
  json::object first = json::parse(json_line(lines[0])).as_object();
  EXPECT_EQ(first.at("process"), "echo/1.runtime");
  EXPECT_EQ(first.at("msg"), "hi");
  EXPECT_EQ(first.at("id"), "E1");
  json::object second = json::parse(json_line(lines[1])).as_object();
  EXPECT_EQ(second.at("process"), "echo/1.runtime");
  EXPECT_EQ(second.at("msg"), "printed by a handler {\"n\": 1}");
  EXPECT_EQ(second.at("ts"), "2026-12-06T10:00:00.100Z");
  EXPECT_EQ(second.at("level"), "info");
}

TEST(LogLines, PrettyShowsTimeProcessLevelMessageAndOtherFields) {
  auto lines = split(
      R"({"ts":"2026-12-06T10:00:00.123Z","level":"warn","component":"sidecar","actor":"echo",)"
      R"("msg":"runtime call failed","id":"E1","attempt":2,"why":"two words"})"
      "\n",
      "echo/0.sidecar");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(pretty_line(lines[0]),
            "10:00:00.123 echo/0.sidecar     WARN  runtime call failed  id=E1  attempt=2  "
            "why=\"two words\"");
}

}  // namespace
}  // namespace asya::cli
