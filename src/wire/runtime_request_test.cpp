#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>

#include "asya/runtime.hpp"

namespace asya {
namespace {

namespace json = boost::json;

struct ValueError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

json::array respond(std::string_view request, const PayloadHandler& handler) {
  std::string text = handle_request(request, handler);
  json::value v = json::parse(text);
  EXPECT_TRUE(v.is_array()) << text;
  return v.as_array();
}

json::array respond_env(std::string_view request, const EnvelopeHandler& handler,
                        bool validate = true) {
  std::string text = handle_request(request, handler, validate);
  json::value v = json::parse(text);
  EXPECT_TRUE(v.is_array()) << text;
  return v.as_array();
}

Outputs echo(const Json& payload) {
  return payload;
}

const char* kEnvelope =
    R"({"id":"e1","route":{"actors":["a","b","c"],"current":1,"metadata":{"job":"j"}},)"
    R"("headers":{"traceparent":"t","priority":"high"},"payload":{"message":"hi"}})";

TEST(HandleRequest, PayloadModeAdvancesTheRouteAndKeepsMetadataAndHeaders) {
  json::array out = respond(kEnvelope, echo);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0],
            json::parse(R"({"payload":{"message":"hi"},)"
                        R"("route":{"actors":["a","b","c"],"current":2,"metadata":{"job":"j"}},)"
                        R"("headers":{"traceparent":"t","priority":"high"}})"));
}

TEST(HandleRequest, DoublesInTheAnswerArePrintedInTheirShortestForm) {
  PayloadHandler scaled = [](const Json& p) {
    return Json(json::object{{"score", 8.1}, {"zero", 0.0}, {"in", p}});
  };
  std::string text = handle_request(
      R"({"route":{"actors":["a"]},"headers":{"w":0.5},"payload":{"x":1.25}})", scaled);
  EXPECT_NE(text.find(R"("score":8.1)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("zero":0.0)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("x":1.25)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("w":0.5)"), std::string::npos) << text;
  EXPECT_EQ(text.find("E0"), std::string::npos) << text;
}

TEST(HandleRequest, HeadersKeyIsOmittedWhenTheInputHadNone) {
  json::array out = respond(R"({"route":{"actors":["a"]},"payload":5})", echo);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], json::parse(R"({"payload":5,"route":{"actors":["a"],"current":1}})"));
}

TEST(HandleRequest, FanOutGivesOneElementPerPayload) {
  PayloadHandler fan = [](const Json& p) {
    std::vector<Json> items;
    for (int i = 0; i < 3; ++i) items.push_back(json::object{{"i", i}, {"in", p}});
    return Outputs::fan_out(std::move(items));
  };
  json::array out = respond(kEnvelope, fan);
  ASSERT_EQ(out.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(out[i].at("payload").at("i"), i);
    EXPECT_EQ(out[i].at("route").at("current"), 2);
  }
}

TEST(HandleRequest, AFanOutOfOneSaysSoSoThatAJoinGetsAGroupOfOne) {
  auto one = [](const Json&) { return Outputs::fan_out({Json(7)}); };
  json::array out = respond(kEnvelope, one);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].at("fanout"), true);
  EXPECT_EQ(out[0].at("payload"), 7);
  // A plain single result is not marked.
  json::array plain = respond(kEnvelope, [](const Json&) { return Outputs(Json(7)); });
  EXPECT_FALSE(plain[0].as_object().contains("fanout"));
}

TEST(HandleRequest, AbortGivesAnEmptyArray) {
  EXPECT_EQ(handle_request(kEnvelope, PayloadHandler([](const Json&) { return Outputs::none(); })),
            "[]");
}

TEST(HandleRequest, ExceptionBecomesProcessingErrorWithTypeAndMessage) {
  PayloadHandler fail = [](const Json&) -> Outputs {
    throw ValueError("Intentional test failure");
  };
  json::array out = respond(kEnvelope, fail);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].at("error"), "processing_error");
  const auto& details = out[0].at("details");
  EXPECT_EQ(details.at("message"), "Intentional test failure");
  EXPECT_EQ(details.at("type"), "asya::(anonymous namespace)::ValueError");
  EXPECT_FALSE(details.at("traceback").as_string().empty());
}

