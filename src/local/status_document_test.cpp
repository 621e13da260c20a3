#include "local/status_document.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <filesystem>
#include <fstream>

namespace asya::local {
namespace {

namespace json = boost::json;

StatusDocument full_document() {
  StatusDocument d;
  d.pid = 4242;
  d.state_dir = "/tmp/state";
  d.transport = "sqlite";
  d.queue_prefix = "asya-";
  d.ready = true;
  d.gateway = StatusGateway{"http://127.0.0.1:8080", "/tmp/routes.yaml", 4300, true};
  d.stopping = false;
  d.started = 1765000000;
  d.updated = 1765000000123;
  StatusActor worker;
  worker.name = "worker";
  worker.processes = {{0, 101, 102, true}, {1, 0, 104, false}};
  worker.replicas = {1, 1, 1, 2};
  worker.scaling = StatusScaling{true, 0, 8, 5};
  worker.queue = {"asya-worker", 7, 2, 1, 0.3, "broker does not answer"};
  worker.processed = 1000;
  worker.errors = 3;
  worker.rate = 12.5;
  worker.state = ActorActivity::kCrashLooping;
  worker.restarts = 4;
  worker.crash_streak = 3;
  worker.last_crash = "runtime exited with status 1";
  worker.last_crash_output = {"Traceback (most recent call last):", "ValueError: \"bad\""};
  worker.last_crash_at = 1765000001;
  StatusActor end;
  end.name = "happy-end";
  end.end_actor = true;
  end.queue = {"asya-happy-end", 0, 0, 0, std::nullopt, ""};
  end.rate = 0;
  end.state = ActorActivity::kIdle;
  d.actors = {worker, end};
  d.events = {"worker: scaling 0 -> 1 (7 ready, 0 in flight)"};
  return d;
}

TEST(StatusDocument, RoundTripsThroughItsTextWithEveryField) {
  const StatusDocument d = full_document();
  auto back = StatusDocument::parse(d.to_text());
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, d);
}

TEST(StatusDocument, RoundTripsWithoutTheOptionalFields) {
  StatusDocument d = full_document();
  d.gateway.reset();
  d.actors[0].scaling.reset();
  d.actors[0].queue.age_seconds.reset();
  d.actors[0].queue.stats_error.clear();
  d.actors[0].last_crash_at.reset();
  const json::object o = d.to_json();
  EXPECT_FALSE(o.contains("gateway"));
  const auto& queue = o.at("actors").at(0).at("queue").as_object();
  EXPECT_FALSE(queue.contains("age_seconds"));
  EXPECT_FALSE(queue.contains("stats_error"));
  auto back = StatusDocument::from_json(o);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, d);
}

TEST(StatusDocument, WritesTheFieldsItsReadersAndTestsUse) {
  const json::value v = json::parse(full_document().to_text());
  EXPECT_EQ(v.at("gateway").at("url"), "http://127.0.0.1:8080");
  EXPECT_EQ(v.at("actors").at(0).at("state"), "crash-looping");
  EXPECT_EQ(v.at("actors").at(0).at("replicas"),
            json::parse(R"({"ready": 1, "running": 1, "stopping": 1, "desired": 2})"));
  EXPECT_EQ(v.at("actors").at(0).at("queue").at("in_flight"), 2);
  EXPECT_TRUE(v.at("actors").at(1).at("rate").is_double());  // 0.0, not 0
  EXPECT_FALSE(v.at("actors").at(1).as_object().contains("scaling"));
}

TEST(StatusDocument, ErrorsNameTheField) {
  json::object o = full_document().to_json();
  o["actors"].as_array()[1].as_object()["queue"].as_object()["name"] = 3;
  auto bad = StatusDocument::from_json(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "actors[1].queue.name: expected a string, got 3");

  o = full_document().to_json();
  o.erase("transport");
  EXPECT_EQ(StatusDocument::from_json(o).error().message, "transport: missing");

  o = full_document().to_json();
  o["actors"].as_array()[0].as_object()["state"] = "sleeping";
  EXPECT_EQ(StatusDocument::from_json(o).error().message,
            "actors[0].state: \"sleeping\" is not a state; expected running, starting, idle, "
            "stopping or crash-looping");

  o = full_document().to_json();
  o["actors"].as_array()[0].as_object()["processed"] = -1;
  EXPECT_EQ(StatusDocument::from_json(o).error().message,
            "actors[0].processed: expected a count, got -1");

  EXPECT_EQ(StatusDocument::parse("[1]").error().message,
            "the document: expected an object, got an array");
  EXPECT_EQ(StatusDocument::parse("{").error().message.rfind("not JSON: ", 0), 0u);
}

TEST(StatusDocument, UnknownFieldsAreIgnored) {
  json::object o = full_document().to_json();
  o["added_by_a_newer_supervisor"] = true;
  auto back = StatusDocument::from_json(o);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, full_document());
}

TEST(StatusDocument, ReadNamesTheFileItCannotUse) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("status-document-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "status.json";
  EXPECT_EQ(read_status_document(file).error().message, "cannot read " + file.string());
  std::ofstream(file) << "{\"pid\": 1}";
  EXPECT_EQ(read_status_document(file).error().message, file.string() + ": state_dir: missing");
  std::ofstream(file) << full_document().to_text();
  auto read = read_status_document(file);
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_EQ(*read, full_document());
  std::filesystem::remove_all(dir);
}

TEST(StatusDocument, ActivityLabelsParseBack) {
  for (auto a : {ActorActivity::kRunning, ActorActivity::kStarting, ActorActivity::kIdle,
                 ActorActivity::kStopping, ActorActivity::kCrashLooping})
    EXPECT_EQ(parse_actor_activity(label(a)), a);
  EXPECT_EQ(parse_actor_activity("Running"), std::nullopt);
}

}  // namespace
}  // namespace asya::local
