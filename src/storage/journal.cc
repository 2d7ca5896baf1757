#include "storage/journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <map>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "rill/base/error.h"
#include "storage/crc32c.h"

namespace rill::internal {

namespace {

constexpr char kFileMagic[8] = {'R', 'I', 'L', 'L', 'J', 'R', 'N', 'L'};
constexpr uint32_t kFileVersion = 1;
constexpr uint32_t kBlockMagic = 0x31424a52;   // "RJB1" little-endian
constexpr uint32_t kRegionMagic = 0x32524a52;  // "RJR2"
constexpr uint32_t kVoidMagic = 0x31564a52;    // "RJV1"
constexpr size_t kCrcOffset = 44;              // the block CRC covers the 44 bytes before it
constexpr size_t kRegionCrcOffset = 20;        // the region CRC covers the 20 bytes before it

size_t Align8(size_t n) { return (n + 7) & ~size_t{7}; }

uint32_t Load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
uint16_t Load16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// The file header's CRC covers the header with its CRC field zero.
uint32_t HeaderCrc(const char* header) {
  char copy[Journal::kFileHeaderBytes];
  std::memcpy(copy, header, sizeof(copy));
  std::memset(copy + 12, 0, 4);
  return MaskCrc32c(Crc32c(std::string_view(copy, sizeof(copy))));
}

void WriteFileHeader(char* p, uint64_t seq) {
  std::memset(p, 0, Journal::kFileHeaderBytes);
  std::memcpy(p, kFileMagic, 8);
  std::memcpy(p + 8, &kFileVersion, 4);
  std::memcpy(p + 16, &seq, 8);
  const uint32_t crc = HeaderCrc(p);
  std::memcpy(p + 12, &crc, 4);
}

// The seq of a valid header, or 0.
uint64_t ReadFileHeader(const char* p, size_t size) {
  if (size < Journal::kFileHeaderBytes || std::memcmp(p, kFileMagic, 8) != 0) return 0;
  if (Load32(p + 8) != kFileVersion || Load32(p + 12) != HeaderCrc(p)) return 0;
  return Load64(p + 16);
}

uint32_t BlockCrc(const char* block, std::string_view key, std::string_view data) {
  uint32_t crc = Crc32c(std::string_view(block, kCrcOffset));
  crc = Crc32cExtend(crc, key);
  crc = Crc32cExtend(crc, data);
  return MaskCrc32c(crc);
}

uint32_t RegionCrc(const char* header) {
  return MaskCrc32c(Crc32c(std::string_view(header, kRegionCrcOffset)));
}

void WriteRegionHeader(char* p, uint32_t bytes, uint64_t seq) {
  std::memcpy(p, &kRegionMagic, 4);
  std::memcpy(p + 4, &bytes, 4);
  std::memcpy(p + 8, &seq, 8);
  std::memset(p + 16, 0, 4);
  const uint32_t crc = RegionCrc(p);
  std::memcpy(p + kRegionCrcOffset, &crc, 4);
}

void WriteVoid(char* p, uint32_t bytes) {
  std::memcpy(p, &kVoidMagic, 4);
  std::memcpy(p + 4, &bytes, 4);
}

// Reads the record block at `b` (at most `room` bytes) into `entry`. Returns the block's bytes,
// or 0 if there is no whole block there. `*valid` tells whether its CRC holds.
// For an encrypted block (*slot != 0), entry's key and data are the ciphertext, which the tag
// follows.
size_t ReadBlock(const char* b, size_t room, uint64_t seq, JournalEntry* entry, bool* valid,
                 uint16_t* slot) {
  if (room < Journal::kBlockHeaderBytes || Load32(b) != kBlockMagic) return 0;
  const uint32_t bytes = Load32(b + 4);
  if (bytes < Journal::kBlockHeaderBytes || bytes % 8 != 0 || bytes > room) return 0;
  if (Load64(b + 8) != seq) return 0;  // a block of the file's earlier life
  const uint16_t key_len = Load16(b + 20);
  *slot = Load16(b + 22);
  const uint32_t data_len = Load32(b + 40);
  const size_t tag = *slot != 0 ? kAeadTagBytes : 0;
  *valid = false;
  if (Journal::kBlockHeaderBytes + size_t{key_len} + data_len + tag <= bytes) {
    entry->shard = Load32(b + 16);
    entry->counter = Load64(b + 24);
    entry->arrival_us = static_cast<int64_t>(Load64(b + 32));
    entry->partition_key = std::string_view(b + Journal::kBlockHeaderBytes, key_len);
    entry->data = std::string_view(b + Journal::kBlockHeaderBytes + key_len, data_len);
    // A torn block (the process died copying it) fails its CRC: it was never acknowledged.
    *valid =
        Load32(b + kCrcOffset) ==
        BlockCrc(b, entry->partition_key, std::string_view(entry->data.data(), data_len + tag));
  }
  return bytes;
}

// Opens encrypted blocks during a scan.
struct BlockOpener {
  std::map<uint16_t, std::pair<std::string, std::string>> slots;  // slot -> key id, wrapped
  FrameKeyring* keyring = nullptr;
  std::map<uint16_t, Aes256Gcm> ciphers;
  std::vector<std::string>* decrypted = nullptr;
  absl::Status error;   // a key that cannot be had: fails the open
  absl::Status damage;  // a block that does not authenticate
  std::string path;

