#include "local/output_collector.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "local/process.hpp"

namespace asya::local {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

fs::path temp_dir() {
  fs::path dir =
      fs::temp_directory_path() / ("output-collector-" + std::to_string(::getpid()) + "-" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `script` with sh, its output into a new collector stream; returns the stream id.
int run(OutputCollector& collector, const fs::path& log, const std::string& script) {
  auto stream = collector.open(log);
  EXPECT_TRUE(stream) << stream.error().message;
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.output_fd = stream->write_fd;
  auto pid = spawn(spec);
  ::close(stream->write_fd);
  EXPECT_TRUE(pid) << pid.error().message;
  int status = 0;
  ::waitpid(*pid, &status, 0);
  return stream->id;
}

TEST(OutputCollector, CopiesStdoutAndStderrToTheLogAndKeepsTheLastLines) {
  fs::path dir = temp_dir();
  OutputCollector collector;
  int id = run(collector, dir / "x.log", "for i in 1 2 3 4 5; do echo out $i; done; echo err >&2");
  auto tail = collector.tail(id, 3, 5s);
  EXPECT_EQ(tail.lines, (std::vector<std::string>{"out 4", "out 5", "err"}));
  EXPECT_EQ(tail.log_error, "");
  EXPECT_EQ(slurp(dir / "x.log"), "out 1\nout 2\nout 3\nout 4\nout 5\nerr\n");
  fs::remove_all(dir);
}

TEST(OutputCollector, KeepsTheLinesWhenTheLogCannotBeWritten) {
  fs::path dir = temp_dir();
  OutputCollector collector;
  fs::path log = dir / "missing-dir" / "x.log";
  int id = run(collector, log, "echo 'cannot write ready file: No space left on device' >&2");
  auto tail = collector.tail(id, 10, 5s);
  EXPECT_EQ(tail.lines,
            (std::vector<std::string>{"cannot write ready file: No space left on device"}));
  EXPECT_EQ(tail.log_error, "cannot open " + log.string() + ": No such file or directory");
  fs::remove_all(dir);
}

TEST(OutputCollector, LongOutputKeepsOnlyWholeLastLines) {
  fs::path dir = temp_dir();
  OutputCollector collector;
  int id = run(collector, dir / "x.log",
               "i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done");
  auto tail = collector.tail(id, 2, 5s);
  EXPECT_EQ(tail.lines, (std::vector<std::string>{"line 2998", "line 2999"}));
  EXPECT_EQ(slurp(dir / "x.log").size(),
            std::string("line 0\n").size() * 10 + std::string("line 00\n").size() * 90 +
                std::string("line 000\n").size() * 900 + std::string("line 0000\n").size() * 2000);
  collector.release(id);
  EXPECT_TRUE(collector.tail(id, 2, 0ms).lines.empty());  // forgotten
  fs::remove_all(dir);
}

}  // namespace
}  // namespace asya::local
