#include "common/postgres/connection.hpp"

#include <fmt/format.h>

#include <charconv>
#include <vector>

namespace asya::postgres {

std::string redacted(std::string_view url) {
  std::string out(url);
  auto scheme = out.find("://");
  auto at = out.find('@');
  if (scheme != std::string::npos && at != std::string::npos && at > scheme) {
    auto colon = out.find(':', scheme + 3);
    if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
  }
  return out;
}

std::string trimmed(const char* message) {
  std::string text = message ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

bool PgResult::ok() const {
  auto status = PQresultStatus(result_);
  return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_SINGLE_TUPLE;
}

std::int64_t PgResult::integer(int row, int column) const {
  std::string_view t = text(row, column);
  std::int64_t value = 0;
  std::from_chars(t.data(), t.data() + t.size(), value);
  return value;
}

std::int64_t PgResult::changed() const {
  const char* n = PQcmdTuples(result_);
  std::int64_t value = 0;
  if (n) std::from_chars(n, n + std::char_traits<char>::length(n), value);
  return value;
}

Connection::Connection(std::string url) : url_(std::move(url)) {
  connection_ = PQconnectdb(url_.c_str());
}

Connection::~Connection() {
  PQfinish(connection_);
}

std::string Connection::error() const {
  return fmt::format("PostgreSQL {}: {}", redacted_url(), trimmed(PQerrorMessage(connection_)));
}

bool Connection::reset() {
  PQreset(connection_);
  return connected();
}

std::string Connection::error_of(const PgResult& result, std::string_view what) const {
  std::string why = trimmed(PQresultErrorMessage(result.get()));
  if (why.empty()) why = trimmed(PQerrorMessage(connection_));
  return fmt::format("PostgreSQL {}: {}: {}", redacted_url(), what, why);
}

Result<PgResult> Connection::run(std::string_view what, const char* sql,
                                 std::initializer_list<Param> params) {
  const std::size_t n = params.size();
  std::vector<std::string> numbers(n);
  std::vector<const char*> values(n, nullptr);
  std::vector<int> lengths(n, 0), formats(n, 0);
  std::size_t i = 0;
  for (const Param& p : params) {
    if (const auto* text = std::get_if<std::string_view>(&p)) {
      // Binary format: the bytes as they are, so a string_view needs no terminating NUL (the
      // binary form of text is the text itself).
      values[i] = text->data() ? text->data() : "";
      lengths[i] = static_cast<int>(text->size());
      formats[i] = 1;
    } else if (const auto* number = std::get_if<std::int64_t>(&p)) {
      numbers[i] = std::to_string(*number);
      values[i] = numbers[i].c_str();
    }
    ++i;
  }
  PgResult result(PQexecParams(connection_, sql, static_cast<int>(n), nullptr, values.data(),
                               lengths.data(), formats.data(), 0));
  if (!result.ok()) return Error{error_of(result, what)};
  return result;
}

Status Connection::script(std::string_view what, const char* sql) {
  PgResult result(PQexec(connection_, sql));
  if (!result.ok()) return Error{error_of(result, what)};
  return Status::Ok();
}

}  // namespace asya::postgres
