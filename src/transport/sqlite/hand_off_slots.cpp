#include "transport/sqlite/hand_off_slots.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "common/log.hpp"

namespace asya::transport::sqlite {

namespace {

constexpr std::size_t kFileBytes = HandOffSlots::kSlots * HandOffSlots::kSlotBytes;
// Bounds the slot files a sender keeps mapped (one per receiving instance it handed to; address
// space only, 512 KiB each: a sender touches the pages of the slots it writes).
constexpr std::size_t kMaxMapped = 256;

// The header of a slot (HandOffSlots::kHeaderBytes); the body follows it.
constexpr std::size_t kSequence = 0;    // odd while a sender writes the slot
constexpr std::size_t kToken = 8;       // the registration the slot was staged for
constexpr std::size_t kCommitted = 16;  // the token whose sender's COMMIT returned
constexpr std::size_t kMessageId = 24;
constexpr std::size_t kSize = 32;  // body bytes

std::atomic<std::uint64_t> g_slot_takes{0};

std::atomic_ref<std::uint64_t> field(char* slot, std::size_t offset) {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(slot + offset));
}

}  // namespace

std::uint64_t hand_off_slot_takes() {
  return g_slot_takes.load();
}

HandOffSlots::HandOffSlots(const std::filesystem::path& database)
    : directory_(database.string() + ".wake") {}

HandOffSlots::~HandOffSlots() {
  std::lock_guard lock(mutex_);
  if (own_ != nullptr) ::munmap(own_, kFileBytes);
  own_ = nullptr;
  unmap_all_others();
}

std::filesystem::path HandOffSlots::path_of(std::int64_t owner) const {
  return directory_ / ("slots-" + std::to_string(owner));
}

namespace {

// A fault maps only its own page: without this the kernel maps the file's neighbouring cached
// pages too (fault-around, up to 64 KiB per fault), so a few hand-offs made nearly the whole
// 512 KiB file resident in every process that maps it (measured: 484 KiB of RSS after 20
// messages, against 4 KiB per slot used).
void keep_sparse(void* base) {
  (void)::madvise(base, kFileBytes, MADV_RANDOM);
}

}  // namespace

