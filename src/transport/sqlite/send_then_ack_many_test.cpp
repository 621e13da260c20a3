// send_then_ack_many on SQLite (transport.hpp): the outputs and acks of several received messages
// commit in one shared write transaction, each message's step all or nothing. A lost lease fails
// that step's ack alone (its outputs stay sent, as send_then_ack says); a step the transport does
// not take (an output too large, a body stored as a file) is left to the caller (nullopt) while
// the others commit.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"
#include "transport/sqlite/write_lock_stats.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using sqlite::WriteLockStats;

// `count` messages sent to `queue` and received in one lease.
std::vector<Delivery> received(Transport& t, const std::string& queue, int count) {
  std::vector<OutgoingMessage> all;
  std::vector<std::string> bodies;
  bodies.reserve(count);
  for (int i = 0; i < count; ++i) bodies.push_back("in-" + std::to_string(i));
  for (const std::string& b : bodies) all.push_back(OutgoingMessage{queue, b, 0ms});
  for (const Status& s : t.send_many(all)) EXPECT_TRUE(s.ok());
  auto got = t.receive(queue, static_cast<std::size_t>(count), 5s);
  EXPECT_TRUE(got.ok());
  EXPECT_EQ(got.ok() ? got->size() : 0u, static_cast<std::size_t>(count));
  return got.ok() ? std::move(*got) : std::vector<Delivery>{};
}

std::uint64_t held(Transport& t, const std::string& queue) {
  auto s = t.stats(queue);
  EXPECT_TRUE(s.ok());
  return s.ok() ? s->ready + s->in_flight + s->delayed : 0;
}

std::vector<std::string> bodies_on(Transport& t, const std::string& queue) {
  std::vector<std::string> out;
  auto got = t.receive(queue, 100, 1s);
  EXPECT_TRUE(got.ok());
  if (got.ok())
    for (const Delivery& d : *got) out.push_back(d.body);
  return out;
}

TEST(SqliteSendThenAckMany, EightMessagesOutputsAndAcksCommitInOneTransaction) {
  test::TempDir dir;
  auto t = make_sqlite_transport(Options{}, dir.settings());
  ASSERT_TRUE(t->settles_together());
  std::vector<Delivery> in = received(*t, "asya-in", 8);
  ASSERT_EQ(in.size(), 8u);
  std::vector<std::string> out_bodies;
  for (const Delivery& d : in) out_bodies.push_back("out-" + d.body);
  std::vector<OutgoingMessage> outputs;
  for (const std::string& b : out_bodies) outputs.push_back(OutgoingMessage{"asya-out", b, 0ms});
  std::vector<Transport::SendThenAck> steps;
  for (std::size_t i = 0; i < in.size(); ++i)
    steps.push_back({std::span<const OutgoingMessage>(&outputs[i], 1), &in[i]});
  std::uint64_t before = WriteLockStats::snapshot().transactions;
  std::vector<std::optional<Status>> results = t->send_then_ack_many(steps);
  std::uint64_t after = WriteLockStats::snapshot().transactions;
  ASSERT_EQ(results.size(), 8u);
  for (const auto& r : results) {
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(r->ok()) << r->message();
  }
  EXPECT_EQ(after - before, 1u) << "eight sends and eight acks, one write transaction";
  EXPECT_EQ(held(*t, "asya-in"), 0u);
  EXPECT_EQ(bodies_on(*t, "asya-out"), out_bodies) << "every output once, in the order given";
}

// One input was acked already: its ack fails alone and its outputs stay sent; the others commit.
TEST(SqliteSendThenAckMany, ALostLeaseFailsThatAckAloneAndTheOtherStepsCommit) {
  test::TempDir dir;
  auto t = make_sqlite_transport(Options{}, dir.settings());
  std::vector<Delivery> in = received(*t, "asya-in", 3);
  ASSERT_EQ(in.size(), 3u);
  ASSERT_TRUE(t->ack(in[1]).ok());
  std::vector<OutgoingMessage> outputs{
      {"asya-out", "a", 0ms}, {"asya-out", "b", 0ms}, {"asya-out", "c", 0ms}};
  std::vector<Transport::SendThenAck> steps;
  for (std::size_t i = 0; i < 3; ++i)
    steps.push_back({std::span<const OutgoingMessage>(&outputs[i], 1), &in[i]});
  std::vector<std::optional<Status>> results = t->send_then_ack_many(steps);
  ASSERT_EQ(results.size(), 3u);
  ASSERT_TRUE(results[0] && results[1] && results[2]);
  EXPECT_TRUE(results[0]->ok());
  EXPECT_FALSE(results[1]->ok());
  EXPECT_NE(results[1]->message().find("the lease is no longer held"), std::string::npos)
      << results[1]->message();
  EXPECT_TRUE(results[2]->ok());
  EXPECT_EQ(held(*t, "asya-in"), 0u);
  EXPECT_EQ(bodies_on(*t, "asya-out"), (std::vector<std::string>{"a", "b", "c"}));
}

// A step with an output the ordinary send refuses or stores as a file is not done (nullopt, its
// input still leased); the steps around it commit.
TEST(SqliteSendThenAckMany, AStepTheTransportDoesNotTakeIsLeftToTheCallerAndTheOthersCommit) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.file_body_bytes = 1024;
  Options options;
  options.max_message_bytes = 4096;
  auto t = make_sqlite_transport(options, settings);
  std::vector<Delivery> in = received(*t, "asya-in", 4);
  ASSERT_EQ(in.size(), 4u);
  const std::string too_large(5000, 'x'), as_file(2000, 'y');
  std::vector<OutgoingMessage> outputs{{"asya-out", "a", 0ms},
                                       {"asya-out", too_large, 0ms},
                                       {"asya-out", as_file, 0ms},
                                       {"asya-out", "d", 0ms}};
  std::vector<Transport::SendThenAck> steps;
  for (std::size_t i = 0; i < 4; ++i)
    steps.push_back({std::span<const OutgoingMessage>(&outputs[i], 1), &in[i]});
  std::vector<std::optional<Status>> results = t->send_then_ack_many(steps);
  ASSERT_EQ(results.size(), 4u);
  ASSERT_TRUE(results[0] && results[3]);
  EXPECT_TRUE(results[0]->ok());
  EXPECT_FALSE(results[1].has_value());
  EXPECT_FALSE(results[2].has_value());
  EXPECT_TRUE(results[3]->ok());
  auto in_stats = t->stats("asya-in");
  ASSERT_TRUE(in_stats.ok());
  EXPECT_EQ(in_stats->in_flight, 2u) << "the two steps not taken keep their inputs leased";
  EXPECT_EQ(bodies_on(*t, "asya-out"), (std::vector<std::string>{"a", "d"}));
}

}  // namespace
}  // namespace asya::transport
