// How an envelope id becomes the name of its result object (PROTOCOL §6): `<id>.json` with the id
// percent-encoded. The end actors' result stores write these names (result_store/file/,
// result_store/s3/); `asya results` and `asya send --wait` read them back (src/cli). Both sides
// use this header, so the encoding has one definition.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace asya::sidecar {

// The file name used for an id: characters other than [A-Za-z0-9._-] are percent-encoded
// ("%2F"), and a leading '.' too, so an id can never escape the directory or hide itself.
// "abc" -> "abc.json", "../x" -> "%2E.%2Fx.json".
std::string result_file_name(std::string_view id);

// The id a result file name stands for, the inverse of result_file_name: "%2E.%2Fx.json" ->
// "../x". Nullopt for a name no result store writes: no ".json" suffix, nothing before it, a
// leading '.' (temporary files), or a '%' not followed by two hex digits.
std::optional<std::string> result_id_from_file_name(std::string_view name);

}  // namespace asya::sidecar
