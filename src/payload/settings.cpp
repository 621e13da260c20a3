#include "payload/settings.hpp"

#include <fmt/format.h>

#include "common/aws/s3.hpp"

namespace asya::payload {

Settings load_settings(const Environment& environment) {
  Settings s;
  s.store_url = environment.string("ASYA_PAYLOAD_STORE", "");
  if (!s.store_url.empty() && !s.store_url.starts_with("file://") &&
      !s.store_url.starts_with("s3://"))
    throw ConfigError(fmt::format(
        "ASYA_PAYLOAD_STORE=\"{}\" is not a payload store URL: use file:///path/to/dir or "
        "s3://bucket/prefix (empty: payloads always travel inside the envelope)",
        s.store_url));
  if (s.store_url.starts_with("s3://"))
    if (auto parsed = aws::parse_s3_url(s.store_url); !parsed)
      throw ConfigError("ASYA_PAYLOAD_STORE=" + parsed.error().message);
  std::uint64_t threshold = environment.bytes("ASYA_PAYLOAD_THRESHOLD", s.threshold_bytes);
  if (threshold < 1024)
    throw ConfigError(fmt::format(
        "ASYA_PAYLOAD_THRESHOLD=\"{}\" is too small: use a size of at least 1KiB (e.g. 256KiB)",
        environment.string("ASYA_PAYLOAD_THRESHOLD", "")));
  s.threshold_bytes = static_cast<std::size_t>(threshold);
  s.policy.grace = environment.duration("ASYA_PAYLOAD_GRACE", s.policy.grace);
  s.policy.orphan_age = environment.duration("ASYA_PAYLOAD_ORPHAN_AGE", s.policy.orphan_age);
  if (s.policy.orphan_age < s.policy.grace)
    throw ConfigError(fmt::format(
        "ASYA_PAYLOAD_ORPHAN_AGE=\"{}\" is shorter than ASYA_PAYLOAD_GRACE=\"{}\": an orphan age "
        "must be at least the grace period",
        format_duration(s.policy.orphan_age), format_duration(s.policy.grace)));
  s.sweep_interval = environment.duration("ASYA_PAYLOAD_SWEEP_INTERVAL", s.sweep_interval);
  if (s.sweep_interval.count() <= 0)
    throw ConfigError(fmt::format(
        "ASYA_PAYLOAD_SWEEP_INTERVAL=\"{}\" is not valid: use a positive duration (e.g. 1m)",
        environment.string("ASYA_PAYLOAD_SWEEP_INTERVAL", "")));
  return s;
}

std::unique_ptr<PayloadStore> open_store(const Settings& settings, EnvironmentLookup environment) {
  if (!settings.enabled()) return nullptr;
  PayloadStoreOptions options;
  options.url = settings.store_url;
  options.environment = std::move(environment);
  return make_payload_store(options);
}

}  // namespace asya::payload
