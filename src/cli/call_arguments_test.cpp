#include "cli/call_arguments.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace asya::cli {
namespace {

namespace json = boost::json;

// The schema the gateway advertises (tools_config.cpp input_schema) for a tool with every type.
json::object schema() {
  return json::parse(R"({"type":"object","properties":{
      "text":{"type":"string","description":"What to count"},
      "n":{"type":"integer","default":1},
      "ratio":{"type":"number"},
      "flag":{"type":"boolean"},
      "tags":{"type":"array","items":{"type":"string"}},
      "opts":{"type":"object"},
      "mode":{"type":"string","enum":["fast","slow"]}},
    "required":["text"],"additionalProperties":false})")
      .as_object();
}

Result<json::object> build(std::vector<std::string> words, std::string args_json = "") {
  return build_call_arguments(schema(), "wordcount", args_json, words);
}

TEST(BuildCallArguments, ValuesAreReadByTheParametersType) {
  auto built = build({"text=5", "n=5", "ratio=0.5", "flag=true", R"(tags=["a","b"])",
                      R"(opts={"k":1})", "mode=fast"});
  ASSERT_TRUE(built.ok()) << built.error().message;
  EXPECT_EQ(*built, json::parse(R"({"text":"5","n":5,"ratio":0.5,"flag":true,"tags":["a","b"],
                                    "opts":{"k":1},"mode":"fast"})"));
}

TEST(BuildCallArguments, AStringKeepsItsTextExactly) {
  for (const char* text : {"true", "null", "{\"a\":1}", "", "a=b", " 7 "}) {
    auto built = build({std::string("text=") + text});
    ASSERT_TRUE(built.ok()) << built.error().message;
    EXPECT_EQ(built->at("text"), json::string(text)) << text;
  }
}

TEST(BuildCallArguments, AValueOfTheWrongTypeNamesTheParameterTypeAndAnExample) {
  auto built = build({"n=abc"});
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.error().message,
            R"(argument "n=abc": parameter "n" of tool "wordcount" takes an integer, and "abc" )"
            R"(is not one (e.g. n=3))");
  EXPECT_NE(build({"n=1.5"}).error().message.find("takes an integer"), std::string::npos);
  EXPECT_NE(build({"flag=yes"}).error().message.find("takes a boolean"), std::string::npos);
  EXPECT_NE(build({"ratio=x"}).error().message.find("takes a number"), std::string::npos);
  EXPECT_NE(build({"tags=a,b"}).error().message.find(R"(takes an array, and "a,b")"),
            std::string::npos);
  EXPECT_NE(build({"opts=[1]"}).error().message.find("takes an object"), std::string::npos);
}

TEST(BuildCallArguments, ColonEqualsPassesJsonAsIs) {
  auto built = build({"text:=\"quoted\"", "n:=5", "tags:=[1,2]"});
  ASSERT_TRUE(built.ok()) << built.error().message;
  EXPECT_EQ(*built, json::parse(R"({"text":"quoted","n":5,"tags":[1,2]})"));
  auto bad = build({"tags:=[1,"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find(R"(argument "tags:=[1,": "[1," is not valid JSON)"),
            std::string::npos)
      << bad.error().message;
}

TEST(BuildCallArguments, UnknownKeysAndMalformedWordsAreRefused) {
  auto unknown = build({"txt=hi"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().message,
            R"(argument "txt=hi": tool "wordcount" has no parameter "txt" (its parameters: )"
            "text, n, ratio, flag, tags, opts, mode; `asya call --list` shows them)");
  EXPECT_EQ(build({"novalue"}).error().message,
            R"(argument "novalue": expected key=value (or key:=JSON))");
  EXPECT_FALSE(build({"=x"}).ok());
  EXPECT_FALSE(build({":=1"}).ok());
}

TEST(BuildCallArguments, ArgsJsonComesFirstAndWordsOverrideIt) {
  auto built = build({"n=2"}, R"({"text":"a","n":1})");
  ASSERT_TRUE(built.ok()) << built.error().message;
  EXPECT_EQ(*built, json::parse(R"({"text":"a","n":2})"));
  EXPECT_FALSE(build({}, "[1]").ok());
}

TEST(BuildCallArguments, WithoutATypeAValueIsJsonWhenItParsesElseAString) {
  json::object open = json::parse(R"({"type":"object","properties":{"any":{}}})").as_object();
  auto built = build_call_arguments(open, "t", "", {"any=5", "other=x", "more=[1]"});
  ASSERT_TRUE(built.ok()) << built.error().message;
  EXPECT_EQ(*built, json::parse(R"({"any":5,"other":"x","more":[1]})"));
}

TEST(FormatToolList, NamesDescriptionsAndOneLinePerParameter) {
  json::array tools{
      json::object{
          {"name", "wordcount"}, {"description", "Count the words"}, {"inputSchema", schema()}},
      json::object{{"name", "ping"},
                   {"description", ""},
                   {"inputSchema", json::parse(R"({"type":"object","properties":{}})")}}};
  EXPECT_EQ(format_tool_list(tools),
            "wordcount  Count the words\n"
            "    text=<string>   required. What to count\n"
            "    n=<integer>     default 1\n"
            "    ratio=<number>\n"
            "    flag=<boolean>\n"
            "    tags=<array>\n"
            "    opts=<object>\n"
            "    mode=fast|slow\n"
            "ping\n"
            "    (no parameters)\n");
  EXPECT_EQ(format_tool_list(json::array{}), "no tools\n");
}

}  // namespace
}  // namespace asya::cli
