#include "sidecar/report_batch.hpp"

#include <simdjson.h>

#include "common/percent_decode.hpp"
#include "envelope/envelope.hpp"

namespace asya::sidecar {

namespace {

// The answer text kept per report, for the log.
constexpr std::size_t kKeptItemAnswerBytes = 300;

}  // namespace

std::optional<BatchableReport> batchable(std::string_view path) {
  constexpr std::string_view prefix = "/envelopes/";
  if (!path.starts_with(prefix)) return std::nullopt;
  std::string_view rest = path.substr(prefix.size());
  const std::size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  std::string_view kind = rest.substr(slash + 1);
  if (kind != "progress" && kind != "final") return std::nullopt;
  auto id = percent_decode(rest.substr(0, slash));
  if (!id || id->empty()) return std::nullopt;
  return BatchableReport{std::move(*id), std::string(kind)};
}

std::string batch_body(const std::vector<BatchEntry>& entries) {
  std::size_t size = 2;
  for (const BatchEntry& e : entries) size += e.id.size() + e.body.size() + 40;
  std::string out;
  out.reserve(size);
  out += '[';
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (i) out += ',';
    out += "{\"id\":";
    out += envelope::json_string(entries[i].id);
    out += ",\"kind\":\"";
    out += entries[i].kind;
    out += "\",\"report\":";
    out += entries[i].body;
    out += '}';
  }
  out += ']';
  return out;
}

std::optional<std::vector<BatchItemAnswer>> read_batch_answer(std::string_view text,
                                                              std::size_t count) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(text.data(), text.size()).get(root)) return std::nullopt;
  simdjson::dom::array results;
  if (root["results"].get(results)) return std::nullopt;
  std::vector<BatchItemAnswer> out;
  out.reserve(count);
  for (simdjson::dom::element item : results) {
    std::int64_t status = 0;
    if (item["status"].get(status)) return std::nullopt;
    BatchItemAnswer answer;
    answer.status = static_cast<long>(status);
    simdjson::dom::element body;
    if (!item["answer"].get(body)) {
      answer.answer = simdjson::minify(body);
      if (answer.answer.size() > kKeptItemAnswerBytes) answer.answer.resize(kKeptItemAnswerBytes);
    }
    out.push_back(std::move(answer));
  }
  if (out.size() != count) return std::nullopt;
  return out;
}

}  // namespace asya::sidecar
