// The raw handler path (handle_raw_request / serve_raw): same answers as the DOM path for every
// request, the payload handed over as a view of the request bytes, outputs spliced as sent.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "asya/runtime.hpp"

namespace asya {
namespace {

namespace json = boost::json;

RawOutputs raw_passthrough(std::string_view payload) {
  return RawOutputs::view(payload);
}

Outputs dom_echo(const Json& payload) {
  return payload;
}

json::value parse_array(const std::string& text) {
  json::parse_options options;
  options.max_depth = 2000;
  json::value v = json::parse(text, {}, options);
  EXPECT_TRUE(v.is_array()) << text;
  return v;
}

// Requests of every kind: valid ones (including those only the DOM path accepts) and every
// invalid shape the DOM path names. Both paths must answer each alike.
const std::vector<std::string> kRequests = {
    R"({"id":"e1","route":{"actors":["a","b"],"current":0,"metadata":{"job":"j"}},)"
    R"("headers":{"traceparent":"t"},"payload":{"message":"hi","n":[1,2.5,null,true]}})",
    R"({"id":"e1","route":{"actors":["a"]},"payload":"plain string"})",
    R"({"route":{"actors":["a"]},"payload":{"no":"id"}})",
    R"({"id":"e1","route":{"actors":["Not_A_Valid_Name"]},"payload":1})",
    R"({"id":"e1","id":"e2","route":{"actors":["a"]},"payload":1})",
    R"({"id":"e1","route":{"actors":["a"],"extra":{"k":1}},"payload":1,"unknown":[1,{}]})",
    R"({"id":"e1","route":{"actors":["a"],"current":1},"payload":1})",
    R"({"id":"e1","route":{"actors":["a"]},"payload":{"a":[1 2]}})",
    R"({"id":"e1","route":{"actors":["a"]},"payload":{"a":1,}})",
    R"({"id":"e1","route":{"actors":["a"]},"payload":1,"unknown":{"x":}})",
    R"({"id":"e1","route":{"actors":["a"]},"payload":1} trailing)",
    "",
    "not json",
    "{\"id\":\"e1\",\"route\":{\"actors\":[\"a\"]},\"payload\":\"\xff\"}",
    R"([1,2])",
    R"({"route":{"actors":["a"]}})",
    R"({"payload":1})",
    R"({"id":"e1","payload":1,"route":[]})",
    R"({"id":"e1","payload":1,"route":{}})",
    R"({"id":"e1","payload":1,"route":{"actors":"a"}})",
    R"({"id":"e1","payload":1,"route":{"actors":[]}})",
    R"({"id":"e1","payload":1,"route":{"actors":["a",3]}})",
    R"({"id":"e1","payload":1,"route":{"actors":["a"],"current":"0"}})",
    R"({"id":"e1","payload":1,"route":{"actors":["a"],"current":1.0}})",
    R"({"id":"e1","payload":1,"route":{"actors":["a"],"current":true}})",
    R"({"id":"e1","payload":1,"route":{"actors":["a"],"current":-1}})",
    R"({"id":"e1","payload":1,"route":{"actors":["a"],"current":2}})",
    R"({"id":"e1","payload":1,"route":{"actors":["a"],"metadata":1}})",
    R"({"id":"e1","payload":1,"route":{"actors":["a"]},"headers":[]})",
    R"({"id":"e1","payload":1,"route":{"actors":["a"]},"headers":null})",
    R"({"payload":1,"route":{"actors":["a"]},"id":7})",
    R"({"id":"","payload":1,"route":{"actors":["a"]}})",
    std::string(R"({"id":"e1","route":{"actors":["a"]},"payload":)") + std::string(900, '[') +
        std::string(900, ']') + "}",
    std::string(R"({"id":"e1","route":{"actors":["a"]},"payload":)") + std::string(1200, '[') +
        std::string(1200, ']') + "}",
    // The depth limit at its edge: the envelope object takes one of the 1000 levels.
    std::string(R"({"id":"e1","route":{"actors":["a"]},"payload":)") + std::string(999, '[') +
        std::string(999, ']') + "}",
    std::string(R"({"id":"e1","route":{"actors":["a"]},"payload":)") + std::string(1000, '[') +
        std::string(1000, ']') + "}",
    std::string(R"({"id":"e1","route":{"actors":["a"]},"headers":{"x":)") + std::string(998, '[') +
        std::string(998, ']') + R"(},"payload":1})",
    std::string(R"({"id":"e1","route":{"actors":["a"]},"headers":{"x":)") + std::string(999, '[') +
        std::string(999, ']') + R"(},"payload":1})",
    // Text the top-level scan walks before validation: strings that mention "payload", escapes
    // before quotes, nested payload keys, broken values before or after a valid payload.
    R"({"x":""payload":2","route":{"actors":["a"]},"payload":1})",
    R"({"x":"a\","route":{"actors":["a"]},"payload":{"k":"\""}})",
    R"({"h":{"payload":5},"route":{"actors":["a"]},"payload":[{"payload":6}]})",
    R"({"x"y":1,"route":{"actors":["a"]},"payload":1})",
    R"({"payload":2,"route":{"actors":["a"]},"payload":1})",
    R"({"route":{"actors":["a"]},"payload":1,"payload":2})",
    R"({"a":[1,,2],"route":{"actors":["a"]},"payload":1})",
    R"({"a":"unterminated,"route":{"actors":["a"]},"payload":1})",
    R"({"a":tru,"route":{"actors":["a"]},"payload":1})",
    R"({"route":{"actors":["a"]},"payload":1 2})",
    R"({"route":{"actors":["a"]},"payload" : 1 , "id":"e"})",
    R"({"route":{"actors":["a"]},"payload":"x"})"
    "\n",
    R"({"route":{"actors":["a"]},"payload":{"a":1})",
    R"({"route":{"actors":["a"]},"payload":)",
    R"({"route":{"actors":["a"]},"payload")",
    R"({"route":{"actors":["a"]},"payload":1,})",
    R"({"route":{"actors":["a"]},"payload":1}})",
    R"({"route":{"actors":["a"]},"payload":"a)"
    "\x01"
    R"("})",
    R"({"route":{"actors":["a"]},"payload":1,"x":"\ud800"})",
    "{\"route\":{\"actors\":[\"a\"]},\"\xff\":1,\"payload\":1}",
    "{\"route\":{\"actors\":[\"a\"]},\"payload\":\"\xc3\xa9\xed\xa0\x80\"}",
    R"(  {"route":{"actors":["a"]},"payload":"")",
    R"({"route":{"actors":["a"]},"payload":-0.5e+3})",
    R"({"route":{"actors":["a"]},"payload":01})",
};

