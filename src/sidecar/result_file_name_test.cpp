#include "sidecar/result_file_name.hpp"

#include <gtest/gtest.h>

#include <string>

namespace asya::sidecar {
namespace {

TEST(ResultStoreFileName, EveryIdRoundTripsThroughItsFileName) {
  std::string all_bytes;
  for (int c = 1; c < 256; ++c) all_bytes += static_cast<char>(c);
  for (std::string id : {std::string("abc-1_x.y"), std::string("../etc/passwd"),
                         std::string(".hidden"), std::string("a%41b"), std::string("ü ß/\\:*"),
                         std::string("5e6fdb2d-1d6b-4e91-baef-73e825434e7b-2"), all_bytes}) {
    const std::string name = result_file_name(id);
    EXPECT_EQ(name.find('/'), std::string::npos) << name;
    EXPECT_NE(name.front(), '.') << name;
    EXPECT_EQ(result_id_from_file_name(name), id) << name;
  }
}

TEST(ResultStoreFileName, DecodesBothHexCases) {
  EXPECT_EQ(result_id_from_file_name("a%2fb.json"), "a/b");
  EXPECT_EQ(result_id_from_file_name("a%2Fb.json"), "a/b");
}

TEST(ResultStoreFileName, NamesNoStoreWritesAreNotResults) {
  EXPECT_EQ(result_id_from_file_name(".abc.json.123.0.tmp"), std::nullopt);  // a put in progress
  EXPECT_EQ(result_id_from_file_name(".abc.json"), std::nullopt);
  EXPECT_EQ(result_id_from_file_name("abc.txt"), std::nullopt);
  EXPECT_EQ(result_id_from_file_name(".json"), std::nullopt);
  EXPECT_EQ(result_id_from_file_name("json"), std::nullopt);
  EXPECT_EQ(result_id_from_file_name("a%zz.json"), std::nullopt);  // was a crash of asya results
  EXPECT_EQ(result_id_from_file_name("a%4.json"), std::nullopt);
  EXPECT_EQ(result_id_from_file_name("a%.json"), std::nullopt);
}

}  // namespace
}  // namespace asya::sidecar
