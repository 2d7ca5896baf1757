#include "stream/producer_buffer.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace rill::internal::producer {

void KeyTable::Shrink() {
  // A fresh map sized for twice the keys left (so not shrinking again at once), as the first was
  // for kMinKeys: rehash() only ever grows a flat_hash_map's capacity, or fits it to size().
  Map smaller;
  smaller.reserve(std::max(2 * chains_.size(), kMinKeys));
  smaller.insert(chains_.begin(), chains_.end());
  chains_.swap(smaller);
}

RecordPool::~RecordPool() { Clear(); }

void RecordPool::Clear() {
  for (Pending* r : spare_) delete r;
  std::vector<Pending*>().swap(spare_);
  spare_string_bytes_ = 0;
}

void RecordPool::Release(Pending* r) {
  if (spare_.size() >= max_records_) {
    delete r;
    return;
  }
  if (r->key.capacity() > kMaxSpareStringCapacity) std::string().swap(r->key);
  if (r->data.capacity() > kMaxSpareStringCapacity) std::string().swap(r->data);
  if (r->last_message.capacity() > kMaxSpareStringCapacity) std::string().swap(r->last_message);
  if (spare_string_bytes_ + StringBytes(*r) > max_string_bytes_) {
    std::string().swap(r->key);
    std::string().swap(r->data);
    std::string().swap(r->last_message);
  }
  r->key.clear();
  r->data.clear();
  r->last_message.clear();
  r->last_code = ErrorCode::kOk;
  r->attempts = 0;
  r->head = false;
  r->in_fresh = false;
  r->state = HeadState::kReady;
  r->key_next = nullptr;
  r->promise.reset();
  r->callback = nullptr;
  spare_string_bytes_ += StringBytes(*r);
  spare_.push_back(r);
}

}  // namespace rill::internal::producer
