// What needs no server: URL redaction and the error of a server that refuses connections (the
// queries themselves run against a real PostgreSQL in the job-store and join-store suites).
#include "common/postgres/connection.hpp"

#include <gtest/gtest.h>

namespace asya::postgres {
namespace {

TEST(PostgresConnection, RedactedHidesOnlyThePassword) {
  EXPECT_EQ(redacted("postgresql://asya:s3cret@db:5432/asya"),
            "postgresql://asya:***@db:5432/asya");
  EXPECT_EQ(redacted("postgresql://asya@db/asya"), "postgresql://asya@db/asya");
  EXPECT_EQ(redacted("postgresql://db/asya"), "postgresql://db/asya");
}

TEST(PostgresConnection, ARefusedConnectionNamesTheRedactedUrlAndTheCause) {
  Connection c("postgresql://asya:s3cret@127.0.0.1:1/none?connect_timeout=2");
  EXPECT_FALSE(c.connected());
  const std::string e = c.error();
  EXPECT_EQ(e.find("s3cret"), std::string::npos) << e;
  EXPECT_NE(e.find("PostgreSQL postgresql://asya:***@127.0.0.1:1/none"), std::string::npos) << e;
  EXPECT_NE(e.find("127.0.0.1"), std::string::npos) << e;
}

}  // namespace
}  // namespace asya::postgres
