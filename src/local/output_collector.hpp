// The output of the supervisor's children: each child writes its stdout and stderr into a pipe,
// and one thread copies everything into the child's log file and keeps the last lines in memory.
// So the reason a child died is known even when its log file cannot be written (a full disk:
// the Python runtime's "cannot write ready file ...: No space left on device" would be lost
// with the log as the only sink).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace asya::local {

class OutputCollector {
 public:
  struct Stream {
    int id = 0;         // for tail() and release()
    int write_fd = -1;  // give it to spawn() (ProcessSpec::output_fd), then close it
  };

  struct Tail {
    std::vector<std::string> lines;  // the last lines written, oldest first
    std::string log_error;           // the first failure to open or write the log file
  };

  OutputCollector();
  OutputCollector(const OutputCollector&) = delete;
  OutputCollector& operator=(const OutputCollector&) = delete;
  // Stops the thread; pipes still open are closed (their writers get EPIPE).
  ~OutputCollector();

  // A new pipe whose output is appended to `log_path` (created 0644 when missing). Both ends are
  // close-on-exec. A log file that cannot be opened or written is not an error: the output is
  // still read (and its tail kept), and Tail::log_error says why the file misses it. Fails only
  // when no pipe can be made.
  Result<Stream> open(const std::filesystem::path& log_path);

  // The last `max_lines` lines of stream `id`. Waits up to `wait_for_end` for the writer's end
  // (EOF: every process holding the pipe exited), so the final words of a child that just died
  // are in. Thread-safe.
  Tail tail(int id, std::size_t max_lines, std::chrono::milliseconds wait_for_end);

  // Forgets stream `id` once everything written into it has been copied (at once when its
  // writers are gone; otherwise when they are).
  void release(int id);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace asya::local
