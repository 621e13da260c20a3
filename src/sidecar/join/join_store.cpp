// The join store registry (join_store.hpp): built-in stores by URL scheme.
#include "sidecar/join/join_store.hpp"

#include <fmt/format.h>

namespace asya::sidecar::join {

std::unique_ptr<JoinStore> make_sqlite_join_store(const JoinStoreOptions& options);
std::unique_ptr<JoinStore> make_postgres_join_store(const JoinStoreOptions& options);

JoinStoreRegistry& join_store_registry() {
  static JoinStoreRegistry* instance =  // never destroyed
      new JoinStoreRegistry({{"sqlite", &make_sqlite_join_store},
                             {"postgresql", &make_postgres_join_store},
                             {"postgres", &make_postgres_join_store}});
  return *instance;
}

void register_join_store(std::string scheme, JoinStoreRegistry::Factory factory) {
  join_store_registry().add(std::move(scheme), std::move(factory));
}

std::unique_ptr<JoinStore> make_join_store(const JoinStoreOptions& options) {
  std::string_view url = options.url;
  std::size_t separator = url.find("://");
  JoinStoreRegistry::Factory factory;
  if (separator != std::string_view::npos)
    factory = join_store_registry().find(url.substr(0, separator));
  if (!factory)
    throw ConfigError(
        fmt::format("ASYA_JOIN_STORE=\"{}\" is not supported: use sqlite:///path/to/joins.db or "
                    "postgresql://user@host/db (registered schemes: {})",
                    url, join_store_registry().names_text()));
  return factory(options);
}

}  // namespace asya::sidecar::join
