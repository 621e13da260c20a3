#include "gateway/store/span_groups.hpp"

#include <charconv>

namespace asya::gateway {

namespace {

bool id_fits(std::string_view id) {
  if (id.empty()) return false;
  for (char c : id) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return false;
  }
  return true;
}

// One line of a span index, split into its four fields; false when it is not one.
struct IndexLine {
  std::string_view trace_id;
  std::string_view span_id;
  std::int64_t start = 0;
  std::size_t bytes = 0;
};

bool next_field(std::string_view& line, char separator, std::string_view& field) {
  auto end = line.find(separator);
  if (end == std::string_view::npos || end == 0) return false;
  field = line.substr(0, end);
  line.remove_prefix(end + 1);
  return true;
}

template <typename Number>
bool number(std::string_view text, Number& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

// Reads the line at the front of `index` and removes it.
bool read_line(std::string_view& index, IndexLine& line) {
  std::string_view start, bytes;
  return next_field(index, ' ', line.trace_id) && next_field(index, ' ', line.span_id) &&
         next_field(index, ' ', start) && next_field(index, '\n', bytes) &&
         number(start, line.start) && number(bytes, line.bytes);
}

Error damaged(std::string_view what, std::string_view job_id, std::string_view index) {
  auto first_line = index.substr(0, index.find('\n'));
  return Error{"the span group of job \"" + std::string(job_id) + "\" starting with \"" +
               std::string(first_line.substr(0, 80)) + "\" is damaged: " + std::string(what)};
}

}  // namespace

std::string span_key(std::string_view trace_id, std::string_view span_id) {
  std::string key;
  key.reserve(trace_id.size() + 1 + span_id.size());
  key += trace_id;
  key += ' ';
  key += span_id;
  return key;
}

Status check_span_ids(const SpanRecord& span) {
  if (id_fits(span.trace_id) && id_fits(span.span_id)) return Status::Ok();
  return Error{"span \"" + span.span_id + "\" of trace \"" + span.trace_id + "\" (job \"" +
               span.job_id +
               "\"): trace and span ids must be non-empty and have no spaces or control "
               "characters (OTLP ids are hex digits)"};
}

std::vector<SpanGroupRow> encode_span_groups(const std::vector<const SpanRecord*>& spans) {
  std::vector<SpanGroupRow> rows;
  for (const SpanRecord* span : spans) {
    if (rows.empty() || rows.back().documents.size() + span->document.size() > kMaxSpanGroupBytes) {
      if (!rows.empty()) rows.back().documents += ']';
      SpanGroupRow& row = rows.emplace_back();
      row.first_span = span_key(span->trace_id, span->span_id);
      row.documents += '[';
    } else {
      rows.back().documents += ',';
    }
    SpanGroupRow& row = rows.back();
    row.span_index += span->trace_id;
    row.span_index += ' ';
    row.span_index += span->span_id;
    row.span_index += ' ';
    row.span_index += std::to_string(span->start_unix_nano);
    row.span_index += ' ';
    row.span_index += std::to_string(span->document.size());
    row.span_index += '\n';
    row.documents += span->document;
  }
  if (!rows.empty()) rows.back().documents += ']';
  return rows;
}

Status decode_span_group(const std::string& job_id, std::string_view span_index,
                         std::string_view documents, std::vector<SpanRecord>& out) {
  const std::size_t first = out.size();
  auto fail = [&](std::string_view what) {
    out.resize(first);
    return Status(damaged(what, job_id, span_index));
  };
  std::string_view index = span_index;
  std::size_t at = 0;  // the '[' or ',' before the next document
  while (!index.empty()) {
    IndexLine line;
    if (!read_line(index, line)) return fail("a line of its span index is not \"T S START BYTES\"");
    if (at >= documents.size() || documents[at] != (out.size() == first ? '[' : ',') ||
        documents.size() - at - 1 < line.bytes)
      return fail("its documents do not have the lengths its span index gives");
    out.push_back(SpanRecord{job_id, std::string(line.trace_id), std::string(line.span_id),
                             line.start, std::string(documents.substr(at + 1, line.bytes))});
    at += 1 + line.bytes;
  }
  if (out.size() == first) return fail("it holds no span");
  if (at + 1 != documents.size() || documents[at] != ']')
    return fail("its documents do not end where its span index says");
  return Status::Ok();
}

Status span_keys_of_group(std::string_view job_id, std::string_view span_index,
                          std::vector<std::string>& keys) {
  std::string_view index = span_index;
  while (!index.empty()) {
    IndexLine line;
    if (!read_line(index, line))
      return damaged("a line of its span index is not \"T S START BYTES\"", job_id, span_index);
    keys.push_back(span_key(line.trace_id, line.span_id));
  }
  return Status::Ok();
}

}  // namespace asya::gateway
