#include "storage/stream_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "rill/base/error.h"
#include "rill/base/internal/byte_codec.h"
#include "storage/crc32c.h"

namespace rill::internal {
namespace {

constexpr char kMetaMagic[8] = {'R', 'I', 'L', 'L', 'M', 'E', 'T', 'A'};
// Version 2 adds the stream's encryption (type and key id) after the trim floor; a stream that
// was never encrypted is still written as version 1, which older builds read.
constexpr uint32_t kMetaVersion = 2;
// Group commits of kNever / kInterval write at the latest when this much is waiting.
constexpr uint64_t kGroupCommitBytes = 256 << 10;
// A frame's raw payload stays well below kMaxFramePayloadBytes.
constexpr size_t kFrameTargetBytes = 1 << 20;

// METADATA's fields beyond the byte codec's unsigned integers.
void PutI64(std::string* out, int64_t v) { PutLittleEndian(out, static_cast<uint64_t>(v)); }
void PutU128(std::string* out, absl::uint128 v) {
  PutLittleEndian(out, absl::Uint128Low64(v));
  PutLittleEndian(out, absl::Uint128High64(v));
}
void PutString(std::string* out, std::string_view s) {
  PutLittleEndian(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}
bool ReadI64(ByteReader* in, int64_t* v) {
  uint64_t bits;
  if (!in->LittleEndian(&bits)) return false;
  *v = static_cast<int64_t>(bits);
  return true;
}
bool ReadU128(ByteReader* in, absl::uint128* v) {
  uint64_t lo, hi;
  if (!in->LittleEndian(&lo) || !in->LittleEndian(&hi)) return false;
  *v = absl::MakeUint128(hi, lo);
  return true;
}
bool ReadString(ByteReader* in, std::string* s) {
  uint32_t n;
  std::string_view bytes;
  if (!in->LittleEndian(&n) || !in->Bytes(n, &bytes)) return false;
  s->assign(bytes);
  return true;
}

constexpr uint8_t kHasParent = 1, kHasAdjacent = 2, kClosed = 4;

std::string SegmentName(uint64_t first_counter) {
  return absl::StrFormat("%020d.seg", first_counter);
}

absl::Status MakeDirectories(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return IoError("cannot create directory", dir, ec.value());
  return absl::OkStatus();
}

// The highest counter any intact frame header in `path` names, wherever it is: after damage,
// new records must number above every record that may have been acknowledged, readable or not.
absl::StatusOr<uint64_t> HighestCounterIn(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  uint64_t highest = 0;
  char magic[4];
  for (int i = 0; i < 4; ++i) magic[i] = static_cast<char>(kFrameMagic >> (8 * i));
  const std::string_view all(*bytes);
  for (size_t at = all.find(std::string_view(magic, 4)); at != std::string_view::npos;
       at = all.find(std::string_view(magic, 4), at + 1)) {
    if (all.size() - at < kFrameHeaderBytes) break;
    absl::StatusOr<FrameHeader> header = ParseFrameHeader(all.substr(at, kFrameHeaderBytes));
    if (header.ok()) highest = std::max(highest, header->last_counter);
  }
  return highest;
}

}  // namespace

std::string EncodeStreamMeta(const StreamMeta& meta) {
  std::string payload;
  PutString(&payload, meta.name);
  payload.append(reinterpret_cast<const char*>(meta.seed.data()), meta.seed.size());
  PutI64(&payload, meta.creation_ns);
  PutI64(&payload, meta.retention_us);
  PutU8(&payload, meta.capacity_mode);
  PutLittleEndian(&payload, static_cast<uint32_t>(meta.shards.size()));
  for (const ShardMeta& s : meta.shards) {
    PutLittleEndian(&payload, s.index);
    PutU128(&payload, s.range.starting_hash_key.value());
    PutU128(&payload, s.range.ending_hash_key.value());
    PutU8(&payload, static_cast<uint8_t>((s.parent ? kHasParent : 0) |
                                         (s.adjacent_parent ? kHasAdjacent : 0) |
                                         (s.closed_us ? kClosed : 0)));
    PutLittleEndian(&payload, static_cast<uint32_t>(s.parent.value_or(0)));
    PutLittleEndian(&payload, static_cast<uint32_t>(s.adjacent_parent.value_or(0)));
    PutLittleEndian(&payload, s.first_counter);
    PutI64(&payload, s.created_us);
    PutI64(&payload, s.closed_us.value_or(0));
    PutLittleEndian(&payload, s.ending_counter);
  }
  PutLittleEndian(&payload, static_cast<uint32_t>(meta.consumers.size()));
  for (const ConsumerMeta& c : meta.consumers) {
    PutString(&payload, c.name);
    PutI64(&payload, c.created_ns);
  }
  PutI64(&payload, meta.trim_floor_us);
  const bool v2 = meta.encryption_type != 0 || !meta.key_id.empty();
  if (v2) {
    PutU8(&payload, meta.encryption_type);
    PutString(&payload, meta.key_id);
  }
  std::string out(kMetaMagic, sizeof(kMetaMagic));
  PutLittleEndian(&out, v2 ? kMetaVersion : uint32_t{1});
  PutLittleEndian(&out, static_cast<uint32_t>(payload.size()));
  out.append(payload);
  PutLittleEndian(&out, MaskCrc32c(Crc32c(out)));
  return out;
}

absl::StatusOr<StreamMeta> DecodeStreamMeta(std::string_view bytes) {
  auto damaged = [](std::string_view what) {
    return absl::DataLossError(absl::StrFormat("stream METADATA is damaged: %s", what));
  };
  constexpr size_t kFixed = sizeof(kMetaMagic) + 4 + 4;
  if (bytes.size() < kFixed + 4 || std::string_view(bytes.data(), sizeof(kMetaMagic)) !=
                                       std::string_view(kMetaMagic, sizeof(kMetaMagic))) {
    return damaged("no METADATA header");
  }
  ByteReader header(bytes.substr(sizeof(kMetaMagic), 8));
  uint32_t version = 0, length = 0;
  header.LittleEndian(&version);
  header.LittleEndian(&length);
  if (length != bytes.size() - kFixed - 4) return damaged("wrong length");
  ByteReader crc_reader(bytes.substr(bytes.size() - 4));
  uint32_t crc;
  crc_reader.LittleEndian(&crc);
  if (UnmaskCrc32c(crc) != Crc32c(bytes.substr(0, bytes.size() - 4))) {
    return damaged("checksum mismatch");
  }
  if (version != 1 && version != kMetaVersion) {
    return absl::UnimplementedError(absl::StrFormat(
        "stream METADATA has format version %d; this rill reads %d", version, kMetaVersion));
  }
  ByteReader in(bytes.substr(kFixed, length));
  StreamMeta meta;
  uint32_t shard_count, consumer_count;
  std::string seed;
  if (!ReadString(&in, &meta.name)) return damaged("name");
  for (uint8_t& b : meta.seed) {
    if (!in.U8(&b)) return damaged("seed");
  }
  if (!ReadI64(&in, &meta.creation_ns) || !ReadI64(&in, &meta.retention_us) ||
      !in.U8(&meta.capacity_mode) || meta.capacity_mode > 1 || !in.LittleEndian(&shard_count) ||
      shard_count > length / 16) {
    return damaged("stream fields");
  }
  for (uint32_t i = 0; i < shard_count; ++i) {
    ShardMeta s;
    absl::uint128 start, end;
    uint8_t flags;
    uint32_t parent, adjacent;
    int64_t closed_us;
    if (!in.LittleEndian(&s.index) || s.index != i || !ReadU128(&in, &start) ||
        !ReadU128(&in, &end) || start > end || !in.U8(&flags) || flags > 7 ||
        !in.LittleEndian(&parent) || !in.LittleEndian(&adjacent) ||
        !in.LittleEndian(&s.first_counter) || !ReadI64(&in, &s.created_us) ||
        !ReadI64(&in, &closed_us) || !in.LittleEndian(&s.ending_counter)) {
      return damaged(absl::StrFormat("shard %d", i));
    }
    s.range = HashKeyRange{HashKey(start), HashKey(end)};
    // Only the canonical encoding: a field without its flag is zero.
    if ((!(flags & kHasParent) && parent != 0) || (!(flags & kHasAdjacent) && adjacent != 0) ||
        (!(flags & kClosed) && (closed_us != 0 || s.ending_counter != 0))) {
      return damaged(absl::StrFormat("shard %d has fields its flags do not announce", i));
    }
    if (flags & kHasParent) {
      if (parent >= i) return damaged(absl::StrFormat("shard %d's parent", i));
      s.parent = parent;
    }
    if (flags & kHasAdjacent) {
      if (adjacent >= i) return damaged(absl::StrFormat("shard %d's adjacent parent", i));
      s.adjacent_parent = adjacent;
    }
    if (flags & kClosed) s.closed_us = closed_us;
    meta.shards.push_back(s);
  }
  if (!in.LittleEndian(&consumer_count) || consumer_count > length) return damaged("consumers");
  for (uint32_t i = 0; i < consumer_count; ++i) {
    ConsumerMeta c;
    if (!ReadString(&in, &c.name) || !ReadI64(&in, &c.created_ns)) return damaged("consumer");
    meta.consumers.push_back(std::move(c));
  }
  if (!ReadI64(&in, &meta.trim_floor_us)) return damaged("trim floor");
  if (version >= 2) {
    if (!in.U8(&meta.encryption_type) || meta.encryption_type > 1 ||
        !ReadString(&in, &meta.key_id) || (meta.encryption_type == 0) != meta.key_id.empty()) {
      return damaged("encryption");
    }
  }
  if (!in.AtEnd()) return damaged("trailing bytes");
  if (meta.shards.empty()) return damaged("no shard");
  return meta;
}

// --- ShardStore ---

std::string ShardEncryptionContext(const std::array<uint8_t, 16>& seed, uint32_t index) {
  std::string context(seed.size() + 4, '\0');
  std::memcpy(context.data(), seed.data(), seed.size());
  for (int i = 0; i < 4; ++i) context[seed.size() + i] = static_cast<char>(index >> (8 * i));
  return context;
}

absl::StatusOr<std::unique_ptr<ShardStore>> ShardStore::Open(
    const std::string& dir, const StorageOptions& options,
    const std::function<void(const StoredRecord&)>& replay, ShardRecovery* recovery,
    const std::function<void(uint64_t)>& segment_done, ShardCrypto crypto) {
  FrameBuffer scratch;
  scratch.SetDecryption(crypto.keyring, crypto.context);
  std::unique_ptr<ShardStore> store(new ShardStore(dir, options, std::move(crypto)));
  MutexLock store_lock(&store->mu_);  // nobody else sees it yet; keeps the analysis whole
  if (options.read_only) {
    // Reads only: a shard that never reached the disk has no directory, and nothing is created.
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec)) return store;
  } else if (absl::Status s = MakeDirectories(dir); !s.ok()) {
    return s;
  }
  std::vector<std::pair<uint64_t, std::string>> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    uint64_t first;
    if (name.size() != 24 || name.substr(20) != ".seg" ||
        !absl::SimpleAtoi(name.substr(0, 20), &first)) {
      continue;
    }
    files.emplace_back(first, entry.path().string());
  }
  if (ec) return IoError("cannot list", dir, ec.value());
  std::sort(files.begin(), files.end());

  std::vector<StoredRecord> records;
  bool stop = false;  // after damage, later segments are not trusted either
  for (size_t i = 0; i < files.size(); ++i) {
    const auto& [first, path] = files[i];
    const uint64_t records_before = recovery->records;
    const bool stopped_before = stop;
    absl::StatusOr<SegmentReader> reader = SegmentReader::Open(path);
    if (!reader.ok()) return reader.status();
    const SegmentScan& scan = reader->scan();
    Segment segment{path, first, INT64_MIN, scan.valid_bytes, store->next_segment_id_++, nullptr};
    if (!stop) {
      for (const FrameInfo& frame : reader->frames()) {
        absl::Status s = reader->ReadFrame(frame, &scratch, &records);
        if (IsKeyError(s)) return s;
        if (!s.ok()) {
          recovery->corruption = s;
          stop = true;
          break;
        }
        store->frames_.push_back(IndexedFrame{recovery->records, segment.id, frame});
        for (const StoredRecord& r : records) {
          replay(r);
          ++recovery->records;
          recovery->bytes += r.partition_key.size() + r.data.size();
        }
        recovery->last_counter = frame.last_counter;
        segment.last_arrival_us = std::max(segment.last_arrival_us, frame.last_arrival_us);
      }
      if (!scan.corruption.ok() && !stop) {
        recovery->corruption = scan.corruption;
        stop = true;
      }
      if (scan.torn_tail && !stop && i + 1 < files.size()) {
        // Only the newest segment may end in a torn write: here records are missing in the
        // middle of the shard.
        recovery->corruption = absl::DataLossError(absl::StrFormat(
            "%s is cut short at offset %d although newer segments follow", path, scan.valid_bytes));
        stop = true;
      } else if (scan.torn_tail) {
        recovery->torn_tail = true;
      }
    }
    if (stop) {
      absl::StatusOr<uint64_t> highest = HighestCounterIn(path);
      if (!highest.ok()) return highest.status();
      recovery->counter_floor = std::max({recovery->counter_floor, *highest, first});
      // The damaged file and every later one are set aside (kept for inspection, never read
      // again); the records recovered from this one are written again into a new segment, so a
      // later recovery finds them without meeting the damage.
      if (!stopped_before) recovery->rewrite_from_record = records_before;
      while (!store->frames_.empty() && store->frames_.back().segment_id == segment.id) {
        store->frames_.pop_back();  // rewritten from memory into a new segment
      }
      const std::string aside = path + ".damaged";
      if (options.read_only) continue;  // left in place: reported, not repaired
      if (::rename(path.c_str(), aside.c_str()) != 0) {
        return IoError("cannot set aside damaged segment", path, errno);
      }
      continue;
    }
    if (segment_done) segment_done(recovery->records);
    const bool last = i + 1 == files.size();
    if (options.read_only) {
      // Nothing is appended: a torn tail stays as it is (the scan stops before it).
      if (scan.valid_bytes >= kSegmentFileHeaderBytes)
        store->segments_.push_back(std::move(segment));
      continue;
    }
    if (last && scan.valid_bytes >= kSegmentFileHeaderBytes) {
      // Keep appending to the newest segment, cut back to its valid part.
      std::optional<uint64_t> last_counter;
      if (!reader->frames().empty()) last_counter = reader->frames().back().last_counter;
      absl::StatusOr<std::unique_ptr<SegmentWriter>> writer = SegmentWriter::OpenForAppend(
          path, scan.valid_bytes, last_counter,
          SegmentWriterOptions{.compression_level = options.compression_level});
      if (!writer.ok()) return writer.status();
      store->writer_ = std::move(*writer);
      if (store->crypto_.write_key != nullptr) {
        if (absl::Status s =
                store->writer_->SetEncryption(store->crypto_.write_key, store->crypto_.context);
            !s.ok()) {
          return s;
        }
      }
    } else if (last) {
      // Created but never completed: nothing in it.
      if (::unlink(path.c_str()) != 0) return IoError("cannot remove", path, errno);
      continue;
    }
    store->segments_.push_back(std::move(segment));
  }
  return store;
}

