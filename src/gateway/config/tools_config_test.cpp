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
  ASSERT_TRUE(whole_number.ok());
  // Forwarded as the integer 4, so the handler never receives a float for an integer parameter.
  EXPECT_TRUE(whole_number.value().at("count").is_int64());
  EXPECT_EQ(whole_number.value().at("count").as_int64(), 4);
}

TEST(ToolsConfig, IntegerParameterRefusesFractionsAndNumbersBeyond64Bits) {
  auto config = parse_tools(R"(
tools:
  - name: echo
    parameters:
      count: {type: integer}
      sizes: {type: array, items: {type: integer}}
    route: [echo]
)",
                            "routes.yaml");
  const Tool& echo = config.tools.at(0);
  auto huge = validate_arguments(echo, json::parse(R"({"count":1e30})").as_object());
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().message,
            "invalid argument count: expected an integer, got 1e+30 (outside the 64-bit integer "
            "range -9223372036854775808..18446744073709551615)");
  auto fraction = validate_arguments(echo, json::parse(R"({"count":8.1})").as_object());
  ASSERT_FALSE(fraction.ok());
  EXPECT_EQ(fraction.error().message,
            "invalid argument count: expected an integer, got 8.1 (it has a fractional part)");
  auto nested = validate_arguments(echo, json::parse(R"({"sizes":[1,2.5]})").as_object());
  ASSERT_FALSE(nested.ok());
  EXPECT_EQ(nested.error().message,
            "invalid argument sizes[1]: expected an integer, got 2.5 (it has a fractional part)");
  auto whole_items = validate_arguments(echo, json::parse(R"({"sizes":[1,2.0]})").as_object());
  ASSERT_TRUE(whole_items.ok());
  EXPECT_TRUE(whole_items.value().at("sizes").as_array().at(1).is_int64());
  auto largest =
      validate_arguments(echo, json::parse(R"({"count":18446744073709551615})").as_object());
  EXPECT_TRUE(largest.ok());
}

TEST(ToolsConfig, UnknownKeyIsAnErrorWithFileLineAndField) {
  EXPECT_EQ(
      load_error("tools:\n  - name: a\n    route: [x]\n    retries: 3\n"),
      "routes.yaml:4: tools[a].retries: unknown key (accepted: async, description, metadata, name, "
      "parameters, progress, route, task_support, timeout)");
}

TEST(ToolsConfig, TaskSupportDefaultsToOptionalForAsyncToolsOnly) {
  ToolsConfig config = parse_tools(
      "tools:\n"
      "  - {name: blocking, route: [x]}\n"
      "  - {name: background, route: [x], async: true}\n"
      "  - {name: never, route: [x], async: true, task_support: forbidden}\n"
      "  - {name: always, route: [x], task_support: required}\n",
      "routes.yaml");
  EXPECT_EQ(config.find("blocking")->task_support, TaskSupport::forbidden);
  EXPECT_EQ(config.find("background")->task_support, TaskSupport::optional);
  EXPECT_EQ(config.find("never")->task_support, TaskSupport::forbidden);
  EXPECT_EQ(config.find("always")->task_support, TaskSupport::required);
  EXPECT_STREQ(task_support_name(TaskSupport::required), "required");
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [x]\n    task_support: yes\n"),
            "routes.yaml:4: tools[a].task_support: invalid value \"yes\" (forbidden, optional or "
            "required)");
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

TEST(ToolsConfig, UnknownKeysAtEveryLevelAreErrors) {
  EXPECT_EQ(load_error("tool:\n  - name: a\n"),
            "routes.yaml:1: tool: unknown key (accepted: defaults, routes, tools)");
  EXPECT_EQ(load_error("defaults:\n  retries: 3\ntools: []\n"),
            "routes.yaml:2: defaults.retries: unknown key (accepted: progress, timeout)");
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [x]\n    parameters:\n      n: {type: "
                       "string, pattern: x}\n"),
            "routes.yaml:5: tools[a].parameters.n.pattern: unknown key (accepted: default, "
            "description, enum, items, options, properties, required, type)");
  EXPECT_EQ(
      load_error("tools:\n  - name: a\n    route: [x]\n    parameters:\n      o:\n        "
                 "type: object\n        properties:\n          k: {type: integer, min: 1}\n"),
      "routes.yaml:8: tools[a].parameters.o.properties.k.min: unknown key (accepted: default, "
      "description, enum, items, options, properties, required, type)");
}

