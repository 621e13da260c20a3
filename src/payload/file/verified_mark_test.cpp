// The file store's verified mark (payload/file/verified_mark.hpp): written by put() and by a
// reader whose hash matched, trusted only while the file shows no change since.
#include "payload/file/verified_mark.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>
#include <vector>

#include "common/random_id.hpp"
#include "payload/payload_store.hpp"
#include "payload/reference.hpp"

namespace asya::payload {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string attribute_of(const fs::path& path) {
  char buffer[512];
  ssize_t n = ::getxattr(path.c_str(), kVerifiedMarkAttribute, buffer, sizeof(buffer));
  return n < 0 ? std::string() : std::string(buffer, static_cast<std::size_t>(n));
}

struct stat stat_of(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return st;
}

// Rewrites the file in place (same inode), byte `index` changed, same size.
void tamper(const fs::path& path, std::size_t index) {
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char byte = 0;
  EXPECT_EQ(::pread(fd, &byte, 1, static_cast<off_t>(index)), 1);
  byte = byte == 'q' ? 'r' : 'q';
  EXPECT_EQ(::pwrite(fd, &byte, 1, static_cast<off_t>(index)), 1);
  ::close(fd);
}

// Waits until the file's last change is older than kMarkSettle (a precondition of the test, not a
// timing assertion): a later change, even one that restores the modification time, is caught.
void wait_until_mark_settled(const fs::path& path) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    struct stat st = stat_of(path);
    struct timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    const auto age = std::chrono::seconds(now.tv_sec - st.st_ctim.tv_sec) +
                     std::chrono::nanoseconds(now.tv_nsec - st.st_ctim.tv_nsec);
    if (age > kMarkSettle + 50ms) return;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(10ms);
  }
}

class VerifiedMarkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("asya-verified-mark-test-" + random_hex(8));
    PayloadStoreOptions options;
    options.url = "file://" + dir_.string();
    store_ = make_payload_store(options);
    bytes_ = R"({"data":")" + std::string(300000, 'z') + R"("})";
    sha_ = sha256_hex(bytes_);
    key_ = object_key(sha_);
    ASSERT_TRUE(store_->put(key_, bytes_).ok());
  }
  void TearDown() override {
    set_verified_marks_unsupported_for_testing(false);
    fs::remove_all(dir_);
  }
  fs::path file() const { return dir_ / key_; }
  Result<bool> read_checked(std::string& out) {
    out.clear();
    return store_->read_checked(key_, sha_, bytes_.size(), out);
  }

  fs::path dir_;
  std::unique_ptr<PayloadStore> store_;
  std::string bytes_;
  std::string sha_;
  std::string key_;
};

TEST_F(VerifiedMarkTest, PutMarksTheObjectWithItsDigestSizeAndFileState) {
  const std::string mark = attribute_of(file());
  EXPECT_NE(mark.find("sha256=" + sha_), std::string::npos) << mark;
  EXPECT_NE(mark.find("size=" + std::to_string(bytes_.size())), std::string::npos) << mark;
  struct stat st = stat_of(file());
  EXPECT_NE(mark.find("ino=" + std::to_string(st.st_ino)), std::string::npos) << mark;
  int fd = ::open(file().c_str(), O_RDONLY);
  EXPECT_TRUE(has_verified_mark(fd, st, sha_, bytes_.size()));
  EXPECT_FALSE(has_verified_mark(fd, st, sha256_hex("other"), bytes_.size()));
  EXPECT_FALSE(has_verified_mark(fd, st, sha_, bytes_.size() + 1));
  ::close(fd);
  // Records of the store other than objects carry no mark.
  ASSERT_TRUE(store_->put("holds/ab/cd", "x").ok());
  EXPECT_EQ(attribute_of(dir_ / "holds/ab/cd"), "");
}

TEST_F(VerifiedMarkTest, ATrustedMarkSkipsTheHash) {
  // A writer vouches for the digest in the key: content that does not have it passes as long as
  // the file is unchanged since, which shows that a marked object is not hashed.
  const std::string other(bytes_.size(), 'o');
  ASSERT_TRUE(store_->put(key_, other).ok());
  std::string out;
  auto checked = read_checked(out);
  ASSERT_TRUE(checked.ok()) << checked.error().message;
  EXPECT_TRUE(*checked);
  EXPECT_EQ(out, other);
}