absl::Status ShardStore::SetWriteKey(std::shared_ptr<const FrameWriteKey> key) {
  MutexLock lock(&mu_);
  crypto_.write_key = std::move(key);
  if (writer_ == nullptr) return absl::OkStatus();
  return writer_->SetEncryption(crypto_.write_key, crypto_.context);
}

absl::Status ShardStore::Sync() {
  MutexLock lock(&mu_);
  if (!error_.ok()) return error_;
  if (absl::Status s = SyncLocked(); !s.ok()) {
    error_ = s;
    failed_.store(true, std::memory_order_release);
    return s;
  }
  return absl::OkStatus();
}

absl::Status ShardStore::status() const {
  MutexLock lock(&mu_);
  return error_;
}

bool ShardStore::ShouldCommit(const ShardLog& log, int64_t now_ns) const {
  // Every policy: the journal holds what the segments do not yet, so segments are written in
  // large group commits.
  if (log.appended_bytes() - persisted_bytes_.load(std::memory_order_relaxed) >=
      kGroupCommitBytes) {
    return true;
  }
  int64_t next = next_sync_ns_.load(std::memory_order_relaxed);
  if (next == kUnset) {
    // The first check starts the interval.
    const int64_t start = now_ns + absl::ToInt64Nanoseconds(options_.fsync_interval);
    if (next_sync_ns_.compare_exchange_strong(next, start, std::memory_order_relaxed)) {
      next = start;
    }
  }
  return now_ns >= next;
}

