// The one libpq wrapper: the gateway's job store (gateway/store/postgres) and the sidecar's join
// store (sidecar/join/postgres_join_store.cpp) both talk to PostgreSQL through it.
//
// A Connection owns one PGconn. It is not thread-safe: its user serialises calls (both stores
// hold a mutex). Errors are values whose message names the database by its URL with the password
// replaced by *** (never print a URL without redacted()).
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include "common/result.hpp"

namespace asya::postgres {

// `url` with the password of its user-info part replaced by *** (postgresql://u:***@host/db).
std::string redacted(std::string_view url);

// libpq's message without its trailing newline(s).
std::string trimmed(const char* message);

// Owns a PGresult.
class PgResult {
 public:
  explicit PgResult(PGresult* result) : result_(result) {}
  ~PgResult() { PQclear(result_); }
  PgResult(PgResult&& other) noexcept : result_(other.result_) { other.result_ = nullptr; }
  PgResult& operator=(PgResult&&) = delete;
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;
  PGresult* get() const { return result_; }
  // COMMAND_OK, TUPLES_OK or SINGLE_TUPLE.
  bool ok() const;
  int rows() const { return PQntuples(result_); }
  bool null(int row, int column) const { return PQgetisnull(result_, row, column) != 0; }
  std::string_view text(int row, int column) const {
    return {PQgetvalue(result_, row, column),
            static_cast<std::size_t>(PQgetlength(result_, row, column))};
  }
  std::int64_t integer(int row, int column) const;
  // Rows an INSERT/UPDATE/DELETE changed.
  std::int64_t changed() const;

 private:
  PGresult* result_;
};

// A statement parameter: NULL, text (sent as is, any bytes but NUL, no copy) or a 64-bit integer.
using Param = std::variant<std::nullptr_t, std::string_view, std::int64_t>;

class Connection {
 public:
  // Connects to `url` (a libpq connection URI or key=value string). Throws nothing: check
  // connected() and error().
  explicit Connection(std::string url);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool connected() const { return PQstatus(connection_) == CONNECTION_OK; }
  // Why the connection is not (or no longer) usable, naming the redacted URL.
  std::string error() const;
  const std::string& url() const { return url_; }
  std::string redacted_url() const { return redacted(url_); }
  PGconn* get() const { return connection_; }
  // Re-establishes a broken connection (blocking); true when connected afterwards.
  bool reset();

  // Runs one statement with parameters $1, $2, ... and waits for its result. `what` names the
  // operation in the error: "PostgreSQL <redacted url>: <what>: <server's message>".
  Result<PgResult> run(std::string_view what, const char* sql,
                       std::initializer_list<Param> params = {});
  // Runs statements without parameters (BEGIN, COMMIT, schema scripts).
  Status script(std::string_view what, const char* sql);
  // The error of a failed `result` for `what`, formatted as run() formats it.
  std::string error_of(const PgResult& result, std::string_view what) const;

 private:
  std::string url_;
  PGconn* connection_ = nullptr;
};

}  // namespace asya::postgres
