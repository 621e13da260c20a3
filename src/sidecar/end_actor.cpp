#include "sidecar/end_actor.hpp"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include "envelope/build.hpp"
#include "envelope/envelope.hpp"
#include "sidecar/gateway_reporter.hpp"

namespace asya::sidecar {
namespace {

// Reads "error" (string) and "details" (raw JSON) of an error envelope's payload. Only end actors
// do this, and only on the error path, so a padded copy is acceptable.
void read_error_fields(std::string_view payload_raw, std::string& error, std::string& details_raw) {
  simdjson::padded_string padded(payload_raw);
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc)) return;
  simdjson::ondemand::object object;
  if (doc.get_object().get(object)) return;
  for (auto field : object) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return;
    if (key == "error") {
      std::string_view value;
      if (!field.value().get_string().get(value)) error.assign(value);
    } else if (key == "details") {
      std::string_view raw;
      simdjson::ondemand::object details;
      if (!field.value().get_object().get(details) && !details.raw_json().get(raw)) {
        while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\n' || raw.back() == '\t' ||
                                raw.back() == '\r'))
          raw.remove_suffix(1);
        details_raw.assign(raw);
      }
    }
  }
}

// The top-level string field `name` of a JSON object, or "" when absent.
std::string read_string_field(std::string_view json, std::string_view name) {
  simdjson::padded_string padded(json);
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc)) return "";
  std::string_view value;
  if (doc[name].get_string().get(value)) return "";
  return std::string(value);
}

}  // namespace

EndActor::EndActor(std::string actor, bool error_end, ResultStore& store,
                   std::function<std::chrono::milliseconds(int)> backoff)
    : actor_(std::move(actor)),
      error_end_(error_end),
      store_(store),
      backoff_(std::move(backoff)) {}

// The store did not take the result: the message goes back to the queue after a backoff, so
// nothing is acknowledged that was not kept.
EndOutcome EndActor::requeue_after_store_error(EndOutcome out,
                                               const transport::Delivery& delivery) const {
  out.then = Then::kNack;
  out.nack_delay = backoff_(static_cast<int>(delivery.delivery_count));
  out.status = ProcessedStatus::kRequeued;
  out.failure = FailureCode::kResultStoreError;
  return out;
}

EndOutcome EndActor::handle(const transport::Delivery& delivery) const {
  EndOutcome out;
  auto parsed = envelope::parse(delivery.body);
  if (!parsed) {
    // Not an envelope (someone published garbage straight to an end queue): store it wrapped so
    // it is kept, report it failed, and ack. Never re-routed, so it cannot loop.
    std::string wrapped = envelope::wrap_unparseable(delivery.body, actor_, parsed.error().message);
    out.id = read_string_field(wrapped, "id");
    if (out.id.empty()) out.id = "unparseable";
    if (Status st = store_.put(out.id, wrapped); !st) {
      spdlog::error("end actor: cannot persist unparseable body as {}: {}", out.id, st.message());
      return requeue_after_store_error(std::move(out), delivery);
    }
    out.status = ProcessedStatus::kSuccess;
    out.failure = FailureCode::kMsgParsingError;
    // No report: no gateway job has the id of a body that was not an envelope.
    return out;
  }
  const envelope::Envelope& env = *parsed;
  std::string_view stored = delivery.body;
  out.id = env.id;
  if (Status st = store_.put(env.id, stored); !st) {
    spdlog::error("end actor: cannot persist envelope {}: {}", env.id, st.message());
    return requeue_after_store_error(std::move(out), delivery);
  }
  out.status = ProcessedStatus::kSuccess;
  if (!tracked_by_gateway(env.route_metadata_raw)) return out;  // no job to report to
  std::size_t idx = env.actors.empty() ? 0 : std::min(env.current, env.actors.size() - 1);
  bool is_error_payload = error_end_;
  out.final_path = envelope_path(env.id, "final");
  if (is_error_payload) {
    std::string error, details;
    read_error_fields(env.payload_raw, error, details);
    if (error.empty()) error = "unknown_error";
    out.final_body = final_body(env.id, false, "", error, details, env.actors, idx);
  } else {
    out.final_body = final_body(env.id, true, env.payload_raw, "", "", env.actors, idx);
  }
  return out;
}

}  // namespace asya::sidecar
