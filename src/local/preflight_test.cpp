// The pre-flight checks with their real parts: the sidecar's own settings loader, a real
// listening socket, the bundled Python runtime's --check on handler files in a temp directory.
#include "local/preflight.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>

#include "sidecar/config.hpp"
#include "transport/transport.hpp"

#ifndef ASYA_SOURCE_DIR
#define ASYA_SOURCE_DIR "."
#endif

namespace asya::local {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    char pattern[] = "/tmp/asya-preflight-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
  }
};

// One actor whose runtime runs `handler` in `dir`, with extra env entries (YAML flow mappings).
manifest::Actor actor(const std::string& name, const std::string& handler, const fs::path& dir,
                      const std::string& extra_env = "") {
  auto loaded = manifest::load_text(
      "apiVersion: asya.sh/v1alpha1\nkind: AsyncActor\nmetadata: {name: " + name +
          "}\nspec:\n  workload:\n    template:\n      spec:\n        containers:\n"
          "        - name: asya-runtime\n          workingDir: " +
          dir.string() + "\n          env:\n          - {name: ASYA_HANDLER, value: " + handler +
          "}\n" + extra_env,
      (dir / (name + ".yaml")).string());
  EXPECT_TRUE(loaded.ok()) << loaded.error_text();
  return loaded.actors.at(0);
}

// The check `asya up` passes: the sidecar's loader and its transport's settings.
Status sidecar_check(const EnvironmentLookup& lookup) {
  try {
    sidecar::Config config = sidecar::load_config(Environment(lookup));
    transport::Options options;
    options.environment = lookup;
    transport::check_transport_settings(config.transport, options);
  } catch (const ConfigError& e) {
    return Error{e.what()};
  }
  return Status::Ok();
}

PreflightOptions options_in(const fs::path& state) {
  PreflightOptions o;
  o.supervisor.paths = StatePaths(state);
  o.supervisor.transport = "sqlite";
  o.supervisor.python_runtime = {"python3",
                                 std::string(ASYA_SOURCE_DIR) + "/runtimes/python/asya_runtime.py"};
  o.environment = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  if (const char* path = std::getenv("PATH")) o.environment = {std::string("PATH=") + path};
  o.check_sidecar_settings = sidecar_check;
  return o;
}

std::string all_text(const PreflightReport& report) {
  std::string out;
  for (const auto& p : report.problems) out += p.str() + "\n";
  return out;
}

TEST(PreflightSidecarSettings, AValidEnvironmentHasNoProblem) {
  TempDir dir;
  PreflightReport report;
  check_sidecar_settings({actor("worker", "h.process", dir.path)}, options_in(dir.path / ".asya"),
                         report);
  EXPECT_TRUE(report.ok()) << all_text(report);
}

TEST(PreflightSidecarSettings, ABadInheritedValueIsOneProblemNamingEverySidecarAndItsSource) {
  TempDir dir;
  auto options = options_in(dir.path / ".asya");
  options.environment.push_back("ASYA_SQLITE_BUSY_TIMEOUT=5sec");
  PreflightReport report;
  check_sidecar_settings({actor("a", "h.process", dir.path), actor("b", "h.process", dir.path)},
                         options, report);
  ASSERT_EQ(report.problems.size(), 1u) << all_text(report);
  const auto& problem = report.problems[0];
  EXPECT_EQ(problem.where, "the sidecars of a, b, happy-end, error-end");
  EXPECT_NE(problem.message.find("ASYA_SQLITE_BUSY_TIMEOUT=\"5sec\""), std::string::npos)
      << problem.message;
  EXPECT_NE(problem.message.find("is set in the environment of `asya up`"), std::string::npos)
      << problem.message;
}

TEST(PreflightSidecarSettings, TheSidecarsOwnVariablesAreCheckedToo) {
  TempDir dir;
  auto options = options_in(dir.path / ".asya");
  options.supervisor.end_actors = false;
  options.environment.push_back("ASYA_LOG_LEVEL=verbose");
  options.environment.push_back("ASYA_RUNTIME_READY_TIMEOUT=5 minutes");
  PreflightReport report;
  check_sidecar_settings({actor("a", "h.process", dir.path)}, options, report);
  // The loader stops at its first error; the user sees one, fixes it, and sees the next.
  ASSERT_EQ(report.problems.size(), 1u) << all_text(report);
  EXPECT_EQ(report.problems[0].where, "the sidecar of a");
  EXPECT_NE(report.problems[0].message.find("ASYA_"), std::string::npos);
}

