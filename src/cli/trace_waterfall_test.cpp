#include "cli/trace_waterfall.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace asya::cli {
namespace {

// Two hops (prep on the root envelope, then score on a fan-out child) and the gateway's call
// span, as GET /envelopes/{id}/trace answers them: the children of a hop carry no actor, only
// their hop_span_id (a publish span names the envelope it published, not the hop's).
const char* kTrace = R"({"job_id": "j", "status": "succeeded", "trace_ids": ["t1"],
  "duration_ms": 100.0, "spans": [
  {"name": "gateway call", "kind": "server", "span_id": "g", "hop_span_id": null,
   "offset_ms": 0.0, "duration_ms": 100.0},
  {"name": "process prep", "kind": "consumer", "actor": "prep", "envelope_id": "j",
   "span_id": "p", "hop_span_id": "p",
   "delivery_count": 1, "replica": 0, "queue_wait_ms": 4.0, "offset_ms": 0.0, "duration_ms": 40.0,
   "outcome": "routed", "status": {"code": "ok"}},
  {"name": "runtime call", "kind": "client", "span_id": "r", "hop_span_id": "p",
   "offset_ms": 1.0, "duration_ms": 30.0},
  {"name": "publish asya-score", "kind": "producer", "envelope_id": "j-1", "span_id": "u",
   "hop_span_id": "p", "offset_ms": 31.0, "duration_ms": 5.0},
  {"name": "process score", "kind": "consumer", "actor": "score", "envelope_id": "j-1",
   "span_id": "s", "hop_span_id": "s",
   "delivery_count": 2, "queue_wait_ms": 10.0, "offset_ms": 50.0, "duration_ms": 50.0,
   "status": {"code": "error", "message": "boom"}}
]})";

TEST(TraceWaterfall, SpansOfOneDeliveryBecomeOneHopWithItsTimes) {
  TraceWaterfall w = waterfall_of(boost::json::parse(kTrace));
  EXPECT_EQ(w.job_id, "j");
  ASSERT_EQ(w.hops.size(), 2u);
  const TraceHop& prep = w.hops[0];
  EXPECT_EQ(prep.actor, "prep");
  EXPECT_DOUBLE_EQ(prep.start_offset_ms, 0);
  EXPECT_DOUBLE_EQ(prep.duration_ms, 40);
  EXPECT_DOUBLE_EQ(prep.queue_wait_ms, 4);
  EXPECT_DOUBLE_EQ(prep.handler_ms, 30);
  EXPECT_DOUBLE_EQ(prep.publish_ms, 5);
  EXPECT_EQ(prep.outcome, "routed");
  const TraceHop& score = w.hops[1];
  EXPECT_EQ(score.envelope_id, "j-1");
  EXPECT_EQ(score.delivery_count, 2);
  EXPECT_EQ(score.outcome, "error");
}

TEST(TraceWaterfall, TheTableShowsEveryHopWithItsBar) {
  std::string text = render_waterfall(waterfall_of(boost::json::parse(kTrace)), 20);
  EXPECT_NE(text.find("job j (succeeded), trace t1, 2 hops, 100.0ms"), std::string::npos) << text;
  EXPECT_NE(text.find("ACTOR  ENVELOPE"), std::string::npos) << text;
  // The axis starts 4 ms before prep (its queue wait); score waits 10 ms ('.') from 40 ms.
  EXPECT_NE(text.find("prep   j             0.0ms      4.0ms     30.0ms      5.0ms  routed    "
                      "|########            |"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("score  j-1          50.0ms     10.0ms      0.0ms      0.0ms  error     "
                      "|        ..##########|"),
            std::string::npos)
      << text;
}

TEST(TraceWaterfall, ATraceWithoutSpansSaysWhy) {
  auto w = waterfall_of(boost::json::parse(R"({"job_id":"j","status":"running","spans":[]})"));
  EXPECT_TRUE(w.hops.empty());
  EXPECT_NE(render_waterfall(w).find("no spans yet"), std::string::npos);
  EXPECT_EQ(waterfall_json(w).at("hops").as_array().size(), 0u);
}

}  // namespace
}  // namespace asya::cli
