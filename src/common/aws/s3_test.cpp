// S3 client against a real S3 API: moto's server, whose endpoint tests/transport/test_sqs.py puts
// in ASYA_TEST_AWS_ENDPOINT. Skipped when that variable is unset.
#include "common/aws/s3.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

namespace asya::aws {
namespace {

class S3Test : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* endpoint = std::getenv("ASYA_TEST_AWS_ENDPOINT");
    if (endpoint == nullptr || *endpoint == '\0')
      GTEST_SKIP() << "ASYA_TEST_AWS_ENDPOINT is unset (tests/transport/test_sqs.py sets it)";
    Config config;
    config.endpoint = endpoint;
    config.region = "us-east-1";
    config.credentials = {"testing", "testing", ""};
    client_ = std::make_unique<S3Client>(config);
    bucket_ = "asya-test-" + std::to_string(std::random_device()());
    ASSERT_TRUE(client_->create_bucket(bucket_)) << "create bucket " << bucket_;
  }

  std::unique_ptr<S3Client> client_;
  std::string bucket_;
};

TEST_F(S3Test, PutThenGetReturnsTheSameBytes) {
  std::string body = R"({"id":"a b/c","payload":{"text":"héllo"}})";
  ASSERT_TRUE(client_->put_object(bucket_, "results/a b%2Fc.json", body));
  auto got = client_->get_object(bucket_, "results/a b%2Fc.json");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, body);
}

TEST_F(S3Test, PutReplacesAnEarlierObject) {
  ASSERT_TRUE(client_->put_object(bucket_, "k.json", "{\"v\":1}"));
  ASSERT_TRUE(client_->put_object(bucket_, "k.json", "{\"v\":2}"));
  EXPECT_EQ(*client_->get_object(bucket_, "k.json"), "{\"v\":2}");
}

TEST_F(S3Test, LargeObjectRoundTrips) {
  std::string body(3 << 20, 'x');
  for (std::size_t i = 0; i < body.size(); i += 4096) body[i] = static_cast<char>('a' + i % 26);
  ASSERT_TRUE(client_->put_object(bucket_, "big.json", body));
  auto got = client_->get_object(bucket_, "big.json");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_TRUE(*got == body);
}

TEST_F(S3Test, MissingObjectIsNotFound) {
  auto got = client_->get_object(bucket_, "nothing-here.json");
  ASSERT_FALSE(got);
  EXPECT_TRUE(got.error().message.starts_with("not_found:")) << got.error().message;
}

TEST_F(S3Test, MissingBucketNamesTheLocationAndS3Code) {
  Status put = client_->put_object(bucket_ + "-missing", "k.json", "{}");
  ASSERT_FALSE(put);
  EXPECT_NE(put.message().find("s3://" + bucket_ + "-missing/k.json"), std::string::npos)
      << put.message();
  EXPECT_NE(put.message().find("NoSuchBucket"), std::string::npos) << put.message();
}

TEST_F(S3Test, CreatingAnExistingBucketSucceeds) {
  EXPECT_TRUE(client_->create_bucket(bucket_));
}

TEST(S3ObjectUrl, PathStyleForCustomEndpointsVirtualHostedOnAws) {
  Config custom{.credentials = {"a", "b", ""}, .region = "eu-west-1", .endpoint = "http://h:9"};
  EXPECT_EQ(S3Client(custom).object_url("bkt", "p/a b.json"), "http://h:9/bkt/p/a%20b.json");
  Config aws{.credentials = {"a", "b", ""}, .region = "eu-west-1", .endpoint = ""};
  EXPECT_EQ(S3Client(aws).object_url("bkt", "p/x.json"),
            "https://bkt.s3.eu-west-1.amazonaws.com/p/x.json");
}

}  // namespace
}  // namespace asya::aws