TEST_F(VerifiedMarkTest, AFileRewrittenWithTheSameSizeIsHashedAndFails) {
  tamper(file(), 100);
  std::string out;
  auto checked = read_checked(out);
  ASSERT_TRUE(checked.ok());
  EXPECT_FALSE(*checked);
  EXPECT_EQ(out.size(), bytes_.size());
}

TEST_F(VerifiedMarkTest, AChangeThatRestoresTheModificationTimeIsCaughtByTheChangeTime) {
  wait_until_mark_settled(file());
  struct stat before = stat_of(file());
  tamper(file(), 100);
  struct timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, file().c_str(), times, 0), 0);
  struct stat after = stat_of(file());
  ASSERT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  ASSERT_EQ(after.st_size, before.st_size);
  std::string out;
  auto checked = read_checked(out);
  ASSERT_TRUE(checked.ok());
  EXPECT_FALSE(*checked);
}

TEST_F(VerifiedMarkTest, AMarkNamingAnotherDigestOrSizeIsIgnoredAndTheFileHashed) {
  struct stat st = stat_of(file());
  for (const std::string& forged :
       {format_verified_mark(sha256_hex("other"), st, st.st_ctim.tv_sec * 1'000'000'000LL),
        std::string("v1 sha256=") + sha_ + " size=1 mtime_ns=1 ino=1 ctime_ns=1",
        std::string("v1 pending"), std::string("garbage")}) {
    ASSERT_EQ(::setxattr(file().c_str(), kVerifiedMarkAttribute, forged.data(), forged.size(), 0),
              0);
    std::string out;
    auto checked = read_checked(out);
    ASSERT_TRUE(checked.ok());
    EXPECT_TRUE(*checked) << forged;
    // The hash matched, so the reader marked the file again, correctly.
    EXPECT_NE(attribute_of(file()).find("sha256=" + sha_), std::string::npos) << forged;
  }
  // The same ignored mark on changed content: hashed, and the mismatch found.
  tamper(file(), 7);
  const std::string forged =
      std::string("v1 sha256=") + sha_ + " size=1 mtime_ns=1 ino=1 ctime_ns=1";
  ASSERT_EQ(::setxattr(file().c_str(), kVerifiedMarkAttribute, forged.data(), forged.size(), 0), 0);
  std::string out;
  auto checked = read_checked(out);
  ASSERT_TRUE(checked.ok());
  EXPECT_FALSE(*checked);
  EXPECT_EQ(attribute_of(file()), forged) << "a failed check marks nothing";
}

TEST_F(VerifiedMarkTest, AnUnmarkedObjectIsHashedOnceAndMarkedByItsReader) {
  ASSERT_EQ(::removexattr(file().c_str(), kVerifiedMarkAttribute), 0);
  std::string out;
  auto checked = read_checked(out);
  ASSERT_TRUE(checked.ok() && *checked);
  int fd = ::open(file().c_str(), O_RDONLY);
  EXPECT_TRUE(has_verified_mark(fd, stat_of(file()), sha_, bytes_.size()));
  ::close(fd);
}

TEST_F(VerifiedMarkTest, ACopyWithItsAttributesIsAnotherFileAndNotTrusted) {
  // cp --preserve=all: same bytes, times and attribute, another inode.
  fs::path copy = dir_ / "copy";
  fs::copy_file(file(), copy);
  const std::string mark = attribute_of(file());
  ASSERT_EQ(::setxattr(copy.c_str(), kVerifiedMarkAttribute, mark.data(), mark.size(), 0), 0);
  struct stat st = stat_of(file());
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, copy.c_str(), times, 0), 0);
  fs::rename(copy, file());
  int fd = ::open(file().c_str(), O_RDONLY);
  EXPECT_FALSE(has_verified_mark(fd, stat_of(file()), sha_, bytes_.size()));
  ::close(fd);
}

TEST_F(VerifiedMarkTest, WithoutUserAttributesEveryReadIsHashedAndNothingFails) {
  set_verified_marks_unsupported_for_testing(true);
  ASSERT_EQ(::removexattr(file().c_str(), kVerifiedMarkAttribute), 0);
  ASSERT_TRUE(store_->put(key_, bytes_).ok());
  EXPECT_EQ(attribute_of(file()), "");
  std::string out;
  auto checked = read_checked(out);
  ASSERT_TRUE(checked.ok() && *checked);
  EXPECT_EQ(out, bytes_);
  EXPECT_EQ(attribute_of(file()), "") << "nothing marked";
  tamper(file(), 5);
  checked = read_checked(out);
  ASSERT_TRUE(checked.ok());
  EXPECT_FALSE(*checked);
}

