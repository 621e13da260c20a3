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
#include <functional>
#include <map>
#include <thread>

#include "asya/runtime.hpp"
#include "common/test_temp_dir.hpp"
#include "wire/frame.hpp"
#include "wire/runtime_client.hpp"

namespace asya {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

using asya::test::TempDir;

// A runtime process serving `handler` with the given environment.
class RuntimeProcess {
 public:
  RuntimeProcess(std::map<std::string, std::string> env, PayloadHandler handler)
      : RuntimeProcess(std::move(env), [&handler] { return serve(std::move(handler)); }) {}
  RuntimeProcess(std::map<std::string, std::string> env, RawPayloadHandler handler)
      : RuntimeProcess(std::move(env), [&handler] { return serve_raw(std::move(handler)); }) {}
  RuntimeProcess(std::map<std::string, std::string> env, const std::function<int()>& run) {
    pid_ = ::fork();
    if (pid_ == 0) {
      for (const char* name :
           {"ASYA_SOCKET_PATH", "ASYA_SOCKET_DIR", "ASYA_HANDLER_MODE", "ASYA_SOCKET_CHMOD",
            "ASYA_MAX_MESSAGE_BYTES", "ASYA_HANDLER_THREAD_SAFE"}) {
        ::unsetenv(name);
      }
      ::setenv("ASYA_LOG_LEVEL", "error", 1);
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      ::_exit(run());
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

// The raw path's answer goes out as pieces (the payload straight from the request buffer, more
// pieces than one sendmsg takes for a large fan-out); the connection's buffers are reused between
// requests of different sizes, and released after one above the kept size.
TEST(RuntimeServer, RawAnswersOfEverySizeOnOneConnection) {
  TempDir dir;
  fs::path socket = dir.path / "rt.sock";
  RuntimeProcess runtime({{"ASYA_SOCKET_PATH", socket.string()}},
                         RawPayloadHandler([](std::string_view payload) {
                           if (payload == "\"fan\"") {
                             std::vector<std::string> outputs;
                             for (int i = 0; i < 1500; ++i) outputs.push_back(std::to_string(i));
                             return RawOutputs::fan_out(std::move(outputs));
                           }
                           return RawOutputs::view(payload);
                         }));
  wire::RuntimeClient client({socket.string()});
  ASSERT_TRUE(client.wait_ready(10s).ok());
  auto envelope = [](const std::string& payload) {
    std::string text = R"({"id":"x","route":{"actors":["a","b"]},"headers":{"h":"v"},"payload":)";
    text.append(payload).append("}");
    return text;
  };
  auto expected = [](const std::string& payload) {
    std::string text = R"([{"payload":)";
    text.append(payload).append(
        R"(,"route":{"actors":["a","b"],"current":1},"headers":{"h":"v"}}])");
    return text;
  };
  std::string response;
  for (std::size_t size : {std::size_t(1) << 20, std::size_t(10), std::size_t(1) << 20,
                           std::size_t(5) << 20, std::size_t(3), std::size_t(70000)}) {
    std::string payload(size + 2, 'x');
    payload.front() = payload.back() = '"';
    auto r = client.call(envelope(payload), response, 10s);
    ASSERT_EQ(r.status, wire::CallStatus::kOk) << r.error;
    ASSERT_EQ(response.size(), expected(payload).size()) << size;
    EXPECT_TRUE(response == expected(payload)) << size;
  }
  auto r = client.call(envelope("\"fan\""), response, 10s);
  ASSERT_EQ(r.status, wire::CallStatus::kOk) << r.error;
  json::value fan = json::parse(response);
  ASSERT_EQ(fan.as_array().size(), 1500u);
  for (int i = 0; i < 1500; ++i) {
    ASSERT_EQ(fan.at(i).at("payload"), i);
    ASSERT_EQ(fan.at(i).at("route").at("current"), 1);
  }
  r = client.call(envelope("[1, 2]"), response, 10s);
  ASSERT_EQ(r.status, wire::CallStatus::kOk) << r.error;
  EXPECT_EQ(response, expected("[1, 2]"));
}

// Large string payloads through the socket: the raw path passes over long runs of plain bytes
// inside strings without its parser (raw_request.cpp), so one bad byte deep inside a 64 MB string
// must still make the answer a msg_parsing_error (PROTOCOL §3), and the connection stay usable.
TEST(RuntimeServer, LargeStringPayloadsAreCheckedToTheirLastByte) {
  TempDir dir;
  fs::path socket = dir.path / "rt.sock";
  RuntimeProcess runtime(
      {{"ASYA_SOCKET_PATH", socket.string()}},
      RawPayloadHandler([](std::string_view payload) { return RawOutputs::view(payload); }));
  wire::RuntimeClient client({socket.string()});
  ASSERT_TRUE(client.wait_ready(10s).ok());
  const std::string head = R"({"id":"x","route":{"actors":["a","b"]},"payload":)";
  std::string response;
  for (std::size_t size : {std::size_t(1) << 20, std::size_t(64) << 20}) {
    std::string request = head + '"' + std::string(size, 'x') + "\"}";
    auto r = client.call(request, response, 60s);
    ASSERT_EQ(r.status, wire::CallStatus::kOk) << r.error;
    const std::string expected = R"([{"payload":")" + std::string(size, 'x') +
                                 R"(","route":{"actors":["a","b"],"current":1}}])";
    EXPECT_TRUE(response == expected) << size;
    // One byte a string may not hold unescaped, far into the run, or a string left open.
    const std::vector<std::string> bad_bytes = size > (1u << 20)
                                                   ? std::vector<std::string>{"\x01"}
                                                   : std::vector<std::string>{"\x01", "\xff", "\t"};
    for (const std::string& bad : bad_bytes) {
      std::string broken = request;
      broken.replace(head.size() + 1 + size - size / 3, 1, bad);
      r = client.call(broken, response, 60s);
      ASSERT_EQ(r.status, wire::CallStatus::kOk) << r.error;
      json::value answer = json::parse(response);
      EXPECT_EQ(answer.at(0).at("error"), "msg_parsing_error") << size;
    }
    std::string open = head + '"' + std::string(size, 'x') + "}";
    r = client.call(open, response, 60s);
    ASSERT_EQ(r.status, wire::CallStatus::kOk) << r.error;
    EXPECT_EQ(json::parse(response).at(0).at("error"), "msg_parsing_error") << size;
  }
  auto r = client.call(request_with(7), response, 10s);  // the same connection still serves
  ASSERT_EQ(r.status, wire::CallStatus::kOk) << r.error;
  EXPECT_EQ(json::parse(response).at(0).at("payload").at("n"), 7);
}