absl::Status ShardStore::WriteFrame(std::span<const StoredRecord> records, uint64_t first_ordinal,
                                    int64_t last_arrival_us) {
  if (writer_ == nullptr || writer_->size_bytes() >= options_.segment_bytes) {
    if (writer_ != nullptr) {
      // The full segment is synced before the next one starts, so that a sync of the new file
      // never leaves an older one behind.
      if (dirty_ && options_.fsync != FsyncPolicy::kNever) {
        if (absl::Status s = writer_->Sync(); !s.ok()) return s;
      }
      if (absl::Status s = writer_->Close(); !s.ok()) return s;
      writer_.reset();
    }
    const uint64_t first = records.front().counter;
    const std::string path = absl::StrFormat("%s/%s", dir_, SegmentName(first));
    absl::StatusOr<std::unique_ptr<SegmentWriter>> writer = SegmentWriter::Create(
        path, SegmentWriterOptions{.compression_level = options_.compression_level});
    if (!writer.ok()) return writer.status();
    writer_ = std::move(*writer);
    if (crypto_.write_key != nullptr) {
      if (absl::Status s = writer_->SetEncryption(crypto_.write_key, crypto_.context); !s.ok()) {
        return s;
      }
    }
    segments_.push_back(Segment{path, first, INT64_MIN, 0, next_segment_id_++, nullptr});
  }
  const uint64_t offset = writer_->size_bytes();
  if (absl::Status s = writer_->Append(records); !s.ok()) return s;
  Segment& current = segments_.back();
  FrameInfo info;
  info.offset = offset;
  info.total_size = writer_->size_bytes() - offset;
  info.first_counter = records.front().counter;
  info.last_counter = records.back().counter;
  info.record_count = static_cast<uint32_t>(records.size());
  info.first_arrival_us = records.front().arrival_us;
  info.last_arrival_us = records.back().arrival_us;
  frames_.push_back(IndexedFrame{first_ordinal, current.id, info});
  current.last_arrival_us = std::max(current.last_arrival_us, last_arrival_us);
  current.bytes = writer_->size_bytes();
  dirty_ = true;
  return absl::OkStatus();
}