TEST_F(VerifiedMarkTest, AMissingObjectIsNotFound) {
  fs::remove(file());
  std::string out;
  auto checked = read_checked(out);
  ASSERT_FALSE(checked.ok());
  EXPECT_TRUE(checked.error().message.starts_with(kNotFound)) << checked.error().message;
}

}  // namespace
}  // namespace asya::payload

namespace asya::payload {
namespace {

// Writes `text(mark)` as the attribute, where `mark` is the valid mark of the file's state at that
// moment (the writer's two steps), so that only the text decides whether a reader trusts it.
void write_mark_text(const fs::path& path, std::string_view sha256,
                     const std::function<std::string(const std::string&)>& text) {
  int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::fsetxattr(fd, kVerifiedMarkAttribute, "v1 pending", 10, 0), 0);
  struct stat now {};
  ASSERT_EQ(::fstat(fd, &now), 0);
  const std::string value = text(format_verified_mark(
      sha256, now, std::int64_t{now.st_ctim.tv_sec} * 1'000'000'000 + now.st_ctim.tv_nsec));
  ASSERT_EQ(::fsetxattr(fd, kVerifiedMarkAttribute, value.data(), value.size(), 0), 0);
  ::close(fd);
}

TEST_F(VerifiedMarkTest, AForgedOversizedOrGarbledMarkIsNeverTrustedAndTheFileIsHashed) {
  // Content without the key's digest, so a trusted mark shows as a read that passes.
  const std::string other(bytes_.size(), 'o');
  ASSERT_TRUE(store_->put(key_, other).ok());
  std::string out;
  write_mark_text(file(), sha_, [](const std::string& mark) { return mark; });
  auto checked = read_checked(out);
  ASSERT_TRUE(checked.ok() && *checked) << "the control: a well-formed fresh mark is trusted";
  const std::vector<std::function<std::string(const std::string&)>> garbled = {
      [](const std::string& m) { return m + " extra=1"; },
      [](const std::string& m) { return m + std::string(1, '\0'); },
      [](const std::string& m) { return m + std::string(300, ' '); },  // over the 256-byte read
      [](const std::string& m) { return "v2" + m.substr(2); },
      [](const std::string& m) { return m.substr(0, m.size() - 1); },  // ctime_ns cut short: later
      [](const std::string& m) { return m.substr(0, m.find(" ino=")); },
      [this](const std::string& m) {
        return "v1 sha256=" + sha_ + " sha256=" + sha_ + m.substr(m.find(" size="));
      },
      [](const std::string& m) {
        std::string s = m;
        s.replace(s.find("size="), 5, "size=-");
        return s;
      },
      [](const std::string&) { return std::string(); },
      [](const std::string&) { return std::string(255, '\xff'); },
  };
  for (std::size_t i = 0; i < garbled.size(); ++i) {
    write_mark_text(file(), sha_, garbled[i]);
    checked = read_checked(out);
    ASSERT_TRUE(checked.ok()) << i << ": " << checked.error().message;
    EXPECT_FALSE(*checked) << "garbled mark " << i << " was trusted";
    EXPECT_EQ(out, other) << i;
  }
}

TEST_F(VerifiedMarkTest, AWriteThroughAHardLinkIsCaughtEvenWithTheModificationTimeRestored) {
  // A link elsewhere is the same inode: a write through it, its modification time set back, still
  // moves the change time past the mark's (the link itself changes no byte).
  wait_until_mark_settled(file());
  const fs::path linked = dir_ / "linked";
  ASSERT_EQ(::link(file().c_str(), linked.c_str()), 0);
  const struct stat before = stat_of(file());
  tamper(linked, 100);
  const struct timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, linked.c_str(), times, 0), 0);
  std::string out;
  auto checked = read_checked(out);
  ASSERT_TRUE(checked.ok());
  EXPECT_FALSE(*checked) << "a write through a hard link was trusted";
}

}  // namespace
}  // namespace asya::payload