  // Decrypts `entry` (from the block at `b`, `offset` in its file) in place of its views.
  bool Open(const char* b, uint64_t seq, uint64_t offset, uint16_t slot, JournalEntry* entry) {
    auto cipher = ciphers.find(slot);
    if (cipher == ciphers.end()) {
      auto it = slots.find(slot);
      if (it == slots.end()) {
        if (error.ok()) {
          error = absl::DataLossError(absl::StrFormat(
              "%s: a record encrypted under key slot %d, which journal/KEYS does not list", path,
              slot));
        }
        return false;
      }
      if (keyring == nullptr) {
        if (error.ok()) {
          error = MakeError(ErrorCode::kKmsAccessDenied,
                            absl::StrFormat("%s holds records encrypted under key %s and no "
                                            "KeyProvider was given (StreamOptions::key_provider)",
                                            path, it->second.first));
        }
        return false;
      }
      absl::StatusOr<std::string> key = keyring->Key(it->second.first, it->second.second);
      if (!key.ok()) {
        if (error.ok()) error = key.status();
        return false;
      }
      absl::StatusOr<Aes256Gcm> made = Aes256Gcm::Create(*key);
      if (!made.ok()) {
        if (error.ok()) error = made.status();
        return false;
      }
      cipher = ciphers.emplace(slot, *std::move(made)).first;
    }
    char nonce[kAeadNonceBytes];
    std::memcpy(nonce, &seq, 8);
    const auto offset32 = static_cast<uint32_t>(offset);
    std::memcpy(nonce + 8, &offset32, 4);
    const size_t key_len = entry->partition_key.size();
    const size_t data_len = entry->data.size();
    std::string plain(key_len + data_len, '\0');
    const char* ciphertext = b + Journal::kBlockHeaderBytes;
    if (!cipher->second
             .Open(nonce, std::string_view(b, kCrcOffset),
                   std::string_view(ciphertext, key_len + data_len),
                   ciphertext + key_len + data_len, plain.data())
             .ok()) {
      if (damage.ok()) {
        damage = absl::DataLossError(absl::StrFormat(
            "%s: the record block at offset %d fails authentication (altered, or moved)", path,
            offset));
      }
      return false;
    }
    decrypted->push_back(std::move(plain));
    const std::string& p = decrypted->back();
    entry->partition_key = std::string_view(p.data(), key_len);
    entry->data = std::string_view(p.data() + key_len, data_len);
    return true;
  }
};

// Scans one live file, calling `replay` for every whole record.
void ScanFile(const char* map, size_t size, uint64_t seq,
              const std::function<void(const JournalEntry&)>& replay, BlockOpener* opener) {
  const auto deliver = [&](const char* b, uint16_t slot, JournalEntry& entry) {
    if (slot != 0 && !opener->Open(b, seq, static_cast<uint64_t>(b - map), slot, &entry)) return;
    replay(entry);
  };
  size_t pos = Journal::kFileHeaderBytes;
  while (pos + 8 <= size) {
    const char* p = map + pos;
    const uint32_t magic = Load32(p);
    if (magic == kRegionMagic) {
      if (size - pos < Journal::kRegionHeaderBytes) return;
      const uint32_t bytes = Load32(p + 4);
      if (Load64(p + 8) != seq || Load32(p + kRegionCrcOffset) != RegionCrc(p) ||
          bytes < Journal::kRegionHeaderBytes || bytes % 8 != 0 || bytes > size - pos) {
        return;  // not a header of this file's life: the end of the chain
      }
      // The blocks, up to the first that is not whole (the rest was never written: a call
      // that had not returned).
      size_t at = Journal::kRegionHeaderBytes;
      while (at + 8 <= bytes) {
        const char* b = p + at;
        if (Load32(b) == kVoidMagic) {
          const uint32_t n = Load32(b + 4);
          if (n < 8 || n % 8 != 0 || n > bytes - at) break;
          at += n;
          continue;
        }
        JournalEntry entry;
        bool valid = false;
        uint16_t slot = 0;
        const size_t n = ReadBlock(b, bytes - at, seq, &entry, &valid, &slot);
        if (n == 0) break;
        if (valid) deliver(b, slot, entry);
        at += n;
      }
      pos += bytes;
    } else if (magic == kBlockMagic) {
      // The first format: bare blocks, one per record.
      JournalEntry entry;
      bool valid = false;
      uint16_t slot = 0;
      const size_t n = ReadBlock(p, size - pos, seq, &entry, &valid, &slot);
      if (n == 0) return;
      if (valid) deliver(p, slot, entry);
      pos += n;
    } else {
      return;
    }
  }
}

constexpr std::string_view kKeysMagic{"RJKEYS1\n", 8};

using KeySlots = std::map<uint16_t, std::pair<std::string, std::string>>;

std::string EncodeKeys(const KeySlots& slots) {
  std::string out(kKeysMagic);
  const auto put16 = [&](size_t v) {
    const auto x = static_cast<uint16_t>(v);
    out.append(reinterpret_cast<const char*>(&x), 2);
  };
  const auto count = static_cast<uint32_t>(slots.size());
  out.append(reinterpret_cast<const char*>(&count), 4);
  for (const auto& [slot, key] : slots) {
    put16(slot);
    put16(key.first.size());
    out += key.first;
    put16(key.second.size());
    out += key.second;
  }
  const uint32_t crc = MaskCrc32c(Crc32c(out));
  out.append(reinterpret_cast<const char*>(&crc), 4);
  return out;
}

absl::StatusOr<KeySlots> DecodeKeys(std::string_view bytes, const std::string& path) {
  const auto damaged = [&] { return absl::DataLossError(absl::StrFormat("%s is damaged", path)); };
  if (bytes.size() < kKeysMagic.size() + 8 || bytes.substr(0, kKeysMagic.size()) != kKeysMagic) {
    return damaged();
  }
  if (MaskCrc32c(Crc32c(bytes.substr(0, bytes.size() - 4))) !=
      Load32(bytes.data() + bytes.size() - 4)) {
    return damaged();
  }
  const char* p = bytes.data() + kKeysMagic.size();
  const char* const end = bytes.data() + bytes.size() - 4;
  const uint32_t count = Load32(p);
  p += 4;
  KeySlots slots;
  for (uint32_t i = 0; i < count; ++i) {
    if (end - p < 4) return damaged();
    const uint16_t slot = Load16(p);
    std::string parts[2];
    p += 2;
    for (std::string& part : parts) {
      if (end - p < 2) return damaged();
      const uint16_t n = Load16(p);
      p += 2;
      if (end - p < n) return damaged();
      part.assign(p, n);
      p += n;
    }
    slots[slot] = {std::move(parts[0]), std::move(parts[1])};
  }
  if (p != end) return damaged();
  return slots;
}

// The cipher of `key` for the calling thread: a context per thread, so that regions are
// encrypted by their owners without a lock; remade only when the thread meets another key.
struct ThreadCipher {
  uint64_t generation = 0;
  std::optional<Aes256Gcm> cipher;
};

std::atomic<uint64_t> next_key_generation{1};

}  // namespace

struct Journal::JournalKey {
  uint16_t slot = 0;
  uint64_t generation = 0;  // unique in the process: names the key for ThreadCipher
  std::shared_ptr<const FrameWriteKey> key;
};

struct Journal::File {
  std::string path;
  ScopedFd fd;
  char* map = nullptr;
  size_t size = 0;
  uint64_t seq = 0;                // guarded by the journal's mu_
  size_t used = 0;                 // guarded by mu_
  std::atomic<bool> dirty{false};  // written since the last sync
  std::atomic<int64_t> inflight{0};

