// Test helpers for the sqlite transport tests (not part of the library).
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "transport/sqlite/sqlite_transport.hpp"

namespace asya::transport::test {

// A fresh directory under /tmp, removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "asya-sqlite-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // Settings for a database file inside this directory.
  SqliteSettings settings() const {
    SqliteSettings s;
    s.path = (path_ / "queues.db").string();
    return s;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace asya::transport::test
