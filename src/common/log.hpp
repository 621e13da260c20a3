// Logging: one JSON object per line on stderr (spdlog), e.g.
//   {"ts":"2026-11-29T06:40:00.123Z","level":"info","component":"sidecar","msg":"...","actor":"x","id":"..."}
// Payload contents are never logged at info or above; callers log ids and sizes instead.
// Nothing is ever logged to stdout (a program's machine-readable output): every program linking
// this file has a JSON stderr default logger from before main() (component: the program name
// without "asya-", "cli" for `asya`, level info); init() then sets component, level and actor.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace asya::log {

// Configures the default logger: JSON lines to stderr, level from `level` (debug, info, warn,
// error; also the published design's "warning"). `actor` (may be empty) is added to every line.
// Throws ConfigError for an unknown level.
void init(std::string_view component, std::string_view level, std::string_view actor = {});

// While alive, every line logged by this thread carries "id":"<envelope_id>". Not copyable.
class EnvelopeScope {
 public:
  explicit EnvelopeScope(std::string_view envelope_id);
  ~EnvelopeScope();
  EnvelopeScope(const EnvelopeScope&) = delete;
  EnvelopeScope& operator=(const EnvelopeScope&) = delete;

 private:
  std::string previous_;
};

// While alive, every line logged by this thread carries "trace_id":"<32 hex>" and
// "span_id":"<16 hex>" (the span the thread works in, common/otlp/span.hpp), so log lines join
// trace spans. Nests like EnvelopeScope. Not copyable.
class TraceScope {
 public:
  TraceScope(std::string_view trace_id, std::string_view span_id);
  ~TraceScope();
  TraceScope(const TraceScope&) = delete;
  TraceScope& operator=(const TraceScope&) = delete;

 private:
  std::string previous_trace_id_, previous_span_id_;
};

// Escapes `text` for embedding inside a JSON string (no surrounding quotes).
std::string json_escape(std::string_view text);

}  // namespace asya::log
