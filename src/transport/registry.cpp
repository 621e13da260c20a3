// The name -> factory table behind make_transport(), a NamedRegistry (common/registry.hpp) like
// the job stores' and result stores'. Built-in transports are registered explicitly (not by static
// initialisers, which a static link may drop) the first time the table is used; see the comment
// in transport.hpp.
#include <utility>

#include "common/env.hpp"
#include "common/registry.hpp"
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

using TransportRegistry = NamedRegistry<Transport, Options>;

// Registers the built-ins once; later register_transport() calls may add or replace entries.
TransportRegistry& registry() {
  static TransportRegistry* instance = [] {
    TransportRegistry::Table built_ins;
    built_ins.emplace("sqlite", &make_sqlite_transport);
#if defined(ASYA_TRANSPORT_HAVE_RABBITMQ)
    built_ins.emplace("rabbitmq", &make_rabbitmq_transport);
#endif
#if defined(ASYA_TRANSPORT_HAVE_SQS)
    built_ins.emplace("sqs", &make_sqs_transport);
#endif
    return new TransportRegistry(std::move(built_ins));  // never destroyed
  }();
  return *instance;
}

}  // namespace

void register_transport(std::string name, Factory factory) {
  registry().add(std::move(name), std::move(factory));
}

std::unique_ptr<Transport> make_transport(std::string_view name, const Options& options) {
  Factory factory = registry().find(name);
  if (!factory) {
    throw ConfigError("ASYA_TRANSPORT=\"" + std::string(name) +
                      "\" is not a known transport: use one of " + registry().names_text());
  }
  return factory(options);
}

std::vector<std::string> transport_names() {
  return registry().names();
}

}  // namespace asya::transport
