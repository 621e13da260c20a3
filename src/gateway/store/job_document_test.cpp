// The job document written as text: the same bytes as the json::object it replaced serialized
// to, read back whole, for plain and hostile field values.
#include "gateway/store/job_document.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace asya::gateway {
namespace {

namespace json = boost::json;

// The writer job_to_document replaced (a json::object, then serialize), kept as the reference.
std::string reference_document(const Job& job) {
  auto strings = [](const std::vector<std::string>& values) {
    json::array out;
    for (const auto& v : values) out.emplace_back(v);
    return out;
  };
  json::object o;
  o["id"] = job.id;
  o["tool"] = job.tool;
  o["status"] = job_status_name(job.status);
  o["message"] = job.message;
  o["actors"] = strings(job.actors);
  o["current_actor_idx"] = job.current_actor_idx;
  o["progress_percent"] = job.progress_percent;
  o["actors_completed"] = job.actors_completed;
  o["route"] = job.route_json;
  o["payload"] = job.payload_json;
  o["result"] = job.result_json;
  o["error"] = job.error;
  o["error_details"] = job.error_details_json;
  o["failed_actor"] = job.failed_actor;
  json::array branches;
  for (const auto& b : job.branches) {
    branches.push_back(json::object{{"id", b.id},
                                    {"parent_id", b.parent_id},
                                    {"status", job_status_name(b.status)},
                                    {"result", b.result_json},
                                    {"error", b.error},
                                    {"error_details", b.error_details_json},
                                    {"failed_actor", b.failed_actor}});
  }
  o["branches"] = std::move(branches);
  o["created_ms"] = to_ms(job.created_at);
  o["updated_ms"] = to_ms(job.updated_at);
  if (job.deadline) o["deadline_ms"] = to_ms(*job.deadline);
  o["last_sequence"] = job.last_sequence;
  if (!job.owner.empty()) o["owner"] = job.owner;
  if (!job.trace_id.empty()) o["trace_id"] = job.trace_id;
  if (job.task) o["task"] = true;
  if (job.ttl_ms) o["ttl_ms"] = *job.ttl_ms;
  return json::serialize(o);
}

Job plain_job() {
  Job job;
  job.id = "0b6f7a52-3d1e-4c55-9a57-2f1c0f3e9d10";
  job.tool = "echo";
  job.status = JobStatus::running;
  job.message = "processing by echo";
  job.actors = {"echo"};
  job.current_actor_idx = 0;
  job.progress_percent = 50;
  job.route_json = R"({"actors":["echo"],"current":0})";
  job.payload_json = R"({"message":"hi"})";
  job.branches.push_back(Branch{job.id, "", JobStatus::running, "", ""});
  job.created_at = from_ms(1'796'000'000'123);
  job.updated_at = from_ms(1'796'000'000'456);
  job.last_sequence = 3;
  return job;
}

// Every text field holds quotes, backslashes, control characters, non-ASCII and markup; every
// optional field is set; numbers at their extremes.
Job hostile_job() {
  const std::string nasty = std::string("q\"b\\s/ \n\r\t\b\f\x01\x1f\x7f caf\xc3\xa9 </script>") +
                            std::string("\0z", 2) + "\xf0\x9f\x98\x80 {\"x\":[1,]}";
  Job job = plain_job();
  job.id = "job" + nasty;
  job.tool = nasty;
  job.status = JobStatus::failed;
  job.message = nasty;
  job.actors = {nasty, "", "b"};
  job.current_actor_idx = -1;
  job.progress_percent = 2'147'483'647;
  job.actors_completed = -2'147'483'647 - 1;
  job.route_json = nasty;
  job.payload_json = std::string(100'000, '\\') + nasty;
  job.result_json = nasty;
  job.error = nasty;
  job.error_details_json = nasty;
  job.failed_actor = nasty;
  job.branches.push_back(Branch{nasty, job.id, JobStatus::failed, nasty, nasty, nasty, nasty});
  job.branches.push_back(Branch{job.id + "-2", job.id, JobStatus::succeeded, "[1,2]", ""});
  job.created_at = from_ms(-1);
  job.updated_at = from_ms(4'102'444'800'000);
  job.deadline = from_ms(0);
  job.last_sequence = 9'223'372'036'854'775'807;
  job.owner = nasty;
  job.trace_id = nasty;
  job.task = true;
  job.ttl_ms = -9'223'372'036'854'775'807 - 1;
  return job;
}

void expect_same_job(const Job& a, const Job& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.tool, b.tool);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.message, b.message);
  EXPECT_EQ(a.actors, b.actors);
  EXPECT_EQ(a.current_actor_idx, b.current_actor_idx);
  EXPECT_EQ(a.progress_percent, b.progress_percent);
  EXPECT_EQ(a.actors_completed, b.actors_completed);
  EXPECT_EQ(a.route_json, b.route_json);
  EXPECT_EQ(a.payload_json, b.payload_json);
  EXPECT_EQ(a.result_json, b.result_json);
  EXPECT_EQ(a.error, b.error);
  EXPECT_EQ(a.error_details_json, b.error_details_json);
  EXPECT_EQ(a.failed_actor, b.failed_actor);
  ASSERT_EQ(a.branches.size(), b.branches.size());
  for (std::size_t i = 0; i < a.branches.size(); ++i) {
    EXPECT_EQ(a.branches[i].id, b.branches[i].id);
    EXPECT_EQ(a.branches[i].parent_id, b.branches[i].parent_id);
    EXPECT_EQ(a.branches[i].status, b.branches[i].status);
    EXPECT_EQ(a.branches[i].result_json, b.branches[i].result_json);
    EXPECT_EQ(a.branches[i].error, b.branches[i].error);
    EXPECT_EQ(a.branches[i].error_details_json, b.branches[i].error_details_json);
    EXPECT_EQ(a.branches[i].failed_actor, b.branches[i].failed_actor);
  }
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.updated_at, b.updated_at);
  EXPECT_EQ(a.deadline, b.deadline);
  EXPECT_EQ(a.last_sequence, b.last_sequence);
  EXPECT_EQ(a.owner, b.owner);
  EXPECT_EQ(a.trace_id, b.trace_id);
  EXPECT_EQ(a.task, b.task);
  EXPECT_EQ(a.ttl_ms, b.ttl_ms);
}

