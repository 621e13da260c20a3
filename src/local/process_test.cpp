#include "local/process.hpp"

#include <gtest/gtest.h>

#include <grp.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace asya::local {
namespace {

Result<std::string> expand(std::string_view text) {
  static const std::map<std::string, std::string, std::less<>> vars{{"BUILD", "/b"}, {"E", ""}};
  return expand_references(text, [](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  });
}

TEST(ExpandReferences, ReplacesDefinedVariables) {
  EXPECT_EQ(*expand("$(BUILD)/examples/cpp-echo/asya-cpp-echo"),
            "/b/examples/cpp-echo/asya-cpp-echo");
  EXPECT_EQ(*expand("a$(E)b$(BUILD)"), "ab/b");
}

TEST(ExpandReferences, KeepsEverythingElse) {
  EXPECT_EQ(*expand("plain"), "plain");
  EXPECT_EQ(*expand("$HOME and $ and $(unclosed"), "$HOME and $ and $(unclosed");
  EXPECT_EQ(*expand("$$(BUILD) costs $$5"), "$(BUILD) costs $5");
}

TEST(ExpandReferences, UnsetVariableIsAnErrorNamingIt) {
  auto r = expand("$(NOPE)/bin");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "$(NOPE) in \"$(NOPE)/bin\" is not set: define NOPE in the container's env or in the "
            "environment of asya up (write $$(NOPE) for a literal $(NOPE))");
}

// What the child wrote to `path` after it exited.
std::string run_and_read(ProcessSpec spec, const std::string& path) {
  auto pid = spawn(spec);
  EXPECT_TRUE(pid) << (pid ? "" : pid.error().message);
  if (!pid) return "";
  int status = 0;
  ::waitpid(*pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describe_exit(status);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(Spawn, IsolatedNetworkHasOnlyLoopbackUpInANamespaceOfItsOwn) {
  if (Status st = check_network_isolation(); !st) GTEST_SKIP() << st.message();
  const std::string out =
      (std::filesystem::temp_directory_path() / ("asya-netns-" + std::to_string(::getpid())))
          .string();
  ProcessSpec spec;
  // Interfaces, then the network namespace, then whether a TCP connection over 127.0.0.1 works
  // there (lo is up).
  const std::string loopback =
      "python3 -c 'import socket; s = socket.socket(); s.bind((\"127.0.0.1\", 0)); s.listen(); "
      "socket.create_connection(s.getsockname()); print(\"loopback-up\")'";
  spec.argv = {"/bin/sh", "-c",
               "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > " + out +
                   "; readlink /proc/self/ns/net >> " + out + "; " + loopback + " >> " + out};
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.isolate_network = true;
  std::string isolated = run_and_read(spec, out);
  std::filesystem::remove(out);
  char own[128] = {};
  ASSERT_GT(::readlink("/proc/self/ns/net", own, sizeof own - 1), 0);
  std::istringstream lines(isolated);
  std::string interfaces, ns, flags;
  std::getline(lines, interfaces);
  std::getline(lines, ns);
  std::getline(lines, flags);
  EXPECT_EQ(interfaces, "lo") << isolated;
  EXPECT_TRUE(ns.starts_with("net:[")) << isolated;
  EXPECT_NE(ns, own);
  EXPECT_EQ(flags, "loopback-up") << isolated;

  spec.isolate_network = false;
  std::string shared = run_and_read(spec, out);
  std::filesystem::remove(out);
  EXPECT_NE(shared.find(own), std::string::npos) << shared;
}

// Not root: the network namespace comes with a user namespace that maps the caller's uid and gid
// to themselves, so the runtime keeps its identity (and its files' owners).
TEST(Spawn, IsolatedNetworkWorksUnprivilegedWithTheCallersOwnIds) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged uid for the test";
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("asya-netns-user-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::permissions(dir, std::filesystem::perms::all);
  const std::string out = (dir / "out").string();
  constexpr uid_t kUid = 4242;
  constexpr gid_t kGid = 4343;
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child becomes an ordinary user, then spawns as the supervisor would.
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kGid, kGid, kGid) != 0 ||
        ::setresuid(kUid, kUid, kUid) != 0)
      ::_exit(10);
    // Changing credentials made the process non-dumpable, which would leave its /proc files
    // (uid_map) owned by root; an ordinary user's process is dumpable.
    ::prctl(PR_SET_DUMPABLE, 1);
    if (!check_network_isolation()) ::_exit(11);  // unprivileged user namespaces are off here
    ProcessSpec spec;
    spec.argv = {"/bin/sh", "-c",
                 "id -u > " + out + "; id -g >> " + out + "; readlink /proc/self/ns/net >> " + out +
                     "; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' >> " + out};
    spec.env = {"PATH=/usr/bin:/bin"};
    spec.isolate_network = true;
    auto pid = spawn(spec);
    if (!pid) ::_exit(12);
    int status = 0;
    ::waitpid(*pid, &status, 0);
    ::_exit(WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 13);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << describe_exit(status);
  if (WEXITSTATUS(status) == 11) {
    std::filesystem::remove_all(dir);
    GTEST_SKIP() << "unprivileged user namespaces are not permitted here";
  }
  ASSERT_EQ(WEXITSTATUS(status), 0);
  std::ifstream in(out);
  std::string uid, gid, ns, interfaces;
  std::getline(in, uid);
  std::getline(in, gid);
  std::getline(in, ns);
  std::getline(in, interfaces);
  std::filesystem::remove_all(dir);
  char own[128] = {};
  ASSERT_GT(::readlink("/proc/self/ns/net", own, sizeof own - 1), 0);
  EXPECT_EQ(uid, std::to_string(kUid));
  EXPECT_EQ(gid, std::to_string(kGid));
  EXPECT_TRUE(ns.starts_with("net:[")) << ns;
  EXPECT_NE(ns, own);
  EXPECT_EQ(interfaces, "lo");
}

}  // namespace
}  // namespace asya::local
