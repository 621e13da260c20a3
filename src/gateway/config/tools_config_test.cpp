#include "gateway/config/tools_config.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>

namespace asya::gateway {
namespace {

namespace json = boost::json;

std::string load_error(const std::string& yaml) {
  try {
    parse_tools(yaml, "routes.yaml");
  } catch (const LoadError& e) {
    return e.what();
  }
  return "";
}

const char* kFull = R"(
defaults:
  progress: true
  timeout: 300
routes:
  ml: [prep, infer, post]
tools:
  - name: echo
    description: Echo back
    parameters:
      message: {type: string, required: true, description: Text}
      count: {type: integer, default: 3}
      ratio: {type: number}
      loud: {type: boolean, default: false}
      mode: {type: string, options: [fast, slow], default: fast}
      tags: {type: array, items: {type: string}}
      opts:
        type: object
        properties:
          depth: {type: integer, required: true}
    route: [echo]
  - name: classify
    route: ml
    timeout: 10m
    progress: false
    async: true
    metadata: {team: nlp}
)";

TEST(ToolsConfig, ParsesPublishedFormatWithTemplatesDefaultsAndAsync) {
  ToolsConfig config = parse_tools(kFull, "routes.yaml");
  ASSERT_EQ(config.tools.size(), 2u);
  const Tool& echo = config.tools[0];
  EXPECT_EQ(echo.name, "echo");
  EXPECT_EQ(echo.actors, std::vector<std::string>{"echo"});
  EXPECT_EQ(echo.timeout, std::chrono::seconds(300));
  EXPECT_TRUE(echo.progress);
  EXPECT_FALSE(echo.async);
  ASSERT_EQ(echo.parameters.size(), 7u);
  EXPECT_EQ(echo.parameters[4].enum_values.size(), 2u);
  const Tool* classify = config.find("classify");
  ASSERT_NE(classify, nullptr);
  EXPECT_EQ(classify->actors, (std::vector<std::string>{"prep", "infer", "post"}));
  EXPECT_EQ(classify->timeout, std::chrono::minutes(10));
  EXPECT_FALSE(classify->progress);
  EXPECT_TRUE(classify->async);
  EXPECT_EQ(classify->metadata.at("team"), "nlp");
}

TEST(ToolsConfig, InputSchemaHasTypesEnumsDefaultsItemsAndRequired) {
  ToolsConfig config = parse_tools(kFull, "routes.yaml");
  json::object schema = input_schema(config.tools[0]);
  EXPECT_EQ(json::serialize(schema.at("required")), R"(["message"])");
  const auto& props = schema.at("properties").as_object();
  EXPECT_EQ(props.at("count").at("type"), "integer");
  EXPECT_EQ(props.at("count").at("default"), 3);
  EXPECT_EQ(props.at("ratio").at("type"), "number");
  EXPECT_EQ(props.at("loud").at("default"), false);
  EXPECT_EQ(json::serialize(props.at("mode").at("enum")), R"(["fast","slow"])");
  EXPECT_EQ(props.at("tags").at("items").at("type"), "string");
  EXPECT_EQ(props.at("opts").at("type"), "object");
  EXPECT_EQ(json::serialize(props.at("opts").at("required")), R"(["depth"])");
  EXPECT_EQ(schema.at("additionalProperties"), false);
}

TEST(ToolsConfig, ValidationAppliesDefaultsAndNamesTheBadArgument) {
  ToolsConfig config = parse_tools(kFull, "routes.yaml");
  const Tool& echo = config.tools[0];
  auto ok = validate_arguments(echo, json::parse(R"({"message":"hi"})").as_object());
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok.value().at("count"), 3);
  EXPECT_EQ(ok.value().at("mode"), "fast");

