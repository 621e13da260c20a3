#include "transport/sqlite/lease_bodies.hpp"

#include <algorithm>
#include <utility>

namespace asya::transport::sqlite {

Result<std::vector<Delivery>> read_leased_bodies(Connection& db, BodyFiles& body_files,
                                                 std::string_view queue, std::int64_t token,
                                                 std::vector<Delivery>& out,
                                                 const std::vector<std::int64_t>& ids,
                                                 const std::vector<std::string>& files,
                                                 const std::vector<char>& read) {
  // RETURNING order is unspecified; hand out a batch in id (send) order.
  std::vector<std::size_t> order(out.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return ids[a] < ids[b]; });
  // The bodies not read yet are read after the lease committed, outside any write transaction,
  // straight from the database pages (or the body file) into each Delivery's string (one copy,
  // no SQLite-side buffer).
  std::vector<Delivery> sorted;
  sorted.reserve(out.size());
  sqlite3_blob* blob = nullptr;
  Status read_failed = Status::Ok();
  for (std::size_t i : order) {
    if (read[i]) {  // read inside the lease's transaction
      sorted.push_back(std::move(out[i]));
      continue;
    }
    if (!files[i].empty()) {
      bool missing = false;
      read_failed = body_files.read(files[i], out[i].body, missing);
      if (!read_failed) {
        read_failed =
            Error{"receive from queue " + in_quotes(queue) + ": " + read_failed.message()};
        break;
      }
      if (missing) {
        if (blob != nullptr) {  // no read snapshot may stay open into a write transaction
          sqlite3_blob_close(blob);
          blob = nullptr;
        }
        // Gone already (the lease expired at once and another receiver acked it), or lost:
        // a row still under this lease whose file is gone can never be delivered.
        body_files.drop_lost_row(db, ids[i], token, queue, files[i]);
        continue;
      }
      sorted.push_back(std::move(out[i]));
      continue;
    }
    int rc = blob == nullptr
                 ? sqlite3_blob_open(db.db(), "main", "bodies", "body", ids[i], 0, &blob)
                 : sqlite3_blob_reopen(blob, ids[i]);
    if (rc != SQLITE_OK) {
      // Gone already: the lease expired at once (visibility timeout ~0) and another receiver
      // acked it. Anything else is an error; the leased messages come back after the timeout.
      bool missing = (rc & 0xff) == SQLITE_ERROR &&
                     std::string_view(sqlite3_errmsg(db.db())).starts_with("no such rowid");
      if (!missing) {
        read_failed = Error{"receive (reading the body) on queue " + in_quotes(queue) +
                            " failed: " + db.error()};
        break;
      }
      if (blob != nullptr && rc != SQLITE_OK) {
        sqlite3_blob_close(blob);  // a failed reopen leaves the handle unusable
        blob = nullptr;
      }
      continue;
    }
    Delivery& d = out[i];
    std::string& text = d.body.text();
    text.resize(static_cast<std::size_t>(sqlite3_blob_bytes(blob)));
    if (!text.empty() &&
        sqlite3_blob_read(blob, text.data(), static_cast<int>(text.size()), 0) != SQLITE_OK) {
      read_failed = Error{"receive (reading the body) on queue " + in_quotes(queue) +
                          " failed: " + db.error()};
      break;
    }
    sorted.push_back(std::move(d));
  }
  if (blob != nullptr) sqlite3_blob_close(blob);
  if (!read_failed) return read_failed.error();
  return sorted;
}

}  // namespace asya::transport::sqlite
