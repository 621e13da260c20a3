// The A2A mapping without sockets: message parts -> tool arguments, job -> Task.
#include "gateway/a2a/a2a.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace asya::gateway::a2a {
namespace {

namespace json = boost::json;

Tool tool_with(std::vector<Parameter> parameters) {
  Tool tool;
  tool.name = "summarize";
  tool.parameters = std::move(parameters);
  tool.actors = {"summarizer"};
  return tool;
}

Parameter string_parameter(std::string name, bool required) {
  Parameter p;
  p.name = std::move(name);
  p.required = required;
  return p;
}

json::object message(json::array parts) {
  return json::object{{"kind", "message"}, {"parts", std::move(parts)}};
}

TEST(MessageArguments, ADataPartIsTheArguments) {
  Tool tool = tool_with({string_parameter("text", true), string_parameter("style", false)});
  auto args = message_arguments(
      tool,
      message({json::object{{"kind", "text"}, {"text", "ignored"}},
               json::object{{"kind", "data"}, {"data", {{"text", "hi"}, {"style", "short"}}}}}));
  ASSERT_TRUE(args.ok()) << args.error().message;
  EXPECT_EQ(args.value(), (json::object{{"text", "hi"}, {"style", "short"}}));
}

TEST(MessageArguments, TextIsJsonOrTheOnlyRequiredStringParameter) {
  Tool tool = tool_with({string_parameter("text", true), string_parameter("style", false)});
  auto object = message_arguments(
      tool, message({json::object{{"kind", "text"}, {"text", R"({"text": "a"})"}}}));
  ASSERT_TRUE(object.ok());
  EXPECT_EQ(object.value(), (json::object{{"text", "a"}}));
  auto plain =
      message_arguments(tool, message({json::object{{"kind", "text"}, {"text", "plain words"}}}));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain.value(), (json::object{{"text", "plain words"}}));
}

TEST(MessageArguments, PlainTextForSeveralRequiredParametersSaysWhatToSend) {
  Tool tool = tool_with({string_parameter("text", true), string_parameter("style", true)});
  auto args = message_arguments(tool, message({json::object{{"kind", "text"}, {"text", "words"}}}));
  ASSERT_FALSE(args.ok());
  EXPECT_NE(args.error().message.find("data part"), std::string::npos) << args.error().message;
  EXPECT_NE(args.error().message.find("\"summarize\""), std::string::npos);
  EXPECT_FALSE(message_arguments(tool, message({})).ok());
  auto not_object = message_arguments(tool, message({json::object{{"kind", "data"}, {"data", 5}}}));
  ASSERT_FALSE(not_object.ok());
  EXPECT_NE(not_object.error().message.find("must be an object"), std::string::npos);
}

TEST(TaskJson, StatesMapAndTheResultIsAnArtifact) {
  Job job;
  job.id = "job-1";
  job.tool = "summarize";
  job.status = JobStatus::running;
  EXPECT_EQ(task_json(job).at("status").at("state"), "working");
  EXPECT_FALSE(task_json(job).contains("artifacts"));
  job.status = JobStatus::succeeded;
  job.result_json = "[1,2]";
  json::object task = task_json(job);
  EXPECT_EQ(task.at("id"), "job-1");
  EXPECT_EQ(task.at("contextId"), "job-1");
  EXPECT_EQ(task.at("status").at("state"), "completed");
  const auto& part = task.at("artifacts").as_array()[0].at("parts").as_array()[0];
  EXPECT_EQ(part.at("kind"), "data");
  EXPECT_EQ(part.at("data"), (json::object{{"result", json::array{1, 2}}}));  // wrapped
  job.status = JobStatus::failed;
  job.error = "boom";
  task = task_json(job);
  EXPECT_EQ(task.at("status").at("state"), "failed");
  EXPECT_EQ(task.at("status").at("message").at("parts").as_array()[0].at("text"), "boom");
  EXPECT_EQ(task_state(JobStatus::pending), "submitted");
}

}  // namespace
}  // namespace asya::gateway::a2a
