// SigV4 against AWS's published test suite (testdata/, see its README) plus the behaviour the
// suite does not cover (session tokens, S3 path signing, URL parsing).
#include "common/aws/sigv4.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/aws/http.hpp"
#include "common/aws/s3.hpp"

namespace asya::aws {
namespace {

const Credentials kSuiteCredentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
const Scope kSuiteScope{.region = "us-east-1", .service = "service"};
constexpr const char* kSuiteDate = "20150830T123600Z";

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Parses the suite's .req format: "METHOD target HTTP/1.1", "Name:value" lines, a blank line,
// the body.
Request parse_req(const std::string& text, std::string* body) {
  Request request;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  std::istringstream first(line);
  std::string target;
  first >> request.method >> target;
  std::size_t question = target.find('?');
  request.path = target.substr(0, question);
  if (question != std::string::npos) request.query = target.substr(question + 1);
  while (std::getline(in, line) && !line.empty()) {
    std::size_t colon = line.find(':');
    request.headers.emplace_back(line.substr(0, colon), line.substr(colon + 1));
  }
  std::ostringstream rest;
  rest << in.rdbuf();
  *body = rest.str();
  request.payload_sha256 = sha256_hex(*body);
  return request;
}

std::vector<std::filesystem::path> vector_requests() {
  std::vector<std::filesystem::path> out;
  for (const auto& entry : std::filesystem::directory_iterator(ASYA_AWS_TESTDATA_DIR)) {
    if (entry.path().extension() == ".req") out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(SigV4, EveryPublishedVectorMatchesAtEachStep) {
  auto requests = vector_requests();
  ASSERT_GE(requests.size(), 18u) << "test vectors missing in " << ASYA_AWS_TESTDATA_DIR;
  for (const auto& req_path : requests) {
    SCOPED_TRACE(req_path.stem().string());
    std::string body;
    Request request = parse_req(read_file(req_path), &body);
    auto expected = [&](const char* extension) {
      auto path = req_path;
      return read_file(path.replace_extension(extension));
    };
    std::string creq = canonical_request(request, kSuiteScope);
    EXPECT_EQ(creq, expected(".creq"));
    std::string sts = string_to_sign(kSuiteDate, kSuiteScope, creq);
    EXPECT_EQ(sts, expected(".sts"));
    EXPECT_EQ(authorization(kSuiteCredentials, kSuiteDate, kSuiteScope, request),
              expected(".authz"));
  }
}

TEST(SigV4, SignAddsDateAndAuthorizationEqualToTheVector) {
  Request request{.method = "GET",
                  .path = "/",
                  .query = "",
                  .headers = {{"Host", "example.amazonaws.com"}},
                  .payload_sha256 = ""};
  // 2015-08-30T12:36:00Z
  sign(request, kSuiteCredentials, kSuiteScope,
       std::chrono::system_clock::time_point(std::chrono::seconds(1440938160)));
  ASSERT_EQ(request.headers.size(), 3u);
  EXPECT_EQ(request.headers[1].first, "X-Amz-Date");
  EXPECT_EQ(request.headers[1].second, kSuiteDate);
  EXPECT_EQ(request.headers[2].first, "Authorization");
  std::string body;
  auto vector_dir = std::filesystem::path(ASYA_AWS_TESTDATA_DIR);
  std::string authz = read_file(vector_dir / "get-vanilla.authz");
  EXPECT_EQ(request.headers[2].second, authz);
}

TEST(SigV4, SessionTokenIsSentAndSigned) {
  Request request{.method = "POST",
                  .path = "/",
                  .query = "",
                  .headers = {{"Host", "example.amazonaws.com"}},
                  .payload_sha256 = ""};
  Credentials temporary = kSuiteCredentials;
  temporary.session_token = "TOKEN";
  sign(request, temporary, kSuiteScope);
  bool has_token = false;
  for (const auto& [name, value] : request.headers)
    if (name == "X-Amz-Security-Token") has_token = value == "TOKEN";
  EXPECT_TRUE(has_token);
  EXPECT_NE(
      request.headers.back().second.find("SignedHeaders=host;x-amz-date;x-amz-security-token"),
      std::string::npos)
      << request.headers.back().second;
}

TEST(SigV4, ResigningReplacesTheOldSignature) {
  Request request{
      .method = "GET", .path = "/", .query = "", .headers = {{"Host", "h"}}, .payload_sha256 = ""};
  sign(request, kSuiteCredentials, kSuiteScope);
  sign(request, kSuiteCredentials, kSuiteScope);
  EXPECT_EQ(request.headers.size(), 3u);
}

TEST(SigV4, PathIsEncodedTwiceExceptForS3) {
  Request request{.method = "GET",
                  .path = "/a%20b/c",
                  .query = "",
                  .headers = {{"Host", "h"}},
                  .payload_sha256 = ""};
  EXPECT_NE(canonical_request(request, kSuiteScope).find("\n/a%2520b/c\n"), std::string::npos);
  Scope s3{.region = "us-east-1", .service = "s3", .double_encode_path = false};
  EXPECT_NE(canonical_request(request, s3).find("\n/a%20b/c\n"), std::string::npos);
}

TEST(SigV4, QueryValuesAreReencodedAndSorted) {
  Request request{.method = "GET",
                  .path = "/",
                  .query = "b=x y&a=%7e&a=1",
                  .headers = {{"Host", "h"}},
                  .payload_sha256 = ""};
  EXPECT_NE(canonical_request(request, kSuiteScope).find("\na=1&a=~&b=x%20y\n"), std::string::npos);
}

TEST(SigV4, UriEncodeKeepsOnlyUnreserved) {
  EXPECT_EQ(uri_encode("a-b_c.d~e/f g+h=é", false), "a-b_c.d~e%2Ff%20g%2Bh%3D%C3%A9");
  EXPECT_EQ(uri_encode("dir/file name.json", true), "dir/file%20name.json");
}

TEST(Url, ParsesHostPortPathAndQuery) {
  auto url = Url::parse("http://127.0.0.1:5000/123456789012/asya-x?a=b");
  ASSERT_TRUE(url) << url.error().message;
  EXPECT_EQ(url->scheme, "http");
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, "5000");
  EXPECT_EQ(url->path, "/123456789012/asya-x");
  EXPECT_EQ(url->query, "a=b");
  EXPECT_EQ(url->host_header(), "127.0.0.1:5000");
  EXPECT_EQ(Url::parse("https://sqs.us-east-1.amazonaws.com")->path, "/");
  EXPECT_EQ(Url::parse("https://h:443/")->host_header(), "h");
  EXPECT_EQ(Url::parse("http://[::1]:9000/x")->host, "[::1]");
}

TEST(Url, RejectsWhatIsNotAnHttpUrl) {
  auto bad = Url::parse("127.0.0.1:5000");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("\"127.0.0.1:5000\" is not a URL"), std::string::npos);
  EXPECT_FALSE(Url::parse("ftp://h/"));
  EXPECT_FALSE(Url::parse("http://h:x/"));
}

TEST(S3Url, SplitsBucketAndPrefix) {
  auto parsed = parse_s3_url("s3://results/runs/2024/");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->first, "results");
  EXPECT_EQ(parsed->second, "runs/2024");
  EXPECT_EQ(parse_s3_url("s3://b")->second, "");
  EXPECT_FALSE(parse_s3_url("s3:///x"));
  EXPECT_FALSE(parse_s3_url("file:///x"));
}

}  // namespace
}  // namespace asya::aws
