#include "payload/lifetime.hpp"

#include <openssl/rand.h>

#include <map>
#include <set>
#include <stdexcept>
#include <vector>

#include "payload/reference.hpp"

namespace asya::payload {
namespace {

// Envelope ids may hold any character; their records are named by a hash of the id instead.
std::string id_hash(std::string_view envelope_id) {
  return sha256_hex(envelope_id).substr(0, 40);
}

using TimePoint = std::chrono::system_clock::time_point;

// A hold key holds/<id-hash>/<sha256> split in its parts; false for anything else.
bool split_hold(std::string_view key, std::string_view& id, std::string_view& sha) {
  if (!key.starts_with("holds/")) return false;
  std::string_view rest = key.substr(6);
  std::size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return false;
  id = rest.substr(0, slash);
  sha = rest.substr(slash + 1);
  return !id.empty() && !sha.empty();
}

}  // namespace

std::string hold_key(std::string_view sha256, std::string_view envelope_id) {
  return "holds/" + id_hash(envelope_id) + "/" + std::string(sha256);
}

std::string release_key(std::string_view envelope_id) {
  return "released/" + id_hash(envelope_id);
}

Status hold(PayloadStore& store, std::string_view sha256, std::string_view envelope_id) {
  return store.put(hold_key(sha256, envelope_id), envelope_id);
}

std::string new_hold_token() {
  unsigned char random[kHoldTokenHexDigits / 2];
  // OpenSSL seeds itself from the operating system; a failure there is a broken host.
  if (RAND_bytes(random, sizeof random) != 1)
    throw std::runtime_error("RAND_bytes failed: no random bytes for a payload hold token");
  return digest_hex(random, sizeof random);
}

Status hold_token(PayloadStore& store, std::string_view sha256, std::string_view token) {
  return store.put_record(hold_key(sha256, token), token);
}

Status release_token(PayloadStore& store, std::string_view token) {
  return store.put_record(release_key(token), token);
}

Status release(PayloadStore& store, std::string_view envelope_id) {
  auto holds = store.list("holds/" + id_hash(envelope_id) + "/");
  if (!holds) return holds.error();
  if (holds->empty()) return Status::Ok();
  return store.put(release_key(envelope_id), envelope_id);
}

Result<SweepReport> sweep(PayloadStore& store, const SweepPolicy& policy, TimePoint now) {
  // Releases first, then holds, then objects: a hold written after its object was listed refers
  // to an object listed too, and a release listed before a newer hold does not release it.
  auto releases = store.list("released/");
  if (!releases) return releases.error();
  auto holds = store.list("holds/");
  if (!holds) return holds.error();
  auto objects = store.list("objects/");
  if (!objects) return objects.error();

  std::map<std::string, TimePoint, std::less<>> released_at;
  for (const auto& r : *releases) released_at[r.key.substr(9)] = r.modified;
  auto old = [&](TimePoint when, std::chrono::milliseconds age) { return now - when >= age; };
  auto hold_done = [&](const StoredObject& h) {
    std::string_view id, sha;
    if (!split_hold(h.key, id, sha)) return false;
    if (old(h.modified, policy.orphan_age)) return true;
    auto it = released_at.find(id);
    return it != released_at.end() && it->second >= h.modified && old(it->second, policy.grace);
  };
  // Digests with at least one hold, and those with a hold that is not done.
  auto holders = [&](const std::vector<StoredObject>& list, std::set<std::string>& any,
                     std::set<std::string>& live) {
    for (const auto& h : list) {
      std::string_view id, sha;
      if (!split_hold(h.key, id, sha)) continue;
      any.emplace(sha);
      if (!hold_done(h)) live.emplace(sha);
    }
  };
  std::set<std::string> held, live;
  holders(*holds, held, live);

  std::vector<const StoredObject*> doomed;
  std::set<std::string, std::less<>> not_deleted;  // doomed, but the delete failed: next sweep
  SweepReport report;
  for (const auto& object : *objects) {
    std::string sha = object.key.substr(8);
    bool deletable =
        held.contains(sha) ? !live.contains(sha) : old(object.modified, policy.orphan_age);
    if (deletable)
      doomed.push_back(&object);
    else
      ++report.objects_kept;
  }
  if (!doomed.empty()) {
    // Look again just before deleting: a writer that reuses an object holds it first, so a hold
    // that appeared since the first listing keeps it (see the header for the remaining window).
    auto again = store.list("holds/");
    if (!again) return again.error();
    std::set<std::string> held_now, live_now;
    holders(*again, held_now, live_now);
    for (const StoredObject* object : doomed) {
      std::string sha = object->key.substr(8);
      if (live_now.contains(sha) || (held_now.contains(sha) && !held.contains(sha))) {
        ++report.objects_kept;
        continue;
      }
      if (store.remove(object->key))
        ++report.objects_deleted;
      else
        not_deleted.insert(sha);
    }
    holds = std::move(again);
  }
  // Holds that are done, whether their object is gone (deleted above, or an upload that never
  // happened) or still held by others (an object that some envelope always refers to never dies,
  // and the done holds of every envelope that ever referred to it would pile up): a done hold
  // changes nothing about its object any more. A hold key is rewritten in place (a redelivery's
  // receipt, a renewal), so the holds are listed once more right before they are removed, and
  // only a record still there with the time judged done goes: a rewrite since is a live hold.
  // The holds of an object whose delete failed stay, so that the next sweep deletes it (without
  // any hold it would wait for the orphan age).
  std::map<std::string, TimePoint, std::less<>> done_at;
  for (const auto& h : *holds) {
    std::string_view id, sha;
    if (split_hold(h.key, id, sha) && hold_done(h) && !not_deleted.contains(sha))
      done_at.emplace(h.key, h.modified);
  }
  if (!done_at.empty()) {
    auto fresh = store.list("holds/");
    if (!fresh) return fresh.error();
    for (const auto& h : *fresh) {
      auto it = done_at.find(h.key);
      if (it != done_at.end() && it->second == h.modified && store.remove(h.key))
        ++report.records_deleted;
    }
  }
  for (const auto& r : *releases)
    if (old(r.modified, policy.orphan_age) && store.remove(r.key)) ++report.records_deleted;
  // Temporaries of puts cut short by a crash (the file store writes them under tmp/).
  if (auto temporaries = store.list("tmp/"))
    for (const auto& t : *temporaries)
      if (old(t.modified, policy.orphan_age) && store.remove(t.key)) ++report.records_deleted;
  return report;
}

}  // namespace asya::payload