// A handler that announces it started (by creating `marker`) and then sleeps.
PayloadHandler slow_handler(fs::path marker, std::chrono::milliseconds duration) {
  return [marker, duration](const Json& payload) -> Outputs {
    std::ofstream(marker).put('\n');
    std::this_thread::sleep_for(duration);
    return payload;
  };
}

bool wait_for_file(const fs::path& path, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!fs::exists(path)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

TEST(RuntimeServer, SigtermAnswersTheRequestInProgressThenExits) {
  TempDir dir;
  fs::path socket = dir.path / "rt.sock";
  RuntimeProcess runtime({{"ASYA_SOCKET_PATH", socket.string()}},
                         slow_handler(dir.path / "started", 500ms));
  wire::RuntimeClient client({socket.string()});
  ASSERT_TRUE(client.wait_ready(10s).ok());
  wire::CallResult result;
  std::string response;
  std::thread caller([&] { result = client.call(request_with(3), response, 10s); });
  ASSERT_TRUE(wait_for_file(dir.path / "started", 10s));
  ASSERT_EQ(::kill(runtime.pid(), SIGTERM), 0);
  caller.join();
  ASSERT_EQ(result.status, wire::CallStatus::kOk) << result.error;
  EXPECT_EQ(json::parse(response).at(0).at("payload").at("n"), 3);
  auto code = runtime.wait_exit(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  EXPECT_FALSE(fs::exists(socket));
}

TEST(RuntimeServer, SecondSignalStopsWaitingForTheRequestInProgress) {
  TempDir dir;
  fs::path socket = dir.path / "rt.sock";
  RuntimeProcess runtime({{"ASYA_SOCKET_PATH", socket.string()}},
                         slow_handler(dir.path / "started", 60s));
  wire::RuntimeClient client({socket.string()});
  ASSERT_TRUE(client.wait_ready(10s).ok());
  std::string response;
  std::thread caller([&] { (void)client.call(request_with(1), response, 30s); });
  ASSERT_TRUE(wait_for_file(dir.path / "started", 10s));
  ASSERT_EQ(::kill(runtime.pid(), SIGTERM), 0);
  ASSERT_FALSE(runtime.wait_exit(300ms).has_value()) << "exited while a request was in progress";
  ASSERT_EQ(::kill(runtime.pid(), SIGTERM), 0);
  auto code = runtime.wait_exit(10s);
  caller.join();
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
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

// Leaves a socket file behind with nobody listening, as a killed runtime does.
void make_stale_socket(const fs::path& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(fd);
}

TEST(RuntimeServer, ReplacesAStaleSocketAndUsesTheDefaultMode) {
  TempDir dir;
  fs::path socket = dir.path / "rt.sock";
  make_stale_socket(socket);
  ASSERT_TRUE(fs::is_socket(socket));
  RuntimeProcess runtime({{"ASYA_SOCKET_PATH", socket.string()}}, echo);
  wire::RuntimeClient client({socket.string()});
  ASSERT_TRUE(client.wait_ready(10s).ok());
  std::string response;
  EXPECT_EQ(client.call(request_with(1), response, 5s).status, wire::CallStatus::kOk);
  struct stat st {};
  ASSERT_EQ(::stat(socket.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666u);
}

TEST(RuntimeServer, RefusesASocketPathThatAnotherRuntimeServes) {
  TempDir dir;
  fs::path socket = dir.path / "rt.sock";
  RuntimeProcess first({{"ASYA_SOCKET_PATH", socket.string()}}, echo);
  wire::RuntimeClient client({socket.string()});
  ASSERT_TRUE(client.wait_ready(10s).ok());
  RuntimeProcess second({{"ASYA_SOCKET_PATH", socket.string()}}, echo);
  auto code = second.wait_exit(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  std::string response;
  EXPECT_EQ(client.call(request_with(1), response, 5s).status, wire::CallStatus::kOk);
}

TEST(RuntimeServer, RefusesARegularFileAtTheSocketPath) {
  TempDir dir;
  fs::path socket = dir.path / "rt.sock";
  std::ofstream(socket) << "data";
  RuntimeProcess runtime({{"ASYA_SOCKET_PATH", socket.string()}}, echo);
  auto code = runtime.wait_exit(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_TRUE(fs::is_regular_file(socket));
}

TEST(RuntimeServer, ConcurrentConnectionsGetOneHandlerCallAtATimeByDefault) {
  TempDir dir;
  fs::path socket = dir.path / "rt.sock";
  auto busy = std::make_shared<std::atomic<int>>(0);
  PayloadHandler overlap_detector = [busy](const Json&) -> Outputs {
    int now = ++*busy;
    std::this_thread::sleep_for(20ms);
    --*busy;
    return json::object{{"overlap", now > 1}};
  };
  RuntimeProcess runtime({{"ASYA_SOCKET_PATH", socket.string()}}, overlap_detector);
  std::atomic<int> overlaps{0};
  std::atomic<int> answers{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      wire::RuntimeClient client({socket.string()});
      if (!client.wait_ready(10s).ok()) return;
      std::string response;
      for (int i = 0; i < 5; ++i) {
        if (client.call(request_with(i), response, 5s).status != wire::CallStatus::kOk) return;
        ++answers;
        if (json::parse(response).at(0).at("payload").at("overlap").as_bool()) ++overlaps;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(answers.load(), 15);
  EXPECT_EQ(overlaps.load(), 0);
}

TEST(RuntimeServer, ThreadSafeHandlerServesConnectionsInParallel) {
  TempDir dir;
  fs::path socket = dir.path / "rt.sock";
  auto busy = std::make_shared<std::atomic<int>>(0);
  auto most = std::make_shared<std::atomic<int>>(0);
  // Each call waits (bounded) until another call runs at the same time.
  PayloadHandler wait_for_company = [busy, most](const Json& payload) -> Outputs {
    int now = ++*busy;
    int seen = most->load();
    while (now > seen && !most->compare_exchange_weak(seen, now)) {
    }
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (most->load() < 2 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    --*busy;
    return json::object{{"parallel", most->load() >= 2}, {"in", payload}};
  };
  RuntimeProcess runtime(
      {{"ASYA_SOCKET_PATH", socket.string()}, {"ASYA_HANDLER_THREAD_SAFE", "true"}},
      wait_for_company);
  std::atomic<int> parallel{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      wire::RuntimeClient client({socket.string()});
      if (!client.wait_ready(10s).ok()) return;
      std::string response;
      if (client.call(request_with(1), response, 10s).status != wire::CallStatus::kOk) return;
      if (json::parse(response).at(0).at("payload").at("parallel").as_bool()) ++parallel;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(parallel.load(), 2);
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

TEST(RuntimeServer, InvalidChmodIsAStartUpErrorWithExitCode1) {
  TempDir dir;
  RuntimeProcess runtime(
      {{"ASYA_SOCKET_PATH", (dir.path / "rt.sock").string()}, {"ASYA_SOCKET_CHMOD", "rw-rw-rw-"}},
      echo);
  auto code = runtime.wait_exit(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
}

}  // namespace
}  // namespace asya
