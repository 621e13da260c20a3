#include "common/aws/s3.hpp"

namespace asya::aws {
namespace {

// The text of <Tag>...</Tag> in an S3 XML error body, or "".
std::string xml_field(const std::string& body, std::string_view tag) {
  std::string open = "<" + std::string(tag) + ">";
  std::size_t start = body.find(open);
  if (start == std::string::npos) return {};
  start += open.size();
  std::size_t end = body.find("</", start);
  return end == std::string::npos ? std::string() : body.substr(start, end - start);
}

std::string describe_failure(const HttpResponse& response) {
  std::string code = xml_field(response.body, "Code");
  std::string message = xml_field(response.body, "Message");
  std::string out = "HTTP " + std::to_string(response.status);
  if (!code.empty()) out += " " + code;
  if (!message.empty()) out += ": " + message;
  return out;
}

std::string location(std::string_view bucket, std::string_view key) {
  return "s3://" + std::string(bucket) + "/" + std::string(key);
}

}  // namespace

S3Client::S3Client(Config config)
    : client_(std::move(config),
              Scope{.region = "", .service = "s3", .double_encode_path = false}) {}

std::string S3Client::object_url(std::string_view bucket, std::string_view key) const {
  const Config& config = client_.config();
  std::string path = key.empty() ? "" : "/" + uri_encode(key, true);
  if (!config.endpoint.empty()) return config.endpoint + "/" + uri_encode(bucket, false) + path;
  return "https://" + std::string(bucket) + ".s3." + config.region + ".amazonaws.com" +
         (path.empty() ? "/" : path);
}

Status S3Client::put_object(std::string_view bucket, std::string_view key, std::string_view body,
                            std::string_view content_type) {
  HttpRequest request;
  request.method = "PUT";
  request.url = object_url(bucket, key);
  request.headers.emplace_back("Content-Type", std::string(content_type));
  request.body = body;
  request.timeout = std::chrono::seconds(60);
  auto response = client_.send(std::move(request), true);
  if (!response)
    return Error{"S3 PutObject " + location(bucket, key) + " failed: " + response.error().message};
  if (response->status != 200)
    return Error{"S3 PutObject " + location(bucket, key) +
                 " failed: " + describe_failure(*response)};
  return Status::Ok();
}

Result<std::string> S3Client::get_object(std::string_view bucket, std::string_view key) {
  HttpRequest request;
  request.method = "GET";
  request.url = object_url(bucket, key);
  request.timeout = std::chrono::seconds(60);
  auto response = client_.send(std::move(request), true);
  if (!response)
    return Error{"S3 GetObject " + location(bucket, key) + " failed: " + response.error().message};
  if (response->status == 404)
    return Error{"not_found: S3 GetObject " + location(bucket, key) + ": " +
                 describe_failure(*response)};
  if (response->status != 200)
    return Error{"S3 GetObject " + location(bucket, key) +
                 " failed: " + describe_failure(*response)};
  return std::move(response->body);
}

Result<bool> S3Client::object_exists(std::string_view bucket, std::string_view key) {
  HttpRequest request;
  request.method = "HEAD";
  request.url = object_url(bucket, key);
  request.timeout = std::chrono::seconds(30);
  auto response = client_.send(std::move(request), true);
  if (!response)
    return Error{"S3 HeadObject " + location(bucket, key) + " failed: " + response.error().message};
  if (response->status == 200) return true;
  if (response->status == 404) return false;
  return Error{"S3 HeadObject " + location(bucket, key) +
               " failed: " + describe_failure(*response)};
}

Status S3Client::delete_object(std::string_view bucket, std::string_view key) {
  HttpRequest request;
  request.method = "DELETE";
  request.url = object_url(bucket, key);
  request.timeout = std::chrono::seconds(30);
  auto response = client_.send(std::move(request), true);
  if (!response)
    return Error{"S3 DeleteObject " + location(bucket, key) +
                 " failed: " + response.error().message};
  if (response->status != 204 && response->status != 200 && response->status != 404)
    return Error{"S3 DeleteObject " + location(bucket, key) +
                 " failed: " + describe_failure(*response)};
  return Status::Ok();
}

Result<std::vector<S3Client::ListedObject>> S3Client::list_objects(std::string_view bucket,
                                                                   std::string_view prefix) {
  std::vector<ListedObject> out;
  std::string token;
  for (;;) {
    HttpRequest request;
    request.method = "GET";
    request.url = object_url(bucket, "") + "?list-type=2&prefix=" + uri_encode(prefix, false);
    if (!token.empty()) request.url += "&continuation-token=" + uri_encode(token, false);
    request.timeout = std::chrono::seconds(60);
    auto response = client_.send(std::move(request), true);
    if (!response)
      return Error{"S3 ListObjectsV2 " + location(bucket, prefix) +
                   " failed: " + response.error().message};
    if (response->status != 200)
      return Error{"S3 ListObjectsV2 " + location(bucket, prefix) +
                   " failed: " + describe_failure(*response)};
    const std::string& body = response->body;
    for (std::size_t at = body.find("<Contents>"); at != std::string::npos;
         at = body.find("<Contents>", at + 1)) {
      std::size_t end = body.find("</Contents>", at);
      if (end == std::string::npos) break;
      std::string entry = body.substr(at, end - at);
      ListedObject object;
      object.key = xml_field(entry, "Key");
      object.last_modified = xml_field(entry, "LastModified");
      std::string size = xml_field(entry, "Size");
      object.size_bytes = size.empty() ? 0 : std::stoull(size);
      out.push_back(std::move(object));
    }
    if (xml_field(body, "IsTruncated") != "true") break;
    token = xml_field(body, "NextContinuationToken");
    if (token.empty()) break;
  }
  return out;
}

Status S3Client::create_bucket(std::string_view bucket) {
  HttpRequest request;
  request.method = "PUT";
  request.url = object_url(bucket, "");
  std::string body;
  if (client_.config().region != "us-east-1") {
    body =
        "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<LocationConstraint>" +
        client_.config().region + "</LocationConstraint></CreateBucketConfiguration>";
    request.headers.emplace_back("Content-Type", "application/xml");
  }
  request.body = body;
  auto response = client_.send(std::move(request), true);
  if (!response)
    return Error{"S3 CreateBucket " + std::string(bucket) + " failed: " + response.error().message};
  if (response->status == 200) return Status::Ok();
  if (xml_field(response->body, "Code") == "BucketAlreadyOwnedByYou") return Status::Ok();
  return Error{"S3 CreateBucket " + std::string(bucket) +
               " failed: " + describe_failure(*response)};
}

Result<std::pair<std::string, std::string>> parse_s3_url(std::string_view url) {
  if (!url.starts_with("s3://"))
    return Error{"\"" + std::string(url) + "\" is not an s3:// URL: use s3://bucket/prefix"};
  std::string_view rest = url.substr(5);
  std::size_t slash = rest.find('/');
  std::string bucket(rest.substr(0, slash));
  std::string prefix(slash == std::string_view::npos ? "" : rest.substr(slash + 1));
  while (prefix.ends_with('/')) prefix.pop_back();
  while (prefix.starts_with('/')) prefix.erase(0, 1);
  if (bucket.empty())
    return Error{"\"" + std::string(url) + "\" has no bucket: use s3://bucket/prefix"};
  return std::make_pair(bucket, prefix);
}

}  // namespace asya::aws
