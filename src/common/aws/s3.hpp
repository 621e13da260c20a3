// A minimal S3 client: PutObject, GetObject, HeadObject, DeleteObject, ListObjectsV2 and
// CreateBucket, signed with SigV4. With a custom
// endpoint (moto, MinIO, LocalStack) it uses path-style addressing (endpoint/bucket/key); on
// AWS virtual-hosted style (https://bucket.s3.<region>.amazonaws.com/key).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/aws/client.hpp"
#include "common/result.hpp"

namespace asya::aws {

class S3Client {
 public:
  // Settings as Config::from_env("ASYA_S3_ENDPOINT", "S3") reads them.
  explicit S3Client(Config config);

  // Stores `body` as the object bucket/key (replacing it). Returns once S3 answered 200, which
  // means the object is durable. Blocking, thread-safe. Errors name s3://bucket/key, the HTTP
  // status and S3's error code and message.
  Status put_object(std::string_view bucket, std::string_view key, std::string_view body,
                    std::string_view content_type = "application/json");

  // The object's bytes. An Error starting with "not_found:" when the object or bucket is missing.
  Result<std::string> get_object(std::string_view bucket, std::string_view key);

  // Whether the object exists (HeadObject: 200 yes, 404 no, anything else an Error).
  Result<bool> object_exists(std::string_view bucket, std::string_view key);

  // Deletes the object; S3 answers 204 whether or not it existed.
  Status delete_object(std::string_view bucket, std::string_view key);

  // Every object whose key starts with `prefix` (ListObjectsV2, following continuation tokens).
  struct ListedObject {
    std::string key;
    std::uint64_t size_bytes = 0;
    std::string last_modified;  // ISO 8601 as S3 sends it ("2026-12-06T13:00:00.000Z")
  };
  Result<std::vector<ListedObject>> list_objects(std::string_view bucket, std::string_view prefix);

  // Creates the bucket; succeeds when it already exists and is ours.
  Status create_bucket(std::string_view bucket);

  // The request URL of an object (key percent-encoded, '/' kept).
  std::string object_url(std::string_view bucket, std::string_view key) const;

 private:
  Client client_;
};

// Splits "s3://bucket/some/prefix" into bucket and prefix (no leading or trailing '/'); fails
// naming the text when it is not of that form or the bucket is empty.
Result<std::pair<std::string, std::string>> parse_s3_url(std::string_view url);

}  // namespace asya::aws
