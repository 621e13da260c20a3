// Internal to the job store: the spans of one job received in one export, kept as one row of
// gateway_span_groups (schema 9) instead of one gateway_spans row per span.
//
// A group row holds two texts:
// - `span_index`: one line per span, in the order of `documents`:
//   "<trace_id> <span_id> <start_unix_nano> <document bytes>\n";
// - `documents`: the span documents as one JSON array, "[doc,doc,...]", each exactly as given
//   (the index's byte counts split it again without parsing it).
// The row's key is its first span's "<trace_id> <span_id>" (unique per job: a span is stored once
// per job, in either layout).
//
// Pure functions, no I/O.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "gateway/store/job_store.hpp"

namespace asya::gateway {

// A group row's texts (see above).
struct SpanGroupRow {
  std::string first_span;  // "<trace_id> <span_id>" of the first span: the row's key
  std::string span_index;
  std::string documents;
};

// A group's documents are kept below about this many bytes: the spans of one job and export that
// are larger are split into several rows (a group holds at least one span, however large).
constexpr std::size_t kMaxSpanGroupBytes = 1 << 20;

// The key a stored span is deduplicated by within its job: "<trace_id> <span_id>".
std::string span_key(std::string_view trace_id, std::string_view span_id);

// Checks what a group row can hold: trace and span ids that are not empty and have no space,
// newline or control character (the receiver only passes hex ids). The error names the span.
Status check_span_ids(const SpanRecord& span);

// The rows for `spans` (all of one job, ids checked, at least one), in order: one row unless
// their documents exceed kMaxSpanGroupBytes.
std::vector<SpanGroupRow> encode_span_groups(const std::vector<const SpanRecord*>& spans);

// Appends the spans of a group row to `out` (job_id set to `job_id`), in the row's order. An error
// names the row when its texts do not fit together (a damaged row); nothing is appended then.
Status decode_span_group(const std::string& job_id, std::string_view span_index,
                         std::string_view documents, std::vector<SpanRecord>& out);

// Appends the span keys ("<trace_id> <span_id>") of a group's `span_index` to `keys`; an error
// names the row (of job `job_id`) when a line is not one.
Status span_keys_of_group(std::string_view job_id, std::string_view span_index,
                          std::vector<std::string>& keys);

}  // namespace asya::gateway
