// FrameBuffer (runtime_client.hpp): one frame with zero padding after it, grown without zero-fill.
#include <cstring>

#include "wire/runtime_client.hpp"

namespace asya::wire {

char* FrameBuffer::prepare(std::size_t size) {
  if (!data_ || capacity_ < size) {
    data_.reset();  // the old contents are not kept: never hold both allocations at once
    capacity_ = 0;
    size_ = 0;
    // new char[] leaves the bytes uninitialised: the caller overwrites them (a zero-fill would
    // touch every page of a large frame once more before the read does).
    data_.reset(new char[size + kPadding]);
    capacity_ = size;
  }
  size_ = size;
  std::memset(data_.get() + size, 0, kPadding);
  return data_.get();
}

void FrameBuffer::assign(std::string_view bytes) {
  char* out = prepare(bytes.size());
  if (!bytes.empty()) std::memcpy(out, bytes.data(), bytes.size());
}

void FrameBuffer::release() {
  data_.reset();
  size_ = 0;
  capacity_ = 0;
}

}  // namespace asya::wire
