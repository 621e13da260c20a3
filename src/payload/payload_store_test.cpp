#include "payload/payload_store.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "common/aws/s3.hpp"
#include "common/random_id.hpp"
#include "payload/file/verified_mark.hpp"
#include "payload/reference.hpp"

namespace asya::payload {
namespace {

namespace fs = std::filesystem;

// The file store always; the S3 store against moto when ASYA_TEST_AWS_ENDPOINT is set (the
// system tests in tests/payload start it).
class PayloadStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "file") {
      dir_ = fs::temp_directory_path() /
             ("asya-payload-test-" + std::to_string(::getpid()) + "-" + random_hex(8));
      PayloadStoreOptions options;
      options.url = "file://" + dir_.string();
      store_ = make_payload_store(options);
      return;
    }
    const char* endpoint = std::getenv("ASYA_TEST_AWS_ENDPOINT");
    if (!endpoint) GTEST_SKIP() << "ASYA_TEST_AWS_ENDPOINT not set (moto)";
    std::string bucket = "asya-payload-test-" + random_hex(8);
    PayloadStoreOptions options;
    options.url = "s3://" + bucket + "/some/prefix";
    std::string endpoint_text = endpoint;
    options.environment = [endpoint_text](std::string_view name) -> std::optional<std::string> {
      std::string_view n = name;
      if (n == "ASYA_S3_ENDPOINT") return endpoint_text;
      if (n == "AWS_ACCESS_KEY_ID" || n == "AWS_SECRET_ACCESS_KEY") return std::string("test");
      if (n == "AWS_REGION") return std::string("us-east-1");
      return std::nullopt;
    };
    aws::S3Client client(
        aws::Config::from_env("ASYA_S3_ENDPOINT", "S3", Environment(options.environment)));
    ASSERT_TRUE(client.create_bucket(bucket).ok());
    store_ = make_payload_store(options);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  fs::path dir_;
  std::unique_ptr<PayloadStore> store_;
};

TEST_P(PayloadStoreTest, PutThenReadAppendsTheSameBytes) {
  std::string bytes(3 << 20, 'x');
  bytes[12345] = 'y';
  ASSERT_TRUE(store_->put("objects/abc", bytes).ok());
  std::string out = "prefix:";
  ASSERT_TRUE(store_->read("objects/abc", out).ok());
  EXPECT_EQ(out, "prefix:" + bytes);
  auto found = store_->exists("objects/abc");
  ASSERT_TRUE(found.ok());
  EXPECT_TRUE(*found);
}

TEST_P(PayloadStoreTest, MissingObjectIsNotFoundAndRemoveIsIdempotent) {
  std::string out;
  Status st = store_->read("objects/missing", out);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(st.message().starts_with(kNotFound)) << st.message();
  EXPECT_TRUE(out.empty());
  auto found = store_->exists("objects/missing");
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(*found);
  EXPECT_TRUE(store_->remove("objects/missing").ok());
}

TEST_P(PayloadStoreTest, ListGivesKeysUnderAPrefixWithSizes) {
  ASSERT_TRUE(store_->put("holds/s1/a", "1").ok());
  ASSERT_TRUE(store_->put("holds/s1/b", "22").ok());
  ASSERT_TRUE(store_->put("holds/s2/c", "333").ok());
  ASSERT_TRUE(store_->put("objects/s1", "x").ok());
  auto listed = store_->list("holds/s1/");
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  std::vector<std::string> keys;
  for (const auto& o : *listed) keys.push_back(o.key + "=" + std::to_string(o.size_bytes));
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{"holds/s1/a=1", "holds/s1/b=2"}));
  auto all = store_->list("holds/");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 3u);
  ASSERT_TRUE(store_->remove("holds/s1/a").ok());
  ASSERT_TRUE(store_->list("holds/").ok());
  EXPECT_EQ(store_->list("holds/")->size(), 2u);
}

// Large enough for the file store's hash-while-writing path (1 MiB and up), and a small one.
std::string large_bytes(std::size_t size, char seed) {
  std::string bytes(size, 'x');
  for (std::size_t i = 0; i < size; i += 4093) bytes[i] = static_cast<char>(seed + i % 7);
  return bytes;
}

