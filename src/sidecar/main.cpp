// asya-sidecar: see docs/sidecar.md and `asya-sidecar --help`.
#include <malloc.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>

#include "common/env.hpp"
#include "common/log.hpp"
#include "common/shutdown_signals.hpp"
#include "common/version.hpp"
#include "sidecar/config.hpp"
#include "sidecar/sidecar.hpp"
#include "transport/transport.hpp"

namespace {

// glibc gives a thread its own malloc arena when another one is locked, up to 8 per core, and
// each keeps its own free pages: idle, a sidecar held ~0.8 MB in the arenas of its helper threads
// (span exporter, lease keeper, metrics server, transport I/O). As many arenas as workers: the
// workers rarely wait for each other and the helpers share theirs (docs/sidecar.md, "Memory").
// MALLOC_ARENA_MAX or GLIBC_TUNABLES set by the user win.
void limit_malloc_arenas(int workers) {
  const auto env = asya::process_environment();
  if (env("MALLOC_ARENA_MAX") || env("GLIBC_TUNABLES")) return;
  ::mallopt(M_ARENA_MAX, std::max(workers, 1));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace asya::sidecar;
  if (auto exit_code =
          asya::answer_informational_arguments(std::span(argv + 1, argv + argc), "asya-sidecar",
                                               help_text(), std::cout, std::cerr, kExitConfig)) {
    return *exit_code;
  }

  // Block the shutdown signals before any thread starts; the runner's SignalWatcher takes them.
  asya::SignalSet().block();
  signal(SIGPIPE, SIG_IGN);

  Config config;
  std::unique_ptr<asya::transport::Transport> transport;
  try {
    config = load_config();
    asya::log::init("sidecar", config.log_level, config.actor_name);
    limit_malloc_arenas(config.concurrency);  // before any thread starts
    asya::transport::Options options;
    options.visibility_timeout = config.visibility_timeout;
    options.max_message_bytes = config.max_message_bytes;
    // Batching takes a batch from RabbitMQ's prefetch window: unless set, make it hold a full
    // batch per slot (docs/configuration.md, ASYA_BATCH_MAX_SIZE).
    if (config.batch_max_size > 1 && !asya::process_environment()("ASYA_RABBITMQ_PREFETCH"))
      options.environment = asya::environment_with(
          {{"ASYA_RABBITMQ_PREFETCH",
            std::to_string(std::clamp(config.batch_max_size * config.concurrency, 10, 65535))}});
    transport = asya::transport::make_transport(config.transport, options);
  } catch (const asya::ConfigError& e) {
    spdlog::error("{}", e.what());  // a JSON line, like every other
    return kExitConfig;
  }
  try {
    return run_sidecar(config, std::move(transport));
  } catch (const asya::ConfigError& e) {
    spdlog::error("{}", e.what());  // a JSON line, like every other
    return kExitConfig;
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return kExitFatal;
  }
}
