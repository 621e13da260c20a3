#include "cli/call_progress.hpp"

#include <boost/json.hpp>

namespace asya::cli {

namespace json = boost::json;

namespace {

std::string string_member(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// "[2/5 score] " for an event about an actor's work, else "".
std::string actor_prefix(const ProgressEvent& event) {
  if (!event.names_actor() || event.actor.empty()) return "";
  std::string prefix = "[";
  if (event.actor_count > 0)
    prefix += std::to_string(event.actor_index + 1) + "/" + std::to_string(event.actor_count) + " ";
  return prefix + event.actor + "] ";
}

}  // namespace

ProgressEvent ProgressEvent::from_json(const json::object& data) {
  ProgressEvent event;
  if (const json::value* p = data.if_contains("progress_percent"); p && p->is_number())
    event.percent = static_cast<int>(p->to_number<double>());
  if (const json::value* i = data.if_contains("current_actor_idx"); i && i->is_int64())
    event.actor_index = static_cast<int>(i->as_int64());
  if (const json::value* a = data.if_contains("actors"); a && a->is_array())
    event.actor_count = a->as_array().size();
  event.status = string_member(data, "status");
  event.state = string_member(data, "envelope_state");
  event.actor = string_member(data, "actor");
  event.message = string_member(data, "message");
  return event;
}

bool ProgressEvent::names_actor() const {
  return status == "running" &&
         (state == "received" || state == "processing" || state == "completed");
}

bool ProgressOrder::accept(std::int64_t sequence, const ProgressEvent& event) {
  if (sequence > 0 && sequence <= last_sequence_) return false;
  if (sequence > 0) last_sequence_ = sequence;
  bool final = event.status == "succeeded" || event.status == "failed";
  if (!final && (event.percent < last_percent_ ||
                 (event.names_actor() && event.actor_index < last_actor_index_)))
    return false;
  last_percent_ = std::max(last_percent_, event.percent);
  if (event.names_actor()) last_actor_index_ = event.actor_index;
  return true;
}

std::string plain_progress_line(const ProgressEvent& event) {
  std::string what = event.message.empty() ? event.status : event.message;
  return "progress " + std::to_string(event.percent) + "% " + actor_prefix(event) + what;
}

std::string bar_progress_line(const ProgressEvent& event, std::size_t max_columns) {
  constexpr int width = 30;
  int filled = std::clamp(event.percent, 0, 100) * width / 100;
  std::string line = "[";
  line.append(filled, '#').append(width - filled, '.').append("] ");
  line += std::to_string(event.percent) + "% ";
  if (event.names_actor() && !event.actor.empty()) {
    if (event.actor_count > 0)
      line += std::to_string(event.actor_index + 1) + "/" + std::to_string(event.actor_count) + " ";
    line += event.actor + " " + event.state;
  } else {
    line += event.status == "failed" ? "failed"
                                     : (event.message.empty() ? event.status : event.message);
  }
  if (line.size() > max_columns) line.resize(max_columns);
  return line;
}

}  // namespace asya::cli