TEST(ToolsConfig, OptionsIsAnAliasOfEnumAndTheirValuesAreChecked) {
  ToolsConfig config = parse_tools(
      "tools:\n  - name: a\n    route: [x]\n    parameters:\n      m: {type: string, enum: [x, "
      "y]}\n      n: {type: integer, options: [1, 2]}\n",
      "routes.yaml");
  json::object schema = input_schema(config.tools[0]);
  EXPECT_EQ(json::serialize(schema.at("properties").at("m").at("enum")), R"(["x","y"])");
  EXPECT_EQ(json::serialize(schema.at("properties").at("n").at("enum")), R"([1,2])");
  EXPECT_FALSE(schema.at("properties").as_object().at("n").as_object().contains("options"));
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [x]\n    parameters:\n      m: {type: "
                       "string, enum: [x], options: [y]}\n"),
            "routes.yaml:5: tools[a].parameters.m.options: give either enum or options, not both");
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [x]\n    parameters:\n      n: {type: "
                       "integer, options: [1, two]}\n"),
            "routes.yaml:5: tools[a].parameters.n.options[1]: expected an integer, got \"two\"");
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [x]\n    parameters:\n      n: {type: "
                       "integer, options: []}\n"),
            "routes.yaml:5: tools[a].parameters.n.options: expected a non-empty list of allowed "
            "values, got a list");
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [x]\n    parameters:\n      m: {type: "
                       "string, options: [x], default: z}\n"),
            "routes.yaml:5: tools[a].parameters.m.default: expected one of \"x\", got \"z\"");
}

TEST(ToolsConfig, MisplacedSchemaKeysAndBadStructuresAreErrors) {
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [x]\n    parameters:\n      n: {type: "
                       "string, items: {type: string}}\n"),
            "routes.yaml:5: tools[a].parameters.n.items: only allowed with type: array");
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [x]\n    parameters:\n      n: {type: "
                       "array, properties: {}}\n"),
            "routes.yaml:5: tools[a].parameters.n.properties: only allowed with type: object");
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [x]\n    parameters:\n      n: {type: "
                       "array, items: {type: string, required: true}}\n"),
            "routes.yaml:5: tools[a].parameters.n.items.required: not allowed on array items");
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [x]\n    parameters:\n      n: {type: "
                       "string, required: yes please}\n"),
            "routes.yaml:5: tools[a].parameters.n.required: expected true or false, got \"yes "
            "please\"");
  EXPECT_EQ(load_error("tools:\n  - route: [x]\n"),
            "routes.yaml:2: tools[0].name: missing (every tool needs a name)");
  EXPECT_EQ(load_error("tools:\n  - name: a\n"),
            "routes.yaml:2: tools[a].route: missing (a list of actors or a route template name)");
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [x, happy-end]\n").substr(0, 62),
            "routes.yaml:3: tools[a].route[1]: the end actor \"happy-end\" is");
  EXPECT_EQ(load_error("defaults:\n  timeout: -1\ntools: []\n").substr(0, 65),
            "routes.yaml:2: defaults.timeout: expected a positive number of se");
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [x]\n    metadata: [1]\n"),
            "routes.yaml:4: tools[a].metadata: expected a mapping of key to value");
  EXPECT_EQ(load_error("tools:\n  - name: 'a b'\n    route: [x]\n").substr(0, 55),
            "routes.yaml:2: tools[0].name: invalid tool name \"a b\" (");
}

