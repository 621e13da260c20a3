// JoinActor (join_actor.hpp) against a real SQLite join store, an in-memory transport and a fake
// runtime on a real Unix socket: two replicas racing for one group whose lease ran out, the
// per-group attempt limit, and branches delivered more than ASYA_MAX_DELIVERIES times.
#include "sidecar/join/join_actor.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <filesystem>
#include <functional>
#include <optional>
#include <thread>

#include "common/random_id.hpp"
#include "common/test_temp_dir.hpp"
#include "envelope/fanout.hpp"
#include "payload/lifetime.hpp"
#include "sidecar/fake_transport.hpp"
#include "sidecar/payload_ref.hpp"
#include "sidecar/socket_server_test_support.hpp"
#include "wire/frame.hpp"

namespace asya::sidecar::join {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using asya::test::TempDir;

// A runtime on `socket_path` answering each request with `answer(request)`; nullopt closes the
// connection without answering (a runtime that dies on the request).
class FakeRuntime {
 public:
  using Answer = std::function<std::optional<std::string>(const std::string& request)>;
  FakeRuntime(const fs::path& socket_path, Answer answer)
      : answer_(std::move(answer)), server_(socket_path, [this](int fd) { serve(fd); }) {}
  int requests() const { return requests_; }

 private:
  void serve(int fd) {
    std::string request;
    while (wire::read_frame(fd, request, 1u << 20, 10'000).ok()) {
      ++requests_;
      auto reply = answer_(request);
      if (!reply || !wire::write_frame(fd, *reply).ok()) break;
    }
  }
  Answer answer_;
  std::atomic<int> requests_{0};
  test_support::SocketServer server_;  // last: stops before the members serve() uses
};

// The answer of a payload-mode join handler returning {"joined": <the branch list>}.
std::optional<std::string> joined(const std::string& request) {
  auto in = boost::json::parse(request).as_object();
  boost::json::object out{{"payload", boost::json::object{{"joined", in.at("payload")}}},
                          {"route", boost::json::object{{"actors", {"j"}}, {"current", 1}}}};
  return boost::json::serialize(boost::json::array{out});
}

std::optional<std::string> raises(const std::string&) {
  return R"([{"error":"processing_error","details":{"message":"the join handler raised",)"
         R"("type":"ValueError","traceback":"Traceback: ..."}}])";
}

// Branch `index` of the `count` branches of group "S@0" (the fan-out of envelope "S"), at join j.
transport::Delivery branch(std::size_t index, std::size_t count, std::uint32_t delivery_count = 1) {
  std::string body = R"({"id":"S-)" + std::to_string(index) +
                     R"(","route":{"actors":["j"],"current":0},"headers":{"asya-fanout":[)" +
                     R"({"group":"S@0","index":)" + std::to_string(index) + R"(,"count":)" +
                     std::to_string(count) + R"(}]},"payload":{"i":)" + std::to_string(index) +
                     "}}";
  return transport::Delivery{"asya-j", std::move(body), delivery_count, "r"};
}

RouterOptions router_options() {
  RouterOptions o;
  o.actor = "j";
  o.retry_backoff = 0ms;
  o.retry_backoff_max = 0ms;
  o.jitter = [] { return 0.0; };
  return o;
}

// One join replica: its own store connection, runtime connection and owner name.
struct Replica {
  Replica(const std::string& store_url, const Router& router, transport::Transport& transport,
          const fs::path& socket, std::chrono::milliseconds runtime_timeout,
          JoinActor::BeforeSend before_send = {}, PayloadReferences* payloads = nullptr,
          std::chrono::milliseconds join_timeout = 1h)
      : client(wire::RuntimeClientOptions{socket.string()}) {
    JoinConfig config;
    config.enabled = true;
    config.timeout = join_timeout;
    config.store_url = store_url;
    config.claim_lease_extra = 0ms;  // the lease is the runtime timeout alone
    JoinStoreOptions options;
    options.url = store_url;
    actor = std::make_unique<JoinActor>(config, make_join_store(options), router, transport,
                                        runtime_timeout, std::move(before_send),
                                        JoinActor::OnStored{}, payloads);
  }
  Decision store(const transport::Delivery& delivery) {
    auto parsed = envelope::parse(delivery.body);
    EXPECT_TRUE(parsed.ok());
    return actor->on_branch(delivery, *parsed);
  }
  PublishReport publish() {
    return actor->publish_decided(client, scratch, [] { return false; });
  }
  wire::RuntimeClient client;
  wire::FrameBuffer scratch;
  std::unique_ptr<JoinActor> actor;
};

class JoinActorTest : public ::testing::Test {
 protected:
  std::string store_url() const { return "sqlite://" + (dir.path / "joins.db").string(); }
  fs::path socket(const std::string& name) const { return dir.path / (name + ".sock"); }
  std::vector<testing::FakeTransport::Sent> sent_to(const std::string& queue) {
    std::lock_guard lock(transport.mutex);
    std::vector<testing::FakeTransport::Sent> out;
    for (const auto& s : transport.sent)
      if (s.queue == queue) out.push_back(s);
    return out;
  }
  // Publishes with `replica` (a retried group is claimed again at the next once-a-second scan)
  // until something reached `queue`, for at most 30 s.
  std::vector<testing::FakeTransport::Sent> publish_until_sent(Replica& replica,
                                                               const std::string& queue) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (sent_to(queue).empty() && std::chrono::steady_clock::now() < deadline) {
      replica.publish();
      std::this_thread::sleep_for(20ms);
    }
    return sent_to(queue);
  }
  TempDir dir;
  testing::FakeTransport transport;
};

TEST_F(JoinActorTest, AReplicaWhoseLeaseRanOutWhilePublishingSendsNothingAndTheGroupIsSentOnce) {
  // Replica a claims the group, calls its runtime, then is held up before sending (a slow gateway
  // announcement) past its lease; replica b claims the group meanwhile and publishes it. Without
  // the renewal before sending, a would send the output a second time.
  Router router(router_options());
  FakeRuntime runtime_a(socket("a"), joined), runtime_b(socket("b"), joined);
  Replica b(store_url(), router, transport, socket("b"), 2s);
  PublishReport by_b;
  Replica a(store_url(), router, transport, socket("a"), 2s,
            [&](const envelope::Envelope&, const ClaimedGroup& group) {
              EXPECT_EQ(group.attempts, 1u);
              std::this_thread::sleep_for(2500ms);  // a's lease (2 s) runs out
              by_b = b.publish();
            });
  for (std::size_t i = 0; i < 2; ++i) {
    Decision d = a.store(branch(i, 2));
    EXPECT_EQ(d.then, Then::kAck);
    EXPECT_TRUE(d.sends.empty());
  }
  PublishReport by_a = a.publish();
  EXPECT_EQ(by_b.published, 1u);
  EXPECT_EQ(by_a.published, 0u);
  auto out = sent_to("asya-happy-end");
  ASSERT_EQ(out.size(), 1u);
  auto envelope = boost::json::parse(out[0].body).as_object();
  EXPECT_EQ(envelope.at("id").as_string(), "S");
  EXPECT_EQ(boost::json::serialize(envelope.at("payload")), R"({"joined":[{"i":0},{"i":1}]})");
  EXPECT_EQ(runtime_a.requests(), 1);
  EXPECT_EQ(runtime_b.requests(), 1);
  // Finished by b: a branch delivered again changes nothing, nothing is left to publish.
  EXPECT_EQ(a.store(branch(0, 2)).then, Then::kAck);
  a.publish();
  EXPECT_EQ(sent_to("asya-happy-end").size(), 1u);
}

TEST_F(JoinActorTest, AHandlerThatRaisesGoesToErrorEndOnceWithoutRetries) {
  Router router(router_options());
  FakeRuntime runtime(socket("a"), raises);
  Replica a(store_url(), router, transport, socket("a"), 5s);
  a.store(branch(0, 1));
  auto out = publish_until_sent(a, "asya-error-end");
  ASSERT_EQ(out.size(), 1u);
  auto payload = boost::json::parse(out[0].body).at("payload").as_object();
  EXPECT_EQ(payload.at("error").as_string(), "processing_error");
  EXPECT_EQ(runtime.requests(), 1);
}

// An output the transport refuses as too large (its own limit, below what the router checks)
// cannot fit at any later claim: the group goes to error-end as message_too_large after one
// runtime call (before: claimed again every second until ASYA_MAX_DELIVERIES claims, then
// max_deliveries_exceeded).
TEST_F(JoinActorTest, AJoinedOutputOverTheTransportLimitGoesToErrorEndAsMessageTooLargeAtOnce) {
  Router router(router_options());
  transport.max_bytes = 4096;
  FakeRuntime runtime(socket("a"), [](const std::string&) -> std::optional<std::string> {
    return R"([{"payload":{"joined":")" + std::string(8192, 'x') +
           R"("},"route":{"actors":["j","next"],"current":1}}])";
  });
  Replica a(store_url(), router, transport, socket("a"), 5s);
  a.store(branch(0, 2));
  a.store(branch(1, 2));
  auto out = publish_until_sent(a, "asya-error-end");
  ASSERT_EQ(out.size(), 1u);
  auto error = boost::json::parse(out[0].body).as_object();
  EXPECT_EQ(error.at("id").as_string(), "S");
  EXPECT_EQ(error.at("payload").at("error").as_string(), "message_too_large");
  EXPECT_NE(error.at("payload").at("details").at("message").as_string().find("asya-next"),
            std::string::npos)
      << error;
  EXPECT_EQ(runtime.requests(), 1);
  EXPECT_TRUE(sent_to("asya-next").empty());
  // The group is finished: nothing is published again.
  a.publish();
  EXPECT_EQ(sent_to("asya-error-end").size(), 1u);
  EXPECT_EQ(runtime.requests(), 1);
}

