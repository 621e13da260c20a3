#include "common/log.hpp"

#include <errno.h>  // program_invocation_short_name
#include <fmt/format.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "common/env.hpp"

namespace asya::log {

std::string json_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          out += fmt::format("\\u{:04x}", c);
        else
          out += c;
    }
  }
  return out;
}

namespace {

thread_local std::string current_envelope_id;
thread_local std::string current_trace_id;
thread_local std::string current_span_id;

// Writes the message as an escaped JSON string body, followed by the thread's envelope id field
// when an EnvelopeScope is active (the pattern supplies the surrounding quotes).
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string escaped = json_escape(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(escaped.data(), escaped.data() + escaped.size());
    if (!current_envelope_id.empty()) {
      std::string id = "\",\"id\":\"" + json_escape(current_envelope_id);
      dest.append(id.data(), id.data() + id.size());
    }
    if (!current_trace_id.empty()) {
      std::string ids = "\",\"trace_id\":\"" + json_escape(current_trace_id) + "\",\"span_id\":\"" +
                        json_escape(current_span_id);
      dest.append(ids.data(), ids.data() + ids.size());
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

// The level as ASYA_LOG_LEVEL and the Python runtime spell it (spdlog's %l says "warning" and
// "critical"), so every component's lines can be filtered alike.
class LevelFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string_view name;
    switch (msg.level) {
      case spdlog::level::trace:
        name = "trace";
        break;
      case spdlog::level::debug:
        name = "debug";
        break;
      case spdlog::level::info:
        name = "info";
        break;
      case spdlog::level::warn:
        name = "warn";
        break;
      default:
        name = "error";
        break;
    }
    dest.append(name.data(), name.data() + name.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<LevelFlag>();
  }
};

}  // namespace

EnvelopeScope::EnvelopeScope(std::string_view envelope_id)
    : previous_(std::move(current_envelope_id)) {
  current_envelope_id.assign(envelope_id);
}

EnvelopeScope::~EnvelopeScope() {
  current_envelope_id = std::move(previous_);
}

// Copies rather than moves: the thread's strings keep their buffers from scope to scope (a
// sidecar opens one per traced message), and the saved ones are usually empty.
TraceScope::TraceScope(std::string_view trace_id, std::string_view span_id)
    : previous_trace_id_(current_trace_id), previous_span_id_(current_span_id) {
  current_trace_id.assign(trace_id);
  current_span_id.assign(span_id);
}

TraceScope::~TraceScope() {
  current_trace_id.assign(previous_trace_id_);
  current_span_id.assign(previous_span_id_);
}

namespace {

// The JSON stderr logger named asya-<component>, made the default logger.
void install(std::string_view component, spdlog::level::level_enum lvl, std::string_view actor) {
  spdlog::drop(std::string("asya-") + std::string(component));
  auto logger = spdlog::stderr_logger_mt(std::string("asya-") + std::string(component));
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  formatter->add_flag<JsonMessageFlag>('*');
  formatter->add_flag<LevelFlag>('L');
  std::string actor_field =
      actor.empty() ? std::string() : fmt::format(R"(,"actor":"{}")", json_escape(actor));
  formatter->set_pattern(
      fmt::format(R"({{"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%L","component":"{}"{},"msg":"%*"}})",
                  json_escape(component), actor_field));
  logger->set_formatter(std::move(formatter));
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

// The component a program logs as before it calls init(): its name without "asya-" ("sidecar"
// for asya-sidecar), "cli" for the `asya` command.
std::string program_component() {
  std::string name = program_invocation_short_name ? program_invocation_short_name : "";
  if (name == "asya") return "cli";
  if (name.rfind("asya-", 0) == 0) name.erase(0, 5);
  return name.empty() ? "asya" : name;
}

// spdlog's own default logger writes coloured text to stdout, where a program's machine-readable
// output goes: replace it before main() runs, so a line logged before init() (or by a program
// that never calls it) is already a JSON line on stderr.
const bool json_default_installed = [] {
  install(program_component(), spdlog::level::info, {});
  return true;
}();

}  // namespace

void init(std::string_view component, std::string_view level, std::string_view actor) {
  (void)json_default_installed;
  spdlog::level::level_enum lvl;
  if (level == "debug" || level == "DEBUG")
    lvl = spdlog::level::debug;
  else if (level == "info" || level == "INFO" || level.empty())
    lvl = spdlog::level::info;
  else if (level == "warn" || level == "warning" || level == "WARN" || level == "WARNING")
    lvl = spdlog::level::warn;
  else if (level == "error" || level == "ERROR")
    lvl = spdlog::level::err;
  else if (level == "trace" || level == "TRACE")
    lvl = spdlog::level::trace;
  else
    throw ConfigError(fmt::format(
        "ASYA_LOG_LEVEL=\"{}\" is not valid: use one of debug, info, warn, error", level));
  install(component, lvl, actor);
}

}  // namespace asya::log
