// check_transport_settings(): each built-in transport's settings reader, without the transport.
// Apart from registry.cpp, whose factory table must not see the overloads these headers declare.
#include "common/env.hpp"
#include "transport/sqlite/sqlite_settings.hpp"
#include "transport/transport.hpp"
#if defined(ASYA_TRANSPORT_HAVE_RABBITMQ)
#include "transport/rabbitmq/rabbitmq_transport.hpp"
#endif
#if defined(ASYA_TRANSPORT_HAVE_SQS)
#include "transport/sqs/sqs_transport.hpp"
#endif

#include <algorithm>
#include <string>

namespace asya::transport {

void check_transport_settings(std::string_view name, const Options& options) {
  const auto names = transport_names();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    // The same error as make_transport's.
    (void)make_transport(name, options);
  }
  const Environment environment(options.environment);
  if (name == "sqlite") (void)SqliteSettings::from_env(environment);
#if defined(ASYA_TRANSPORT_HAVE_RABBITMQ)
  if (name == "rabbitmq") (void)RabbitmqSettings::from_env(environment);
#endif
#if defined(ASYA_TRANSPORT_HAVE_SQS)
  if (name == "sqs") (void)SqsSettings::from_env(environment);
#endif
}

}  // namespace asya::transport