TEST_F(JoinActorTest, ARaisingHandlerIsRetriedWhileRetryMaxAttemptsAllowsCountingClaims) {
  RouterOptions options = router_options();
  options.retry_on_processing_error = true;
  options.retry_max_attempts = 3;
  Router router(options);
  FakeRuntime runtime(socket("a"), raises);
  Replica a(store_url(), router, transport, socket("a"), 5s);
  a.store(branch(0, 1));
  auto out = publish_until_sent(a, "asya-error-end");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(runtime.requests(), 3);  // before: claimed and called again every second, forever
  auto error = boost::json::parse(out[0].body).as_object();
  EXPECT_EQ(error.at("id").as_string(), "S");
  EXPECT_EQ(error.at("payload").at("error").as_string(), "processing_error");
  EXPECT_EQ(error.at("headers").at("asya-attempt").as_int64(), 3);
  EXPECT_TRUE(sent_to("asya-happy-end").empty());
  EXPECT_TRUE(sent_to("asya-j").empty());  // a join retries by claiming again, not by a message
}

TEST_F(JoinActorTest, AGroupWhoseRuntimeDiesEveryTimeGoesToErrorEndAfterMaxDeliveriesClaims) {
  RouterOptions options = router_options();
  options.max_deliveries = 3;
  Router router(options);
  FakeRuntime runtime(socket("a"), [](const std::string&) { return std::nullopt; });
  Replica a(store_url(), router, transport, socket("a"), 5s);
  a.store(branch(0, 2));
  a.store(branch(1, 2));
  auto out = publish_until_sent(a, "asya-error-end");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(runtime.requests(), 3);  // the fourth claim does not call the runtime
  auto error = boost::json::parse(out[0].body).as_object();
  EXPECT_EQ(error.at("id").as_string(), "S");
  auto payload = error.at("payload").as_object();
  EXPECT_EQ(payload.at("error").as_string(), "max_deliveries_exceeded");
  const std::string message(payload.at("details").at("message").as_string());
  EXPECT_NE(message.find("join group S@0 of 2 branches was claimed 4 times without being "
                         "published, more than ASYA_MAX_DELIVERIES=3; last error: runtime call "
                         "failed (runtime_unavailable)"),
            std::string::npos)
      << message;
  auto counts = a.actor->store().counts();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->open + counts->decided, 0);  // finished: nothing left to publish
}

