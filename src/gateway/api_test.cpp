// The request checks every endpoint applies (docs/gateway.md, Security), without sockets.
#include <gtest/gtest.h>

#include "gateway/api.hpp"

namespace asya::gateway {
namespace {

TEST(OriginAllowed, LocalOriginsAndListedOnesPassOthersDoNot) {
  ApiOptions options;
  EXPECT_TRUE(api::origin_allowed(options, ""));  // not a browser
  EXPECT_TRUE(api::origin_allowed(options, "http://localhost:3000"));
  EXPECT_TRUE(api::origin_allowed(options, "https://127.0.0.1"));
  EXPECT_TRUE(api::origin_allowed(options, "http://[::1]:8080"));
  EXPECT_TRUE(api::origin_allowed(options, "HTTP://LOCALHOST"));
  EXPECT_FALSE(api::origin_allowed(options, "http://evil.example"));
  EXPECT_FALSE(api::origin_allowed(options, "http://localhost.evil.example"));
  EXPECT_FALSE(api::origin_allowed(options, "null"));
  options.allowed_origins = {"https://app.example"};
  EXPECT_TRUE(api::origin_allowed(options, "https://app.example"));
  EXPECT_FALSE(api::origin_allowed(options, "https://app.example.evil"));
  options.allowed_origins = {"*"};
  EXPECT_TRUE(api::origin_allowed(options, "http://evil.example"));
}

TEST(HostAllowed, AddressesAndLocalhostPassNamesOnlyWhenListed) {
  ApiOptions options;
  for (const char* host : {"", "127.0.0.1:8080", "10.1.2.3", "[::1]:8080", "[fe80::1]", "localhost",
                           "LocalHost:9000"}) {
    EXPECT_TRUE(api::host_allowed(options, host)) << host;
  }
  for (const char* host : {"evil.example", "evil.example:8080", "127.0.0.1.evil.example",
                           "localhost.evil.example:8080", "asya-gateway"}) {
    EXPECT_FALSE(api::host_allowed(options, host)) << host;
  }
  options.allowed_hosts = {"asya-gateway", "Gateway.Example"};
  EXPECT_TRUE(api::host_allowed(options, "asya-gateway:8080"));
  EXPECT_TRUE(api::host_allowed(options, "gateway.example"));
  EXPECT_FALSE(api::host_allowed(options, "evil.example"));
  options.allowed_hosts = {"*"};
  EXPECT_TRUE(api::host_allowed(options, "evil.example"));
}

// The dashboard served by the gateway calls its API from the gateway's own origin.
TEST(SameOrigin, ThePagesOwnOriginPassesUnlessItsHostIsOnlyAcceptedByAWildcard) {
  ApiOptions options;
  EXPECT_TRUE(api::same_origin(options, "http://10.1.2.3:8080", "10.1.2.3:8080"));
  EXPECT_TRUE(api::same_origin(options, "https://LOCALHOST:8443", "localhost:8443"));
  EXPECT_FALSE(api::same_origin(options, "http://10.1.2.3:9999", "10.1.2.3:8080"));
  EXPECT_FALSE(api::same_origin(options, "http://evil.example", "10.1.2.3"));
  options.allowed_hosts = {"asya.example"};
  EXPECT_TRUE(api::same_origin(options, "https://asya.example", "asya.example"));
  // A wildcard accepts any Host (a gateway on 0.0.0.0): a DNS-rebinding page would have its own
  // name as both Host and Origin, so only listed names count as this server's.
  options.allowed_hosts = {"*"};
  EXPECT_FALSE(api::same_origin(options, "http://rebound.evil", "rebound.evil"));
  EXPECT_TRUE(api::same_origin(options, "http://127.0.0.1:8080", "127.0.0.1:8080"));
}

TEST(JsonContentType, OnlyApplicationJsonWithOptionalParameters) {
  EXPECT_TRUE(api::is_json_content_type("application/json"));
  EXPECT_TRUE(api::is_json_content_type("Application/JSON; charset=utf-8"));
  for (const char* type :
       {"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
        "application/jsonp", "text/plain; application/json"}) {
    EXPECT_FALSE(api::is_json_content_type(type)) << type;
  }
}

TEST(BearerMatches, SchemeIsCaseInsensitiveTokenIsNot) {
  EXPECT_TRUE(api::bearer_matches("Bearer s3cret", "s3cret"));
  EXPECT_TRUE(api::bearer_matches("bearer s3cret", "s3cret"));
  EXPECT_TRUE(api::bearer_matches("BEARER  s3cret ", "s3cret"));
  EXPECT_FALSE(api::bearer_matches("Bearer S3CRET", "s3cret"));
  EXPECT_FALSE(api::bearer_matches("Basic s3cret", "s3cret"));
  EXPECT_FALSE(api::bearer_matches("Bearers3cret", "s3cret"));
  EXPECT_FALSE(api::bearer_matches("Bearer s3cret2", "s3cret"));
  EXPECT_FALSE(api::bearer_matches("", "s3cret"));
}

TEST(CallResult, AFailedJobsTextSaysTheErrorTypeMessageAndActor) {
  Job job;
  job.id = "j1";
  job.status = JobStatus::failed;
  job.error = "processing_error";
  job.error_details_json = R"({"message":"boom","type":"ValueError","traceback":"tb"})";
  job.failed_actor = "fail";
  boost::json::object result = api::call_result(job);
  EXPECT_EQ(result.at("isError"), true);
  EXPECT_EQ(result.at("content").as_array()[0].at("text"),
            R"(ValueError: boom (processing_error in actor "fail"))");
  const auto& structured = result.at("structuredContent").as_object();
  EXPECT_EQ(structured.at("error"), "processing_error");
  EXPECT_EQ(structured.at("failed_actor"), "fail");
  EXPECT_EQ(structured.at("error_details").at("type"), "ValueError");
  EXPECT_EQ(api::job_json(job).at("error_message"),
            R"(ValueError: boom (processing_error in actor "fail"))");
}

}  // namespace
}  // namespace asya::gateway

