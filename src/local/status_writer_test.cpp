#include "local/status_writer.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

namespace asya::local {
namespace {

namespace fs = std::filesystem;

TEST(StatusWriter, AFailureToWriteIsReportedOnceAndItsEndOnce) {
  fs::path dir = fs::temp_directory_path() / ("status_writer_test." + std::to_string(::getpid()));
  fs::remove_all(dir);
  StatusWriter writer(dir / "status.json");
  StatusDocument doc;
  doc.transport = "sqlite";
  std::string first = writer.write(doc);  // the folder does not exist yet
  EXPECT_NE(first.find("cannot write status.json"), std::string::npos) << first;
  EXPECT_EQ(writer.write(doc), "");  // the same cause: said once
  fs::create_directories(dir);
  EXPECT_EQ(writer.write(doc), "status.json is written again");
  EXPECT_EQ(writer.write(doc), "");
  std::string text;
  ASSERT_TRUE(read_file(dir / "status.json", text));
  auto parsed = StatusDocument::parse(text);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->transport, "sqlite");
  fs::remove_all(dir);
}

TEST(MakeStatusDocument, CountsReplicasAndCrashLoopsOfEachActor) {
  SupervisorOptions options;
  options.transport = "sqlite";
  RestartPolicy policy;
  policy.crash_loop_after = 1;
  std::vector<std::unique_ptr<ActorState>> actors;
  manifest::Actor spec;
  spec.name = "echo";
  actors.push_back(std::make_unique<ActorState>(spec, false, policy));
  auto& echo = *actors.back();
  echo.desired = 2;
  echo.retired_processed = 5;
  echo.retired_errors = 1;
  auto now = SteadyClock::now();
  echo.streak.record_crash(now, now);
  echo.last_crash = "runtime exited with status 1";
  echo.replicas.push_back(std::make_unique<Replica>());
  echo.replicas.back()->processed = 3;
  echo.replicas.back()->phase = ReplicaPhase::kStoppingSidecar;
  std::deque<std::string> events{"one", "two"};
  SupervisorSnapshot snapshot{options, actors, events, "asya-", true, false, 0, {}};
  StatusDocument doc = make_status_document(snapshot, now);
  ASSERT_EQ(doc.actors.size(), 1u);
  const StatusActor& a = doc.actors[0];
  EXPECT_EQ(a.queue.name, "asya-echo");
  EXPECT_EQ(a.processed, 8u);
  EXPECT_EQ(a.errors, 1u);
  EXPECT_EQ(a.replicas.running, 0);
  EXPECT_EQ(a.replicas.stopping, 1);
  EXPECT_EQ(a.replicas.desired, 2);
  EXPECT_EQ(a.state, ActorActivity::kCrashLooping);
  EXPECT_EQ(a.crash_streak, 1);
  EXPECT_FALSE(doc.gateway);
  EXPECT_EQ(doc.events, (std::vector<std::string>{"one", "two"}));
}

}  // namespace
}  // namespace asya::local
