// `asya trace`: the hops of a job's trace (GET /envelopes/{id}/trace) as a terminal waterfall.
// Pure functions: no I/O.
//
// A hop is the spans one sidecar recorded for one delivery of one envelope: the spans with the
// same hop_span_id (the gateway marks them, rest_traces.cpp); the hop span gives the actor,
// envelope, delivery count, queue wait (asya.queue_wait_ms) and outcome. Within a hop, spans of
// kind "client" (or named "runtime ..."/"handler ...") are the handler's time, spans of kind
// "producer" (or named "publish ...") the publish time. The dashboard's timeline
// (src/gateway/dashboard/timeline.js) groups spans by the same rule.
#pragma once

#include <boost/json/fwd.hpp>

#include <string>
#include <vector>

namespace asya::cli {

struct TraceHop {
  std::string actor;
  std::string envelope_id;
  std::string replica;  // as sent ("" unknown)
  long long delivery_count = 0;
  double start_offset_ms = 0;  // from the trace's first span
  double duration_ms = 0;      // first start to last end of the hop's spans
  double queue_wait_ms = 0;
  double handler_ms = 0;
  double publish_ms = 0;
  std::string outcome;  // asya.outcome, else "error" for an error status, else ""
};

struct TraceWaterfall {
  std::string job_id;
  std::string status;                  // the job's
  std::vector<std::string> trace_ids;  // usually one
  double duration_ms = 0;
  std::vector<TraceHop> hops;  // by start
};

// The waterfall of a GET /envelopes/{id}/trace answer. Spans without an actor are not hops.
TraceWaterfall waterfall_of(const boost::json::value& trace);

// A table, one line per hop: actor, envelope, start, wait, handler, publish, outcome, and a bar
// `width` characters wide ('.' queue wait, '#' in the hop) on the trace's time axis.
std::string render_waterfall(const TraceWaterfall& waterfall, int width = 40);

// {"job_id", "status", "trace_ids", "duration_ms", "hops": [...]}.
boost::json::object waterfall_json(const TraceWaterfall& waterfall);

}  // namespace asya::cli
