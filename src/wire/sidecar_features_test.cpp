#include "wire/sidecar_features.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace asya::wire {
namespace {

namespace fs = std::filesystem;

TEST(SidecarFeatures, FileSitsNextToTheSocket) {
  EXPECT_EQ(sidecar_features_file_for("/run/asya/asya-runtime.sock"), "/run/asya/sidecar-features");
  EXPECT_EQ(sidecar_features_file_for("rt.sock"), "sidecar-features");
}

TEST(SidecarFeatures, DeclaredOnlyForThePeerThatWroteIt) {
  const std::string text = "4711\n payload-unchanged \n";
  EXPECT_TRUE(sidecar_declares(text, 4711, kPayloadUnchangedFeature));
  // Another process connected (an older sidecar after this one stopped, a test client).
  EXPECT_FALSE(sidecar_declares(text, 4712, kPayloadUnchangedFeature));
  // The peer's pid is not visible (another pid namespace): the file is trusted.
  EXPECT_TRUE(sidecar_declares(text, 0, kPayloadUnchangedFeature));
  EXPECT_FALSE(sidecar_declares("4711\n", 4711, kPayloadUnchangedFeature));
  EXPECT_FALSE(sidecar_declares("4711\npayload-unchanged-2\n", 4711, kPayloadUnchangedFeature));
  // The first line is a pid, never a feature.
  EXPECT_FALSE(sidecar_declares("payload-unchanged\n", 0, kPayloadUnchangedFeature));
  EXPECT_FALSE(sidecar_declares("x1\npayload-unchanged\n", 0, kPayloadUnchangedFeature));
  EXPECT_FALSE(sidecar_declares("", 0, kPayloadUnchangedFeature));
  EXPECT_TRUE(sidecar_declares("7\r\npayload-unchanged", 7, kPayloadUnchangedFeature));
}

class SidecarFeaturesFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("asya-features-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    socket_path_ = (dir_ / "sub" / "rt.sock").string();
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0);
  }
  void TearDown() override {
    ::close(fds_[0]);
    ::close(fds_[1]);
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, ec);
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
  std::string socket_path_;
  int fds_[2] = {-1, -1};
};

TEST_F(SidecarFeaturesFile, WrittenFileIsReadForTheWritersConnection) {
  EXPECT_FALSE(peer_declares(fds_[0], socket_path_, kPayloadUnchangedFeature));  // no file yet
  ASSERT_TRUE(write_sidecar_features(socket_path_, ::getpid(), {kPayloadUnchangedFeature}).ok());
  // The socket pair's peer is this process, the file's writer.
  EXPECT_TRUE(peer_declares(fds_[0], socket_path_, kPayloadUnchangedFeature));
  // A file written for another pid (a stale one) declares nothing to this peer.
  ASSERT_TRUE(
      write_sidecar_features(socket_path_, ::getpid() + 1, {kPayloadUnchangedFeature}).ok());
  EXPECT_FALSE(peer_declares(fds_[0], socket_path_, kPayloadUnchangedFeature));
  // Declaring nothing replaces a file that declared the feature.
  ASSERT_TRUE(write_sidecar_features(socket_path_, ::getpid(), {}).ok());
  EXPECT_FALSE(peer_declares(fds_[0], socket_path_, kPayloadUnchangedFeature));
  EXPECT_FALSE(fs::exists(sidecar_features_file_for(socket_path_) + "." +
                          std::to_string(::getpid()) + ".tmp"));
}

TEST_F(SidecarFeaturesFile, UnwritableDirectoryFailsNamingTheFile) {
  // The socket's directory cannot hold files (here: it is a regular file, which fails for root
  // too, as a read-only directory fails for anyone else).
  fs::create_directories(dir_);
  std::ofstream(dir_ / "sub") << "not a directory";
  Status written = write_sidecar_features(socket_path_, ::getpid(), {kPayloadUnchangedFeature});
  ASSERT_FALSE(written.ok());
  EXPECT_NE(written.message().find("sidecar-features"), std::string::npos) << written.message();
  EXPECT_FALSE(peer_declares(fds_[0], socket_path_, kPayloadUnchangedFeature));
}

}  // namespace
}  // namespace asya::wire