TEST_F(JoinActorTest, ABranchDeliveredMoreThanMaxDeliveriesTimesIsStillStored) {
  // Redelivered after SIGKILLs and expired leases: the runtime is not called for a branch, so the
  // poison rule must not send it to error-end, which would leave its group incomplete for good.
  Router router(router_options());
  auto poison = branch(1, 2, 9);
  auto parsed = envelope::parse(poison.body);
  auto early = router.before_runtime(poison, parsed, std::chrono::system_clock::now());
  ASSERT_TRUE(early.has_value());
  EXPECT_TRUE(JoinActor::stores_despite(*early));
  FakeRuntime runtime(socket("a"), joined);
  Replica a(store_url(), router, transport, socket("a"), 5s);
  a.store(branch(0, 2));
  Decision d = a.store(poison);
  EXPECT_EQ(d.then, Then::kAck);
  EXPECT_TRUE(d.sends.empty());
  auto out = publish_until_sent(a, "asya-happy-end");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(boost::json::serialize(boost::json::parse(out[0].body).at("payload")),
            R"({"joined":[{"i":0},{"i":1}]})");
  EXPECT_TRUE(sent_to("asya-error-end").empty());
}

TEST_F(JoinActorTest, ABranchTheStoreRefusesIsNackedThenSentToErrorEndPastMaxDeliveries) {
  Router router(router_options());
  Replica a(store_url(), router, transport, socket("a"), 5s);
  a.store(branch(0, 3));
  Decision nacked = a.store(branch(1, 4, 5));  // count 4 in a group of 3
  EXPECT_EQ(nacked.then, Then::kNack);
  Decision last = a.store(branch(1, 4, 6));
  EXPECT_EQ(last.then, Then::kAck);
  EXPECT_EQ(last.failure, FailureCode::kMaxDeliveriesExceeded);
  ASSERT_EQ(last.sends.size(), 1u);
  EXPECT_EQ(last.sends[0].queue, "asya-error-end");
  EXPECT_NE(last.failure_message.find("delivered 6 times, more than ASYA_MAX_DELIVERIES=5, and the "
                                      "join store cannot store branch 1 of group S@0: group S@0: "
                                      "branch 1 says count 4, the group has count 3"),
            std::string::npos)
      << last.failure_message;
}