absl::Status ShardStore::SyncLocked() {
  if (dirty_ && writer_ != nullptr) {
    if (absl::Status s = writer_->Sync(); !s.ok()) return s;
  }
  dirty_ = false;
  return absl::OkStatus();
}

absl::Status ShardStore::Commit(const ShardLog& log, bool force_sync, int64_t now_ns) {
  MutexLock lock(&mu_);
  if (!error_.ok()) return error_;
  if (options_.read_only) return absl::FailedPreconditionError("the shard store is read-only");
  const uint64_t end = log.end_ordinal();
  const uint64_t appended_bytes = log.appended_bytes();
  if (persisted_ordinal_ < end) {
    ShardLog::Cursor cursor(log, persisted_ordinal_, end);
    while (cursor.Valid()) {
      const uint64_t first_ordinal = cursor.ordinal();
      batch_.clear();
      pins_.clear();
      size_t bytes = 0;
      int64_t last_arrival = INT64_MIN;
      while (cursor.Valid() && bytes < kFrameTargetBytes) {
        if (pins_.empty() || pins_.back() != cursor.chunk()) pins_.push_back(cursor.chunk());
        const StoredRecord r = cursor.Get();
        batch_.push_back(r);
        bytes += r.partition_key.size() + r.data.size() + 16;
        last_arrival = std::max(last_arrival, r.arrival_us);
        cursor.Next();
      }
      if (absl::Status s = WriteFrame(batch_, first_ordinal, last_arrival); !s.ok()) {
        error_ = s;
        failed_.store(true, std::memory_order_release);
        return s;
      }
    }
    persisted_ordinal_ = end;
    persisted_bytes_.store(appended_bytes, std::memory_order_relaxed);
  }
  const int64_t interval = absl::ToInt64Nanoseconds(options_.fsync_interval);
  if (last_sync_ns_ == kUnset) last_sync_ns_ = now_ns;
  // kEveryBatch's promise is kept by the journal, synced by every put: its segments are synced
  // only when forced (before the journal files holding their records are recycled, at Flush).
  const bool sync = options_.fsync != FsyncPolicy::kNever &&
                    (force_sync || (options_.fsync == FsyncPolicy::kInterval &&
                                    now_ns - last_sync_ns_ >= interval));
  if (sync) {
    if (absl::Status s = SyncLocked(); !s.ok()) {
      error_ = s;
      failed_.store(true, std::memory_order_release);
      return s;
    }
    last_sync_ns_ = now_ns;
  }
  // The next time-driven group commit (kNever, kInterval) is an interval after this one.
  next_sync_ns_.store(now_ns + interval, std::memory_order_relaxed);
  pins_.clear();
  return absl::OkStatus();
}