TEST_P(PayloadStoreTest, PutObjectStoresUnderItsDigestOnlyVisibleAfterBeforeVisible) {
  for (const std::string& bytes : {large_bytes(3 << 20, 'a'), std::string("small object")}) {
    const std::string expected = sha256_hex(bytes);
    int calls = 0;
    auto stored = store_->put_object(bytes, [&](std::string_view sha256) -> Status {
      ++calls;
      EXPECT_EQ(sha256, expected);
      auto found = store_->exists(object_key(sha256));
      EXPECT_TRUE(found.ok() && !*found) << "the object was visible before before_visible";
      return Status::Ok();
    });
    ASSERT_TRUE(stored.ok()) << stored.error().message;
    EXPECT_EQ(*stored, expected);
    EXPECT_EQ(calls, 1);
    std::string out;
    ASSERT_TRUE(store_->read(object_key(expected), out).ok());
    EXPECT_TRUE(out == bytes);
  }
  EXPECT_TRUE(store_->list("tmp/")->empty());
}

TEST_P(PayloadStoreTest, PutObjectWhoseBeforeVisibleFailsStoresNothing) {
  for (const std::string& bytes : {large_bytes(2 << 20, 'b'), std::string("small object")}) {
    auto stored = store_->put_object(
        bytes, [](std::string_view) -> Status { return Error{"the hold could not be written"}; });
    ASSERT_FALSE(stored.ok());
    EXPECT_EQ(stored.error().message, "the hold could not be written");
    EXPECT_FALSE(*store_->exists(object_key(sha256_hex(bytes))));
  }
  EXPECT_TRUE(store_->list("objects/")->empty());
  EXPECT_TRUE(store_->list("tmp/")->empty());
}

// What a hold's renewal relies on (payload/hold_renewer.hpp): writing a key again moves the time
// list() gives it (S3: LastModified, whole seconds in some listings), so a renewed hold is newer
// than a release written before the renewal.
TEST_P(PayloadStoreTest, WritingAKeyAgainMovesItsListedTimeBeyondAnEarlierRecord) {
  ASSERT_TRUE(store_->put("holds/h1/sha", "env").ok());
  ASSERT_TRUE(store_->put("released/h1", "env").ok());
  auto time_of = [&](const std::string& key) {
    auto listed = store_->list(key);
    EXPECT_TRUE(listed.ok());
    EXPECT_EQ(listed->size(), 1u);
    return listed->empty() ? std::chrono::system_clock::time_point() : listed->front().modified;
  };
  const auto released = time_of("released/h1");
  // Rewritten until the store's clock moved on (a second at most on S3); each rewrite durable.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (time_of("holds/h1/sha") <= released && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(store_->put("holds/h1/sha", "env").ok());
  }
  EXPECT_GT(time_of("holds/h1/sha"), released);
}

// Hold tokens and their releases (payload/lifetime.hpp): read back, listed and rewritten like a
// put, on every store (the file store only skips the fsyncs).
TEST_P(PayloadStoreTest, ARecordPutIsReadListedAndReplacedLikeAPut) {
  ASSERT_TRUE(store_->put_record("holds/h2/sha", "token-1").ok());
  std::string out;
  ASSERT_TRUE(store_->read("holds/h2/sha", out).ok());
  EXPECT_EQ(out, "token-1");
  ASSERT_TRUE(store_->put_record("holds/h2/sha", "token-2").ok());
  out.clear();
  ASSERT_TRUE(store_->read("holds/h2/sha", out).ok());
  EXPECT_EQ(out, "token-2");
  auto listed = store_->list("holds/h2/");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().key, "holds/h2/sha");
}

INSTANTIATE_TEST_SUITE_P(Stores, PayloadStoreTest, ::testing::Values("file", "s3"));

class FilePayloadStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("asya-payload-file-test-" + std::to_string(::getpid()) + "-" + random_hex(8));
    store_ = open();
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::unique_ptr<PayloadStore> open() {
    PayloadStoreOptions options;
    options.url = "file://" + dir_.string();
    return make_payload_store(options);
  }
  // Waits (with a deadline) until the one temporary in tmp/ holds `size` bytes.
  void wait_until_written(std::size_t size) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      std::error_code ec;
      for (const auto& entry : fs::directory_iterator(dir_ / "tmp", ec))
        if (entry.file_size(ec) == size) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    FAIL() << "the temporary was not written within 60 s";
  }
  std::size_t files_in(const char* sub) {
    std::error_code ec;
    return fs::exists(dir_ / sub)
               ? static_cast<std::size_t>(std::distance(fs::directory_iterator(dir_ / sub, ec),
                                                        fs::directory_iterator()))
               : 0;
  }

  fs::path dir_;
  std::unique_ptr<PayloadStore> store_;
};

