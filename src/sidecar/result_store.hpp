// Where end actors persist final envelopes (PROTOCOL §6): one object `<id>.json` per envelope
// (the id encoded by result_file_name, result_file_name.hpp).
// Implementations: a local directory (file://, result_store.cpp) and S3-compatible storage
// (s3://bucket/prefix, result_store_s3.cpp).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "sidecar/result_file_name.hpp"  // result_file_name: the names put() uses

namespace asya::sidecar {

class ResultStore {
 public:
  virtual ~ResultStore() = default;

  // Stores `body` under `<id>.json`, replacing any previous object of that id (redeliveries write
  // the same content again). Returns only once the object is durable; a reader never sees a
  // partial object. Thread-safe. Fails with a message naming the location and the cause.
  virtual Status put(std::string_view id, std::string_view body) = 0;

  // Human-readable location, for logs ("file:///var/lib/asya/results").
  virtual std::string describe() const = 0;
};

// Creates the store for a URL: `file:///abs/dir` or `file://relative/dir` (the directory is
// created), or `s3://bucket/prefix` (endpoint, region and credentials from ASYA_S3_ENDPOINT and
// the AWS variables; nothing is contacted until the first put). Throws asya::ConfigError naming
// ASYA_RESULT_STORE for an unsupported or unusable URL.
std::unique_ptr<ResultStore> make_result_store(std::string_view url);

}  // namespace asya::sidecar