absl::Status ShardStore::DropBefore(int64_t cutoff_us) {
  MutexLock lock(&mu_);
  if (options_.read_only) return absl::OkStatus();  // the holder's retention deletes files
  // Never the newest segment: it is (or will be) written to.
  size_t drop = 0;
  while (drop + 1 < segments_.size() && segments_[drop].last_arrival_us < cutoff_us) ++drop;
  for (size_t i = 0; i < drop; ++i) {
    if (::unlink(segments_[i].path.c_str()) != 0 && errno != ENOENT) {
      return IoError("cannot remove expired segment", segments_[i].path, errno);
    }
  }
  for (size_t i = 0; i < drop; ++i) {
    while (!frames_.empty() && frames_.front().segment_id == segments_[i].id) frames_.pop_front();
  }
  segments_.erase(segments_.begin(), segments_.begin() + static_cast<ptrdiff_t>(drop));
  last_read_.reset();
  return absl::OkStatus();
}

// A frame read back from disk: its bytes, the decompressed payload and the records' views.
struct ShardStore::DecodedFrame {
  uint64_t first_ordinal = 0;
  std::string bytes;
  FrameBuffer scratch;
  std::vector<StoredRecord> records;
};

absl::StatusOr<std::shared_ptr<const ShardStore::DecodedFrame>> ShardStore::FrameAt(
    size_t index) const {
  const IndexedFrame& f = frames_[index];
  if (last_read_ != nullptr && last_read_->first_ordinal == f.first_ordinal) return last_read_;
  auto segment = std::find_if(segments_.begin(), segments_.end(),
                              [&](const Segment& s) { return s.id == f.segment_id; });
  if (segment == segments_.end()) return absl::InternalError("frame index names a lost segment");
  if (segment->read_fd == nullptr) {
    absl::StatusOr<ScopedFd> fd = OpenFile(segment->path, O_RDONLY | O_CLOEXEC);
    if (!fd.ok()) return fd.status();
    segment->read_fd = std::make_shared<ScopedFd>(std::move(*fd));
  }
  auto decoded = std::make_shared<DecodedFrame>();
  decoded->first_ordinal = f.first_ordinal;
  decoded->scratch.SetDecryption(crypto_.keyring, crypto_.context);
  decoded->bytes.resize(f.info.total_size);
  absl::StatusOr<size_t> n = PreadFully(segment->read_fd->get(), decoded->bytes.data(),
                                        decoded->bytes.size(), f.info.offset, segment->path);
  if (!n.ok()) return n.status();
  if (*n != decoded->bytes.size()) {
    return absl::DataLossError(
        absl::StrFormat("%s shrank: frame at %d is cut short", segment->path, f.info.offset));
  }
  FrameHeader header;
  if (absl::Status s =
          DecodeFrame(decoded->bytes, f.info.offset, &decoded->scratch, &decoded->records, &header);
      !s.ok()) {
    absl::Status out(s.code(), absl::StrFormat("%s: %s", segment->path, s.message()));
    s.ForEachPayload(
        [&](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
    return out;
  }
  if (decoded->records.size() != f.info.record_count ||
      header.first_counter != f.info.first_counter) {
    return absl::DataLossError(absl::StrFormat("%s: frame at %d is not the frame indexed there",
                                               segment->path, f.info.offset));
  }
  last_read_ = decoded;
  return std::shared_ptr<const DecodedFrame>(std::move(decoded));
}

absl::Status ShardStore::ReadCold(uint64_t from, uint64_t end, size_t limit, size_t max_data_bytes,
                                  ColdRead* out) const {
  MutexLock lock(&mu_);
  out->records.clear();
  out->keep_alive.reset();
  out->next = from;
  if (frames_.empty()) return absl::OkStatus();
  from = std::max(from, frames_.front().first_ordinal);
  out->next = from;
  // The last frame starting at or before `from`.
  auto it = std::upper_bound(frames_.begin(), frames_.end(), from,
                             [](uint64_t o, const IndexedFrame& f) { return o < f.first_ordinal; });
  if (it == frames_.begin()) return absl::OkStatus();
  const size_t index = static_cast<size_t>(it - frames_.begin()) - 1;
  const IndexedFrame& f = frames_[index];
  if (from >= f.first_ordinal + f.info.record_count) return absl::OkStatus();  // past the disk
  absl::StatusOr<std::shared_ptr<const DecodedFrame>> frame = FrameAt(index);
  if (!frame.ok()) return frame.status();
  size_t data_bytes = 0;
  for (uint64_t o = from; o < end && o < f.first_ordinal + f.info.record_count; ++o) {
    const StoredRecord& r = (*frame)->records[o - f.first_ordinal];
    if (!out->records.empty() &&
        (out->records.size() >= limit || data_bytes + r.data.size() > max_data_bytes)) {
      break;
    }
    data_bytes += r.data.size();
    out->records.push_back(r);
    out->next = o + 1;
  }
  out->keep_alive = *frame;
  return absl::OkStatus();
}

template <typename Projection, typename Key>
absl::StatusOr<uint64_t> ShardStore::LowerBound(Projection project, Key target,
                                                uint64_t limit) const {
  MutexLock lock(&mu_);
  // The first frame whose last record reaches the target holds the answer.
  auto it = std::partition_point(frames_.begin(), frames_.end(), [&](const IndexedFrame& f) {
    return f.first_ordinal < limit && project(f.info, /*last=*/true) < target;
  });
  if (it == frames_.end() || it->first_ordinal >= limit) return limit;
  // Most lookups (retention on every read, iterators at a frame's start) end here, without
  // reading the frame: its first record already reaches the target.
  if (!(project(it->info, /*last=*/false) < target)) return it->first_ordinal;
  absl::StatusOr<std::shared_ptr<const DecodedFrame>> frame =
      FrameAt(static_cast<size_t>(it - frames_.begin()));
  if (!frame.ok()) return frame.status();
  const std::vector<StoredRecord>& records = (*frame)->records;
  for (size_t i = 0; i < records.size(); ++i) {
    if (!(project(records[i]) < target)) return std::min(limit, it->first_ordinal + i);
  }
  return std::min(limit, it->first_ordinal + records.size());
}

absl::StatusOr<uint64_t> ShardStore::LowerBoundCounter(uint64_t counter, uint64_t limit) const {
  struct Project {
    uint64_t operator()(const FrameInfo& f, bool last) const {
      return last ? f.last_counter : f.first_counter;
    }
    uint64_t operator()(const StoredRecord& r) const { return r.counter; }
  };
  return LowerBound(Project{}, counter, limit);
}

absl::StatusOr<uint64_t> ShardStore::LowerBoundTime(int64_t time_us, uint64_t limit) const {
  struct Project {
    int64_t operator()(const FrameInfo& f, bool last) const {
      return last ? f.last_arrival_us : f.first_arrival_us;
    }
    int64_t operator()(const StoredRecord& r) const { return r.arrival_us; }
  };
  return LowerBound(Project{}, time_us, limit);
}

int64_t ShardStore::oldest_arrival_us() const {
  MutexLock lock(&mu_);
  return frames_.empty() ? INT64_MAX : frames_.front().info.first_arrival_us;
}

uint64_t ShardStore::first_disk_ordinal() const {
  MutexLock lock(&mu_);
  return frames_.empty() ? persisted_ordinal_ : frames_.front().first_ordinal;
}

absl::Status ShardStore::DropAll() {
  MutexLock lock(&mu_);
  if (options_.read_only) return absl::OkStatus();
  if (dropped_) return absl::OkStatus();
  dropped_ = true;
  if (writer_ != nullptr) {
    writer_->Close().IgnoreError();
    writer_.reset();
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  segments_.clear();
  frames_.clear();
  last_read_.reset();
  if (ec) return IoError("cannot remove expired shard", dir_, ec.value());
  return absl::OkStatus();
}

uint64_t ShardStore::persisted_ordinal() const {
  MutexLock lock(&mu_);
  return persisted_ordinal_;
}

void ShardStore::set_persisted_ordinal(uint64_t ordinal) {
  MutexLock lock(&mu_);
  persisted_ordinal_ = ordinal;
}

uint64_t ShardStore::disk_bytes() const {
  MutexLock lock(&mu_);
  uint64_t total = 0;
  for (const Segment& s : segments_) total += s.bytes;
  return total;
}

// --- StreamStore ---

absl::StatusOr<std::unique_ptr<StreamStore>> StreamStore::Open(const StorageOptions& options) {
  if (options.directory.empty()) {
    return InvalidArgumentError("storage.directory must name a directory");
  }
  if (options.segment_bytes < (size_t{64} << 10)) {
    return InvalidArgumentError("storage.segment_bytes must be at least 64 KiB");
  }
  if (options.compression_level < 0 || options.compression_level > 19) {
    return InvalidArgumentError("storage.compression_level must be within 0..19");
  }
  if (options.fsync_interval < absl::ZeroDuration()) {
    return InvalidArgumentError("storage.fsync_interval must not be negative");
  }
  if (options.read_only) {
    std::error_code ec;
    if (!std::filesystem::is_directory(options.directory, ec)) {
      return ResourceNotFoundError(
          absl::StrFormat("%s is not a directory holding a stream", options.directory));
    }
    return std::unique_ptr<StreamStore>(new StreamStore(options, std::nullopt));
  }
  if (absl::Status s = MakeDirectories(options.directory); !s.ok()) return s;
  absl::StatusOr<DirectoryLock> lock = DirectoryLock::Acquire(options.directory);
  if (!lock.ok()) {
    // Only a lock held by another owner is "in use"; an I/O error on the LOCK file (a read-only
    // or full file system) stays kInternalFailure, as every other I/O error.
    if (absl::IsFailedPrecondition(lock.status())) {
      return ResourceInUseError(std::string(lock.status().message()));
    }
    return lock.status();
  }
  return std::unique_ptr<StreamStore>(new StreamStore(options, *std::move(lock)));
}

absl::StatusOr<std::optional<StreamMeta>> StreamStore::LoadMeta() const {
  absl::StatusOr<std::string> bytes = ReadFile(options_.directory + "/METADATA");
  if (!bytes.ok()) {
    if (absl::IsNotFound(bytes.status())) return std::optional<StreamMeta>();
    return bytes.status();
  }
  absl::StatusOr<StreamMeta> meta = DecodeStreamMeta(*bytes);
  if (!meta.ok()) {
    return absl::Status(
        meta.status().code(),
        absl::StrFormat("%s (in %s/METADATA)", meta.status().message(), options_.directory));
  }
  return std::optional<StreamMeta>(std::move(*meta));
}

absl::Status StreamStore::SaveMeta(const StreamMeta& meta) {
  MutexLock lock(&meta_mu_);
  return WriteFileAtomically(options_.directory + "/METADATA", EncodeStreamMeta(meta));
}

namespace {
constexpr std::string_view kCeilingsMagic = "RILLCEIL";
}  // namespace

absl::StatusOr<std::vector<uint64_t>> StreamStore::LoadCeilings() const {
  const std::string path = options_.directory + "/COUNTERS";
  absl::StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) {
    if (absl::IsNotFound(bytes.status())) return std::vector<uint64_t>();
    return bytes.status();
  }
  // "RILLCEIL", u32 count, count x u64, u32 masked CRC-32C of everything before it.
  const std::string_view b = *bytes;
  uint32_t count = 0;
  if (b.size() >= 12) std::memcpy(&count, b.data() + 8, 4);
  uint32_t crc = 0;
  if (b.size() < 16 || b.substr(0, 8) != kCeilingsMagic || b.size() != 16 + size_t{count} * 8 ||
      (std::memcpy(&crc, b.data() + b.size() - 4, 4),
       crc != MaskCrc32c(Crc32c(b.substr(0, b.size() - 4))))) {
    return absl::DataLossError(absl::StrFormat("%s is damaged", path));
  }
  std::vector<uint64_t> ceilings(count);
  std::memcpy(ceilings.data(), b.data() + 12, size_t{count} * 8);
  return ceilings;
}

absl::Status StreamStore::RaiseCeilings(std::span<const std::pair<uint32_t, uint64_t>> updates) {
  MutexLock lock(&ceilings_mu_);
  for (const auto& [index, ceiling] : updates) {
    if (ceilings_.size() <= index) ceilings_.resize(index + 1, 0);
    ceilings_[index] = std::max(ceilings_[index], ceiling);
  }
  std::string bytes(kCeilingsMagic);
  const auto count = static_cast<uint32_t>(ceilings_.size());
  bytes.append(reinterpret_cast<const char*>(&count), 4);
  bytes.append(reinterpret_cast<const char*>(ceilings_.data()), ceilings_.size() * 8);
  const uint32_t crc = MaskCrc32c(Crc32c(bytes));
  bytes.append(reinterpret_cast<const char*>(&crc), 4);
  return WriteFileAtomically(options_.directory + "/COUNTERS", bytes);
}

std::string StreamStore::ShardDirectory(uint32_t index) const {
  return absl::StrFormat("%s/shard-%d", options_.directory, index);
}

}  // namespace rill::internal
