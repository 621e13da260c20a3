// Internal helpers shared by envelope.cpp, response.cpp and build.cpp (not a public header: it
// pulls in simdjson). simdjson On-Demand needs SIMDJSON_PADDING readable bytes after the input, so
// text is copied into a thread-local padded buffer; views produced while iterating point into that
// copy and are mapped back into the caller's text with PaddedText::map().
#pragma once

#include <simdjson.h>

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace asya::envelope::detail {

namespace ondemand = simdjson::ondemand;

// The thread-local copy of the text being iterated and the caller's original bytes.
struct PaddedText {
  const char* padded = nullptr;
  const char* original = nullptr;
  std::size_t size = 0;

  // A view into the padded copy, translated to the same bytes of the original text.
  std::string_view map(std::string_view in_padded) const {
    return {original + (in_padded.data() - padded), in_padded.size()};
  }
  std::size_t offset_of(const char* in_padded) const {
    return static_cast<std::size_t>(in_padded - padded);
  }
};

// Copies `text` into this thread's padded buffer and starts iterating it with this thread's
// parser. Only one document per thread may be live at a time (the next call invalidates it).
// When `in_place` is non-null it holds the same bytes as `text` followed by at least
// SIMDJSON_PADDING readable bytes (kParsePadding; any values): it is iterated where it is, with no
// copy (it may be text.data() itself). Views are still mapped back into `text`.
simdjson::error_code iterate(std::string_view text, ondemand::document& document,
                             PaddedText& padded, const char* in_place = nullptr);

// Frees the thread's buffer and parser state when they grew past what a typical message needs,
// so one 100 MB message does not pin 100s of MB per thread. Call after a document is finished.
void release_if_large();

// Drops JSON whitespace from the end (raw_json_token() and raw_json() include it).
inline std::string_view trim_right(std::string_view text) {
  while (!text.empty()) {
    char c = text.back();
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    text.remove_suffix(1);
  }
  return text;
}

// The raw JSON text of `value` (in padded coordinates, trailing whitespace removed), consuming
// it. Scalars are checked against the JSON grammar (literals and numbers); the insides of
// objects and arrays are only checked structurally by simdjson.
simdjson::error_code raw_value(ondemand::value& value, std::string_view& raw);

// Checks a scalar token (trailing whitespace removed) of the given type against the JSON grammar.
simdjson::error_code check_scalar(ondemand::json_type type, std::string_view raw);

// The raw text (trailing whitespace trimmed) of a document's top-level value of `type`, with a
// scalar's syntax checked; used to describe a body whose top-level value has the wrong type.
simdjson::error_code top_level_raw(ondemand::document& document, ondemand::json_type type,
                                   std::string_view& raw);

// Starts iterating `text` (as iterate()) and checks that its top-level value has type `expected`.
// The errors name `subject`: "<subject> is not valid JSON: ..." or, for valid JSON of another
// type, "<subject>: expected <expected_what>, got <the value, shortened>".
Status open_document(std::string_view text, std::string_view subject, ondemand::json_type expected,
                     std::string_view expected_what, ondemand::document& document,
                     PaddedText& padded, const char* in_place = nullptr);

// The JSON text of the key of `field`, quotes included (padded coordinates). Call before
// unescaped_key().
std::string_view raw_key(ondemand::field& field);

// Raw JSON text shortened for error messages ("got ...").
std::string describe(std::string_view raw);

// When `text` starts with a JSON array or object whose brackets close before more than whitespace
// follows, the offset just after its closing bracket; 0 otherwise. Only brackets and strings are
// scanned (the value itself is not validated): call it on a failure path.
std::size_t end_of_value_before_trailing_data(std::string_view text);

// True when `text` is a JSON integer (-?(0|[1-9][0-9]*)).
bool is_json_integer(std::string_view text);

// "body is not valid JSON: <simdjson message>" (with the byte offset when known).
std::string invalid_json_message(std::string_view subject, simdjson::error_code error,
                                 const PaddedText& padded, ondemand::document* document);

// The keys of one JSON object, for duplicate detection without allocating in the common case
// (a handful of keys). Views must stay valid until find_duplicate() is called.
class KeySet {
 public:
  void clear() {
    count_ = 0;
    overflow_.clear();
  }
  void add(std::string_view key) {
    if (count_ < inline_.size()) {
      inline_[count_++] = key;
    } else {
      overflow_.push_back(key);
    }
  }
  // Returns true and sets `duplicate` when some key occurs twice.
  bool find_duplicate(std::string_view& duplicate);

 private:
  std::array<std::string_view, 8> inline_;
  std::size_t count_ = 0;
  std::vector<std::string_view> overflow_;
};

// Where a route is being parsed, for error messages: the envelope's "route", or the route of
// response element `element`. The text is built only when an error is reported.
struct RouteContext {
  static constexpr std::size_t kEnvelope = static_cast<std::size_t>(-1);
  std::size_t element = kEnvelope;
  std::string str() const;
};

// A parsed route object (PROTOCOL §1): actors validated, current in 0..len.
struct Route {
  std::vector<std::string> actors;
  std::size_t current = 0;
  std::string_view raw;           // original coordinates
  std::string_view metadata_raw;  // original coordinates, empty when absent
};

// Parses and validates the route object in `value`. `where` prefixes error messages
// ("route" or "response element 2: route"). Errors that are JSON syntax errors are reported via
// `syntax_error` (and a generic message) so callers can phrase them.
Status parse_route(ondemand::value& value, const PaddedText& padded, RouteContext where,
                   Route& route, simdjson::error_code& syntax_error);

// UTF-8 helpers. Length of the valid UTF-8 sequence starting at text[i], or 0 when invalid.
std::size_t utf8_sequence_length(std::string_view text, std::size_t i);
// Appends `text` as a JSON string literal (quotes included), replacing invalid UTF-8 with U+FFFD.
void append_json_string(std::string& out, std::string_view text);

}  // namespace asya::envelope::detail
