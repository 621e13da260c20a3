// The name -> factory table behind make_transport(). Built-in transports are registered
// explicitly (not by static initialisers, which a static link may drop) the first time the
// table is used; see the comment in transport.hpp.
#include <algorithm>
#include <mutex>
#include <utility>

#include "common/env.hpp"
#include "transport/transport.hpp"

namespace asya::transport {

// Each built-in transport library defines its factory function; registry.cpp only declares them.
std::unique_ptr<Transport> make_sqlite_transport(const Options& options);
#if defined(ASYA_TRANSPORT_HAVE_RABBITMQ)
std::unique_ptr<Transport> make_rabbitmq_transport(const Options& options);
#endif
#if defined(ASYA_TRANSPORT_HAVE_SQS)
std::unique_ptr<Transport> make_sqs_transport(const Options& options);
#endif

namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, Factory, std::less<>> factories;
};

// Registers the built-ins once; later register_transport() calls may add or replace entries.
Registry& registry() {
  static Registry* instance = [] {
    auto* r = new Registry();  // never destroyed: usable from other static destructors
    r->factories.emplace("sqlite", &make_sqlite_transport);
#if defined(ASYA_TRANSPORT_HAVE_RABBITMQ)
    r->factories.emplace("rabbitmq", &make_rabbitmq_transport);
#endif
#if defined(ASYA_TRANSPORT_HAVE_SQS)
    r->factories.emplace("sqs", &make_sqs_transport);
#endif
    return r;
  }();
  return *instance;
}

}  // namespace

void register_transport(std::string name, Factory factory) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.factories.insert_or_assign(std::move(name), std::move(factory));
}

std::unique_ptr<Transport> make_transport(std::string_view name, const Options& options) {
  Factory factory;
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    auto it = r.factories.find(name);
    if (it != r.factories.end()) factory = it->second;
  }
  if (!factory) {
    std::string known;
    for (const std::string& n : transport_names()) {
      if (!known.empty()) known += ", ";
      known += n;
    }
    throw ConfigError("ASYA_TRANSPORT=\"" + std::string(name) +
                      "\" is not a known transport: use one of " + known);
  }
  return factory(options);
}

std::vector<std::string> transport_names() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& [name, factory] : r.factories) names.push_back(name);
  return names;  // std::map iterates in sorted order
}

}  // namespace asya::transport
