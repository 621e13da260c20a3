// The runtime server in a real child process on a real socket.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "asya/runtime.hpp"
#include "wire/frame.hpp"
#include "wire/runtime_client.hpp"

namespace asya {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

struct TempDir {
  fs::path path;
  TempDir() {
    char pattern[] = "/tmp/asya-runtime-test-XXXXXX";
    path = ::mkdtemp(pattern);
  }
  ~TempDir() { fs::remove_all(path); }
};

// A runtime process serving `handler` with the given environment.
class RuntimeProcess {
 public:
  RuntimeProcess(std::map<std::string, std::string> env, PayloadHandler handler) {
    pid_ = ::fork();
    if (pid_ == 0) {
      for (const char* name : {"ASYA_SOCKET_PATH", "ASYA_SOCKET_DIR", "ASYA_HANDLER_MODE",
                               "ASYA_SOCKET_CHMOD", "ASYA_MAX_MESSAGE_BYTES"}) {
        ::unsetenv(name);
      }
      ::setenv("ASYA_LOG_LEVEL", "error", 1);
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      ::_exit(serve(std::move(handler)));
    }
  }
  ~RuntimeProcess() {
    if (pid_ > 0 && !exit_code_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  // The exit code, or nullopt if it did not exit within `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!exit_code_) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(10ms);
    }
    return exit_code_;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

Outputs echo(const Json& payload) {
  return payload;
}

std::string request_with(int n) {
  return R"({"id":"x","route":{"actors":["a","b"],"current":0},"payload":{"n":)" +
         std::to_string(n) + "}}";
}

TEST(RuntimeServer, ServesManyRequestsOnSeveralConnectionsAndCleansUpOnSigterm) {
  TempDir dir;
  fs::path socket = dir.path / "rt.sock";
  RuntimeProcess runtime({{"ASYA_SOCKET_PATH", socket.string()}, {"ASYA_SOCKET_CHMOD", "0600"}},
                         echo);

  wire::RuntimeClient first({socket.string()});
  wire::RuntimeClient second({socket.string()});
  ASSERT_TRUE(first.wait_ready(10s).ok());
  ASSERT_TRUE(second.wait_ready(10s).ok());
  EXPECT_TRUE(fs::exists(dir.path / "runtime-ready"));
  struct stat st {};
  ASSERT_EQ(::stat(socket.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  std::string response;
  for (int i = 0; i < 10; ++i) {
    auto& client = i % 2 ? first : second;
    auto r = client.call(request_with(i), response, 5s);
    ASSERT_EQ(r.status, wire::CallStatus::kOk) << r.error;
    json::value v = json::parse(response);
    EXPECT_EQ(v.at(0).at("payload").at("n"), i);
    EXPECT_EQ(v.at(0).at("route").at("current"), 1);
  }

  ASSERT_EQ(::kill(runtime.pid(), SIGTERM), 0);
  first.disconnect();
  second.disconnect();
  auto code = runtime.wait_exit(10s);
  ASSERT_TRUE(code.has_value()) << "runtime did not exit after SIGTERM";
  EXPECT_EQ(*code, 0);
  EXPECT_FALSE(fs::exists(socket));
  EXPECT_FALSE(fs::exists(dir.path / "runtime-ready"));
}

TEST(RuntimeServer, SigtermWithAnIdleConnectionOpenStillExits) {
  TempDir dir;
  fs::path socket = dir.path / "rt.sock";
  RuntimeProcess runtime({{"ASYA_SOCKET_DIR", dir.path.string()}, {"ASYA_SOCKET_NAME", "rt.sock"}},
                         echo);
  wire::RuntimeClient client({socket.string()});
  ASSERT_TRUE(client.wait_ready(10s).ok());
  ASSERT_EQ(::kill(runtime.pid(), SIGTERM), 0);
  auto code = runtime.wait_exit(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
}

TEST(RuntimeServer, OversizeFrameClosesOnlyThatConnection) {
  TempDir dir;
  fs::path socket = dir.path / "rt.sock";
  RuntimeProcess runtime(
      {{"ASYA_SOCKET_PATH", socket.string()}, {"ASYA_MAX_MESSAGE_BYTES", "1024"}}, echo);
  wire::RuntimeClient good({socket.string()});
  ASSERT_TRUE(good.wait_ready(10s).ok());

  wire::RuntimeClient bad({socket.string(), 1u << 20});
  std::string response;
  auto r = bad.call(R"({"route":{"actors":["a"]},"payload":")" + std::string(2000, 'x') + "\"}",
                    response, 5s);
  EXPECT_EQ(r.status, wire::CallStatus::kUnavailable) << r.error;

  r = good.call(request_with(7), response, 5s);
  ASSERT_EQ(r.status, wire::CallStatus::kOk) << r.error;
  EXPECT_EQ(json::parse(response).at(0).at("payload").at("n"), 7);
}

TEST(RuntimeServer, ReplacesAStaleSocketFile) {
  TempDir dir;
  fs::path socket = dir.path / "rt.sock";
  std::ofstream(socket) << "stale";
  RuntimeProcess runtime({{"ASYA_SOCKET_PATH", socket.string()}}, echo);
  wire::RuntimeClient client({socket.string()});
  ASSERT_TRUE(client.wait_ready(10s).ok());
  std::string response;
  EXPECT_EQ(client.call(request_with(1), response, 5s).status, wire::CallStatus::kOk);
}

TEST(RuntimeServer, SocketPathThatIsADirectoryFailsWithExitCode1) {
  TempDir dir;
  fs::create_directory(dir.path / "rt.sock");
  RuntimeProcess runtime({{"ASYA_SOCKET_PATH", (dir.path / "rt.sock").string()}}, echo);
  auto code = runtime.wait_exit(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_FALSE(fs::exists(dir.path / "runtime-ready"));
}

TEST(RuntimeServer, EnvelopeModeRequestedForAPayloadHandlerFailsWithExitCode1) {
  TempDir dir;
  RuntimeProcess runtime(
      {{"ASYA_SOCKET_PATH", (dir.path / "rt.sock").string()}, {"ASYA_HANDLER_MODE", "envelope"}},
      echo);
  auto code = runtime.wait_exit(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
}

TEST(RuntimeServer, InvalidChmodIsAConfigurationError) {
  TempDir dir;
  RuntimeProcess runtime(
      {{"ASYA_SOCKET_PATH", (dir.path / "rt.sock").string()}, {"ASYA_SOCKET_CHMOD", "rw-rw-rw-"}},
      echo);
  auto code = runtime.wait_exit(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
}

}  // namespace
}  // namespace asya
