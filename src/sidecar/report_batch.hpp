// The batched form of the sidecar's progress and final reports (PROTOCOL §7 POST
// /envelopes/reports): which queued reports may travel together, the request body, and reading
// the gateway's per-report answer. Pure functions, no I/O; the GatewayReporter sends.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace asya::sidecar {

// The path of the batch endpoint.
inline constexpr const char* kReportBatchPath = "/envelopes/reports";

// A report that may travel in a batch: POST /envelopes/{id}/progress or /envelopes/{id}/final,
// with the envelope id decoded from the path (envelope_path's percent-encoding undone).
struct BatchableReport {
  std::string id;
  std::string kind;  // "progress" or "final"
};
// nullopt for any other path (fan-out announcements, joins, checks travel alone).
std::optional<BatchableReport> batchable(std::string_view path);

// One report of a batch: the decoded id, its kind and its body (the single endpoint's JSON).
struct BatchEntry {
  std::string_view id;
  std::string_view kind;
  std::string_view body;
};
// `[{"id": ..., "kind": ..., "report": <body>}, ...]`, in order.
std::string batch_body(const std::vector<BatchEntry>& entries);

// What the gateway answered for one report of a batch: the status its single endpoint would
// have answered and the start of that answer (for the log).
struct BatchItemAnswer {
  long status = 0;
  std::string answer;
};
// The per-report answers of `{"results": [{"status": n, "answer": {...}}, ...]}`; nullopt when
// the text is not that, or holds other than `count` results.
std::optional<std::vector<BatchItemAnswer>> read_batch_answer(std::string_view text,
                                                              std::size_t count);

}  // namespace asya::sidecar