bool HandOffSlots::open_own(std::int64_t owner) {
  std::lock_guard lock(mutex_);
  if (own_tried_) return own_ != nullptr;
  own_tried_ = true;
  own_owner_ = owner;
  std::filesystem::path path = path_of(owner);
  auto open_file = [&] {
    return ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  };
  int fd = open_file();
  if (fd < 0 && errno == ENOENT) {
    ::mkdir(directory_.c_str(), 0755);  // EEXIST from a concurrent creator is fine
    fd = open_file();
  }
  void* base = MAP_FAILED;
  if (fd >= 0 && ::ftruncate(fd, static_cast<off_t>(kFileBytes)) == 0)
    base = ::mmap(nullptr, kFileBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int error = errno;
  if (base != MAP_FAILED) keep_sparse(base);
  if (fd >= 0) ::close(fd);
  if (base == MAP_FAILED) {
    spdlog::warn(
        "sqlite transport: cannot map the hand-off slot file {} ({}); messages handed to this "
        "process are read from the database",
        path.string(), std::strerror(error));
    if (fd >= 0) ::unlink(path.c_str());
    return false;
  }
  own_ = static_cast<char*>(base);
  return true;
}

char* HandOffSlots::slot_of(char* base, std::int64_t token) const {
  auto index = static_cast<std::size_t>(static_cast<std::uint64_t>(token) & 0xffffffffu) % kSlots;
  return base + index * kSlotBytes;
}

char* HandOffSlots::mapped(std::int64_t owner) {
  auto it = others_.find(owner);
  if (it != others_.end()) return it->second.base;
  if (others_.size() >= kMaxMapped) unmap_all_others();
  Mapping mapping;
  int fd = ::open(path_of(owner).c_str(), O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    struct stat info {};
    if (::fstat(fd, &info) == 0 && static_cast<std::size_t>(info.st_size) >= kFileBytes) {
      void* base = ::mmap(nullptr, kFileBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (base != MAP_FAILED) {
        keep_sparse(base);
        mapping.base = static_cast<char*>(base);
      }
    }
    ::close(fd);
  }
  // No file (a receiver of an older Asya, or one that could not create it) is remembered too.
  others_[owner] = mapping;
  return mapping.base;
}

void HandOffSlots::unmap_all_others() {
  for (auto& [owner, mapping] : others_) {
    if (mapping.base != nullptr) ::munmap(mapping.base, kFileBytes);
  }
  others_.clear();
  staged_.clear();  // their slots are no longer mapped: those hand-offs go unpublished
  staged_slots_.clear();
}

void HandOffSlots::stage(std::int64_t token, std::int64_t message_id, std::string_view body) {
  if (body.size() > kSlotBodyBytes) return;
  std::lock_guard lock(mutex_);
  char* base = mapped(token >> 32);
  if (base == nullptr) return;
  char* slot = slot_of(base, token);
  // A seqlock: odd while written. Senders of one slot never write at once (only under the
  // database's write lock); an odd sequence left by a sender that died mid-write is skipped.
  auto sequence = field(slot, kSequence);
  std::uint64_t odd = sequence.load(std::memory_order_relaxed);
  odd += (odd & 1) ? 2 : 1;
  sequence.store(odd, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  field(slot, kToken).store(static_cast<std::uint64_t>(token), std::memory_order_relaxed);
  field(slot, kMessageId).store(static_cast<std::uint64_t>(message_id), std::memory_order_relaxed);
  field(slot, kSize).store(body.size(), std::memory_order_relaxed);
  std::memcpy(slot + kHeaderBytes, body.data(), body.size());
  sequence.store(odd + 1, std::memory_order_release);
  staged_.push_back(token);
  staged_slots_.push_back(slot);
}

void HandOffSlots::end_transaction(bool committed) {
  std::lock_guard lock(mutex_);
  if (committed) {
    for (std::size_t i = 0; i < staged_.size(); ++i) {
      field(staged_slots_[i], kCommitted)
          .store(static_cast<std::uint64_t>(staged_[i]), std::memory_order_release);
    }
  }
  staged_.clear();
  staged_slots_.clear();
}

HandOffSlots::Take HandOffSlots::take(std::int64_t token, std::string_view queue,
                                      Delivery& delivery) {
  char* slot = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (own_ == nullptr) return Take::kNothing;
    slot = slot_of(own_, token);
  }
  auto sequence = field(slot, kSequence);
  std::uint64_t before = sequence.load(std::memory_order_acquire);
  if (before & 1) return Take::kStaged;  // being written (or its writer died: the wait ends)
  if (field(slot, kToken).load(std::memory_order_relaxed) != static_cast<std::uint64_t>(token))
    return Take::kNothing;
  if (field(slot, kCommitted).load(std::memory_order_acquire) != static_cast<std::uint64_t>(token))
    return Take::kStaged;
  std::uint64_t size = field(slot, kSize).load(std::memory_order_relaxed);
  auto message_id =
      static_cast<std::int64_t>(field(slot, kMessageId).load(std::memory_order_relaxed));
  if (size > kSlotBodyBytes) return Take::kNothing;
  std::string body(slot + kHeaderBytes, static_cast<std::size_t>(size));
  std::atomic_thread_fence(std::memory_order_acquire);
  if (sequence.load(std::memory_order_relaxed) != before) return Take::kNothing;  // overwritten
  delivery.queue = std::string(queue);
  delivery.delivery_count = 1;  // a handed message is inserted leased, delivery count 1
  delivery.receipt = std::to_string(message_id) + ":" + std::to_string(token);
  delivery.body.text() = std::move(body);
  g_slot_takes.fetch_add(1);
  return Take::kTaken;
}

void HandOffSlots::remove_own() {
  std::lock_guard lock(mutex_);
  if (own_ == nullptr) return;
  ::munmap(own_, kFileBytes);
  own_ = nullptr;
  ::unlink(path_of(own_owner_).c_str());
}

void HandOffSlots::remove_file_of(std::int64_t owner) {
  std::lock_guard lock(mutex_);
  auto it = others_.find(owner);
  if (it != others_.end()) {
    if (it->second.base != nullptr) ::munmap(it->second.base, kFileBytes);
    others_.erase(it);
  }
  ::unlink(path_of(owner).c_str());
}

}  // namespace asya::transport::sqlite
