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
constexpr uint32_t kBlockMagic = 0x31424a52;            // "RJB1" little-endian
constexpr uint32_t kRegionMagic = 0x32524a52;           // "RJR2"
constexpr uint32_t kEncryptedRegionMagic = 0x33524a52;  // "RJR3"
constexpr uint32_t kVoidMagic = 0x31564a52;             // "RJV1"
constexpr size_t kCrcOffset = 44;        // the block CRC covers the 44 bytes before it
constexpr size_t kRegionCrcOffset = 20;  // the region CRC covers the 20 bytes before it

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

// `slot` 0: a region in the clear; else encrypted under that key slot.
void WriteRegionHeader(char* p, uint32_t bytes, uint64_t seq, uint16_t slot) {
  std::memcpy(p, slot == 0 ? &kRegionMagic : &kEncryptedRegionMagic, 4);
  std::memcpy(p + 4, &bytes, 4);
  std::memcpy(p + 8, &seq, 8);
  std::memcpy(p + 16, &slot, 2);
  std::memset(p + 18, 0, 2);
  const uint32_t crc = RegionCrc(p);
  std::memcpy(p + kRegionCrcOffset, &crc, 4);
}

void WriteVoid(char* p, uint32_t bytes) {
  std::memcpy(p, &kVoidMagic, 4);
  std::memcpy(p + 4, &bytes, 4);
}

// Reads the record block at `b` (at most `room` bytes) into `entry`. Returns the block's bytes,
// or 0 if there is no whole block there. `*valid` tells whether its CRC holds.
size_t ReadBlock(const char* b, size_t room, uint64_t seq, JournalEntry* entry, bool* valid) {
  if (room < Journal::kBlockHeaderBytes || Load32(b) != kBlockMagic) return 0;
  const uint32_t bytes = Load32(b + 4);
  if (bytes < Journal::kBlockHeaderBytes || bytes % 8 != 0 || bytes > room) return 0;
  if (Load64(b + 8) != seq) return 0;  // a block of the file's earlier life
  const uint16_t key_len = Load16(b + 20);
  const uint32_t data_len = Load32(b + 40);
  *valid = false;
  if (Journal::kBlockHeaderBytes + size_t{key_len} + data_len <= bytes) {
    entry->shard = Load32(b + 16);
    entry->counter = Load64(b + 24);
    entry->arrival_us = static_cast<int64_t>(Load64(b + 32));
    entry->partition_key = std::string_view(b + Journal::kBlockHeaderBytes, key_len);
    entry->data = std::string_view(b + Journal::kBlockHeaderBytes + key_len, data_len);
    // A torn block (the process died copying it) fails its CRC: it was never acknowledged.
    *valid = Load32(b + kCrcOffset) == BlockCrc(b, entry->partition_key, entry->data);
  }
  return bytes;
}

// The GCM nonce of the encrypted region at `offset` of the file with `seq`: unique under a data
// key, which lives for one process at most, in which seqs only grow.
void RegionNonce(uint64_t seq, uint64_t offset, char* nonce) {
  std::memcpy(nonce, &seq, 8);
  const auto offset32 = static_cast<uint32_t>(offset);
  std::memcpy(nonce + 8, &offset32, 4);
}

// Opens encrypted regions during a scan.
struct RegionOpener {
  std::map<uint16_t, std::pair<std::string, std::string>> slots;  // slot -> key id, wrapped
  FrameKeyring* keyring = nullptr;
  std::map<uint16_t, Aes256Gcm> ciphers;
  std::vector<std::string>* decrypted = nullptr;
  absl::Status error;  // a key that cannot be had: fails the open
  std::string path;