TEST(HandleRawRequest, AnswersEveryRequestExactlyLikeTheDomPath) {
  for (const std::string& request : kRequests) {
    json::value raw = parse_array(handle_raw_request(request, raw_passthrough));
    json::value dom = parse_array(handle_request(request, dom_echo));
    EXPECT_EQ(raw, dom) << "request: " << request.substr(0, 200);
  }
}

// Payloads with long runs of plain bytes (printable ASCII but quote and backslash), which the raw
// path's validation passes over inside strings once a piece given to its parser (64 KiB) ended in
// one: every byte that needs a decision placed around the first pieces' ends, right after them
// and further on; runs outside strings (blanks, digits, arrays of numbers); strings left open.
std::vector<std::string> long_run_payloads() {
  const std::vector<std::string> inserts = {
      "\\n",     "\\\"",           "\\\\",         "\\u00e9",
      "\\ud800", "\\ud83d\\ude00", "\\x",          "\\",
      "\"",      "\xc3\xa9",       "\xe2\x82\xac", "\xf0\x9f\x98\x80",
      "\xff",    "\xc3",           "\xed\xa0\x80", "\x01",
      "\t",      "\x7f",           "\"x\":\"",     "\",\"k\":1,\"s\":\""};
  constexpr std::size_t kPiece = 65536;
  std::vector<std::string> payloads;
  const std::size_t length = 2 * kPiece + 3000;
  // Where the run starts in each form: `"run"` at 1, `{"k":"run"...` at 6, a key at 2.
  for (std::size_t at : {0ul, kPiece - 7, kPiece - 6, kPiece - 5, kPiece - 2, kPiece - 1, kPiece,
                         kPiece + 1, kPiece + 40, 2 * kPiece - 6, 2 * kPiece + 100, length - 1}) {
    for (const std::string& insert : inserts) {
      std::string run(length, 'x');
      run.insert(at, insert);
      payloads.push_back("\"" + run + "\"");
      payloads.push_back("{\"k\":\"" + run + "\",\"n\":[1,\"" + run.substr(at) + "\"]}");
      payloads.push_back("{\"" + run + "\":1}");  // a key
    }
  }
  const std::string run(length, 'y');
  payloads.push_back("\"" + run);  // never closed
  payloads.push_back("\"" + run + "\\");
  payloads.push_back("[\"" + run + "\" , \"" + run + "\"]");
  payloads.push_back("[1" + std::string(length, ' ') + ",2]");  // blanks outside strings
  payloads.push_back(std::string(length, '7'));                 // one long number
  payloads.push_back("1" + std::string(length, '0') + ".5e-3");
  std::string numbers = "[";
  while (numbers.size() < length) numbers += "12,3.5,-4,";
  payloads.push_back(numbers + "0]");
  payloads.push_back(numbers + "]");  // a trailing comma
  payloads.push_back("[" + std::string(900, '[') + std::string(900, ']') + "]");
  payloads.push_back("\"\\n" + run + "\"");  // a run after an escape (the parser's own buffer)
  payloads.push_back("\"\xc3\xa9" + run + "\xc3\xa9\"");
  // Strings that end one by one across the pieces' ends.
  std::string strings = "[";
  while (strings.size() < length) strings += "\"" + std::string(997, 'z') + "\",";
  payloads.push_back(strings + "1]");
  return payloads;
}

