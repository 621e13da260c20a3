// The per-item payload step of a batch (BatchItemHooks::before_send): each item's reference is
// resolved alone, an unresolvable one is decided alone, and each sent item gets its own offload.
#include "sidecar/batch_hooks.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/random_id.hpp"
#include "sidecar/payload_test_support.hpp"
#include "sidecar/router_test_support.hpp"

namespace asya::sidecar {
namespace {

namespace fs = std::filesystem;
using router_test::obj;
using router_test::options_for;

constexpr std::size_t kThreshold = 1024;
const std::string kLarge = R"({"data":")" + std::string(4000, 'z') + R"("})";

std::string envelope_with(const std::string& id, const std::string& payload_text) {
  return R"({"id":")" + id + R"(","route":{"actors":["a","b","c"],"current":1},"payload":)" +
         payload_text + "}";
}

class BatchHooksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("asya-batch-hooks-test-" + random_hex(8));
    payload::PayloadStoreOptions options;
    options.url = "file://" + dir_.string();
    refs_ = std::make_unique<PayloadReferences>(payload::make_payload_store(options), kThreshold);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string stored_reference(const std::string& payload_text) {
    PayloadReferences::Outputs outputs(*refs_, "W", std::nullopt);
    auto replaced = outputs.replace(payload_text, "W");
    EXPECT_TRUE(replaced.ok() && replaced->has_value());
    return **replaced;
  }

  fs::path dir_;
  std::unique_ptr<PayloadReferences> refs_;
};

TEST_F(BatchHooksTest, AnUnresolvableReferenceIsDecidedAloneAndTheOthersAreSentResolved) {
  const std::string good = stored_reference(kLarge);
  const std::string missing =
      payload::Reference{refs_->store().url() + "/objects/" + std::string(64, 'a'), 5,
                         std::string(64, 'a'), ""}
          .json();
  std::vector<transport::Delivery> deliveries;
  for (const auto& [id, payload] : std::vector<std::pair<std::string, std::string>>{
           {"P", R"({"n":1})"}, {"R", good}, {"M", missing}})
    deliveries.push_back(router_test::delivery_of(envelope_with(id, payload)));
  Router router(options_for("b"));
  wire::FrameBuffer scratch;
  auto items = prepare_batch(router, deliveries, scratch, std::chrono::system_clock::now());
  Tracing tracing(TracingOptions{});  // no exporter: nothing recorded
  BatchItemHooks hooks(tracing, refs_.get(), router, items.size());
  std::vector<std::optional<Decision>> decided;
  for (std::size_t i = 0; i < items.size(); ++i) {
    ASSERT_FALSE(items[i].decision);
    hooks.received(i, items[i], false);
    decided.push_back(hooks.before_send(i, items[i]));
  }
  // Plain: sent as received, with an offload for its outputs.
  EXPECT_FALSE(decided[0]);
  EXPECT_TRUE(items[0].request.empty());
  EXPECT_NE(items[0].offload, nullptr);
  // A reference: sent with the real payload in place, byte for byte.
  EXPECT_FALSE(decided[1]);
  EXPECT_EQ(items[1].request, envelope_with("R", kLarge));
  ASSERT_NE(items[1].offload, nullptr);
  // Its pass-through output refers to the same object (a hold token of its own), nothing written
  // again.
  auto passed = items[1].offload->replace(kLarge, "R");
  ASSERT_TRUE(passed.ok() && passed->has_value());
  EXPECT_TRUE(SameObjectOwnToken(refs_->store(), **passed, good));
  // Missing: decided alone, to error-end as payload_unavailable, never sent.
  ASSERT_TRUE(decided[2]);
  ASSERT_EQ(decided[2]->sends.size(), 1u);
  EXPECT_EQ(decided[2]->sends[0].queue, "asya-error-end");
  auto error = obj(decided[2]->sends[0].body)["payload"].as_object();
  EXPECT_EQ(error["error"].as_string(), "payload_unavailable");
  EXPECT_TRUE(error["original_payload"].as_object().contains("asya-payload-ref"));
  EXPECT_TRUE(items[2].request.empty());
  EXPECT_EQ(items[2].offload, nullptr);
  EXPECT_EQ(refs_->store().list("objects/")->size(), 1u);
}

}  // namespace
}  // namespace asya::sidecar