// A disk that fills up midway through an object: the write fails (here with EFBIG, the file size
// limit standing in for ENOSPC), the error names the temporary and the cause, and neither an object
// nor a temporary is left.
TEST_F(FilePayloadStoreTest, PutObjectThatFailsMidwayLeavesNothingAndNamesTheCause) {
  const std::string bytes = large_bytes(4 << 20, 'c');
  rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &before), 0);
  auto previous = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = before;
  small.rlim_cur = 1 << 20;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  bool held = false;
  auto stored = store_->put_object(bytes, [&](std::string_view) -> Status {
    held = true;
    return Status::Ok();
  });
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &before), 0);
  std::signal(SIGXFSZ, previous);
  ASSERT_FALSE(stored.ok());
  EXPECT_NE(stored.error().message.find("writing"), std::string::npos) << stored.error().message;
  EXPECT_NE(stored.error().message.find("File too large"), std::string::npos)
      << stored.error().message;
  EXPECT_NE(stored.error().message.find("/tmp/object."), std::string::npos)
      << stored.error().message;
  EXPECT_TRUE(held);  // the digest thread ran to its end before put_object returned
  EXPECT_EQ(files_in("objects"), 0u);
  EXPECT_EQ(files_in("tmp"), 0u);
  // The store works again once there is room.
  auto again = store_->put_object(bytes, [](std::string_view) { return Status::Ok(); });
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(files_in("objects"), 1u);
}

// An object written ahead (the sidecar's large inline input while its runtime works) is not
// visible until commit(), which holds it first (before_visible) and then shows it whole under its
// digest, marked verified.
TEST_F(FilePayloadStoreTest, ObjectWrittenAheadIsVisibleOnlyOnceCommittedUnderItsDigest) {
  const std::string bytes = large_bytes(20 << 20, 'e');
  auto pending = store_->begin_object(bytes);
  ASSERT_NE(pending, nullptr);
  EXPECT_EQ(files_in("objects"), 0u);
  bool held = false;
  auto committed = pending->commit([&](std::string_view sha256) -> Status {
    held = true;
    EXPECT_EQ(sha256, sha256_hex(bytes));
    EXPECT_EQ(files_in("objects"), 0u);  // the hold comes before the object is visible
    return Status::Ok();
  });
  ASSERT_TRUE(committed.ok()) << committed.error().message;
  EXPECT_TRUE(held);
  EXPECT_EQ(*committed, sha256_hex(bytes));
  pending.reset();  // a committed object stays when its handle goes
  EXPECT_EQ(files_in("tmp"), 0u);
  std::string out;
  auto checked = store_->read_checked(object_key(*committed), *committed, bytes.size(), out);
  ASSERT_TRUE(checked.ok() && *checked);
  EXPECT_TRUE(out == bytes);
  const fs::path object = dir_ / object_key(*committed);
  const int fd = ::open(object.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  struct stat state {};
  ASSERT_EQ(::fstat(fd, &state), 0);
  EXPECT_TRUE(has_verified_mark(fd, state, *committed, bytes.size()));
  ::close(fd);
}

// An object written ahead that no output used (the runtime changed the payload, failed or timed
// out) is abandoned: whether its writing is under way or done, nothing is left.
TEST_F(FilePayloadStoreTest, ObjectWrittenAheadAndAbandonedLeavesNothing) {
  const std::string bytes = large_bytes(40 << 20, 'f');
  auto at_once = store_->begin_object(bytes);
  ASSERT_NE(at_once, nullptr);
  at_once.reset();  // most likely midway
  EXPECT_EQ(files_in("tmp"), 0u);
  auto later = store_->begin_object(bytes);
  ASSERT_NE(later, nullptr);
  wait_until_written(bytes.size());
  later.reset();
  EXPECT_EQ(files_in("tmp"), 0u);
  EXPECT_EQ(files_in("objects"), 0u);
}

// A hold that cannot be written, or a disk that fills up under the write, makes nothing visible;
// commit() names the cause and nothing is left.
TEST_F(FilePayloadStoreTest, ObjectWrittenAheadWhoseHoldOrWriteFailsCommitsNothing) {
  const std::string bytes = large_bytes(4 << 20, 'g');
  auto refused = store_->begin_object(bytes);
  ASSERT_NE(refused, nullptr);
  auto not_held = refused->commit([](std::string_view) -> Status { return Error{"hold refused"}; });
  ASSERT_FALSE(not_held.ok());
  EXPECT_EQ(not_held.error().message, "hold refused");
  refused.reset();
  EXPECT_EQ(files_in("objects"), 0u);
  EXPECT_EQ(files_in("tmp"), 0u);

  rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &before), 0);
  auto previous = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = before;
  small.rlim_cur = 1 << 20;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  auto full = store_->begin_object(bytes);
  Result<std::string> not_written = Error{"no object begun"};
  if (full) not_written = full->commit([](std::string_view) { return Status::Ok(); });
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &before), 0);
  std::signal(SIGXFSZ, previous);
  ASSERT_FALSE(not_written.ok());
  EXPECT_NE(not_written.error().message.find("File too large"), std::string::npos)
      << not_written.error().message;
  full.reset();
  EXPECT_EQ(files_in("objects"), 0u);
  EXPECT_EQ(files_in("tmp"), 0u);
}

