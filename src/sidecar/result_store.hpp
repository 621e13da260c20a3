// Where end actors persist final envelopes (PROTOCOL §6): one object `<id>.json` per envelope
// (the id encoded by result_file_name, result_file_name.hpp).
// Implementations, each in its own folder and registered by URL scheme in result_store.cpp (a
// NamedRegistry, the same shape as the transports'): a local directory (file://,
// result_store/file/) and S3-compatible storage (s3://bucket/prefix, result_store/s3/).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/env.hpp"
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

  // The body stored under `<id>.json`, or nullopt when there is none. Fails (with a message
  // naming the location and the cause) only when the store cannot say. End actors read it before
  // storing a worse copy of a result (PROTOCOL §6 "Duplicates").
  virtual Result<std::optional<std::string>> get(std::string_view id) = 0;

  // Human-readable location, for logs ("file:///var/lib/asya/results").
  virtual std::string describe() const = 0;
};

// What a result store factory is given.
struct ResultStoreOptions {
  std::string url;  // ASYA_RESULT_STORE: file:///abs/dir, file://relative/dir, s3://bucket/prefix
  // Where a store reads its own variables (S3: ASYA_S3_ENDPOINT and the AWS variables); the
  // process environment unless a caller injects another lookup.
  EnvironmentLookup environment = process_environment();
};

using ResultStoreFactory = std::function<std::unique_ptr<ResultStore>(const ResultStoreOptions&)>;

// Creates the store registered for the URL's scheme: `file:///abs/dir` or `file://relative/dir`
// (the directory is created), or `s3://bucket/prefix` (endpoint, region and credentials from
// ASYA_S3_ENDPOINT and the AWS variables; nothing is contacted until the first put). Throws
// asya::ConfigError naming ASYA_RESULT_STORE for an unsupported or unusable URL.
std::unique_ptr<ResultStore> make_result_store(const ResultStoreOptions& options);
// The same with the process environment.
std::unique_ptr<ResultStore> make_result_store(std::string_view url);

// Registers (or replaces) the store of a URL scheme ("file", "s3"), e.g. a fake in a test.
// Thread-safe.
void register_result_store(std::string scheme, ResultStoreFactory factory);

// The registered schemes, sorted.
std::vector<std::string> result_store_schemes();

}  // namespace asya::sidecar