TEST(PreflightGatewayPort, ATakenPortIsAProblemWithTheHintAndAFreeOneIsNot) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);

  TempDir dir;
  auto options = options_in(dir.path / ".asya");
  options.supervisor.routes_file = (dir.path / "routes.yaml").string();
  options.supervisor.gateway_port = port;
  PreflightReport taken;
  check_gateway_port(options, taken);
  ASSERT_EQ(taken.problems.size(), 1u);
  EXPECT_EQ(taken.problems[0].where, "the gateway");
  EXPECT_NE(taken.problems[0].message.find("port " + std::to_string(port)), std::string::npos);
  EXPECT_NE(taken.problems[0].message.find("--gateway-port 0"), std::string::npos);
  ::close(fd);

  PreflightReport free_again;
  check_gateway_port(options, free_again);
  EXPECT_TRUE(free_again.ok()) << all_text(free_again);
  // Without a gateway nothing is checked.
  options.supervisor.routes_file.clear();
  PreflightReport no_gateway;
  check_gateway_port(options, no_gateway);
  EXPECT_TRUE(no_gateway.ok());
}

class PreflightHandlers : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.write("good.py", "def process(p):\n    return p\n");
    dir_.write("model.py",
               "class Model:\n    def __init__(self):\n        raise RuntimeError('no GPU')\n"
               "    def run(self, p):\n        return p\n");
    dir_.write("broken.py", "def process(p)\n    return p\n");
  }
  PreflightReport check(const std::vector<manifest::Actor>& actors) {
    PreflightReport report;
    check_python_handlers(actors, options_in(dir_.path / ".asya"), report);
    return report;
  }
  TempDir dir_;
};

TEST_F(PreflightHandlers, HandlersThatLoadPassAndAClassIsNotCreated) {
  auto report = check(
      {actor("good", "good.process", dir_.path), actor("model", "model.Model.run", dir_.path)});
  EXPECT_TRUE(report.ok()) << all_text(report);
  EXPECT_TRUE(report.warnings.empty());
}

TEST_F(PreflightHandlers, EachBrokenHandlerIsNamedWithItsModuleErrorAndFile) {
  auto report = check(
      {actor("typo", "godo.process", dir_.path), actor("missing", "good.proces", dir_.path),
       actor("syntax", "broken.process", dir_.path), actor("fine", "good.process", dir_.path)});
  ASSERT_EQ(report.problems.size(), 3u) << all_text(report);
  const auto& typo = report.problems[0];
  EXPECT_NE(typo.where.find("actor typo"), std::string::npos) << typo.where;
  EXPECT_NE(typo.message.find("no module named 'godo'"), std::string::npos) << typo.message;
  EXPECT_NE(typo.message.find("module: godo"), std::string::npos) << typo.message;
  EXPECT_NE(typo.message.find("file found: none"), std::string::npos) << typo.message;
  // What the typo probably meant.
  EXPECT_NE(typo.message.find("(its modules: broken.py, good.py, model.py)"), std::string::npos)
      << typo.message;
  const auto& missing = report.problems[1];
  EXPECT_NE(missing.where.find("actor missing"), std::string::npos);
  EXPECT_NE(missing.message.find("has no attribute 'proces'"), std::string::npos)
      << missing.message;
  EXPECT_NE(missing.message.find("file found: " + (dir_.path / "good.py").string()),
            std::string::npos)
      << missing.message;
  const auto& syntax = report.problems[2];
  EXPECT_NE(syntax.message.find("SyntaxError"), std::string::npos) << syntax.message;
  EXPECT_NE(syntax.message.find("file found: " + (dir_.path / "broken.py").string()),
            std::string::npos)
      << syntax.message;
}

TEST_F(PreflightHandlers, TheRuntimesOwnSettingsComeFromTheManifest) {
  auto report = check({actor("loud", "good.process", dir_.path,
                             "          - {name: ASYA_LOG_LEVEL, value: verbose}\n")});
  ASSERT_EQ(report.problems.size(), 1u) << all_text(report);
  EXPECT_NE(report.problems[0].message.find("ASYA_LOG_LEVEL=\"verbose\" is not valid"),
            std::string::npos)
      << report.problems[0].message;
}

TEST_F(PreflightHandlers, ActorsWithTheirOwnRuntimeCommandAreNotImported) {
  auto own = actor("native", "not.checked", dir_.path);
  own.containers.at(own.runtime_container).command = {"/bin/false"};
  EXPECT_TRUE(check({own}).ok());
}

TEST_F(PreflightHandlers, AnImportSlowerThanTheTimeoutIsAWarningNotAProblem) {
  dir_.write("slow.py", "import time\ntime.sleep(120)\ndef process(p):\n    return p\n");
  auto options = options_in(dir_.path / ".asya");
  options.import_timeout = std::chrono::milliseconds(500);
  PreflightReport report;
  check_python_handlers({actor("slow", "slow.process", dir_.path)}, options, report);
  EXPECT_TRUE(report.ok()) << all_text(report);
  ASSERT_EQ(report.warnings.size(), 1u);
  EXPECT_NE(report.warnings[0].find("importing handler slow.process took longer than 500ms"),
            std::string::npos)
      << report.warnings[0];
}

TEST_F(PreflightHandlers, AMissingWorkingDirectoryIsNamed) {
  auto report = check({actor("lost", "good.process", dir_.path / "nowhere")});
  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_NE(report.problems[0].message.find((dir_.path / "nowhere").string() + " does not exist"),
            std::string::npos)
      << report.problems[0].message;
}

}  // namespace
}  // namespace asya::local
