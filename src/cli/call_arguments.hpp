// What `asya call` does with a tool's JSON Schema (the `inputSchema` of GET /tools): turns its
// command-line words into the arguments object, and lists the tools. No I/O: the caller fetches
// the schemas.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace asya::cli {

// The arguments of a call of `tool` whose input schema is `schema`: the object of `args_json`
// (empty: none), then every word of `words` in order (a later key replaces an earlier one):
// - `key=value` reads value by the parameter's type: a string as is (`text=5` is "5"); an
//   integer, number or boolean as that JSON type (`true`/`false`); an array or object as JSON
//   text of that type. A parameter without one type (none, or a list) takes the value as JSON
//   when it parses, else as a string.
// - `key:=json` takes the JSON text as is, whatever the type (the gateway still validates it).
// Error (the message names the word, the parameter, its type and an example) for a word without
// `=`, an empty key, a value that is not of the parameter's type, invalid JSON, or a key the tool
// does not have when its schema forbids other properties (the message lists its parameters).
Result<boost::json::object> build_call_arguments(const boost::json::object& schema,
                                                 std::string_view tool, std::string_view args_json,
                                                 const std::vector<std::string>& words);

// The tools of GET /tools for people, one block per tool: its name and description, then one
// line per parameter, `name=<type>` with `required`, the default, the accepted values and the
// parameter's description. "no tools" for an empty list.
std::string format_tool_list(const boost::json::array& tools);

}  // namespace asya::cli