TEST(JobDocument, IsTheTextTheDomWriterWroteByteForByte) {
  EXPECT_EQ(job_to_document(plain_job()), reference_document(plain_job()));
  EXPECT_EQ(job_to_document(hostile_job()), reference_document(hostile_job()));
  Job no_branches = plain_job();
  no_branches.branches.clear();
  no_branches.actors.clear();
  EXPECT_EQ(job_to_document(no_branches), reference_document(no_branches));
}

TEST(JobDocument, HostileTextIsOneValidDocumentThatReadsBackWhole) {
  const Job job = hostile_job();
  const std::string text = job_to_document(job);
  boost::system::error_code ec;
  json::value parsed = json::parse(text, ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(parsed.is_object());
  EXPECT_EQ(parsed.as_object().size(), 23u);  // every field once, no field injected by a value
  expect_same_job(job_from_document(text), job);
  expect_same_job(job_from_document(job_to_document(plain_job())), plain_job());
}

TEST(JobDocument, AReaderStillReadsADocumentOfAnOlderWriter) {
  // Documents already in a store were written by the DOM writer (and older ones lack fields).
  expect_same_job(job_from_document(reference_document(hostile_job())), hostile_job());
  const Job old = job_from_document(
      R"({"id":"j","tool":"t","status":"pending","message":"created","actors":["a"],)"
      R"("branches":[{"id":"j","parent_id":"","status":"pending","result":"","error":""}]})");
  EXPECT_EQ(old.id, "j");
  EXPECT_EQ(old.status, JobStatus::pending);
  EXPECT_EQ(old.actors, std::vector<std::string>{"a"});
  ASSERT_EQ(old.branches.size(), 1u);
  EXPECT_EQ(old.branches[0].failed_actor, "");
  EXPECT_FALSE(old.deadline);
  EXPECT_FALSE(old.task);
}

}  // namespace
}  // namespace asya::gateway
