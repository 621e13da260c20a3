#include "sidecar/payload_ref.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstring>

#include "common/failpoint.hpp"
#include "payload/offload.hpp"
#include "sidecar/passthrough_answer.hpp"

namespace asya::sidecar {

namespace {

std::string describe(const payload::Reference& reference) {
  return reference.describe();
}

}  // namespace

PayloadReferences::PayloadReferences(std::unique_ptr<payload::PayloadStore> store,
                                     std::size_t threshold_bytes,
                                     std::chrono::milliseconds renewal_interval)
    : store_(std::move(store)),
      threshold_bytes_(threshold_bytes),
      renewal_interval_(renewal_interval),
      renewer_(*store_, renewal_interval) {}

PayloadReferences::Input PayloadReferences::resolve(const envelope::Envelope& in,
                                                    std::string_view body, bool allow_stream) {
  Input input;
  auto parsed = payload::parse_reference(in.payload_raw);
  if (!parsed) return input;
  if (!*parsed) {
    input.status = InputStatus::kUnavailable;
    input.message = parsed->error().message;
    return input;
  }
  input.reference = **parsed;
  const payload::Reference& reference = *input.reference;
  auto key = payload::key_in_store(reference, store_->url());
  if (!key) {
    input.status = InputStatus::kUnavailable;
    input.message = key.error().message;
    return input;
  }
  if (Status held = payload::hold(*store_, reference.sha256, in.id); !held) {
    input.status = InputStatus::kStoreError;
    input.message = fmt::format("cannot hold payload {}: {}", describe(reference), held.message());
    return input;
  }
  input.renewal = renewer_.keep(reference.sha256, in.id);
  if (auto path = allow_stream ? store_->local_path(*key) : std::nullopt) {
    auto opened = StreamedPayload::open(*path, reference);
    if (!opened) {
      input.status = payload::object_unavailable(opened.error().message) ? InputStatus::kUnavailable
                                                                         : InputStatus::kStoreError;
      input.message =
          fmt::format("payload {} cannot be read: {}", describe(reference), opened.error().message);
      if (opened.error().message.starts_with(payload::kNotFound))
        missing_object(input, opened.error().message);
      return input;
    }
    input.stream = std::move(*opened);
    input.status = InputStatus::kResolved;
    return input;
  }
  const auto prefix = static_cast<std::size_t>(in.payload_raw.data() - body.data());
  const std::string_view suffix = body.substr(prefix + in.payload_raw.size());
  input.body.reserve(prefix + reference.size_bytes + suffix.size());
  input.body.append(body.substr(0, prefix));
  // Checked by its SHA-256, or by the store's verified mark (payload/file/verified_mark.hpp).
  auto checked = store_->read_checked(*key, reference.sha256, reference.size_bytes, input.body);
  if (!checked) {
    const std::string& message = checked.error().message;
    input.status =
        payload::object_unavailable(message) ? InputStatus::kUnavailable : InputStatus::kStoreError;
    input.message = fmt::format("payload {} cannot be read: {}", describe(reference), message);
    input.body.clear();
    if (message.starts_with(payload::kNotFound)) missing_object(input, message);
    return input;
  }
  if (!*checked) {
    std::string_view bytes = std::string_view(input.body).substr(prefix);
    std::string actual = bytes.size() == reference.size_bytes ? payload::sha256_hex(bytes) : "";
    input.status = InputStatus::kUnavailable;
    input.message = fmt::format(
        "payload {} does not match its reference: the object has {} bytes{}; it was changed or "
        "damaged in the store",
        describe(reference), bytes.size(), actual.empty() ? "" : ", sha256 " + actual);
    input.body.clear();
    return input;
  }
  input.body.append(suffix);  // within the reserved capacity: `payload` stays valid
  input.payload = std::string_view(input.body).substr(prefix, reference.size_bytes);
  input.status = InputStatus::kResolved;
  return input;
}

void PayloadReferences::missing_object(Input& input, std::string message) {
  // A token is new for every published message and released only once a copy of it was consumed
  // (acked: its outputs durable), so a released token whose object is gone means this entry is a
  // second one of that publish (a publisher that sent it again, a broker that delivered it again
  // after it was consumed), left waiting past the grace period after the first copy ended: its
  // work was done, and sending it to error-end would only file a false failure. Only on this
  // error path: one look-up, never for a message whose object is there.
  const std::string& token = input.reference->hold;
  if (token.empty()) return;
  auto released = store_->exists(payload::release_key(token));
  if (!released || !*released) return;
  input.status = InputStatus::kConsumedCopy;
  input.message = fmt::format(
      "payload {} is gone ({}) and its hold token was released: a copy of this message was "
      "consumed before; acknowledged without calling the handler",
      describe(*input.reference), message);
}

Result<std::string> PayloadReferences::stored_reference(std::string_view payload_raw,
                                                        std::string sha, std::string_view output_id,
                                                        std::vector<Stored>& stored) {
  // An output equal to one this message stored already is held, not written again (compared
  // byte for byte: its digest may not be known before it is written).
  for (const Stored& earlier : stored) {
    if (earlier.payload.size() == payload_raw.size() &&
        (earlier.sha256 == sha || earlier.payload.data() == payload_raw.data() ||
         std::memcmp(earlier.payload.data(), payload_raw.data(), payload_raw.size()) == 0)) {
      auto reference =
          payload::store_payload(*store_, payload_raw, output_id, /*write=*/false, earlier.sha256);
      if (!reference) return reference.error();
      failpoint("payload.stored");
      return reference->json();
    }
  }
  // Hashed while it is written when `sha` is empty (payload::store_payload).
  auto reference = payload::store_payload(*store_, payload_raw, output_id, true, std::move(sha));
  if (!reference) return reference.error();
  failpoint("payload.stored");  // stored, not yet published: a crash here leaves an orphan
  stored.push_back({payload_raw, reference->sha256});
  return reference->json();
}

Result<std::optional<std::string>> PayloadReferences::Outputs::replace(std::string_view payload_raw,
                                                                       std::string_view output_id) {
  auto is = [&payload_raw](std::string_view view) {
    return !view.empty() && payload_raw.data() == view.data() && payload_raw.size() == view.size();
  };
  // The input's reference put in place of its bytes while the answer arrived, or the input's own
  // reference text (a "payload_unchanged" answer to an input that came as a reference).
  const bool replaced = is(replaced_) || (input_ && is(input_text_));
  if (!replaced && payload_raw.size() <= owner_.threshold_bytes_)
    return std::optional<std::string>();
  // An answer equal to the resolved input is a pass-through: compared byte for byte while the
  // input is still in memory (a fifth of the time of hashing it), or with its file when it was
  // streamed (sidecar/payload_stream.hpp); else, when the sizes are equal, by its SHA-256.
  const bool same_size = input_ && input_->size_bytes == payload_raw.size();
  const bool comparable =
      same_size && (input_stream_ != nullptr || input_payload_.size() == payload_raw.size());
  const bool same_bytes =
      replaced || (comparable && (input_stream_ != nullptr
                                      ? input_stream_->same_as(payload_raw)
                                      : std::memcmp(input_payload_.data(), payload_raw.data(),
                                                    payload_raw.size()) == 0));
  // Empty when the payload is not the input's: it is then hashed while it is stored.
  std::string sha = same_bytes                 ? input_->sha256
                    : same_size && !comparable ? payload::sha256_hex(payload_raw)
                                               : std::string();
  if (input_ && (same_bytes || (same_size && sha == input_->sha256))) {
    // Pass-through: the object exists and is held for the input's id. Output 0 keeps that id;
    // another output (a fan-out child) gets its own hold. Either is a new message: its reference
    // gets a hold token of its own (payload/lifetime.hpp), held before it is published.
    if (output_id != input_id_ && !held_.contains(std::string(output_id))) {
      if (Status held = payload::hold(owner_.store(), input_->sha256, output_id); !held)
        return Error{fmt::format("cannot hold payload {} for {}: {}", describe(*input_), output_id,
                                 held.message())};
      held_.insert(std::string(output_id));
    }
    payload::Reference forwarded = *input_;
    forwarded.hold = payload::new_hold_token();
    if (Status held = payload::hold_token(owner_.store(), forwarded.sha256, forwarded.hold); !held)
      return Error{fmt::format("cannot hold payload {} for {} (hold token {}): {}",
                               describe(*input_), output_id, forwarded.hold, held.message())};
    return std::optional<std::string>(forwarded.json());
  }
  // The input's own inline bytes: their object was written ahead while the runtime worked. An
  // unchanged answer is the input's view itself; bytes sent back are compared (a fifth of the
  // time of hashing them).
  if (!input_ && !input_text_.empty() && payload_raw.size() == input_text_.size() &&
      (payload_raw.data() == input_text_.data() ||
       (ahead_ && std::memcmp(payload_raw.data(), input_text_.data(), payload_raw.size()) == 0))) {
    owner_.write_ahead_.store(true, std::memory_order_relaxed);
    if (ahead_) {
      std::unique_ptr<payload::PendingObject> ahead = std::move(ahead_);
      auto reference =
          payload::commit_payload(owner_.store(), *ahead, payload_raw.size(), output_id);
      if (!reference) return reference.error();
      spdlog::debug("output {}: the input's payload, written ahead, stored as {}", output_id,
                    reference->describe());
      failpoint("payload.stored");  // stored, not yet published: a crash here leaves an orphan
      stored_.push_back({payload_raw, reference->sha256});
      return std::optional<std::string>(reference->json());
    }
  }
  auto reference = owner_.stored_reference(payload_raw, std::move(sha), output_id, stored_);
  if (!reference) return reference.error();
  return std::optional<std::string>(std::move(*reference));
}

void PayloadReferences::Outputs::release_input() {
  input_payload_ = {};
  input_stream_ = nullptr;
  if (ahead_) {
    spdlog::debug(
        "{}: no output passed the input's payload on: its object written ahead is "
        "abandoned, and large inline inputs are no longer written ahead until one "
        "comes back unchanged",
        input_id_);
    owner_.write_ahead_.store(false, std::memory_order_relaxed);
    ahead_.reset();
  }
}

PayloadReferences::Input PayloadReferences::resolve_payload(std::string_view payload_raw) {
  Input input;
  auto parsed = payload::parse_reference(payload_raw);
  if (!parsed) return input;
  input.status = InputStatus::kUnavailable;
  if (!*parsed) {
    input.message = parsed->error().message;
    return input;
  }
  input.reference = **parsed;
  const payload::Reference& reference = *input.reference;
  auto key = payload::key_in_store(reference, store_->url());
  if (!key) {
    input.message = key.error().message;
    return input;
  }
  input.body.reserve(reference.size_bytes);
  auto checked = store_->read_checked(*key, reference.sha256, reference.size_bytes, input.body);
  if (!checked) {
    const std::string& message = checked.error().message;
    if (!payload::object_unavailable(message)) input.status = InputStatus::kStoreError;
    input.message = fmt::format("payload {} cannot be read: {}", describe(reference), message);
    input.body.clear();
    return input;
  }
  if (!*checked) {
    input.message = fmt::format("payload {} does not match its reference ({} bytes read)",
                                describe(reference), input.body.size());
    input.body.clear();
    return input;
  }
  input.status = InputStatus::kResolved;
  return input;
}

void PayloadReferences::consumed(const envelope::Envelope& in, const Decision& decision) {
  if (decision.consumed_copy) return;  // its token's release is there already
  // A retry re-sends the input as it came, token included: its hold stays for that message.
  for (const Outgoing& out : decision.sends)
    if (out.type == MessageType::kRetry) return;
  auto parsed = payload::parse_reference(in.payload_raw);
  if (!parsed || !*parsed || (*parsed)->hold.empty()) return;
  renewer_.release_later(std::move((*parsed)->hold));
}

Decision unresolved_decision(const Router& router, const envelope::Envelope& in,
                             const transport::Delivery& delivery,
                             const PayloadReferences::Input& input) {
  if (input.status == PayloadReferences::InputStatus::kUnavailable)
    return router.error_end(in, FailureCode::kPayloadUnavailable, input.message);
  Decision d;
  d.then = Then::kNack;
  d.nack_delay = router.backoff(static_cast<int>(delivery.delivery_count));
  d.status = ProcessedStatus::kRequeued;
  d.failure = FailureCode::kPayloadStoreError;
  d.failure_message = input.message;
  return d;
}

std::optional<Decision> PayloadReferences::prepare(const Router& router,
                                                   const envelope::Envelope& in,
                                                   const transport::Delivery& delivery,
                                                   Input& input, std::optional<Outputs>& offload,
                                                   bool allow_stream, bool write_ahead) {
  input = resolve(in, delivery.body, allow_stream);
  if (input.status == InputStatus::kConsumedCopy) {
    spdlog::info("{}: {}", in.id, input.message);
    Decision decision;  // acknowledged, nothing sent
    decision.consumed_copy = true;
    decision.input_hold = input.renewal;
    return decision;
  }
  if (input.status == InputStatus::kUnavailable || input.status == InputStatus::kStoreError) {
    spdlog::warn("payload of {} not resolved: {}", in.id, input.message);
    Decision decision = unresolved_decision(router, in, delivery, input);
    decision.input_hold = input.renewal;  // the error envelope or the nacked input refers to it
    return decision;
  }
  offload.emplace(*this, in.id, input.reference);
  offload->set_input_payload(input.payload);
  offload->set_input_stream(input.stream.get());
  offload->set_input_text(in.payload_raw);
  if (write_ahead && input.status == InputStatus::kPlain &&
      in.payload_raw.size() > threshold_bytes_ && write_ahead_enabled())
    offload->set_written_ahead(store_->begin_object(in.payload_raw));
  return std::nullopt;
}

wire::CallResult PayloadReferences::call_streamed(wire::RuntimeClient& client, Input& input,
                                                  std::string_view body,
                                                  std::string_view payload_raw, Outputs& offload,
                                                  wire::FrameBuffer& answer,
                                                  std::chrono::milliseconds timeout) {
  const wire::StreamedRequest request = input.stream->request(body, payload_raw);
  if (!input.reference || input.reference->size_bytes <= threshold_bytes_) {
    wire::CallResult call = client.call(request, answer, timeout);
    if (client.sent_payload_fd()) input.stream->after_fd_call();
    return call;
  }
  PassThroughAnswer compared(*input.stream, input.reference->json(), answer);
  wire::CallResult call = client.call(request, compared, timeout);
  if (client.sent_payload_fd()) input.stream->after_fd_call();
  if (call.status != wire::CallStatus::kOk ||
      input.stream->failure() != StreamedPayload::Failure::kNone)
    return call;
  switch (compared.finish()) {
    case PassThroughAnswer::Outcome::kReplaced:
      offload.set_replaced(compared.replaced());
      // Compared, nothing written or published yet: a crash here redelivers the input.
      failpoint("payload.answer_compared");
      break;
    case PassThroughAnswer::Outcome::kFailed:
      input.answer_failure = compared.failure_message();
      break;
    case PassThroughAnswer::Outcome::kWhole:
      break;
  }
  return call;
}

std::optional<Decision> PayloadReferences::streamed_failure(const Router& router,
                                                            const envelope::Envelope& in,
                                                            const transport::Delivery& delivery,
                                                            Input& input) {
  if (!input.stream) return std::nullopt;
  Decision decision;
  if (input.stream->failure() == StreamedPayload::Failure::kNone) {
    if (input.answer_failure.empty()) return std::nullopt;
    input.status = InputStatus::kStoreError;
    input.message = input.answer_failure;
    spdlog::warn("answer to {} not used: {}", in.id, input.message);
    decision = unresolved_decision(router, in, delivery, input);
    decision.input_hold = input.renewal;
    return decision;
  }
  input.status = input.stream->failure() == StreamedPayload::Failure::kMismatch
                     ? InputStatus::kUnavailable
                     : InputStatus::kStoreError;
  input.message = input.stream->failure_message();
  spdlog::warn("payload of {} not resolved: {}", in.id, input.message);
  decision = unresolved_decision(router, in, delivery, input);
  decision.input_hold = input.renewal;
  return decision;
}

PayloadParts make_payload_parts(const payload::Settings& settings, bool end_actor) {
  PayloadParts parts;
  if (!settings.enabled()) return parts;
  parts.references =
      std::make_unique<PayloadReferences>(payload::open_store(settings), settings.threshold_bytes,
                                          payload::renewal_interval(settings.policy.grace));
  if (end_actor)
    parts.sweeper = std::make_unique<PayloadSweeper>(parts.references->store(), settings.policy,
                                                     settings.sweep_interval);
  return parts;
}

PayloadSweeper::PayloadSweeper(payload::PayloadStore& store, payload::SweepPolicy policy,
                               std::chrono::milliseconds interval)
    : store_(store), policy_(policy), interval_(interval), thread_([this] { run(); }) {}

PayloadSweeper::~PayloadSweeper() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void PayloadSweeper::run() {
  std::unique_lock lock(mutex_);
  while (!cv_.wait_for(lock, interval_, [this] { return stopping_; })) {
    lock.unlock();
    auto report = payload::sweep(store_, policy_, std::chrono::system_clock::now());
    if (!report)
      spdlog::warn("payload sweep of {} failed: {}", store_.url(), report.error().message);
    else if (report->objects_deleted > 0 || report->records_deleted > 0)
      spdlog::info("payload sweep of {}: deleted {} object(s) and {} record(s), kept {}",
                   store_.url(), report->objects_deleted, report->records_deleted,
                   report->objects_kept);
    lock.lock();
  }
}

}  // namespace asya::sidecar
