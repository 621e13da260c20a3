#include "sidecar/result_store.hpp"

#include <fmt/format.h>

#include <utility>

#include "common/env.hpp"
#include "common/registry.hpp"

namespace asya::sidecar {

// The built-in stores, each in its own folder under result_store/.
std::unique_ptr<ResultStore> make_file_result_store(const ResultStoreOptions& options);
std::unique_ptr<ResultStore> make_s3_result_store(const ResultStoreOptions& options);

namespace {

using ResultStoreRegistry = NamedRegistry<ResultStore, ResultStoreOptions>;

ResultStoreRegistry& registry() {
  static ResultStoreRegistry* instance = new ResultStoreRegistry(  // never destroyed
      {{"file", &make_file_result_store}, {"s3", &make_s3_result_store}});
  return *instance;
}

}  // namespace

void register_result_store(std::string scheme, ResultStoreFactory factory) {
  registry().add(std::move(scheme), std::move(factory));
}

std::vector<std::string> result_store_schemes() {
  return registry().names();
}

std::unique_ptr<ResultStore> make_result_store(const ResultStoreOptions& options) {
  std::string_view url = options.url;
  std::size_t separator = url.find("://");
  ResultStoreFactory factory;
  if (separator != std::string_view::npos) factory = registry().find(url.substr(0, separator));
  if (!factory) {
    throw ConfigError(
        fmt::format("ASYA_RESULT_STORE=\"{}\" is not supported: use file:///path/to/dir or "
                    "s3://bucket/prefix (registered schemes: {})",
                    url, registry().names_text()));
  }
  return factory(options);
}

std::unique_ptr<ResultStore> make_result_store(std::string_view url) {
  ResultStoreOptions options;
  options.url = std::string(url);
  return make_result_store(options);
}

}  // namespace asya::sidecar