// A file payload store whose hold writes fail while `refuse_holds` is set (a payload store outage
// met by the join's hold on receipt).
class RefusingStore final : public payload::PayloadStore {
 public:
  explicit RefusingStore(std::unique_ptr<payload::PayloadStore> inner) : inner_(std::move(inner)) {}
  std::atomic<bool> refuse_holds{false};
  Status put(std::string_view key, std::string_view bytes) override {
    if (refuse_holds && key.starts_with("holds/")) return Error{"the store is unreachable"};
    return inner_->put(key, bytes);
  }
  Status read(std::string_view key, std::string& out) override { return inner_->read(key, out); }
  Result<bool> exists(std::string_view key) override { return inner_->exists(key); }
  Status remove(std::string_view key) override { return inner_->remove(key); }
  Result<std::vector<payload::StoredObject>> list(std::string_view prefix) override {
    return inner_->list(prefix);
  }
  std::string url() const override { return inner_->url(); }

 private:
  std::unique_ptr<payload::PayloadStore> inner_;
};

// Branch `index` of group "S@0" whose payload is a reference to object `sha` of `store`.
transport::Delivery reference_branch(const payload::PayloadStore& store, std::size_t index,
                                     std::size_t count, const std::string& sha,
                                     std::uint32_t delivery_count = 1) {
  std::string body = R"({"id":"S-)" + std::to_string(index) +
                     R"(","route":{"actors":["j"],"current":0},"headers":{"asya-fanout":[)" +
                     R"({"group":"S@0","index":)" + std::to_string(index) + R"(,"count":)" +
                     std::to_string(count) + R"(}]},"payload":{"asya-payload-ref":{"url":")" +
                     store.url() + "/objects/" + sha + R"(","size":10,"sha256":")" + sha +
                     R"("}}})";
  return transport::Delivery{"asya-j", std::move(body), delivery_count, "r"};
}

