// The S3 payload store: ASYA_PAYLOAD_STORE=s3://bucket/prefix keeps each object as
// <prefix>/<key> in the bucket. Endpoint, region and credentials are read as for the S3 result
// store and the SQS transport (ASYA_S3_ENDPOINT, then the AWS variables; common/aws/client.hpp),
// from PayloadStoreOptions::environment. PutObject is atomic and durable once it answered 200.
#include <fmt/format.h>

#include "common/aws/s3.hpp"
#include "common/rfc3339.hpp"
#include "payload/payload_store.hpp"

namespace asya::payload {
namespace {

class S3PayloadStore : public PayloadStore {
 public:
  S3PayloadStore(aws::Config config, std::string bucket, std::string prefix)
      : client_(std::move(config)), bucket_(std::move(bucket)), prefix_(std::move(prefix)) {}

  Status put(std::string_view key, std::string_view bytes) override {
    if (Status st = client_.put_object(bucket_, full(key), bytes, "application/octet-stream"); !st)
      return Error{"payload store: " + st.message()};
    return Status::Ok();
  }

  Status read(std::string_view key, std::string& out) override {
    auto object = client_.get_object(bucket_, full(key));
    if (!object) {
      if (object.error().message.starts_with("not_found:"))
        return Error{
            fmt::format("{} payload store: {}", kNotFound, object.error().message.substr(10))};
      return Error{"payload store: " + object.error().message};
    }
    if (out.empty())
      out = std::move(*object);
    else
      out += *object;
    return Status::Ok();
  }

  Result<bool> exists(std::string_view key) override {
    auto found = client_.object_exists(bucket_, full(key));
    if (!found) return Error{"payload store: " + found.error().message};
    return *found;
  }

  Status remove(std::string_view key) override {
    if (Status st = client_.delete_object(bucket_, full(key)); !st)
      return Error{"payload store: " + st.message()};
    return Status::Ok();
  }

  Result<std::vector<StoredObject>> list(std::string_view prefix) override {
    auto listed = client_.list_objects(bucket_, full(prefix));
    if (!listed) return Error{"payload store: " + listed.error().message};
    std::vector<StoredObject> out;
    const std::size_t strip = prefix_.empty() ? 0 : prefix_.size() + 1;
    for (auto& entry : *listed) {
      StoredObject object;
      object.key = entry.key.substr(std::min(strip, entry.key.size()));
      object.size_bytes = entry.size_bytes;
      auto when = parse_rfc3339(entry.last_modified);
      object.modified = when ? *when : std::chrono::system_clock::now();
      out.push_back(std::move(object));
    }
    return out;
  }

  std::string url() const override {
    return prefix_.empty() ? "s3://" + bucket_ : "s3://" + bucket_ + "/" + prefix_;
  }

 private:
  std::string full(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : prefix_ + "/" + std::string(key);
  }

  aws::S3Client client_;
  std::string bucket_;
  std::string prefix_;
};

}  // namespace

std::unique_ptr<PayloadStore> make_s3_payload_store(const PayloadStoreOptions& options) {
  auto parsed = aws::parse_s3_url(options.url);
  if (!parsed) throw ConfigError("ASYA_PAYLOAD_STORE=" + parsed.error().message);
  aws::Config config =
      aws::Config::from_env("ASYA_S3_ENDPOINT", "S3", Environment(options.environment));
  return std::make_unique<S3PayloadStore>(std::move(config), parsed->first, parsed->second);
}

}  // namespace asya::payload