// Two sidecars (two stores on one directory) storing equal bytes at the same time: content
// addressed, both succeed, one whole object, no temporary left.
TEST_F(FilePayloadStoreTest, ConcurrentPutObjectsOfEqualBytesBothSucceedWithOneObject) {
  const std::string bytes = large_bytes(8 << 20, 'd');
  auto other = open();
  std::string first, second;
  std::string first_error, second_error;
  auto run = [&](PayloadStore& store, std::string& digest, std::string& error) {
    for (int i = 0; i < 3; ++i) {
      auto stored = store.put_object(bytes, [](std::string_view) { return Status::Ok(); });
      if (!stored) {
        error = stored.error().message;
        return;
      }
      digest = *stored;
    }
  };
  std::thread a([&] { run(*store_, first, first_error); });
  std::thread b([&] { run(*other, second, second_error); });
  a.join();
  b.join();
  EXPECT_EQ(first_error, "");
  EXPECT_EQ(second_error, "");
  EXPECT_EQ(first, sha256_hex(bytes));
  EXPECT_EQ(second, first);
  EXPECT_EQ(files_in("objects"), 1u);
  EXPECT_EQ(files_in("tmp"), 0u);
  std::string out;
  ASSERT_TRUE(store_->read(object_key(first), out).ok());
  EXPECT_TRUE(out == bytes);
}

// Runs `read` in a child process without the capabilities that let root read any file
// (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so that permissions deny it as they deny a sidecar
// running as another user; returns the Error message read() gave ("ok" when it succeeded).
std::string read_without_override(PayloadStore& store, const std::string& key) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  pid_t child = ::fork();
  if (child == 0) {
    ::close(fds[0]);
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    std::string message = "capget failed";
    if (::syscall(SYS_capget, &header, data) == 0) {
      for (int cap : {CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH})
        data[cap / 32].effective &= ~(1u << (cap % 32));
      std::string out;
      Status st = ::syscall(SYS_capset, &header, data) == 0 ? store.read(key, out)
                                                            : Status(Error{"capset failed"});
      message = st ? "ok" : st.message();
    }
    (void)!::write(fds[1], message.data(), message.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string message;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;) message.append(buffer, n);
  ::close(fds[0]);
  ::waitpid(child, nullptr, 0);
  return message;
}

// docs/protocol.md §10: an object whose own permissions deny the reader is unavailable (a
// property of that object: payload_unavailable, not retried), named with its mode and owner; a
// store directory the reader cannot enter is a store error (retried: fixing the deployment fixes
// every message at once).
TEST_F(FilePayloadStoreTest, AnObjectThatMayNotBeReadIsUnavailableAndAnUnenterableStoreIsAnError) {
  ASSERT_TRUE(store_->put("objects/locked", "bytes").ok());
  ASSERT_TRUE(store_->put("objects/open", "bytes").ok());
  fs::permissions(dir_ / "objects" / "locked", fs::perms::none);
  std::string locked = read_without_override(*store_, "objects/locked");
  EXPECT_TRUE(locked.starts_with(kUnreadable)) << locked;
  EXPECT_TRUE(object_unavailable(locked)) << locked;
  EXPECT_NE(locked.find("mode 0000"), std::string::npos) << locked;
  EXPECT_NE(locked.find("Permission denied"), std::string::npos) << locked;
  EXPECT_EQ(read_without_override(*store_, "objects/open"), "ok");
  fs::permissions(dir_ / "objects", fs::perms::none);
  std::string closed = read_without_override(*store_, "objects/open");
  EXPECT_FALSE(object_unavailable(closed)) << closed;
  EXPECT_NE(closed.find("cannot enter the store's directories"), std::string::npos) << closed;
  fs::permissions(dir_ / "objects", fs::perms::owner_all);
}

TEST(PayloadStoreRegistry, UnknownSchemeNamesTheVariableAndTheAcceptedOnes) {
  PayloadStoreOptions options;
  options.url = "ftp://x";
  try {
    (void)make_payload_store(options);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("ASYA_PAYLOAD_STORE=\"ftp://x\""), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("file, s3"), std::string::npos);
  }
}

TEST(PayloadStoreRegistry, FileStoreUrlIsAbsolute) {
  fs::path dir = fs::temp_directory_path() / ("asya-payload-url-" + random_hex(8));
  PayloadStoreOptions options;
  options.url = "file://" + dir.string() + "/";
  auto store = make_payload_store(options);
  EXPECT_EQ(store->url(), "file://" + dir.string());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace asya::payload
