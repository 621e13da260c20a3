#include "common/durable_file.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <vector>

namespace asya {
namespace {
namespace fs = std::filesystem;

class DurableFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("asya-durable-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  static std::string read(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  fs::path dir_;
};

TEST_F(DurableFile, ReplacesTheTargetAndLeavesNoTemporary) {
  const fs::path target = dir_ / "status.json";
  ASSERT_TRUE(write_file_atomically(target, "first").ok());
  Status second = write_file_atomically(target, "second, longer");
  ASSERT_TRUE(second.ok()) << second.message();
  EXPECT_EQ(read(target), "second, longer");
  EXPECT_FALSE(fs::exists(dir_ / "status.json.tmp"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(DurableFile, WritesContentsLargerThanOneChunkByteForByte) {
  std::string big(20u << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31 % 251);
  const fs::path target = dir_ / "body";
  ASSERT_TRUE(write_file_atomically(target, big).ok());
  EXPECT_EQ(read(target), big);
}

TEST_F(DurableFile, ContentsInPartsAreWrittenAsThePartsJoined) {
  // A large middle part across several 8 MiB chunks, empty parts, and more parts than one
  // gathered write takes.
  std::string big(20u << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 % 253);
  std::vector<std::string> parts = {"{\"head\":", "", big, "", "}"};
  for (int i = 0; i < 40; ++i)
    parts.push_back(std::string(1000 + i, static_cast<char>('a' + i % 26)));
  std::vector<std::string_view> views(parts.begin(), parts.end());
  std::string joined;
  for (const std::string& part : parts) joined += part;
  const fs::path target = dir_ / "parts";
  Status written = write_file_atomically(target, std::span<const std::string_view>(views));
  ASSERT_TRUE(written.ok()) << written.message();
  EXPECT_TRUE(read(target) == joined);
  EXPECT_FALSE(fs::exists(dir_ / "parts.tmp"));
  ASSERT_TRUE(write_file_atomically(target, std::span<const std::string_view>()).ok());
  EXPECT_EQ(read(target), "");
}

TEST_F(DurableFile, InPlaceWritesTheTargetItselfExclusivelyWithNoTemporary) {
  FileWriteOptions options;
  options.in_place = true;
  options.exclusive = true;
  const fs::path target = dir_ / "m-1.body";
  std::string_view parts[] = {"{\"payload\":", std::string_view("x"), "}"};
  Status written = write_file_atomically(target, std::span<const std::string_view>(parts), options);
  ASSERT_TRUE(written.ok()) << written.message();
  EXPECT_EQ(read(target), "{\"payload\":x}");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1)
      << "a temporary was left or made";
  // Exclusive: an existing file of that name is refused and kept as it was.
  Status again = write_file_atomically(target, "other", options);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.message().find(target.string()), std::string::npos) << again.message();
  EXPECT_EQ(read(target), "{\"payload\":x}");
}

TEST_F(DurableFile, NamedExclusiveTemporaryRefusesANameInUseAndKeepsItsOwner) {
  FileWriteOptions options;
  options.temporary_path = dir_ / "x.part";
  options.exclusive = true;
  std::ofstream(options.temporary_path) << "another writer";
  Status s = write_file_atomically(dir_ / "x", "mine", options);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().rfind(
                "creating \"" + options.temporary_path.string() + "\" failed: File exists", 0),
            0u)
      << s.message();
  EXPECT_EQ(read(options.temporary_path), "another writer");
  EXPECT_FALSE(fs::exists(dir_ / "x"));
  fs::remove(options.temporary_path);
  ASSERT_TRUE(write_file_atomically(dir_ / "x", "mine", options).ok());
  EXPECT_EQ(read(dir_ / "x"), "mine");
  EXPECT_FALSE(fs::exists(options.temporary_path));
}

TEST_F(DurableFile, AFailedRenameRemovesTheTemporaryAndNamesBothPaths) {
  // A directory in the way cannot be replaced by a file.
  fs::create_directories(dir_ / "taken" / "child");
  Status s = write_file_atomically(dir_ / "taken", "text");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("renaming \"" + (dir_ / "taken.tmp").string() + "\" to \"" +
                             (dir_ / "taken").string() + "\" failed: "),
            std::string::npos)
      << s.message();
  EXPECT_FALSE(fs::exists(dir_ / "taken.tmp"));
  EXPECT_TRUE(fs::is_directory(dir_ / "taken"));
}

TEST_F(DurableFile, AMissingDirectoryIsNamedInTheError) {
  Status s = write_file_atomically(dir_ / "missing" / "f", "text");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("No such file or directory"), std::string::npos) << s.message();
  EXPECT_FALSE(fsync_directory(dir_ / "missing").ok());
  EXPECT_TRUE(fsync_directory(dir_).ok());
}

TEST_F(DurableFile, NonDurableWriteIsStillAtomicAndHonoursTheMode) {
  FileWriteOptions options;
  options.durable = false;
  options.mode = 0600;
  ASSERT_TRUE(write_file_atomically(dir_ / "pid", "42\n", options).ok());
  EXPECT_EQ(read(dir_ / "pid"), "42\n");
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "pid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0u);  // no access for group and others
}

}  // namespace
}  // namespace asya