namespace asya::gateway {
namespace {

TEST(BearerMatchesAny, EachCommaSeparatedTokenIsAcceptedNothingElse) {
  EXPECT_TRUE(api::bearer_matches_any("Bearer alice-token", "alice-token, bob-token"));
  EXPECT_TRUE(api::bearer_matches_any("Bearer bob-token", "alice-token, bob-token"));
  EXPECT_TRUE(api::bearer_matches_any("Bearer only", "only"));
  EXPECT_FALSE(api::bearer_matches_any("Bearer alice-token, bob-token", "alice-token, bob-token"));
  EXPECT_FALSE(api::bearer_matches_any("Bearer carol", "alice-token,bob-token"));
  EXPECT_FALSE(api::bearer_matches_any("Bearer ", "alice-token,,"));
}

}  // namespace
}  // namespace asya::gateway

namespace asya::gateway {
namespace {

TEST(CallerOf, SeveralDistinctTokensIsolateCallersOneOrNoneDoNot) {
  ApiOptions options;
  Caller anyone = api::caller_of(options, "");
  EXPECT_EQ(anyone.owner, "");
  EXPECT_FALSE(anyone.isolated);

  options.token = "only";
  Caller single = api::caller_of(options, "Bearer only");
  EXPECT_EQ(single.owner, api::token_owner("Bearer only", true));
  EXPECT_FALSE(single.isolated);
  // The same token listed twice is still one caller.
  options.token = "only, only";
  EXPECT_FALSE(api::caller_of(options, "Bearer only").isolated);

  options.token = "alice-token, bob-token";
  Caller alice = api::caller_of(options, "Bearer alice-token");
  Caller bob = api::caller_of(options, "bearer  bob-token ");
  EXPECT_TRUE(alice.isolated && bob.isolated);
  EXPECT_NE(alice.owner, bob.owner);
  EXPECT_EQ(alice.owner.rfind("token:", 0), 0u);
  EXPECT_EQ(alice.owner, api::caller_of(options, " BEARER\talice-token").owner);
  // The fingerprint of a token never changes (jobs in existing databases keep their owner).
  // The fingerprint (FNV-1a 64 of the token) never changes: jobs in existing databases keep
  // their owner.
  EXPECT_EQ(api::token_owner("Bearer alice", true), "token:aa92c3cca816cda5");
  EXPECT_EQ(api::token_owner("Bearer alice", false), "");
}

TEST(CallerMaySee, IsolatedCallersSeeOnlyTheirOwnJobs) {
  Job mine;
  mine.owner = "token:0000000000000001";
  Job theirs;
  theirs.owner = "token:0000000000000002";
  Job ownerless;  // started without a token, or by a REST call before owners were recorded
  Caller isolated{"token:0000000000000001", true};
  EXPECT_TRUE(isolated.may_see(mine));
  EXPECT_FALSE(isolated.may_see(theirs));
  EXPECT_FALSE(isolated.may_see(ownerless));
  Caller shared{"token:0000000000000001", false};
  EXPECT_TRUE(shared.may_see(mine) && shared.may_see(theirs) && shared.may_see(ownerless));
}

}  // namespace
}  // namespace asya::gateway
