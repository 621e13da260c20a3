// Reading and answering the sidecars' progress and final reports (PROTOCOL §7), once for the
// single endpoints (POST /envelopes/{id}/progress, /final) and the batch (POST
// /envelopes/reports), so a report means the same and is answered the same either way.
#pragma once

#include <boost/json/object.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "gateway/store/job_store.hpp"

namespace asya::gateway::reports {

// Reports in one POST /envelopes/reports (PROTOCOL §7); more is a 400.
inline constexpr std::size_t kMaxBatchReports = 256;

// The progress report in `body` about envelope `id`; nullopt with the reason in `error` (naming
// the field and what it got) when a field is wrong.
std::optional<ProgressReport> read_progress(const boost::json::object& body, const std::string& id,
                                            std::string& error);
// The final report in `body` about envelope `id`; `body_text` is the JSON text `body` was parsed
// from (`result` and `error_details` are kept byte for byte). nullopt with the reason in `error`.
std::optional<FinalReport> read_final(const boost::json::object& body, std::string_view body_text,
                                      const std::string& id, std::string& error);

// The reports a cancellation check carries (PROTOCOL §7, the check's "reports": items of the
// batched form), each read as POST /envelopes/reports reads it, in order; `array_text` is the JSON
// text of `array`. nullopt with what is wrong in `error` ("report <index>: ..." for an item) when
// `array` is not an array of 1 to kMaxBatchReports valid items: then none of them is applied.
std::optional<std::vector<SidecarReport>> read_carried(const boost::json::value& array,
                                                       std::string_view array_text,
                                                       std::string& error);

// What the single endpoint answers for the store's outcome of a report about `id`: the HTTP
// status and the JSON body (PROTOCOL §7, §8).
struct Answer {
  int status = 200;
  boost::json::object body;
};
Answer progress_answer(const Result<ChangeResult>& result, const std::string& id);
Answer final_answer(const Result<ChangeResult>& result, const std::string& id);

}  // namespace asya::gateway::reports
