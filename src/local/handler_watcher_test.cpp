#include "local/handler_watcher.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace asya::local {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

TEST(PythonModuleOf, NamesModulesAndIgnoresEditorFiles) {
  EXPECT_EQ(python_module_of("echo.py"), "echo");
  EXPECT_EQ(python_module_of("pkg/mod.py"), "pkg.mod");
  EXPECT_EQ(python_module_of("pkg/__init__.py"), "pkg");
  for (const char* ignored :
       {".echo.py", "#echo.py#", "echo.py~", ".echo.py.swp", "4913", "echo.txt", "__init__.py"})
    EXPECT_EQ(python_module_of(ignored), "") << ignored;
}

TEST(HandlerUsesModule, MatchesTheModuleAndItsPackagesOnly) {
  EXPECT_TRUE(handler_uses_module("echo.process", "echo"));
  EXPECT_TRUE(handler_uses_module("pkg.mod.Class.method", "pkg"));
  EXPECT_TRUE(handler_uses_module("pkg.mod.Class.method", "pkg.mod"));
  EXPECT_FALSE(handler_uses_module("echo2.process", "echo"));
  EXPECT_FALSE(handler_uses_module("echo.process", ""));
}

class HandlerWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("handler_watcher_test." + std::to_string(::getpid()) + "." +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "pkg");
    write("echo.py", "def process(p): return p\n");
    write("shout.py", "def process(p): return p\n");
    write("pkg/helper.py", "X = 1\n");
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  // Polls until something settles (or 10 s pass).
  std::vector<HandlerWatcher::Change> wait(HandlerWatcher& watcher) {
    auto deadline = SteadyClock::now() + 10s;
    while (SteadyClock::now() < deadline) {
      auto changes = watcher.poll(SteadyClock::now());
      if (!changes.empty()) return changes;
      std::this_thread::sleep_for(20ms);
    }
    return {};
  }
  fs::path dir_;
};

TEST_F(HandlerWatcherTest, AChangedHandlerModuleReloadsOnlyItsActorAfterItSettles) {
  HandlerWatcher watcher(100ms);
  ASSERT_TRUE(watcher.watch("echo", "echo.process", dir_));
  ASSERT_TRUE(watcher.watch("shout", "shout.process", dir_));
  write("echo.py", "def process(p): return 1\n");
  auto changes = wait(watcher);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].actor, "echo");
  EXPECT_EQ(changes[0].file, dir_ / "echo.py");
  EXPECT_TRUE(watcher.poll(SteadyClock::now() + 1h).empty());  // reported once
}

TEST_F(HandlerWatcherTest, AFileMovedIntoPlaceCountsAndEditorFilesDoNot) {
  HandlerWatcher watcher(100ms);
  ASSERT_TRUE(watcher.watch("echo", "echo.process", dir_));
  write(".echo.py.swp", "x");
  write("echo.py~", "x");
  write("notes.txt", "x");
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(watcher.poll(SteadyClock::now()).empty());
  write(".echo.py.tmp", "def process(p): return 2\n");
  fs::rename(dir_ / ".echo.py.tmp", dir_ / "echo.py");  // how many editors save
  auto changes = wait(watcher);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].actor, "echo");
}

TEST_F(HandlerWatcherTest, AHelperModuleInASubfolderReloadsEveryActorOfTheFolder) {
  HandlerWatcher watcher(100ms);
  ASSERT_TRUE(watcher.watch("echo", "echo.process", dir_));
  ASSERT_TRUE(watcher.watch("shout", "shout.process", dir_));
  write("pkg/helper.py", "X = 2\n");
  auto changes = wait(watcher);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].file, dir_ / "pkg" / "helper.py");
}

TEST_F(HandlerWatcherTest, AMissingFolderIsAnErrorNamingIt) {
  HandlerWatcher watcher;
  auto st = watcher.watch("echo", "echo.process", dir_ / "nope");
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find((dir_ / "nope").string()), std::string::npos) << st.message();
}

}  // namespace
}  // namespace asya::local
