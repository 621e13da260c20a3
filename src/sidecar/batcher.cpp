#include "sidecar/batcher.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "wire/batch.hpp"

namespace asya::sidecar {

using Clock = std::chrono::steady_clock;

Result<std::vector<transport::Delivery>> gather_batch(transport::Transport& transport,
                                                      std::string_view queue,
                                                      const BatchSettings& settings,
                                                      std::chrono::milliseconds first_wait,
                                                      double* gathered_seconds) {
  const std::size_t max_size = std::max<std::size_t>(settings.max_size, 1);
  if (gathered_seconds) *gathered_seconds = 0;
  auto first = transport.receive(queue, max_size, first_wait);
  if (!first || first->empty() || first->size() >= max_size) return first;
  std::vector<transport::Delivery> batch = std::move(*first);
  const auto first_at = Clock::now();
  const auto until = first_at + settings.max_wait;
  while (batch.size() < max_size && Clock::now() < until) {
    // Only what is ready now: waiting for company that may not come would delay the batch.
    auto more = transport.receive(queue, max_size - batch.size(), std::chrono::milliseconds(0));
    if (!more || more->empty()) break;
    for (auto& delivery : *more) batch.push_back(std::move(delivery));
  }
  if (gathered_seconds)
    *gathered_seconds = std::chrono::duration<double>(Clock::now() - first_at).count();
  return batch;
}

Status check_runtime_takes_batches(const std::string& socket_path, const BatchSettings& settings) {
  if (!settings.enabled()) return Status::Ok();
  auto accepts = wire::runtime_accepts_batches(socket_path);
  if (accepts && *accepts) return Status::Ok();
  return Error{fmt::format(
      "ASYA_BATCH_MAX_SIZE={} (spec.batching) but the runtime at {} does not accept batches: {}; "
      "use a runtime that declares batch support (the bundled Python runtime with "
      "ASYA_HANDLER_BATCH=true, or asya::serve_batch in C++), or remove spec.batching",
      settings.max_size, socket_path,
      accepts ? "its ready file has no line \"batch\" (PROTOCOL §3)" : accepts.error().message)};
}

bool runtime_pipelines(const std::string& socket_path) {
  auto declared = wire::runtime_declares(socket_path, wire::kPipelineCapability);
  return declared && *declared;
}

std::vector<BatchItem> prepare_batch(const Router& router,
                                     std::vector<transport::Delivery>& deliveries,
                                     wire::FrameBuffer& scratch,
                                     std::chrono::system_clock::time_point now) {
  std::vector<BatchItem> items(deliveries.size());
  for (std::size_t i = 0; i < deliveries.size(); ++i) {
    BatchItem& item = items[i];
    item.delivery = &deliveries[i];
    // The views of the parsed envelope point into delivery.body, so one scratch copy serves all.
    scratch.assign(item.delivery->body);
    item.parsed.emplace(envelope::parse(item.delivery->body, scratch.data()));
    item.decision = router.before_runtime(*item.delivery, *item.parsed, now);
  }
  return items;
}

SentBatch send_batch(std::vector<BatchItem>& items, wire::RuntimeClient& client,
                     std::chrono::milliseconds timeout) {
  SentBatch sent;
  std::vector<std::string_view> bodies;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const BatchItem& item = items[i];
    if (item.decision) continue;
    sent.sent.push_back(i);
    bodies.push_back(item.request.empty() ? std::string_view(item.delivery->body) : item.request);
  }
  if (sent.sent.empty()) return sent;
  sent.request = wire::batch_request(bodies);
  sent.started = Clock::now();
  sent.result = client.send(sent.request, timeout);
  return sent;
}

BatchCall answer_batch(const Router& router, wire::RuntimeClient& client,
                       std::vector<BatchItem>& items, SentBatch& sent, wire::FrameBuffer& response,
                       std::chrono::steady_clock::time_point deadline,
                       std::chrono::milliseconds timeout) {
  BatchCall result;
  result.sent = sent.sent.size();
  if (sent.sent.empty()) return result;
  result.started = sent.started;
  const bool was_sent = sent.result.status == wire::CallStatus::kOk;
  result.runtime_waits = sent.result.runtime_waits;
  result.runtime_waited = sent.result.runtime_waited;
  wire::CallResult call =
      was_sent ? client.receive(response, deadline, timeout) : std::move(sent.result);
  if (was_sent) {
    result.runtime_waits += call.runtime_waits;
    result.runtime_waited += call.runtime_waited;
  }
  std::string().swap(sent.request);
  result.runtime_seconds =
      std::chrono::duration<double>(Clock::now() - sent.started - result.runtime_waited).count();
  result.status = call.status;
  result.notice = call.notice;
  auto decide_all = [&](const wire::CallResult& failed) {
    for (std::size_t i : sent.sent)
      items[i].decision =
          router.after_runtime(*items[i].envelope(), *items[i].delivery, failed, {});
  };
  if (call.status != wire::CallStatus::kOk) {
    result.error = call.error;
    decide_all(call);
    return result;
  }
  auto answers = wire::split_batch_response(response.view(), sent.sent.size());
  if (!answers) {
    result.status = wire::CallStatus::kProtocol;
    result.error = answers.error().message;
    client.disconnect();  // a connection that carried a bad answer is never reused
    decide_all(wire::CallResult(wire::CallStatus::kProtocol, answers.error().message));
    return result;
  }
  bool rejected = false;
  for (std::size_t k = 0; k < sent.sent.size(); ++k) {
    BatchItem& item = items[sent.sent[k]];
    item.decision = router.after_runtime(*item.envelope(), *item.delivery, call, (*answers)[k],
                                         false, item.offload);
    if (item.decision->failure == FailureCode::kRuntimeProtocolError) {
      rejected = true;
      if (result.error.empty()) result.error = item.decision->failure_message;
    }
  }
  if (rejected) client.disconnect();
  return result;
}

BatchCall call_batch(const Router& router, wire::RuntimeClient& client,
                     std::vector<BatchItem>& items, wire::FrameBuffer& response,
                     std::chrono::milliseconds timeout) {
  SentBatch sent = send_batch(items, client, timeout);
  return answer_batch(router, client, items, sent, response, sent.started + timeout, timeout);
}

}  // namespace asya::sidecar