  // The plaintext body of the region at `p` (`bytes` long, `offset` in its file), or null when
  // it does not authenticate: a region whose call never finished (its records were never
  // acknowledged), or damage, which a plaintext journal cannot tell apart either.
  const std::string* Open(const char* p, uint32_t bytes, uint64_t seq, uint64_t offset,
                          uint16_t slot) {
    auto cipher = ciphers.find(slot);
    if (cipher == ciphers.end()) {
      auto it = slots.find(slot);
      if (it == slots.end()) {
        if (error.ok()) {
          error = absl::DataLossError(absl::StrFormat(
              "%s: records encrypted under key slot %d, which journal/KEYS does not list", path,
              slot));
        }
        return nullptr;
      }
      if (keyring == nullptr) {
        if (error.ok()) {
          error = MakeError(ErrorCode::kKmsAccessDenied,
                            absl::StrFormat("%s holds records encrypted under key %s and no "
                                            "KeyProvider was given (StreamOptions::key_provider)",
                                            path, it->second.first));
        }
        return nullptr;
      }
      absl::StatusOr<std::string> key = keyring->Key(it->second.first, it->second.second);
      if (!key.ok()) {
        if (error.ok()) error = key.status();
        return nullptr;
      }
      absl::StatusOr<Aes256Gcm> made = Aes256Gcm::Create(*key);
      if (!made.ok()) {
        if (error.ok()) error = made.status();
        return nullptr;
      }
      cipher = ciphers.emplace(slot, *std::move(made)).first;
    }
    char nonce[kAeadNonceBytes];
    RegionNonce(seq, offset, nonce);
    const size_t body = bytes - Journal::kRegionHeaderBytes - kAeadTagBytes;
    std::string plain(bytes, '\0');  // laid out as the region: blocks from kRegionHeaderBytes
    if (!cipher->second
             .Open(nonce, std::string_view(p, kRegionCrcOffset),
                   std::string_view(p + Journal::kRegionHeaderBytes, body),
                   p + Journal::kRegionHeaderBytes + body,
                   plain.data() + Journal::kRegionHeaderBytes)
             .ok()) {
      return nullptr;
    }
    decrypted->push_back(std::move(plain));
    return &decrypted->back();
  }
};

