// The progress `asya call` shows for a job's SSE update events (GET /envelopes/{id}/stream), as
// decisions without I/O: which events to show, and their text.
#pragma once

#include <boost/json/object.hpp>

#include <cstdint>
#include <string>

namespace asya::cli {

// What an update event says, read leniently (a missing field is empty or 0).
struct ProgressEvent {
  int percent = 0;
  std::string status;   // the job's: pending | running | succeeded | failed
  std::string state;    // the envelope's: received | processing | completed | created, ...
  int actor_index = 0;  // current_actor_idx
  std::size_t actor_count = 0;
  std::string actor;  // the actor at actor_index ("" when none)
  std::string message;

  static ProgressEvent from_json(const boost::json::object& data);
  // Whether the event is about one actor's work (received, processing or completed), so its line
  // names that actor.
  bool names_actor() const;
};

// Keeps the shown progress moving forward. Not thread-safe.
class ProgressOrder {
 public:
  // Whether to show the event with SSE id `sequence` (0: none): false for an id at or before the
  // last one shown (a stream followed again from the start replays its history) and for an
  // event behind the last one shown (a lower percent, or an earlier actor while running).
  bool accept(std::int64_t sequence, const ProgressEvent& event);
  // The id of the last event shown (for Last-Event-ID when the stream is followed again).
  std::int64_t last_sequence() const { return last_sequence_; }

 private:
  std::int64_t last_sequence_ = 0;
  int last_percent_ = -1;
  int last_actor_index_ = -1;
};

// One line for a log or a pipe: `progress 45% [2/5 score] processing in score`, or for an event
// not about an actor's work `progress 100% succeeded`, `progress 40% failed: <what failed>`.
std::string plain_progress_line(const ProgressEvent& event);

// The terminal form, redrawn in place: `[#########.....................] 45% 2/5 score
// processing`, cut to `max_columns`.
std::string bar_progress_line(const ProgressEvent& event, std::size_t max_columns = 78);

}  // namespace asya::cli