  auto missing = validate_arguments(echo, json::object{});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message, R"(missing required argument "message" (string))");

  auto bad_int =
      validate_arguments(echo, json::parse(R"({"message":"x","count":"many"})").as_object());
  ASSERT_FALSE(bad_int.ok());
  EXPECT_EQ(bad_int.error().message, R"(invalid argument count: expected an integer, got "many")");

  auto bad_enum =
      validate_arguments(echo, json::parse(R"({"message":"x","mode":"turbo"})").as_object());
  ASSERT_FALSE(bad_enum.ok());
  EXPECT_EQ(bad_enum.error().message,
            R"(invalid argument mode: expected one of "fast", "slow", got "turbo")");

  auto bad_item =
      validate_arguments(echo, json::parse(R"({"message":"x","tags":["a",2]})").as_object());
  ASSERT_FALSE(bad_item.ok());
  EXPECT_EQ(bad_item.error().message, R"(invalid argument tags[1]: expected a string, got 2)");

  auto nested = validate_arguments(echo, json::parse(R"({"message":"x","opts":{}})").as_object());
  ASSERT_FALSE(nested.ok());
  EXPECT_EQ(nested.error().message, R"(invalid argument opts: missing required property "depth")");

  auto unknown = validate_arguments(echo, json::parse(R"({"message":"x","colour":1})").as_object());
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find(R"(unknown argument "colour")"), std::string::npos);

  auto whole_number =
      validate_arguments(echo, json::parse(R"({"message":"x","count":4.0})").as_object());
  EXPECT_TRUE(whole_number.ok());
}

TEST(ToolsConfig, UnknownKeyIsAnErrorWithFileLineAndField) {
  EXPECT_EQ(
      load_error("tools:\n  - name: a\n    route: [x]\n    retries: 3\n"),
      "routes.yaml:4: tools[a].retries: unknown key (accepted: async, description, metadata, name, "
      "parameters, progress, route, timeout)");
}

TEST(ToolsConfig, InvalidValuesAreErrorsWithFileLineAndField) {
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [x]\n    timeout: soon\n"),
            "routes.yaml:4: tools[a].timeout: expected a positive number of seconds or a duration "
            "such as 90s "
            "or 10m, got \"soon\"");
  EXPECT_EQ(
      load_error("tools:\n  - name: a\n    route: [x]\n    parameters:\n      n: {type: int}\n"),
      "routes.yaml:5: tools[a].parameters.n.type: unknown type \"int\" (accepted: string, number, "
      "integer, "
      "boolean, array, object)");
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: nope\n"),
            "routes.yaml:3: tools[a].route: unknown route template \"nope\" (defined: none)");
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [Bad_Actor]\n").substr(0, 43),
            "routes.yaml:3: tools[a].route[0]: invalid a");
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [x]\n    parameters:\n      n: {type: "
                       "integer, default: x}\n"),
            "routes.yaml:5: tools[a].parameters.n.default: expected an integer, got \"x\"");
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [x]\n  - name: a\n    route: [y]\n"),
            "routes.yaml:4: tools[a].name: tool \"a\" is defined twice");
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [x]\n    async: maybe\n"),
            "routes.yaml:4: tools[a].async: expected true or false, got \"maybe\"");
  EXPECT_EQ(load_error("tools: [\n"),
            "routes.yaml:2: not valid YAML: end of sequence flow not found");
}

TEST(ToolsConfig, LoadsEveryYamlFileOfADirectory) {
  auto dir = std::filesystem::temp_directory_path() / ("asya-tools-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "a.yaml")
      << "routes:\n  pipe: [one, two]\ntools:\n  - name: first\n    route: pipe\n";
  std::ofstream(dir / "b.yml") << "tools:\n  - name: second\n    route: pipe\n";
  std::ofstream(dir / "ignored.txt") << "not yaml";
  ToolsConfig config = load_tools(dir.string());
  std::filesystem::remove_all(dir);
  ASSERT_EQ(config.tools.size(), 2u);
  EXPECT_EQ(config.tools[1].actors, (std::vector<std::string>{"one", "two"}));
}

}  // namespace
}  // namespace asya::gateway