// Scans one live file, calling `replay` for every whole record.
void ScanFile(const char* map, size_t size, uint64_t seq,
              const std::function<void(const JournalEntry&)>& replay, RegionOpener* opener) {
  size_t pos = Journal::kFileHeaderBytes;
  while (pos + 8 <= size) {
    const char* p = map + pos;
    const uint32_t magic = Load32(p);
    if (magic == kRegionMagic || magic == kEncryptedRegionMagic) {
      if (size - pos < Journal::kRegionHeaderBytes) return;
      const uint32_t bytes = Load32(p + 4);
      if (Load64(p + 8) != seq || Load32(p + kRegionCrcOffset) != RegionCrc(p) ||
          bytes < Journal::kRegionHeaderBytes || bytes % 8 != 0 || bytes > size - pos) {
        return;  // not a header of this file's life: the end of the chain
      }
      const char* body = p;
      size_t end = bytes;
      if (magic == kEncryptedRegionMagic) {
        if (bytes < Journal::kRegionHeaderBytes + kAeadTagBytes) return;
        const std::string* plain = opener->Open(p, bytes, seq, pos, Load16(p + 16));
        if (!opener->error.ok()) return;
        if (plain == nullptr) {
          pos += bytes;  // never finished (or damaged): none of it counts
          continue;
        }
        body = plain->data();
        end = bytes - kAeadTagBytes;
      }
      // The blocks, up to the first that is not whole (the rest was never written: a call
      // that had not returned).
      size_t at = Journal::kRegionHeaderBytes;
      while (at + 8 <= end) {
        const char* b = body + at;
        if (Load32(b) == kVoidMagic) {
          const uint32_t n = Load32(b + 4);
          if (n < 8 || n % 8 != 0 || n > end - at) break;
          at += n;
          continue;
        }
        JournalEntry entry;
        bool valid = false;
        const size_t n = ReadBlock(b, end - at, seq, &entry, &valid);
        if (n == 0) break;
        if (valid) replay(entry);
        at += n;
      }
      pos += bytes;
    } else if (magic == kBlockMagic) {
      // The first format: bare blocks, one per record.
      JournalEntry entry;
      bool valid = false;
      const size_t n = ReadBlock(p, size - pos, seq, &entry, &valid);
      if (n == 0) return;
      if (valid) replay(entry);
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
  RegionOpener opener;
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

absl::Status Journal::Reserve(size_t record_bytes, Region* region) {
  MutexLock lock(&mu_);
  // An encrypted region ends in its GCM tag.
  const size_t tag = current_key_ != nullptr ? kAeadTagBytes : 0;
  const size_t bytes = kRegionHeaderBytes + Align8(record_bytes) + tag;
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
  region->end_ = bytes - tag;
  const uint16_t slot = current_key_ != nullptr ? current_key_->slot : 0;
  // Encrypted, the records are gathered in the calling thread's staging buffer and encrypted
  // into the file by Finish: not a byte of them reaches the file in the clear.
  thread_local std::string staging;
  if (mode_ == Mode::kMapped) {
    region->target_ = file->map + file->used;
    WriteRegionHeader(region->target_, static_cast<uint32_t>(bytes), file->seq, slot);
    if (slot == 0) {
      region->base_ = region->target_;
    } else {
      if (staging.size() < bytes) staging.resize(bytes);
      region->staging_ = &staging;
      region->base_ = staging.data();
      std::memcpy(region->base_, region->target_, kRegionHeaderBytes);
    }
  } else {
    // The header goes to the file now, so that a scan can step over this region to the ones
    // reserved after it even if this call never writes its records.
    char header[kRegionHeaderBytes];
    WriteRegionHeader(header, static_cast<uint32_t>(bytes), file->seq, slot);
    if (absl::Status s = PwriteFully(file->fd.get(), std::string_view(header, sizeof(header)),
                                     file->used, file->path);
        !s.ok()) {
      region->file_ = nullptr;
      return s;  // nothing counts past the file's old end: the header is not whole
    }
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
  const size_t bytes = BlockBytes(key_len, data_len);
  char* b = base_ + used_;
  const auto u32 = [&](size_t at, uint32_t v) { std::memcpy(b + at, &v, 4); };
  const auto u64 = [&](size_t at, uint64_t v) { std::memcpy(b + at, &v, 8); };
  u32(0, kBlockMagic);
  u32(4, static_cast<uint32_t>(bytes));
  u64(8, seq_);
  u32(16, entry.shard);
  const auto key16 = static_cast<uint16_t>(key_len);
  std::memcpy(b + 20, &key16, 2);
  std::memset(b + 22, 0, 2);
  u64(24, entry.counter);
  u64(32, static_cast<uint64_t>(entry.arrival_us));
  u32(40, static_cast<uint32_t>(data_len));
  if (key_len != 0) std::memcpy(b + kBlockHeaderBytes, entry.partition_key.data(), key_len);
  if (data_len != 0) std::memcpy(b + kBlockHeaderBytes + key_len, entry.data.data(), data_len);
  const size_t pad = bytes - kBlockHeaderBytes - key_len - data_len;
  if (pad != 0) std::memset(b + kBlockHeaderBytes + key_len + data_len, 0, pad);
  u32(kCrcOffset, BlockCrc(b, entry.partition_key, entry.data));
  used_ += bytes;
}

absl::StatusOr<uint64_t> Journal::Finish(Region* region) {
  File* file = region->file_;
  if (region->used_ < region->end_) {
    WriteVoid(region->base_ + region->used_, static_cast<uint32_t>(region->end_ - region->used_));
  }
  if (region->key_ != nullptr) {
    // One GCM message per region: the blocks, sealed into the file (mapped) or in place (written
    // through), the tag after them. The header is the associated data.
    thread_local ThreadCipher mine;
    if (mine.generation != region->key_->generation) {
      // The key was checked (32 bytes) by SetEncryption, so Create cannot fail.
      mine.cipher.emplace(*Aes256Gcm::Create(region->key_->key->plaintext));
      mine.generation = region->key_->generation;
    }
    char nonce[kAeadNonceBytes];
    RegionNonce(region->seq_, region->offset_, nonce);
    char* const out = mode_ == Mode::kMapped ? region->target_ : region->base_;
    const size_t body = region->end_ - kRegionHeaderBytes;
    // Encryption with a valid context does not fail.
    mine.cipher
        ->Seal(nonce, std::string_view(region->base_, kRegionCrcOffset),
               std::string_view(region->base_ + kRegionHeaderBytes, body), out + kRegionHeaderBytes,
               out + kRegionHeaderBytes + body)
        .IgnoreError();
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
  region->target_ = nullptr;
  region->staging_ = nullptr;
  region->key_ = nullptr;
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
