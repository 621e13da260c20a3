#include "sidecar/end_actor.hpp"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <optional>

#include "envelope/build.hpp"
#include "envelope/envelope.hpp"
#include "payload/reference.hpp"
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
                   std::function<std::chrono::milliseconds(int)> backoff,
                   PayloadReferences* payloads)
    : actor_(std::move(actor)),
      error_end_(error_end),
      store_(store),
      backoff_(std::move(backoff)),
      payloads_(payloads) {}

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

// A release that fails only delays the deletion until the orphan sweep.
void EndActor::release_payloads(std::string_view id) const {
  if (!payloads_) return;
  if (Status st = payloads_->release(id); !st)
    spdlog::warn("end actor: cannot release the payloads of {}: {}", id, st.message());
}

// The final report (PROTOCOL §7) of a stored envelope, when a gateway job tracks it.
void EndActor::report_final(EndOutcome& out, const envelope::Envelope& env,
                            std::string_view result_payload) const {
  out.status = ProcessedStatus::kSuccess;
  if (!tracked_by_gateway(env.route_metadata_raw)) return;  // no job to report to
  std::size_t idx = env.actors.empty() ? 0 : std::min(env.current, env.actors.size() - 1);
  out.final_path = envelope_path(env.id, "final");
  if (error_end_) {
    std::string error, details;
    read_error_fields(env.payload_raw, error, details);
    if (error.empty()) error = "unknown_error";
    out.final_body = final_body(env.id, false, "", error, details, env.actors, idx);
  } else {
    out.final_body = final_body(env.id, true, result_payload, "", "", env.actors, idx);
  }
}

// A duplicate whose payload is gone, of an envelope whose result is already stored: the stored
// result stays, the duplicate is acknowledged, and the final report is the stored result's (the
// gateway answers a repeated final status with 200 and keeps its first result; should the first
// copy's report have been lost, this one carries the real payload, not the dangling reference).
EndOutcome EndActor::keep_stored_result(EndOutcome out, const envelope::Envelope& duplicate,
                                        std::string_view duplicate_reference,
                                        const std::string& stored) const {
  spdlog::info(
      "end actor: {} is a duplicate whose payload is gone; the result already stored "
      "is kept",
      duplicate.id);
  release_payloads(duplicate.id);
  if (auto reference = payload::parse_reference(duplicate_reference); reference && *reference)
    payloads_->release_token_later((*reference)->hold);
  out.duplicate_kept = true;
  auto kept = envelope::parse(stored);
  if (kept && kept->id == duplicate.id)
    report_final(out, *kept, kept->payload_raw);
  else
    report_final(out, duplicate, duplicate.payload_raw);
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
  std::string_view result_payload = env.payload_raw;
  out.id = env.id;
  std::string resolved_body;  // the body with a payload reference replaced by the payload
  std::optional<std::string> released_token;  // the reference's hold token, released once stored
  if (payloads_) {
    // The reference: the payload itself (happy end), or the error's original_payload, which
    // build_error writes last (error end).
    std::string_view ref_text = env.payload_raw;
    if (error_end_) {
      constexpr std::string_view kOriginal = ",\"original_payload\":";
      std::size_t at = ref_text.rfind(kOriginal);
      ref_text =
          at == std::string_view::npos || !ref_text.ends_with('}')
              ? std::string_view()
              : ref_text.substr(at + kOriginal.size(), ref_text.size() - at - kOriginal.size() - 1);
    }
    PayloadReferences::Input resolved = payloads_->resolve_payload(ref_text);
    if (resolved.reference) released_token = resolved.reference->hold;
    if (resolved.status == PayloadReferences::InputStatus::kStoreError) {
      spdlog::error("end actor: cannot resolve the payload of {}: {}", env.id, resolved.message);
      out = requeue_after_store_error(std::move(out), delivery);
      out.failure = FailureCode::kPayloadStoreError;
      return out;
    }
    if (resolved.status == PayloadReferences::InputStatus::kUnavailable) {
      // A late duplicate (at-least-once delivery) whose object was swept after the first copy's
      // result was stored: a stored result is never replaced by a reference to nothing.
      auto existing = store_.get(env.id);
      if (!existing) {
        spdlog::error(
            "end actor: the payload of {} is unavailable and the stored result cannot "
            "be read: {}",
            env.id, existing.error().message);
        return requeue_after_store_error(std::move(out), delivery);
      }
      if (existing->has_value())
        return keep_stored_result(std::move(out), env, ref_text, **existing);
      spdlog::error("end actor: the payload of {} is unavailable, storing its reference: {}",
                    env.id, resolved.message);
    }
    if (resolved.status == PayloadReferences::InputStatus::kResolved) {
      const auto prefix = static_cast<std::size_t>(ref_text.data() - stored.data());
      resolved_body.reserve(stored.size() - ref_text.size() + resolved.body.size());
      resolved_body.append(stored.substr(0, prefix));
      resolved_body.append(resolved.body);
      resolved_body.append(stored.substr(prefix + ref_text.size()));
      if (!error_end_)
        result_payload = std::string_view(resolved_body).substr(prefix, resolved.body.size());
      stored = resolved_body;
    }
  }
  if (Status st = store_.put(env.id, stored); !st) {
    spdlog::error("end actor: cannot persist envelope {}: {}", env.id, st.message());
    return requeue_after_store_error(std::move(out), delivery);
  }
  release_payloads(env.id);
  // The message is consumed: its reference's hold token (payload/lifetime.hpp) ends here too.
  if (released_token) payloads_->release_token_later(std::move(*released_token));
  report_final(out, env, result_payload);
  return out;
}

}  // namespace asya::sidecar