TEST(HandleRequest, NonStandardExceptionIsStillAnError) {
  PayloadHandler fail = [](const Json&) -> Outputs { throw 42; };
  json::array out = respond(kEnvelope, fail);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].at("error"), "processing_error");
  EXPECT_EQ(out[0].at("details").at("type"), "int");
}

struct BadCase {
  const char* request;
  const char* expected_in_message;
};

TEST(HandleRequest, InvalidRequestsAreParsingErrorsNamingTheField) {
  const BadCase cases[] = {
      {"", "empty request"},
      {"not json", "request is not valid JSON: syntax error at offset 0"},
      {"{\"route\":{\"actors\":[\"a\"]},\"payload\":\"\xff\"}",
       "request is not valid UTF-8: invalid byte 0xff at offset 37"},
      {"[1,2]", "request must be a JSON object (an envelope), got array"},
      {R"({"route":{"actors":["a"]}})", "envelope has no 'payload' field"},
      {R"({"payload":1})", "envelope has no 'route' field"},
      {R"({"payload":1,"route":[]})", "'route' must be an object, got array"},
      {R"({"payload":1,"route":{}})", "'route.actors' is missing"},
      {R"({"payload":1,"route":{"actors":"a"}})", "'route.actors' must be an array, got string"},
      {R"({"payload":1,"route":{"actors":[]}})", "'route.actors' must not be empty"},
      {R"({"payload":1,"route":{"actors":["a",3]}})",
       "'route.actors[1]' must be a string, got number"},
      {R"({"payload":1,"route":{"actors":["a"],"current":"0"}})",
       "'route.current' must be an integer, got string"},
      {R"({"payload":1,"route":{"actors":["a"],"current":1.0}})",
       "'route.current' must be an integer, got number"},
      {R"({"payload":1,"route":{"actors":["a"],"current":true}})",
       "'route.current' must be an integer, got boolean"},
      {R"({"payload":1,"route":{"actors":["a"],"current":-1}})",
       "'route.current' is -1, out of range"},
      {R"({"payload":1,"route":{"actors":["a"],"current":2}})",
       "'route.current' is 2, out of range: must be between 0 and 1"},
      {R"({"payload":1,"route":{"actors":["a"],"metadata":1}})",
       "'route.metadata' must be an object, got number"},
      {R"({"payload":1,"route":{"actors":["a"]},"headers":[]})",
       "'headers' must be an object, got array"},
      {R"({"payload":1,"route":{"actors":["a"]},"headers":null})",
       "'headers' must be an object, got null"},
      {R"({"payload":1,"route":{"actors":["a"]},"id":7})", "'id' must be a string, got number"},
  };
  for (const auto& c : cases) {
    json::array out = respond(c.request, echo);
    ASSERT_EQ(out.size(), 1u) << c.request;
    EXPECT_EQ(out[0].at("error"), "msg_parsing_error") << c.request;
    EXPECT_EQ(out[0].at("details").at("type"), "InvalidRequest") << c.request;
    std::string message(out[0].at("details").at("message").as_string());
    EXPECT_NE(message.find(c.expected_in_message), std::string::npos)
        << c.request << " -> " << message;
  }
}

TEST(HandleRequest, CurrentEqualToTheNumberOfActorsIsAccepted) {
  json::array out = respond(R"({"payload":1,"route":{"actors":["a"],"current":1}})", echo);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].at("route").at("current"), 2);
}

TEST(HandleRequest, StatefulHandlerSeesEveryCall) {
  auto count = std::make_shared<std::atomic<int>>(0);
  PayloadHandler counter = [count](const Json&) -> Outputs {
    return json::object{{"count", ++*count}};
  };
  for (int k = 1; k <= 3; ++k) {
    EXPECT_EQ(respond(kEnvelope, counter)[0].at("payload").at("count"), k);
  }
}

TEST(HandleRequest, HandlerMayKeepACopyOfThePayloadAfterTheCall) {
  auto kept = std::make_shared<Json>();
  PayloadHandler keep = [kept](const Json& payload) -> Outputs {
    *kept = payload;
    return Outputs::none();
  };
  (void)handle_request(kEnvelope, keep);
  std::string filler =
      handle_request(R"({"payload":"zzzzzzzzzzzzzz","route":{"actors":["a"]}})", echo);
  EXPECT_EQ(json::serialize(*kept), R"({"message":"hi"})");
}