TEST(ToolsConfig, ErrorsInADirectoryNameTheFileTheyAreIn) {
  auto dir =
      std::filesystem::temp_directory_path() / ("asya-tools-err-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "a.yaml") << "tools:\n  - name: first\n    route: [one]\n";
  std::ofstream(dir / "b.yaml") << "tools:\n  - name: second\n    route: [two]\n    colour: red\n";
  std::string error;
  try {
    load_tools(dir.string());
  } catch (const LoadError& e) {
    error = e.what();
  }
  std::ofstream(dir / "b.yaml") << "tools:\n  - name: first\n    route: [two]\n";
  std::string duplicate;
  try {
    load_tools(dir.string());
  } catch (const LoadError& e) {
    duplicate = e.what();
  }
  std::filesystem::remove_all(dir);
  EXPECT_EQ(error, (dir / "b.yaml").string() +
                       ":4: tools[second].colour: unknown key (accepted: async, description, "
                       "metadata, name, parameters, progress, route, task_support, timeout)");
  EXPECT_EQ(duplicate,
            (dir / "b.yaml").string() + ":2: tools[first].name: tool \"first\" is defined twice");
}

TEST(ToolsConfig, EveryMistakeIsReportedEachWithFileLineAndField) {
  EXPECT_EQ(load_error("defaults:\n"
                       "  timeout: soon\n"
                       "  colour: red\n"
                       "routes:\n"
                       "  broken: [Bad_Actor]\n"
                       "tools:\n"
                       "  - name: a\n"
                       "    route: [x]\n"
                       "    async: maybe\n"
                       "    retries: 3\n"
                       "    parameters:\n"
                       "      n: {type: int}\n"
                       "      m: {type: integer, default: x}\n"
                       "  - name: 'b c'\n"
                       "    route: broken\n"
                       "  - name: a\n"
                       "    route: nope\n"),
            "routes.yaml:3: defaults.colour: unknown key (accepted: progress, timeout)\n"
            "routes.yaml:2: defaults.timeout: expected a positive number of seconds or a duration "
            "such as 90s or 10m, got \"soon\"\n"
            "routes.yaml:5: routes.broken[0]: invalid actor name \"Bad_Actor\" (lowercase "
            "letters, digits and '-', starting and ending with a letter or digit, at most 63 "
            "characters)\n"
            "routes.yaml:10: tools[a].retries: unknown key (accepted: async, description, "
            "metadata, name, parameters, progress, route, task_support, timeout)\n"
            "routes.yaml:12: tools[a].parameters.n.type: unknown type \"int\" (accepted: string, "
            "number, integer, boolean, array, object)\n"
            "routes.yaml:13: tools[a].parameters.m.default: expected an integer, got \"x\"\n"
            "routes.yaml:9: tools[a].async: expected true or false, got \"maybe\"\n"
            "routes.yaml:14: tools[1].name: invalid tool name \"b c\" (1 to 128 of letters, "
            "digits, '_', '-', '.')\n"
            "routes.yaml:16: tools[a].name: tool \"a\" is defined twice\n"
            "routes.yaml:17: tools[a].route: unknown route template \"nope\" (defined: none)");
}

TEST(ToolsConfig, AliasBombAndDeepNestingAreRefusedBeforeReading) {
  std::string bomb = "routes:\n  a0: &a0 [x, x, x, x, x, x, x, x, x]\n";
  for (int level = 1; level < 9; ++level) {
    std::string name = "a", alias = "*a";
    name.append(std::to_string(level));
    alias.append(std::to_string(level - 1));
    bomb.append("  ").append(name).append(": &").append(name).append(" [");
    for (int i = 0; i < 9; ++i) bomb.append(i ? ", " : "").append(alias);
    bomb.append("]\n");
  }
  std::string error = load_error(bomb);
  EXPECT_EQ(error.rfind("routes.yaml:", 0), 0u) << error;
  EXPECT_NE(error.find("YAML aliases expand to more than 100000 nodes"), std::string::npos)
      << error;
  // A tool's metadata that contains itself would never finish converting to JSON.
  error = load_error("tools:\n  - &t {name: a, route: [x], metadata: {self: *t}}\n");
  EXPECT_EQ(error,
            "routes.yaml:2: alias *t is used inside the node it names (a cycle); an alias may "
            "only repeat a node that is complete before it");
  error =
      load_error("tools:\n  - name: a\n    route: [x]\n    metadata: {k: " + std::string(300, '[') +
                 std::string(300, ']') + "}\n");
  EXPECT_EQ(error,
            "routes.yaml:4: nested too deeply: depth 101 exceeds the limit of 100 mappings and "
            "lists inside each other");
}

TEST(ToolsConfig, ANumberNoJsonNumberHoldsIsRefusedNamingTheField) {
  // std::stod threw std::out_of_range out of parse_tools for 1e999 (found by fuzzing); the text
  // was then kept as a string. Since the one YAML -> JSON conversion (common/yaml_json) a number
  // is never silently turned into text or rounded: quote it to mean text.
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [x]\n    metadata: {big: 1e999}\n"),
            "routes.yaml:4: tools[a].metadata.big: the number 1e999 is too large or too close to "
            "zero for a double; quote it to keep it as text");
  EXPECT_EQ(load_error("tools:\n  - name: a\n    route: [x]\n    parameters:\n      n:\n"
                       "        type: integer\n        default: 18446744073709551616\n"),
            "routes.yaml:7: tools[a].parameters.n.default: the integer 18446744073709551616 is "
            "outside the 64-bit range -9223372036854775808..18446744073709551615; quote it to keep "
            "it as text");
  ToolsConfig config = parse_tools(
      "tools:\n  - name: a\n    route: [x]\n    metadata: {big: '1e999', max: "
      "18446744073709551615}\n",
      "r.yaml");
  EXPECT_EQ(json::serialize(config.tools[0].metadata),
            R"({"big":"1e999","max":18446744073709551615})");
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