TEST(HandleRawRequest, LongPlainRunsAreValidatedExactlyLikeTheDomPath) {
  std::size_t valid = 0;
  for (const std::string& payload : long_run_payloads()) {
    const std::string request =
        R"({"id":"e1","route":{"actors":["a","b"]},"payload":)" + payload + "}";
    bool viewed = false;
    json::value raw = parse_array(handle_raw_request(request, [&](std::string_view seen) {
      viewed = seen.data() >= request.data() && seen.data() < request.data() + request.size();
      return RawOutputs::view(seen);
    }));
    json::value dom = parse_array(handle_request(request, dom_echo));
    const bool accepted = dom.as_array()[0].as_object().contains("payload");
    if (!accepted) {
      ASSERT_EQ(raw, dom) << "payload: " << payload.substr(0, 300);
      continue;
    }
    // (Values are not compared: a long number's text and its DOM serialization differ.)
    ++valid;
    ASSERT_TRUE(raw.as_array()[0].as_object().contains("payload")) << raw;
    EXPECT_TRUE(viewed) << "a valid payload took the DOM fallback: " << payload.substr(0, 300);
  }
  EXPECT_GT(valid, 100u);  // the set holds both kinds
  EXPECT_GT(long_run_payloads().size() - valid, 100u);
}

TEST(HandleRawRequest, HandlerGetsAViewOfTheRequestBytesAndTheAnswerKeepsThemAsSent) {
  std::string request =
      R"({"id":"e1","route":{"actors":["a","b"],"current":0},"headers":{"h" : 1},)"
      R"("payload":{ "x" : 1.50, "s":"\u00e9" }})";
  std::string_view seen;
  std::string response = handle_raw_request(request, [&](std::string_view payload) {
    seen = payload;
    return RawOutputs::view(payload);
  });
  EXPECT_EQ(seen, R"({ "x" : 1.50, "s":"\u00e9" })");
  EXPECT_TRUE(seen.data() >= request.data() && seen.data() < request.data() + request.size())
      << "the payload was copied, not viewed";
  EXPECT_EQ(response, R"([{"payload":{ "x" : 1.50, "s":"\u00e9" },"route":{"actors":["a","b"],)"
                      R"("current":1},"headers":{"h":1}}])");
}

TEST(HandleRawRequest, FanOutAbortAndOwnedTexts) {
  const char* request = R"({"id":"e1","route":{"actors":["a","b"]},"payload":{"n":2}})";
  json::value fan = parse_array(handle_raw_request(request, [](std::string_view) {
    return RawOutputs::fan_out({R"({"i":0})", R"({"i":1})"});
  }));
  ASSERT_EQ(fan.as_array().size(), 2u);
  EXPECT_EQ(fan.as_array()[1].at("payload").at("i"), 1);
  EXPECT_EQ(fan.as_array()[1].at("route").at("current"), 1);
  EXPECT_EQ(handle_raw_request(request, [](std::string_view) { return RawOutputs::none(); }), "[]");
}