// Envelope mode.

EnvelopeHandler edit(std::function<void(json::object&)> change) {
  return [change](const json::object& in) {
    json::object out = in;
    change(out);
    return std::vector<Json>{out};
  };
}

void advance(json::object& env) {
  auto& route = env["route"].as_object();
  route["current"] = route["current"].as_int64() + 1;
}

TEST(HandleRequestEnvelope, ValidEditsPassThrough) {
  json::array out = respond_env(kEnvelope, edit([](json::object& e) {
                                  e["route"].as_object()["actors"].as_array().push_back("extra");
                                  advance(e);
                                }));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].at("route").at("actors"), json::parse(R"(["a","b","c","extra"])"));
  EXPECT_EQ(out[0].at("route").at("current"), 2);
  EXPECT_EQ(out[0].at("id"), "e1");

  out = respond_env(kEnvelope, edit([](json::object& e) {
                      e["route"].as_object()["actors"] = json::array{"a", "b", "other"};
                      advance(e);
                    }));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].as_object().contains("error"));
}

TEST(HandleRequestEnvelope, ChangingThePastOrBreakingTheShapeIsAProcessingError) {
  const std::pair<const char*, std::function<void(json::object&)>> cases[] = {
      {"changes the route's past: input actors[0..1] [\"a\",\"b\"] must be kept",
       [](json::object& e) { e["route"].as_object()["actors"].as_array()[0] = "hacked"; }},
      {"changes the route's past",
       [](json::object& e) { e["route"].as_object()["actors"].as_array()[1] = "other"; }},
      {"output has no 'payload'", [](json::object& e) { e.erase("payload"); }},
      {"output: 'route' must be an object, got string",
       [](json::object& e) { e["route"] = "nope"; }},
      {"output: 'route' must be an object, got nothing", [](json::object& e) { e.erase("route"); }},
      {"output: 'route.current' is 4, must be between 0 and 3",
       [](json::object& e) { e["route"].as_object()["current"] = 4; }},
      {"output: 'headers' must be an object, got string",
       [](json::object& e) { e["headers"] = "h"; }},
  };
  for (const auto& [expected, change] : cases) {
    json::array out = respond_env(kEnvelope, edit(change));
    ASSERT_EQ(out.size(), 1u) << expected;
    EXPECT_EQ(out[0].at("error"), "processing_error") << expected;
    EXPECT_EQ(out[0].at("details").at("type"), "InvalidHandlerResult") << expected;
    std::string message(out[0].at("details").at("message").as_string());
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  }
}

TEST(HandleRequestEnvelope, ValidationCanBeDisabled) {
  json::array out = respond_env(
      kEnvelope,
      edit([](json::object& e) { e["route"].as_object()["actors"].as_array()[0] = "x"; }), false);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].at("route").at("actors").at(0), "x");
}

TEST(HandleRequestEnvelope, NonObjectOutputIsAnErrorEvenWithoutValidation) {
  EnvelopeHandler bad = [](const json::object&) { return std::vector<Json>{Json(1), Json(2)}; };
  json::array out = respond_env(kEnvelope, bad, false);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].at("error"), "processing_error");
  EXPECT_NE(std::string(out[0].at("details").at("message").as_string())
                .find("output 0 of the envelope-mode handler is number"),
            std::string::npos);
}

TEST(HandleRequestEnvelope, HandlerSeesOnlyTheActorFields) {
  EnvelopeHandler keys = [](const json::object& in) {
    json::array names;
    for (const auto& entry : in) names.emplace_back(entry.key());
    json::object out = in;
    out["payload"] = names;
    return std::vector<Json>{out};
  };
  json::array out = respond_env(
      R"({"id":"e","x-unknown":1,"route":{"actors":["a"]},"deadline":"d","payload":0})", keys);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].at("payload"), json::parse(R"(["id","route","deadline","payload"])"));
}

TEST(HandleRequestEnvelope, EmptyResultIsAbort) {
  EXPECT_EQ(handle_request(kEnvelope,
                           EnvelopeHandler([](const json::object&) { return std::vector<Json>{}; }),
                           true),
            "[]");
}

}  // namespace
}  // namespace asya
