// Where large payloads live while their envelopes travel (claim-check, docs/protocol.md "Payload
// references"): a sidecar whose output payload is larger than ASYA_PAYLOAD_THRESHOLD writes the
// payload here and publishes an envelope whose payload is a reference to it; the next sidecar
// reads it back before calling its runtime.
//
// Implementations, each in its own folder and registered by URL scheme in payload_store.cpp (a
// NamedRegistry, the same shape as the transports' and the result stores'): a local directory
// (file:///dir, payload/file/) and S3-compatible storage (s3://bucket/prefix, payload/s3/).
// Keys are relative paths of '/'-separated parts made of [A-Za-z0-9._-] (lifetime.hpp names them).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/env.hpp"
#include "common/result.hpp"

namespace asya::payload {

// Prefix of the Error message of read() when the object does not exist.
inline constexpr std::string_view kNotFound = "not_found:";
// Prefix of the Error message of read() when the object exists but its own permissions deny
// this process (file store: its mode, owner or ACL say no while its directory lets this process
// in). Like a missing object, a property of that object that no retry changes: the reference is
// unavailable (docs/protocol.md §10). A store this process cannot enter at all is a store error.
inline constexpr std::string_view kUnreadable = "unreadable:";

// Whether an Error of read() says that the object cannot be had from this store (kNotFound,
// kUnreadable): payload_unavailable, not a store failure worth retrying.
inline bool object_unavailable(std::string_view error_message) {
  return error_message.starts_with(kNotFound) || error_message.starts_with(kUnreadable);
}

struct StoredObject {
  std::string key;  // relative to the store's root
  std::uint64_t size_bytes = 0;
  std::chrono::system_clock::time_point modified;
};

// Called with an object's digest once it is known, before the object can be seen under its key
// (PayloadStore::put_object, PendingObject::commit); an Error stops the put.
using BeforeVisible = std::function<Status(std::string_view sha256)>;

// A content-addressed object being written ahead (PayloadStore::begin_object): its bytes are
// written to a temporary, hashed and made durable in the background, and nothing is visible under
// objects/ until commit(). Not thread-safe: one owner calls commit() at most once.
class PendingObject {
 public:
  // An object never committed is abandoned: its work is stopped and its temporary removed before
  // the destructor returns (from then on its bytes are not read). May block for the write of one
  // chunk (a few ms) or an fsync under way.
  virtual ~PendingObject() = default;

  // Makes the object visible, as put_object does: waits for the digest, calls
  // `before_visible(sha256)` (an Error stops it: nothing becomes visible and the Error is
  // returned), waits until the bytes are durable, then renames the temporary to
  // objects/<sha256> and makes that durable. Returns the hex digest. A write that failed in the
  // background (no space left, I/O error) is returned here. Blocking; call at most once.
  virtual Result<std::string> commit(const BeforeVisible& before_visible) = 0;
};

class PayloadStore {
 public:
  virtual ~PayloadStore() = default;

  // Stores `bytes` under `key`, replacing any object of that key. Returns only once the object is
  // durable (file: written, fsynced, renamed, directory fsynced; S3: PutObject answered 200); a
  // reader never sees a partial object. For an object key objects/<sha256> the caller vouches that
  // `bytes` have that SHA-256 (it computed it): the file store marks the file verified. Blocking,
  // thread-safe. Errors name the location and cause.
  virtual Status put(std::string_view key, std::string_view bytes) = 0;

  // Stores a small lifetime record (payload/lifetime.hpp) under `key` like put(): a reader sees
  // the old record or the whole new one, and its listed time is the write's. Durable only as far
  // as the store makes every write durable: the file store skips the fsyncs (the record survives a
  // crash of this process, not of the machine); S3 answers once it is stored, as put(). For the
  // records whose loss only weakens a guarantee back to another one that stays durable (hold
  // tokens and their releases). The default is put(). Blocking, thread-safe.
  virtual Status put_record(std::string_view key, std::string_view bytes) {
    return put(key, bytes);
  }

  using BeforeVisible = payload::BeforeVisible;

