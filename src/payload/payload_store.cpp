#include "payload/payload_store.hpp"

#include <fmt/format.h>

#include "common/registry.hpp"
#include "payload/reference.hpp"

namespace asya::payload {

// The built-in stores, each in its own folder.
std::unique_ptr<PayloadStore> make_file_payload_store(const PayloadStoreOptions& options);
std::unique_ptr<PayloadStore> make_s3_payload_store(const PayloadStoreOptions& options);

namespace {

using PayloadStoreRegistry = NamedRegistry<PayloadStore, PayloadStoreOptions>;

PayloadStoreRegistry& registry() {
  static PayloadStoreRegistry* instance = new PayloadStoreRegistry(  // never destroyed
      {{"file", &make_file_payload_store}, {"s3", &make_s3_payload_store}});
  return *instance;
}

}  // namespace

Result<std::string> PayloadStore::put_object(std::string_view bytes,
                                             const BeforeVisible& before_visible) {
  std::string sha256 = sha256_hex(bytes);
  if (Status visible = before_visible(sha256); !visible) return visible.error();
  if (Status stored = put(object_key(sha256), bytes); !stored) return stored.error();
  return sha256;
}

Result<bool> PayloadStore::read_checked(std::string_view key, std::string_view sha256,
                                        std::uint64_t size_bytes, std::string& out) {
  const std::size_t start = out.size();
  if (Status read_status = read(key, out); !read_status) return read_status.error();
  const std::string_view bytes = std::string_view(out).substr(start);
  return bytes.size() == size_bytes && sha256_hex(bytes) == sha256;
}

void register_payload_store(std::string scheme, PayloadStoreFactory factory) {
  registry().add(std::move(scheme), std::move(factory));
}

std::vector<std::string> payload_store_schemes() {
  return registry().names();
}

std::unique_ptr<PayloadStore> make_payload_store(const PayloadStoreOptions& options) {
  std::string_view url = options.url;
  std::size_t separator = url.find("://");
  PayloadStoreFactory factory;
  if (separator != std::string_view::npos) factory = registry().find(url.substr(0, separator));
  if (!factory)
    throw ConfigError(
        fmt::format("ASYA_PAYLOAD_STORE=\"{}\" is not supported: use file:///path/to/dir or "
                    "s3://bucket/prefix (registered schemes: {})",
                    url, registry().names_text()));
  return factory(options);
}

}  // namespace asya::payload
