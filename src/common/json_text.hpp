// JSON text with numbers printed the way people and other JSON libraries expect.
//
// Boost.JSON 1.81 prints every double in scientific notation ("8.1E0", "0E0"). Everything Asya
// writes for others to read (HTTP answers, `asya status --json`, status.json) goes through
// to_json_text instead of boost::json::serialize, so a double is printed in its shortest form
// that reads back to the same value ("8.1", "0.0", "1e+30").
#pragma once

#include <boost/json/value.hpp>

#include <string>
#include <string_view>

namespace asya {

// The shortest decimal text that parses back to `value` (std::to_chars), with ".0" added when
// that text would read as an integer ("0.0", "3.0"), so the value stays a double when parsed
// again. Not finite: "null" for NaN, "1e99999" / "-1e99999" for infinities (JSON has neither;
// these are what Boost.JSON writes).
std::string format_double(double value);

// Compact JSON text of `value`, like boost::json::serialize, but with doubles printed by
// format_double. Strings are escaped exactly as boost::json::serialize escapes them.
std::string to_json_text(const boost::json::value& value);

// Appends what to_json_text returns for `value` (or for the object `object`) to `out`.
void append_json_text(std::string& out, const boost::json::value& value);
void append_json_text(std::string& out, const boost::json::object& object);

// Appends `text` as a JSON string (quotes included), escaped exactly as boost::json::serialize
// escapes a string; no DOM value or copy is built (documents written field by field use it).
// Bytes are written as given (like boost::json::serialize, no UTF-8 check).
void append_json_string(std::string& out, std::string_view text);

// Whether a double occurs anywhere in `value`: where none does, boost::json::serialize already
// prints the same text as to_json_text (and faster, for large documents).
bool contains_double(const boost::json::value& value);
bool contains_double(const boost::json::object& object);

}  // namespace asya
