// Job stores registered by name and chosen by the injected environment (job_store.hpp).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "common/env.hpp"
#include "gateway/store/job_store.hpp"
#include "gateway/store/test_ids.hpp"

namespace asya::gateway {
namespace {

using testing::unique_id;

TEST(JobStoreRegistry, BuiltInStoresAreRegisteredByName) {
  auto names = job_store_names();
  EXPECT_EQ(names, (std::vector<std::string>{"postgres", "sqlite"}));
}

TEST(JobStoreRegistry, UnknownNameListsTheKnownOnes) {
  try {
    (void)open_job_store("mysql", JobStoreOptions{});
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("\"mysql\" is not known: use one of postgres, sqlite"),
              std::string::npos)
        << e.what();
  }
}

TEST(JobStoreRegistry, TheInjectedEnvironmentChoosesAndConfiguresTheStore) {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / (unique_id("asya-jobs-injected") + ".db");
  JobStoreOptions options;
  options.environment = environment_with({{"ASYA_GATEWAY_DB", path.string()}}, nullptr);
  {
    auto store = open_job_store(options);
    ASSERT_TRUE(store->ping().ok());
  }
  EXPECT_TRUE(std::filesystem::exists(path)) << "the SQLite store did not use ASYA_GATEWAY_DB";
  std::filesystem::remove(path);

  // ASYA_DATABASE_URL chooses PostgreSQL: a server that refuses connections is a ConfigError
  // naming the variable (the URL is not the SQLite path, which stays unused).
  options.environment = environment_with(
      {{"ASYA_DATABASE_URL", "postgresql://asya@127.0.0.1:1/none?connect_timeout=2"},
       {"ASYA_GATEWAY_DB", path.string()}},
      nullptr);
  try {
    (void)open_job_store(options);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("ASYA_DATABASE_URL"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace asya::gateway
