// The handler is tested as a function: no socket, no sidecar, no queue.
#include <gtest/gtest.h>

#include "echo.hpp"

namespace {

namespace json = boost::json;

TEST(EchoHandler, EchoesTheMessage) {
  asya::Outputs out = echo::handle(json::parse(R"({"message":"hello","extra":1})"));
  ASSERT_EQ(out.items().size(), 1u);
  EXPECT_EQ(out.items()[0], json::parse(R"({"echoed":"hello"})"));
}

TEST(EchoHandler, PassesOtherPayloadsOnUnchanged) {
  for (const char* payload : {R"({"text":"hi"})", "[1,2]", "42", "null"}) {
    asya::Outputs out = echo::handle(json::parse(payload));
    ASSERT_EQ(out.items().size(), 1u) << payload;
    EXPECT_EQ(out.items()[0], json::parse(payload)) << payload;
  }
}

TEST(EchoHandler, AnswersARequestFrameLikeTheRuntimeWould) {
  std::string response = asya::handle_request(
      R"({"id":"1","route":{"actors":["echo","next"],"current":0},"payload":{"message":"m"}})",
      asya::PayloadHandler(echo::handle));
  EXPECT_EQ(json::parse(response),
            json::parse(
                R"([{"payload":{"echoed":"m"},"route":{"actors":["echo","next"],"current":1}}])"));
}

}  // namespace