  // Stores `bytes` as a content-addressed object: under object_key(sha256 of bytes), i.e.
  // "objects/<64 hex digits>", and returns that hex digest. `before_visible(sha256)` is called
  // exactly once, once the digest is known and before the object is visible under its key (the
  // sidecar writes the object's hold there, payload/lifetime.hpp); when it fails, nothing becomes
  // visible and its Error is returned. Returns only once the object is durable, as put() says.
  // Two writers of equal bytes, in one process or several, both succeed and leave one object.
  //
  // The default hashes the bytes, calls `before_visible`, then put(). A store may do better: the
  // file store (begin_object, then commit) hashes on one thread while another writes the bytes
  // to a temporary file (one pass over memory each, at the same time), runs `before_visible` as
  // soon as the digest is known, while the write may go on, and renames the temporary into place
  // once both are done and it is fsynced. `before_visible` runs on the caller's thread.
  // Blocking, thread-safe.
  virtual Result<std::string> put_object(std::string_view bytes,
                                         const BeforeVisible& before_visible);

  // Starts writing `bytes` as a content-addressed object in the background (PendingObject),
  // before the caller knows whether it will publish it: the sidecar writes a large inline input
  // ahead while its runtime works, for an answer that passes it on unchanged. `bytes` must stay
  // alive and unchanged until commit() returned or the PendingObject is destroyed. nullptr when
  // the store cannot (the default; S3): the caller then uses put_object. Thread-safe.
  virtual std::unique_ptr<PendingObject> begin_object(std::string_view /*bytes*/) {
    return nullptr;
  }

  // Appends the object's bytes to `out` (reading straight into its storage where the store can,
  // so a large object is held once). An Error starting with kNotFound when the object does not
  // exist, with kUnreadable when it exists and this process may not read it (object_unavailable
  // tells both); any other Error is a failure to reach or read the store (worth retrying).
  // Blocking, thread-safe.
  virtual Status read(std::string_view key, std::string& out) = 0;

  // Reads the object like read() and checks that it holds exactly `size_bytes` bytes of SHA-256
  // `sha256` (the reference's): true when it does, false when it does not (`out` then holds what
  // was read). A store that can vouch for an object without hashing it skips the hash: the file
  // store trusts its verified mark (payload/file/verified_mark.hpp) and marks an object it hashed;
  // S3 always hashes. Errors as read(). Blocking, thread-safe.
  virtual Result<bool> read_checked(std::string_view key, std::string_view sha256,
                                    std::uint64_t size_bytes, std::string& out);

  // Whether the object exists. Blocking, thread-safe.
  virtual Result<bool> exists(std::string_view key) = 0;

  // Removes the object; it is not an error if it did not exist. Blocking, thread-safe.
  virtual Status remove(std::string_view key) = 0;

  // Every object whose key starts with `prefix` (e.g. "objects/"), in no particular order.
  // Blocking, thread-safe.
  virtual Result<std::vector<StoredObject>> list(std::string_view prefix) = 0;

  // The store's canonical URL (file:///abs/dir or s3://bucket/prefix, no trailing '/'); a
  // reference's url is this + "/" + key.
  virtual std::string url() const = 0;

  // The file that holds the object of `key` when this store keeps objects as local files (the
  // file store), so that a reader can stream it instead of reading it whole into memory; nullopt
  // for a store without local files (S3). The file may not exist. Objects are replaced by rename,
  // never written in place. Thread-safe.
  virtual std::optional<std::filesystem::path> local_path(std::string_view /*key*/) const {
    return std::nullopt;
  }
};

struct PayloadStoreOptions {
  std::string url;  // ASYA_PAYLOAD_STORE: file:///abs/dir, file://relative/dir, s3://bucket/prefix
  // Where a store reads its own variables (S3: ASYA_S3_ENDPOINT and the AWS variables, as the S3
  // result store and the SQS transport read theirs); the process environment unless injected.
  EnvironmentLookup environment = process_environment();
};

using PayloadStoreFactory =
    std::function<std::unique_ptr<PayloadStore>(const PayloadStoreOptions&)>;

// Creates the store registered for the URL's scheme ("file": the directory is created; "s3":
// nothing is contacted until the first call). Throws asya::ConfigError naming ASYA_PAYLOAD_STORE
// for an unsupported or unusable URL.
std::unique_ptr<PayloadStore> make_payload_store(const PayloadStoreOptions& options);

// Registers (or replaces) the store of a URL scheme. Thread-safe.
void register_payload_store(std::string scheme, PayloadStoreFactory factory);

// The registered schemes, sorted.
std::vector<std::string> payload_store_schemes();

}  // namespace asya::payload