TEST(HandleRawRequest, InvalidOutputTextIsAnInvalidHandlerResult) {
  const char* request = R"({"id":"e1","route":{"actors":["a","b"]},"payload":1})";
  for (const char* bad : {"", "{\"a\":", "1 2", "\"\xff\""}) {
    json::value out =
        parse_array(handle_raw_request(request, [&](std::string_view) { return RawOutputs(bad); }));
    ASSERT_EQ(out.as_array().size(), 1u) << bad;
    EXPECT_EQ(out.as_array()[0].at("error"), "processing_error") << bad;
    EXPECT_EQ(out.as_array()[0].at("details").at("type"), "InvalidHandlerResult") << bad;
    std::string message(out.as_array()[0].at("details").at("message").as_string());
    EXPECT_NE(message.find("output of the raw handler is not one valid JSON value"),
              std::string::npos)
        << message;
  }
}

// PROTOCOL §3: a view of exactly the payload is answered "payload_unchanged" to a sidecar that
// takes it; anything else is sent whole.
TEST(HandleRawRequest, ViewOfThePayloadIsAnsweredUnchangedOnlyWhenTheSidecarTakesIt) {
  const std::string request =
      R"({"id":"e1","route":{"actors":["a","b"]},"headers":{"h":"v"},"payload":{"n":1.50}})";
  EXPECT_EQ(handle_raw_request(request, raw_passthrough, /*payload_unchanged_allowed=*/true),
            R"([{"payload_unchanged":true,"route":{"actors":["a","b"],"current":1},)"
            R"("headers":{"h":"v"}}])");
  EXPECT_EQ(handle_raw_request(request, raw_passthrough),
            R"([{"payload":{"n":1.50},"route":{"actors":["a","b"],"current":1},)"
            R"("headers":{"h":"v"}}])");
  // A part of the payload, or a copy, is not the payload.
  EXPECT_EQ(
      handle_raw_request(
          request, [](std::string_view payload) { return RawOutputs::view(payload.substr(5, 4)); },
          true)
          .find("payload_unchanged"),
      std::string::npos);
  EXPECT_EQ(
      handle_raw_request(
          request, [](std::string_view payload) { return RawOutputs(std::string(payload)); }, true)
          .find("payload_unchanged"),
      std::string::npos);
  // Fan-out: each output on its own.
  json::value fan = parse_array(handle_raw_request(
      request,
      [](std::string_view payload) {
        RawOutputs out = RawOutputs::view(payload);
        out.add("2");
        out.add_view(payload);
        return out;
      },
      true));
  ASSERT_EQ(fan.as_array().size(), 3u);
  EXPECT_EQ(fan.as_array()[0].at("payload_unchanged"), true);
  EXPECT_FALSE(fan.as_array()[0].as_object().contains("payload"));
  EXPECT_EQ(fan.as_array()[1].at("payload"), 2);
  EXPECT_EQ(fan.as_array()[2].at("payload_unchanged"), true);
  // A request the DOM parser handles (an escaped key) gives the handler a serialization of the
  // payload, not the request's bytes: sent whole.
  const std::string escaped =
      R"({"id":"e1","route":{"actors":["a","b"]},"pay\u006coad":{"n":1.50}})";
  json::value dom = parse_array(handle_raw_request(escaped, raw_passthrough, true));
  EXPECT_TRUE(dom.as_array()[0].as_object().contains("payload")) << dom;
}

TEST(HandleRawRequest, ExceptionBecomesProcessingError) {
  const char* request = R"({"id":"e1","route":{"actors":["a"]},"payload":1})";
  json::value out = parse_array(handle_raw_request(
      request, [](std::string_view) -> RawOutputs { throw std::runtime_error("boom"); }));
  EXPECT_EQ(out.as_array()[0].at("error"), "processing_error");
  EXPECT_EQ(out.as_array()[0].at("details").at("message"), "boom");
}

}  // namespace
}  // namespace asya
