#include "sidecar/receive_ahead.hpp"

#include <gtest/gtest.h>

namespace asya::sidecar {
namespace {

TEST(ReceiveAhead, OneAtATimeUntilAMessageWasProcessed) {
  ReceiveAhead ahead;
  EXPECT_EQ(ahead.next(), 1u);
}

TEST(ReceiveAhead, AFastHandlerGetsSeveralPerReceiveUpToTheMax) {
  ReceiveAhead ahead;
  ahead.record(0.0005);  // 0.5 ms: 20 would fit in the 10 ms budget
  EXPECT_EQ(ahead.next(), ReceiveAhead::kMax);
  ahead.record(0.0);
  EXPECT_EQ(ahead.next(), ReceiveAhead::kMax);
}

TEST(ReceiveAhead, ASlowMessageStopsLeasingAheadAtOnce) {
  ReceiveAhead ahead;
  for (int i = 0; i < 10; ++i) ahead.record(0.0005);
  ahead.record(0.2);  // one 200 ms call: no message may wait behind the next one
  EXPECT_EQ(ahead.next(), 1u);
  ahead.record(0.0025);  // fast again: back to several, gradually
  EXPECT_EQ(ahead.next(), 1u);
  for (int i = 0; i < 60; ++i) ahead.record(0.0025);
  EXPECT_GE(ahead.next(), 3u);  // about 10 ms / 2.5 ms
  EXPECT_LE(ahead.next(), 4u);
}

}  // namespace
}  // namespace asya::sidecar
