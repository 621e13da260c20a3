// The S3 result store (PROTOCOL §6): ASYA_RESULT_STORE=s3://bucket/prefix writes each final
// envelope as the object <prefix>/<id>.json (id encoded by result_file_name). Endpoint, region
// and credentials come from the standard AWS variables, with ASYA_S3_ENDPOINT first (see
// common/aws/client.hpp), read from ResultStoreOptions::environment; a custom endpoint (MinIO,
// moto) is addressed path-style.
#include <fmt/format.h>

#include "common/aws/s3.hpp"
#include "common/env.hpp"
#include "sidecar/result_store.hpp"

namespace asya::sidecar {
namespace {

class S3ResultStore : public ResultStore {
 public:
  S3ResultStore(aws::Config config, std::string bucket, std::string prefix)
      : client_(std::move(config)), bucket_(std::move(bucket)), prefix_(std::move(prefix)) {}

  // PutObject replaces the object atomically: readers see the old or the new bytes, never a mix.
  Status put(std::string_view id, std::string_view body) override {
    std::string key = prefix_.empty() ? result_file_name(id) : prefix_ + "/" + result_file_name(id);
    if (Status st = client_.put_object(bucket_, key, body); !st)
      return Error{"result store: " + st.message()};
    return Status::Ok();
  }

  Result<std::optional<std::string>> get(std::string_view id) override {
    std::string key = prefix_.empty() ? result_file_name(id) : prefix_ + "/" + result_file_name(id);
    auto body = client_.get_object(bucket_, key);
    if (body) return std::optional<std::string>(std::move(*body));
    if (body.error().message.starts_with("not_found:")) return std::optional<std::string>();
    return Error{"result store: " + body.error().message};
  }

  std::string describe() const override {
    return prefix_.empty() ? "s3://" + bucket_ : "s3://" + bucket_ + "/" + prefix_;
  }

 private:
  aws::S3Client client_;
  std::string bucket_;
  std::string prefix_;
};

}  // namespace

std::unique_ptr<ResultStore> make_s3_result_store(const ResultStoreOptions& options) {
  auto parsed = aws::parse_s3_url(options.url);
  if (!parsed) throw ConfigError("ASYA_RESULT_STORE=" + parsed.error().message);
  aws::Config config =
      aws::Config::from_env("ASYA_S3_ENDPOINT", "S3", Environment(options.environment));
  return std::make_unique<S3ResultStore>(std::move(config), parsed->first, parsed->second);
}

}  // namespace asya::sidecar
