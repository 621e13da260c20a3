// Amazon SQS transport (PROTOCOL §2), speaking SQS's JSON protocol over HTTPS
// (POST /, `X-Amz-Target: AmazonSQS.<Action>`, `Content-Type: application/x-amz-json-1.0`) with
// SigV4 signing (common/aws). Works against AWS and against SQS emulators such as moto.
//
// Mapping onto the Transport contract:
//   - A queue is resolved by name with GetQueueUrl (URLs are cached); when it does not exist and
//     ASYA_SQS_CREATE_QUEUES is true (default) it is created with CreateQueue, its
//     VisibilityTimeout set to Options.visibility_timeout.
//   - receive() long-polls ReceiveMessage (WaitTimeSeconds up to ASYA_SQS_WAIT_TIME_SECONDS, at
//     most 20; at most 10 messages per call, SQS's limit) and leases every message for
//     Options.visibility_timeout; the sidecar's lease keeper pushes it further with
//     extend_lease() (ChangeMessageVisibility) while a handler runs, so a slow handler is not
//     redelivered while it still runs.
//   - delivery_count is the message's ApproximateReceiveCount.
//   - send_many()/ack_many() are SendMessageBatch/DeleteMessageBatch (per queue, at most 10
//     entries and, for sends, 256 KiB of bodies per call); each entry's own outcome is its
//     message's Status.
//   - ack() is DeleteMessage; nack(delay) and extend_lease(visibility) are
//     ChangeMessageVisibility. SQS accepts a stale receipt handle's delete silently in some cases,
//     so acking after the lease expired may report success.
//   - send(delay) uses DelaySeconds, which SQS caps at 900 s (15 min): a longer delay is clamped
//     to 900 s (a warning is logged), and delays are rounded up to whole seconds.
//   - stats() is GetQueueAttributes (ApproximateNumberOfMessages, ...NotVisible, ...Delayed);
//     the counts are approximate, as SQS says. A queue that does not exist has all counts 0.
//   - A body larger than min(256 KiB, Options.max_message_bytes) is refused with an Error
//     starting "message_too_large:" (SQS's own limit is 262,144 bytes). Bodies must be text SQS
//     accepts (UTF-8 without most control characters); envelopes always are.
//   - interrupt() aborts long polls within about 100 ms; an answer that began to arrive is read
//     whole (its messages are returned, not stranded until their visibility timeout).
// Thread-safe: HTTP handles are pooled (one per concurrently calling thread).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/aws/client.hpp"
#include "transport/transport.hpp"

namespace asya::transport {

struct SqsSettings {
  aws::Config aws;  // ASYA_SQS_ENDPOINT / AWS_ENDPOINT_URL(_SQS), AWS_REGION, AWS_ACCESS_KEY_ID...
  bool create_queues = true;                         // ASYA_SQS_CREATE_QUEUES
  int wait_time_seconds = 20;                        // ASYA_SQS_WAIT_TIME_SECONDS, 0..20
  std::chrono::milliseconds request_timeout{30000};  // ASYA_SQS_REQUEST_TIMEOUT, per HTTP call

  // Reads the variables above from `environment`; throws ConfigError naming a bad or missing one.
  static SqsSettings from_env(const Environment& environment = Environment());
};

// SQS's largest message body: 256 KiB.
inline constexpr std::size_t kSqsMaxMessageBytes = 256 * 1024;

// Does not contact SQS; the first queue operation does. Throws ConfigError for bad settings.
std::unique_ptr<Transport> make_sqs_transport(const Options& options, const SqsSettings& settings);

// The registered factory ("sqs"): the settings read from options.environment.
std::unique_ptr<Transport> make_sqs_transport(const Options& options);

}  // namespace asya::transport