std::vector<std::string> keys(payload::PayloadStore& store, std::string_view prefix) {
  std::vector<std::string> out;
  auto listed = store.list(prefix);
  EXPECT_TRUE(listed.ok());
  if (listed)
    for (const auto& o : *listed) out.push_back(o.key);
  std::sort(out.begin(), out.end());
  return out;
}

class JoinActorHoldsTest : public JoinActorTest {
 protected:
  std::unique_ptr<payload::PayloadStore> file_store() {
    payload::PayloadStoreOptions o;
    o.url = "file://" + (dir.path / "payloads").string();
    return payload::make_payload_store(o);
  }
  const std::string sha0 = std::string(64, 'a');
  const std::string sha1 = std::string(64, 'b');
};

TEST_F(JoinActorHoldsTest, ABranchWhoseHoldCannotBeWrittenIsNackedAndPastMaxDeliveriesStored) {
  auto refusing = std::make_unique<RefusingStore>(file_store());
  RefusingStore& store = *refusing;
  PayloadReferences refs(std::move(refusing), 1u << 18, 1h);
  Router router(router_options());
  Replica a(store_url(), router, transport, socket("a"), 5s, {}, &refs);
  store.refuse_holds = true;
  EXPECT_EQ(a.store(reference_branch(store, 1, 2, sha1)).then, Then::kNack);
  // Recorded all the same (put before the hold), so a later rewrite holds it.
  auto held = a.actor->store().held_branches("j", "S@0", nullptr, 10);
  ASSERT_TRUE(held.ok());
  ASSERT_EQ(held->size(), 1u);
  EXPECT_EQ((*held)[0].sha256, sha1);
  EXPECT_EQ(a.store(reference_branch(store, 1, 2, sha1, 6)).then, Then::kAck);  // past 5
  EXPECT_TRUE(keys(store, "holds/").empty());
  store.refuse_holds = false;
  EXPECT_EQ(a.store(reference_branch(store, 1, 2, sha1, 2)).then, Then::kAck);  // redelivered
  EXPECT_EQ(keys(store, "holds/"),
            std::vector<std::string>{payload::hold_key(sha1, branch_id("S@0", 1))});
}

TEST_F(JoinActorHoldsTest, AGroupThatTimesOutToErrorEndReleasesItsReferenceBranchIds) {
  PayloadReferences refs(file_store(), 1u << 18, 1h);
  payload::PayloadStore& store = refs.store();
  Router router(router_options());
  Replica a(store_url(), router, transport, socket("a"), 5s, {}, &refs, 1ms);
  EXPECT_EQ(a.store(reference_branch(store, 0, 3, sha0)).then, Then::kAck);
  EXPECT_EQ(a.store(reference_branch(store, 1, 3, sha1)).then, Then::kAck);
  EXPECT_EQ(keys(store, "holds/").size(), 2u);
  EXPECT_TRUE(keys(store, "released/").empty());
  auto out = publish_until_sent(a, "asya-error-end");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NE(out[0].body.find("join_timeout"), std::string::npos);
  // Branch 1's id is released; branch 0's ("S") goes on with the error and is error-end's.
  EXPECT_EQ(keys(store, "released/"),
            std::vector<std::string>{payload::release_key(branch_id("S@0", 1))});
  EXPECT_TRUE(a.actor->store().held_branches("j", "", nullptr, 10)->empty());
  // Branch 2 comes late (held by the actor that published it): dropped, its id released too; a
  // late copy of branch 0 is not.
  ASSERT_TRUE(payload::hold(store, sha1, branch_id("S@0", 2)));
  EXPECT_EQ(a.store(reference_branch(store, 2, 3, sha1)).then, Then::kAck);
  EXPECT_EQ(a.store(reference_branch(store, 0, 3, sha0, 2)).then, Then::kAck);
  auto released = keys(store, "released/");
  EXPECT_EQ(released.size(), 2u);
  EXPECT_TRUE(std::find(released.begin(), released.end(),
                        payload::release_key(branch_id("S@0", 2))) != released.end());
}

}  // namespace
}  // namespace asya::sidecar::join