  ~File() {
    if (map != nullptr) ::munmap(map, size);
  }
};

absl::StatusOr<std::unique_ptr<Journal>> Journal::Open(
    const std::string& dir, Mode mode, const std::function<void(const JournalEntry&)>& replay,
    bool read_only, FrameKeyring* keyring) {
  const std::string jdir = dir + "/journal";
  std::unique_ptr<Journal> journal(new Journal(jdir, mode));
  if (read_only) {
    struct stat st;
    if (::stat(jdir.c_str(), &st) != 0) return journal;  // no journal yet: nothing to replay
  } else if (::mkdir(jdir.c_str(), 0755) != 0 && errno != EEXIST) {
    return IoError("cannot create directory", jdir, errno);
  }
  MutexLock lock(&journal->mu_);  // no one else sees it yet; the lock keeps the analysis whole
  std::vector<std::string> names;
  {
    DIR* d = ::opendir(jdir.c_str());
    if (d == nullptr) return IoError("cannot list", jdir, errno);
    while (const dirent* e = ::readdir(d)) {
      const std::string_view name(e->d_name);
      if (name.size() == 24 && name.substr(20) == ".jnl") names.emplace_back(name);
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  std::vector<File*> live;
  for (const std::string& name : names) {
    uint64_t id = 0;
    if (!absl::SimpleAtoi(name.substr(0, 20), &id)) continue;
    auto file = std::make_unique<File>();
    file->path = jdir + "/" + name;
    absl::StatusOr<ScopedFd> fd = OpenFile(file->path, read_only ? O_RDONLY : O_RDWR);
    if (!fd.ok()) return fd.status();
    file->fd = *std::move(fd);
    struct stat st;
    if (::fstat(file->fd.get(), &st) != 0) return IoError("cannot stat", file->path, errno);
    file->size = static_cast<size_t>(st.st_size);
    journal->next_file_id_ = std::max(journal->next_file_id_, id + 1);
    if (file->size < kFileHeaderBytes) {
      // Created but never set up (a crash in NewFileLocked): nothing in it counts.
      if (read_only) continue;
      if (::unlink(file->path.c_str()) != 0) return IoError("cannot remove", file->path, errno);
      continue;
    }
    void* map = ::mmap(nullptr, file->size, read_only ? PROT_READ : PROT_READ | PROT_WRITE,
                       MAP_SHARED, file->fd.get(), 0);
    if (map == MAP_FAILED) return IoError("cannot map", file->path, errno);
    file->map = static_cast<char*>(map);
    file->seq = ReadFileHeader(file->map, file->size);
    file->used = kFileHeaderBytes;
    journal->next_seq_ = std::max(journal->next_seq_, file->seq + 1);
    journal->next_file_bytes_ =
        std::max(journal->next_file_bytes_, std::min(2 * file->size, kMaxFileBytes));
    if (file->seq != 0) live.push_back(file.get());
    journal->free_.push_back(file.get());
    journal->files_.push_back(std::move(file));
  }
  std::sort(live.begin(), live.end(), [](const File* a, const File* b) { return a->seq < b->seq; });
  BlockOpener opener;
  opener.keyring = keyring;
  opener.decrypted = &journal->decrypted_;
  opener.path = jdir;
  if (absl::StatusOr<std::string> keys = ReadFile(jdir + "/KEYS"); keys.ok()) {
    absl::StatusOr<KeySlots> slots = DecodeKeys(*keys, jdir + "/KEYS");
    if (!slots.ok()) return slots.status();
    opener.slots = *std::move(slots);
  } else if (!absl::IsNotFound(keys.status())) {
    return keys.status();
  }
  for (const File* file : live) {
    opener.path = file->path;
    ScanFile(file->map, file->size, file->seq, replay, &opener);
    if (!opener.error.ok()) return opener.error;
  }
  journal->damage_ = opener.damage;
  return journal;
}

Journal::Journal(std::string dir, Mode mode) : dir_(std::move(dir)), mode_(mode) {}
Journal::~Journal() = default;

absl::Status Journal::WriteHeaderLocked(File* file, uint64_t seq) {
  char header[kFileHeaderBytes];
  if (seq == 0) {
    std::memset(header, 0, sizeof(header));  // an invalid header retires the file's regions
  } else {
    WriteFileHeader(header, seq);
  }
  if (absl::Status s =
          PwriteFully(file->fd.get(), std::string_view(header, sizeof(header)), 0, file->path);
      !s.ok()) {
    return s;
  }
  file->dirty.store(true);
  file->seq = seq;
  file->used = kFileHeaderBytes;
  return absl::OkStatus();
}

absl::Status Journal::Reset() {
  MutexLock lock(&mu_);
  for (auto& file : files_) {
    if (file->seq == 0 && file.get() != current_) continue;
    if (absl::Status s = WriteHeaderLocked(file.get(), 0); !s.ok()) return s;
  }
  current_ = nullptr;
  sealed_.clear();
  sealed_count_.store(0, std::memory_order_relaxed);
  free_.clear();
  for (auto& file : files_) free_.push_back(file.get());
  return absl::OkStatus();
}

absl::StatusOr<Journal::File*> Journal::NewFileLocked(size_t min_bytes) {
  // Reuse the largest recycled file, if it is large enough, else create one. The largest, not
  // any: every file switch makes the flusher recycle a file, and recycling syncs every shard's
  // segments under kInterval and kEveryBatch, so a small file (the first ones are 256 KiB) in
  // the rotation would cost those syncs every few puts.
  auto largest = std::max_element(free_.begin(), free_.end(),
                                  [](const File* a, const File* b) { return a->size < b->size; });
  if (largest != free_.end() && (*largest)->size >= min_bytes) {
    File* file = *largest;
    free_.erase(largest);
    return file;
  }
  const size_t size = std::max(next_file_bytes_, Align8(min_bytes));
  auto file = std::make_unique<File>();
  file->path = absl::StrFormat("%s/%020d.jnl", dir_, next_file_id_);
  absl::StatusOr<ScopedFd> fd = OpenFile(file->path, O_RDWR | O_CREAT | O_EXCL);
  if (!fd.ok()) return fd.status();
  file->fd = *std::move(fd);
  auto fail = [&](std::string_view what, int error) {
    absl::Status s = IoError(what, file->path, error);
    file->fd.Close();
    ::unlink(file->path.c_str());
    return s;
  };
  // Preallocate, so that a store to the mapping can never meet a full disk (SIGBUS). Zeros are
  // written rather than fallocate'd: a write fault on an allocated-but-unwritten extent costs
  // the file system a metadata update, on every page, in the put path.
  {
    static const std::string zeros(size_t{1} << 20, '\0');
    for (size_t at = 0; at < size; at += zeros.size()) {
      const size_t n = std::min(zeros.size(), size - at);
      if (absl::Status s =
              PwriteFully(file->fd.get(), std::string_view(zeros.data(), n), at, file->path);
          !s.ok()) {
        file->fd.Close();
        ::unlink(file->path.c_str());
        return s;
      }
    }
  }
  void* map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, file->fd.get(), 0);
  if (map == MAP_FAILED) return fail("cannot map", errno);
  file->map = static_cast<char*>(map);
  file->size = size;
  // The new name must survive a power cut before any record in it is acknowledged as synced.
  if (absl::Status s = SyncDirectory(dir_); !s.ok()) {
    ::munmap(file->map, size);
    file->map = nullptr;
    file->fd.Close();
    ::unlink(file->path.c_str());
    return s;
  }
  ++next_file_id_;
  next_file_bytes_ = std::min(2 * next_file_bytes_, kMaxFileBytes);
  files_.push_back(std::move(file));
  return files_.back().get();
}

absl::Status Journal::SetEncryption(std::shared_ptr<const FrameWriteKey> key) {
  MutexLock lock(&mu_);
  if (key == nullptr) {
    current_key_ = nullptr;
    return absl::OkStatus();
  }
  if (keys_.size() >= 0xffff) {
    return LimitExceededError("a journal takes at most 65535 data keys in one process life");
  }
  if (key->key_id.size() > 0xffff || key->wrapped.size() > 0xffff ||
      key->plaintext.size() != kAeadKeyBytes) {
    return absl::InvalidArgumentError("a journal data key: 32 bytes, id and wrapped form < 64 KiB");
  }
  auto next = std::make_unique<JournalKey>();
  next->slot = static_cast<uint16_t>(keys_.size() + 1);
  next->generation = next_key_generation.fetch_add(1, std::memory_order_relaxed);
  next->key = std::move(key);
  // The slot's key is on disk (synced) before any block uses it.
  KeySlots slots;
  for (const auto& k : keys_) slots[k->slot] = {k->key->key_id, k->key->wrapped};
  slots[next->slot] = {next->key->key_id, next->key->wrapped};
  if (absl::Status s = WriteFileAtomically(dir_ + "/KEYS", EncodeKeys(slots)); !s.ok()) return s;
  current_key_ = next.get();
  keys_.push_back(std::move(next));
  return absl::OkStatus();
}

absl::Status Journal::Reserve(size_t record_bytes, Region* region, size_t records) {
  MutexLock lock(&mu_);
  if (current_key_ != nullptr) record_bytes += records * kAeadTagBytes;
  const size_t bytes = kRegionHeaderBytes + Align8(record_bytes);
  if (bytes > std::numeric_limits<uint32_t>::max()) {
    return absl::InternalError(absl::StrFormat("a journal region of %d bytes is too large", bytes));
  }
  if (failed_.load(std::memory_order_relaxed)) return error_;
  if (current_ == nullptr || current_->used + bytes > current_->size) {
    if (current_ != nullptr) {
      sealed_.push_back(current_);
      sealed_count_.store(sealed_.size(), std::memory_order_relaxed);
      current_ = nullptr;
    }
    absl::StatusOr<File*> file = NewFileLocked(kFileHeaderBytes + bytes);
    if (!file.ok()) return file.status();
    if (absl::Status s = WriteHeaderLocked(*file, next_seq_); !s.ok()) {
      free_.push_back(*file);
      return s;
    }
    ++next_seq_;
    current_ = *file;
  }
  File* file = current_;
  region->file_ = file;
  region->offset_ = file->used;
  region->bytes_ = bytes;
  region->used_ = kRegionHeaderBytes;
  region->seq_ = file->seq;
  region->key_ = current_key_;
  if (mode_ == Mode::kMapped) {
    region->base_ = file->map + file->used;
    WriteRegionHeader(region->base_, static_cast<uint32_t>(bytes), file->seq);
  } else {
    // The header goes to the file now, so that a scan can step over this region to the ones
    // reserved after it even if this call never writes its records.
    char header[kRegionHeaderBytes];
    WriteRegionHeader(header, static_cast<uint32_t>(bytes), file->seq);
    if (absl::Status s = PwriteFully(file->fd.get(), std::string_view(header, sizeof(header)),
                                     file->used, file->path);
        !s.ok()) {
      region->file_ = nullptr;
      return s;  // nothing counts past the file's old end: the header is not whole
    }
    thread_local std::string staging;
    if (staging.size() < bytes) staging.resize(bytes);
    region->staging_ = &staging;
    region->base_ = staging.data();
    std::memcpy(region->base_, header, sizeof(header));
  }
  file->used += bytes;
  file->inflight.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

void Journal::Region::Put(const JournalEntry& entry) {
  const size_t key_len = entry.partition_key.size();
  const size_t data_len = entry.data.size();
  const size_t tag = key_ != nullptr ? kAeadTagBytes : 0;
  const size_t bytes = BlockBytes(key_len, data_len + tag);
  char* b = base_ + used_;
  const auto u32 = [&](size_t at, uint32_t v) { std::memcpy(b + at, &v, 4); };
  const auto u64 = [&](size_t at, uint64_t v) { std::memcpy(b + at, &v, 8); };
  u32(0, kBlockMagic);
  u32(4, static_cast<uint32_t>(bytes));
  u64(8, seq_);
  u32(16, entry.shard);
  const auto key16 = static_cast<uint16_t>(key_len);
  std::memcpy(b + 20, &key16, 2);
  const uint16_t slot = key_ != nullptr ? key_->slot : 0;
  std::memcpy(b + 22, &slot, 2);
  u64(24, entry.counter);
  u64(32, static_cast<uint64_t>(entry.arrival_us));
  u32(40, static_cast<uint32_t>(data_len));
  char* const body = b + kBlockHeaderBytes;
  if (key_len != 0) std::memcpy(body, entry.partition_key.data(), key_len);
  if (data_len != 0) std::memcpy(body + key_len, entry.data.data(), data_len);
  const size_t pad = bytes - kBlockHeaderBytes - key_len - data_len - tag;
  if (pad != 0) std::memset(body + key_len + data_len + tag, 0, pad);
  if (key_ != nullptr) {
    thread_local ThreadCipher mine;
    if (mine.generation != key_->generation) {
      // The key was checked (32 bytes) by SetEncryption, so Create cannot fail.
      mine.cipher.emplace(*Aes256Gcm::Create(key_->key->plaintext));
      mine.generation = key_->generation;
    }
    char nonce[kAeadNonceBytes];
    std::memcpy(nonce, &seq_, 8);
    const auto offset = static_cast<uint32_t>(offset_ + used_);
    std::memcpy(nonce + 8, &offset, 4);
    // In place; the tag after the ciphertext. Encryption with a valid context does not fail.
    mine.cipher
        ->Seal(nonce, std::string_view(b, kCrcOffset), std::string_view(body, key_len + data_len),
               body, body + key_len + data_len)
        .IgnoreError();
  }
  u32(kCrcOffset, BlockCrc(b, std::string_view(body, key_len),
                           std::string_view(body + key_len, data_len + tag)));
  used_ += bytes;
}

absl::StatusOr<uint64_t> Journal::Finish(Region* region) {
  File* file = region->file_;
  if (region->used_ < region->bytes_) {
    WriteVoid(region->base_ + region->used_, static_cast<uint32_t>(region->bytes_ - region->used_));
  }
  absl::Status status;
  if (mode_ == Mode::kWriteThrough) {
    // Everything but the header, which Reserve wrote.
    status = PwriteFully(
        file->fd.get(),
        std::string_view(region->base_ + kRegionHeaderBytes, region->bytes_ - kRegionHeaderBytes),
        region->offset_ + kRegionHeaderBytes, file->path);
  }
  region->file_ = nullptr;
  region->base_ = nullptr;
  region->staging_ = nullptr;
  if (!status.ok()) {
    MutexLock lock(&mu_);
    if (error_.ok()) error_ = status;
    failed_.store(true, std::memory_order_release);
    return status;
  }
  // A sync that reads `finished_` after this sees the file dirty (both seq_cst).
  file->dirty.store(true);
  return finished_.fetch_add(1) + 1;
}

void Journal::Done(File* file) { file->inflight.fetch_sub(1, std::memory_order_release); }

absl::Status Journal::SyncTo(uint64_t ticket) {
  sync_mu_.Lock();
  while (synced_ticket_ < ticket) {
    if (failed_.load(std::memory_order_acquire)) {
      sync_mu_.Unlock();
      return status();
    }
    if (syncing_) {
      sync_cv_.Wait(&sync_mu_);
      continue;
    }
    syncing_ = true;
    sync_mu_.Unlock();
    // Every region finished before this load is in a file marked dirty before it.
    const uint64_t target = finished_.load();
    std::vector<std::pair<int, std::string>> dirty;
    {
      MutexLock files_lock(&mu_);
      for (auto& file : files_) {
        if (file->dirty.exchange(false)) dirty.emplace_back(file->fd.get(), file->path);
      }
    }
    if (before_sync_) before_sync_();
    absl::Status s;
    for (const auto& [fd, path] : dirty) {
      if (DataSync(fd) != 0 && s.ok()) s = IoError("cannot sync", path, errno);
    }
    if (!s.ok()) {
      MutexLock files_lock(&mu_);
      if (error_.ok()) error_ = s;
      failed_.store(true, std::memory_order_release);
    }
    sync_mu_.Lock();
    syncing_ = false;
    if (s.ok()) synced_ticket_ = std::max(synced_ticket_, target);
    sync_cv_.SignalAll();
  }
  sync_mu_.Unlock();
  return absl::OkStatus();
}

void Journal::Seal() {
  MutexLock lock(&mu_);
  if (current_ == nullptr || current_->used == kFileHeaderBytes) return;
  sealed_.push_back(current_);
  sealed_count_.store(sealed_.size(), std::memory_order_relaxed);
  current_ = nullptr;
}

std::vector<Journal::File*> Journal::TakeRecyclable() {
  std::vector<File*> taken;
  MutexLock lock(&mu_);
  for (size_t i = 0; i < sealed_.size();) {
    if (sealed_[i]->inflight.load(std::memory_order_acquire) == 0) {
      taken.push_back(sealed_[i]);
      sealed_.erase(sealed_.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
  sealed_count_.store(sealed_.size(), std::memory_order_relaxed);
  return taken;
}

absl::Status Journal::Recycle(const std::vector<File*>& files) {
  MutexLock lock(&mu_);
  absl::Status status;
  for (File* file : files) {
    // An invalid header retires the file's regions: recovery skips the whole file. Should
    // retiring fail, the file is not reused: its records are in the segments too, and recovery
    // writing them again is harmless.
    if (absl::Status s = WriteHeaderLocked(file, 0); !s.ok()) {
      if (status.ok()) status = s;
      continue;
    }
    free_.push_back(file);
  }
  return status;
}

void Journal::Untake(const std::vector<File*>& files) {
  MutexLock lock(&mu_);
  sealed_.insert(sealed_.begin(), files.begin(), files.end());
  sealed_count_.store(sealed_.size(), std::memory_order_relaxed);
}

uint64_t Journal::disk_bytes() const {
  MutexLock lock(&mu_);
  uint64_t bytes = 0;
  for (const auto& file : files_) bytes += file->size;
  return bytes;
}

absl::Status Journal::status() const {
  MutexLock lock(&mu_);
  return error_;
}

}  // namespace rill::internal
