// rill verify: checks every file of a durable stream without opening it as a stream (so it works
// while another process holds it, and never repairs anything):
//   - METADATA and COUNTERS: their checksums and encodings;
//   - every segment frame: header and payload checksums and a full decode of its records
//     (SegmentReader::ReadFrame);
//   - counters: strictly increasing within and across a shard's segments (a decrease or overlap
//     is damage; a jump is normal after a crash or a reopen and is reported as a note), within
//     the shard's first counter, its ending counter once closed, and its COUNTERS ceiling;
//   - lineage: parents exist and are closed, children's ranges exactly cover their parent's,
//     children number above their parents, and the open shards tile 0..2^128-1.
// The journal (records acknowledged but not yet in a segment) is not checked here: it is the
// holder's, and a read-only open replays it.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/format.h"
#include "storage/crc32c.h"
#include "storage/file_util.h"
#include "storage/segment.h"
#include "storage/stream_store.h"

namespace rill::cli {
namespace {

namespace fs = std::filesystem;

enum class Severity { kDamage, kNote };

struct Finding {
  Severity severity = Severity::kNote;
  std::string check;  // metadata, counters, segment, lineage
  std::optional<uint32_t> shard;
  std::string file;
  std::optional<uint64_t> offset;
  std::string message;
};

struct ShardSummary {
  uint32_t index = 0;
  std::string state;  // open, closed, or "?" without METADATA
  int segments = 0;
  uint64_t frames = 0;
  uint64_t records = 0;
  uint64_t bytes = 0;
  bool damaged = false;
};

// The storage layer's message without what the finding already says: "segment <path>: " and
// "segment frame at offset <n>: " in front.
std::string Tidy(absl::string_view message, const std::string& path, uint64_t offset) {
  absl::ConsumePrefix(&message, absl::StrFormat("segment %s: ", path));
  absl::ConsumePrefix(&message, absl::StrFormat("%s: ", path));
  absl::ConsumePrefix(&message, absl::StrFormat("segment frame at offset %d: ", offset));
  absl::ConsumePrefix(&message, absl::StrFormat("frame at offset %d: ", offset));
  return std::string(message);
}

class Verifier {
 public:
  explicit Verifier(std::string dir) : dir_(std::move(dir)) {}

  // Returns the exit code.
  int Run(bool json) {
    std::error_code error;
    if (!fs::is_directory(dir_, error)) {
      return Report(ReadStreamMeta(dir_).status());  // its message for a missing directory
    }
    CheckMetadata();
    if (!has_metadata_file_) return Report(ReadStreamMeta(dir_).status());
    CheckCounters();
    absl::StatusOr<std::shared_ptr<KeyProvider>> provider = Keyring();
    if (!provider.ok()) return Report(provider.status());
    if (*provider != nullptr) {
      keyring_ = std::make_unique<internal::FrameKeyring>(
          [provider = *provider](std::string_view key_id, std::string_view wrapped) {
            return provider->DecryptDataKey(key_id, wrapped);
          });
    }
    std::vector<uint32_t> shards = ShardsToCheck();
    uint64_t total_bytes = 0;
    for (uint32_t index : shards) total_bytes += ShardSegmentBytes(dir_, index);
    {
      Progress progress("verifying", total_bytes, "bytes");
      for (uint32_t index : shards) CheckShard(index, &progress);
    }
    if (meta_) CheckLineage();
    Print(json);
    return damage_count() > 0 ? kExitDamage : kExitOk;
  }

 private:
  int damage_count() const {
    return static_cast<int>(std::count_if(findings_.begin(), findings_.end(), [](const Finding& f) {
      return f.severity == Severity::kDamage;
    }));
  }

  void Add(Severity severity, std::string check, std::optional<uint32_t> shard, std::string file,
           std::optional<uint64_t> offset, std::string message) {
    if (severity == Severity::kDamage && shard) {
      for (ShardSummary& s : summaries_) {
        if (s.index == *shard) s.damaged = true;
      }
    }
    findings_.push_back(Finding{.severity = severity,
                                .check = std::move(check),
                                .shard = shard,
                                .file = std::move(file),
                                .offset = offset,
                                .message = std::move(message)});
  }

  void CheckMetadata() {
    const std::string path = dir_ + "/METADATA";
    absl::StatusOr<std::string> bytes = internal::ReadFile(path);
    if (absl::IsNotFound(bytes.status())) return;
    has_metadata_file_ = true;
    if (!bytes.ok()) {
      Add(Severity::kDamage, "metadata", std::nullopt, path, std::nullopt,
          std::string(bytes.status().message()));
      return;
    }
    absl::StatusOr<internal::StreamMeta> meta = internal::DecodeStreamMeta(*bytes);
    if (!meta.ok()) {
      Add(Severity::kDamage, "metadata", std::nullopt, path, std::nullopt,
          std::string(meta.status().message()));
      return;
    }
    meta_ = *std::move(meta);
  }

  // "RILLCEIL", u32 count, count x u64, u32 masked CRC-32C of everything before it (the format
  // StreamStore::LoadCeilings reads).
  void CheckCounters() {
    const std::string path = dir_ + "/COUNTERS";
    absl::StatusOr<std::string> bytes = internal::ReadFile(path);
    if (absl::IsNotFound(bytes.status())) {
      Add(Severity::kNote, "counters", std::nullopt, path, std::nullopt,
          "no COUNTERS file (the stream has not issued counters yet)");
      return;
    }
    if (!bytes.ok()) {
      Add(Severity::kDamage, "counters", std::nullopt, path, std::nullopt,
          std::string(bytes.status().message()));
      return;
    }
    const std::string_view b = *bytes;
    uint32_t count = 0;
    if (b.size() >= 12) std::memcpy(&count, b.data() + 8, 4);
    uint32_t crc = 0;
    if (b.size() >= 4) std::memcpy(&crc, b.data() + b.size() - 4, 4);
    if (b.size() < 16 || b.substr(0, 8) != "RILLCEIL") {
      Add(Severity::kDamage, "counters", std::nullopt, path, std::nullopt, "not a COUNTERS file");
      return;
    }
    if (b.size() != 16 + size_t{count} * 8) {
      Add(Severity::kDamage, "counters", std::nullopt, path, std::nullopt,
          absl::StrFormat("wrong length: %d bytes for %d shards", b.size(), count));
      return;
    }
    if (crc != internal::MaskCrc32c(internal::Crc32c(b.substr(0, b.size() - 4)))) {
      Add(Severity::kDamage, "counters", std::nullopt, path, std::nullopt, "checksum mismatch");
      return;
    }
    ceilings_.resize(count);
    std::memcpy(ceilings_.data(), b.data() + 12, size_t{count} * 8);
    if (meta_ && ceilings_.size() != meta_->shards.size()) {
      Add(Severity::kNote, "counters", std::nullopt, path, std::nullopt,
          absl::StrFormat("holds ceilings for %d shards; METADATA has %d", ceilings_.size(),
                          meta_->shards.size()));
    }
  }

  // The shards of METADATA, and any shard-<n> directory it does not name.
  std::vector<uint32_t> ShardsToCheck() {
    std::vector<uint32_t> shards;
    if (meta_) {
      for (const internal::ShardMeta& s : meta_->shards) shards.push_back(s.index);
    }
    std::error_code error;
    for (fs::directory_iterator it(dir_, error), end; !error && it != end; it.increment(error)) {
      const std::string name = it->path().filename().string();
      uint32_t index = 0;
      if (!absl::StartsWith(name, "shard-") || !absl::SimpleAtoi(name.substr(6), &index)) continue;
      if (std::find(shards.begin(), shards.end(), index) != shards.end()) continue;
      shards.push_back(index);
      if (meta_) {
        Add(Severity::kNote, "segment", index, it->path().string(), std::nullopt,
            "a shard directory METADATA does not name (its segments are checked anyway)");
      }
    }
    std::sort(shards.begin(), shards.end());
    return shards;
  }

  const internal::ShardMeta* MetaOf(uint32_t index) const {
    if (!meta_ || index >= meta_->shards.size()) return nullptr;
    return &meta_->shards[index];
  }

  // What CheckShard carries from frame to frame of one shard.
  struct ShardScan {
    uint32_t index = 0;
    const internal::ShardMeta* meta = nullptr;
    std::optional<uint64_t> previous;  // the last counter seen in the shard
    uint64_t jumps = 0;
    std::string first_jump;
    internal::FrameBuffer scratch;
    std::vector<internal::StoredRecord> records;
  };

  void CheckShard(uint32_t index, Progress* progress) {
    const internal::ShardMeta* meta = MetaOf(index);
    summaries_.push_back(ShardSummary{.index = index,
                                      .state = meta == nullptr   ? "?"
                                               : meta->closed_us ? "closed"
                                                                 : "open",
                                      .segments = 0,
                                      .frames = 0,
                                      .records = 0,
                                      .bytes = 0,
                                      .damaged = false});
    const std::string shard_dir = absl::StrFormat("%s/shard-%d", dir_, index);
    std::error_code error;
    if (!fs::is_directory(shard_dir, error)) {
      if (meta != nullptr && meta->closed_us) return;  // expired: its segments are deleted
      Add(Severity::kNote, "segment", index, shard_dir, std::nullopt,
          "no shard directory (no record was written to it yet)");
      return;
    }
    std::vector<std::pair<uint64_t, std::string>> segments;
    for (fs::directory_iterator it(shard_dir, error), end; !error && it != end;
         it.increment(error)) {
      const std::string name = it->path().filename().string();
      uint64_t first = 0;
      if (name.size() == 24 && absl::EndsWith(name, ".seg") &&
          absl::SimpleAtoi(name.substr(0, 20), &first)) {
        segments.emplace_back(first, it->path().string());
      } else if (absl::EndsWith(name, ".damaged")) {
        Add(Severity::kNote, "segment", index, it->path().string(), std::nullopt,
            "a segment an earlier recovery set aside as damaged (kept for inspection; its "
            "records after the damage were lost then)");
      } else {
        Add(Severity::kNote, "segment", index, it->path().string(), std::nullopt,
            "not a segment file");
      }
    }
    if (error) {
      Add(Severity::kDamage, "segment", index, shard_dir, std::nullopt,
          absl::StrFormat("cannot list: %s", error.message()));
      return;
    }
    std::sort(segments.begin(), segments.end());
    ShardScan shard;
    shard.index = index;
    shard.meta = meta;
    if (keyring_ != nullptr && meta_) {
      // The context the stream sealed the shard's frames with.
      shard.scratch.SetDecryption(keyring_.get(),
                                  internal::ShardEncryptionContext(meta_->seed, index));
    }
    for (size_t i = 0; i < segments.size(); ++i) {
      const auto& [name_counter, path] = segments[i];
      CheckSegment(&shard, name_counter, path, /*last=*/i + 1 == segments.size(), progress);
    }
    if (shard.jumps > 0) {
      Add(Severity::kNote, "counters", index, "", std::nullopt,
          absl::StrFormat("counters jump %d time%s (first %s): normal after a reopen or a crash",
                          shard.jumps, shard.jumps == 1 ? "" : "s", shard.first_jump));
    }
  }

  void CheckSegment(ShardScan* shard, uint64_t name_counter, const std::string& path, bool last,
                    Progress* progress) {
    const uint32_t index = shard->index;
    ShardSummary& summary = summaries_.back();
    ++summary.segments;
    absl::StatusOr<internal::SegmentReader> reader = internal::SegmentReader::Open(path);
    if (!reader.ok()) {
      Add(Severity::kDamage, "segment", index, path, std::nullopt,
          std::string(reader.status().message()));
      return;
    }
    const internal::SegmentScan& scan = reader->scan();
    summary.bytes += scan.file_size;
    if (!reader->frames().empty() && reader->frames().front().first_counter < name_counter) {
      Add(Severity::kDamage, "segment", index, path, reader->frames().front().offset,
          absl::StrFormat("the segment is named for counter %d but starts at counter %d",
                          name_counter, reader->frames().front().first_counter));
    }
    for (const internal::FrameInfo& frame : reader->frames()) {
      progress->Update(progress_done_ += frame.total_size);
      const absl::Status s = reader->ReadFrame(frame, &shard->scratch, &shard->records);
      CheckFrame(shard, path, frame, s);
    }
    if (!scan.corruption.ok()) {
      Add(Severity::kDamage, "segment", index, path, scan.valid_bytes,
          Tidy(scan.corruption.message(), path, scan.valid_bytes));
      CheckAfterDamage(shard, path, scan.valid_bytes, progress);
    }
    if (scan.torn_tail) {
      if (!last) {
        Add(Severity::kDamage, "segment", index, path, scan.valid_bytes,
            "cut short although newer segments follow (records are missing in the middle of "
            "the shard)");
      } else {
        Add(Severity::kNote, "segment", index, path, scan.valid_bytes,
            absl::StrFormat("ends in an incomplete frame (%d bytes): a write in progress, or "
                            "cut short by a crash; the next read-write open drops it",
                            scan.file_size - scan.valid_bytes));
      }
    }
  }

  // A scan stops at the first damaged frame; the frames after it are checked here, by scanning
  // again from each frame header found after the damage (the file read into memory: only damaged
  // files are).
  void CheckAfterDamage(ShardScan* shard, const std::string& path, uint64_t damaged_at,
                        Progress* progress) {
    absl::StatusOr<std::string> file = internal::ReadFile(path);
    if (!file.ok() || file->size() < internal::kSegmentFileHeaderBytes) return;
    const std::string_view bytes = *file;
    const std::string_view file_header = bytes.substr(0, internal::kSegmentFileHeaderBytes);
    char magic[4];
    std::memcpy(magic, &internal::kFrameMagic, 4);  // little-endian on disk, as on x86 and ARM
    uint64_t from = damaged_at + 1;
    while (true) {
      const size_t at = bytes.find(std::string_view(magic, 4), from);
      if (at == std::string_view::npos) return;
      from = at + 1;
      if (!internal::ParseFrameHeader(bytes.substr(at)).ok()) continue;
      // The rest of the file as a segment of its own: its frame offsets are shifted by `shift`.
      std::string rest(file_header);
      rest.append(bytes.substr(at));
      const internal::SegmentScan scan = internal::ScanSegment(rest);
      if (scan.frames.empty() || scan.frames.front().offset != internal::kSegmentFileHeaderBytes) {
        continue;
      }
      const uint64_t shift = at - internal::kSegmentFileHeaderBytes;
      for (internal::FrameInfo frame : scan.frames) {
        progress->Update(progress_done_ += frame.total_size);
        const absl::Status s =
            internal::DecodeFrame(std::string_view(rest).substr(frame.offset, frame.total_size),
                                  frame.offset + shift, &shard->scratch, &shard->records);
        frame.offset += shift;
        CheckFrame(shard, path, frame, s);
      }
      if (scan.corruption.ok()) return;  // a torn end after the damage is not reported again
      Add(Severity::kDamage, "segment", shard->index, path, scan.valid_bytes + shift,
          "another damaged frame (checksum, header or counters), after the damage above");
      from = scan.valid_bytes + shift + 1;
    }
  }

  // One frame that the scan found intact: `decoded` is ReadFrame's (or DecodeFrame's) status,
  // and shard->records its records.
  void CheckFrame(ShardScan* shard, const std::string& path, const internal::FrameInfo& frame,
                  const absl::Status& decoded) {
    const uint32_t index = shard->index;
    const internal::ShardMeta* meta = shard->meta;
    ShardSummary& summary = summaries_.back();
    if (!decoded.ok()) {
      if (internal::IsKeyError(decoded)) {
        // Encrypted: the scan checked the envelope's checksum; its records need the key.
        ++summary.frames;
        summary.records += frame.record_count;
        if (encrypted_frames_++ == 0) {
          Add(Severity::kNote, "segment", index, path, frame.offset,
              keyring_ == nullptr
                  ? "encrypted frames: their checksums are checked, their records are not "
                    "decoded (give the stream's keyring with --keyring to check them too)"
                  : absl::StrFormat("encrypted frames whose data key the keyring cannot "
                                    "unwrap: their checksums are checked, their records are "
                                    "not decoded (%s)",
                                    decoded.message()));
        }
        shard->previous = frame.last_counter;
        return;
      }
      Add(Severity::kDamage, "segment", index, path, frame.offset,
          Tidy(decoded.message(), path, frame.offset));
      return;
    }
    ++summary.frames;
    summary.records += shard->records.size();
    for (const internal::StoredRecord& r : shard->records) {
      if (shard->previous && r.counter <= *shard->previous) {
        Add(Severity::kDamage, "segment", index, path, frame.offset,
            absl::StrFormat("counter %d is not above the previous record's %d (counters "
                            "overlap or go back)",
                            r.counter, *shard->previous));
      } else if (shard->previous && r.counter > *shard->previous + 1) {
        if (shard->jumps++ == 0) {
          shard->first_jump = absl::StrFormat("from %d to %d in %s at offset %d", *shard->previous,
                                              r.counter, path, frame.offset);
        }
      }
      shard->previous = r.counter;
      if (meta != nullptr && r.counter < meta->first_counter) {
        Add(Severity::kDamage, "segment", index, path, frame.offset,
            absl::StrFormat("counter %d is below the shard's first counter %d (METADATA)",
                            r.counter, meta->first_counter));
      }
      if (meta != nullptr && meta->closed_us && r.counter > meta->ending_counter) {
        Add(Severity::kDamage, "segment", index, path, frame.offset,
            absl::StrFormat("counter %d is above the closed shard's ending counter %d "
                            "(METADATA)",
                            r.counter, meta->ending_counter));
      }
      // A ceiling of 0 is none: the owner rewrites COUNTERS with the ceilings of the shards it
      // numbers (open ones), and zeros for the others.
      if (index < ceilings_.size() && ceilings_[index] != 0 && r.counter >= ceilings_[index]) {
        Add(Severity::kDamage, "segment", index, path, frame.offset,
            absl::StrFormat("counter %d is at or above the shard's ceiling %d (COUNTERS)",
                            r.counter, ceilings_[index]));
      }
    }
  }

  void Lineage(std::optional<uint32_t> shard, std::string message) {
    Add(Severity::kDamage, "lineage", shard, dir_ + "/METADATA", std::nullopt, std::move(message));
  }

  static std::string RangeText(const HashKeyRange& r) {
    return absl::StrFormat("[%s, %s]", r.starting_hash_key.ToString(),
                           r.ending_hash_key.ToString());
  }

  void CheckLineage() {
    const std::vector<internal::ShardMeta>& shards = meta_->shards;
    auto id = [](uint32_t index) { return ShardId(index).ToString(); };
    for (const internal::ShardMeta& s : shards) {
      for (const std::optional<uint32_t>& p : {s.parent, s.adjacent_parent}) {
        if (!p) continue;
        if (*p >= shards.size()) {
          Lineage(s.index, absl::StrFormat("shard %s names parent %s, which does not exist",
                                           id(s.index), id(*p)));
          continue;
        }
        if (!shards[*p].closed_us) {
          Lineage(s.index, absl::StrFormat("shard %s names parent %s, which is not closed",
                                           id(s.index), id(*p)));
        } else if (s.first_counter <= shards[*p].ending_counter) {
          Lineage(s.index,
                  absl::StrFormat("shard %s starts at counter %d, not above its parent %s's "
                                  "ending counter %d",
                                  id(s.index), s.first_counter, id(*p), shards[*p].ending_counter));
        }
      }
      if (s.adjacent_parent && !s.parent) {
        Lineage(s.index,
                absl::StrFormat("shard %s has an adjacent parent but no parent", id(s.index)));
      }
    }
    for (const internal::ShardMeta& p : shards) {
      if (!p.closed_us) continue;
      std::vector<const internal::ShardMeta*> splits;
      std::vector<const internal::ShardMeta*> merges;
      for (const internal::ShardMeta& c : shards) {
        if (c.parent == p.index || c.adjacent_parent == p.index) {
          (c.adjacent_parent ? merges : splits).push_back(&c);
        }
      }
      if (splits.empty() && merges.empty()) {
        Lineage(p.index, absl::StrFormat("closed shard %s has no children", id(p.index)));
        continue;
      }
      if (!merges.empty()) {
        if (merges.size() != 1 || !splits.empty()) {
          Lineage(p.index, absl::StrFormat("closed shard %s has %d children, one of them a "
                                           "merge: a merged shard has exactly one child",
                                           id(p.index), merges.size() + splits.size()));
          continue;
        }
        const internal::ShardMeta& c = *merges[0];
        if (c.parent != p.index) continue;  // checked once, from the parent
        if (*c.adjacent_parent >= shards.size()) continue;
        const internal::ShardMeta& a = p;
        const internal::ShardMeta& b = shards[*c.adjacent_parent];
        const HashKeyRange& ra = a.range;
        const HashKeyRange& rb = b.range;
        const bool adjacent = (ra.ending_hash_key < HashKey::Max() &&
                               HashKey(ra.ending_hash_key.value() + 1) == rb.starting_hash_key) ||
                              (rb.ending_hash_key < HashKey::Max() &&
                               HashKey(rb.ending_hash_key.value() + 1) == ra.starting_hash_key);
        const HashKeyRange union_range{std::min(ra.starting_hash_key, rb.starting_hash_key),
                                       std::max(ra.ending_hash_key, rb.ending_hash_key)};
        if (!adjacent || c.range != union_range) {
          Lineage(c.index, absl::StrFormat("merge child %s covers %s, not its parents %s %s and "
                                           "%s %s",
                                           id(c.index), RangeText(c.range), id(a.index),
                                           RangeText(ra), id(b.index), RangeText(rb)));
        }
        continue;
      }
      std::sort(splits.begin(), splits.end(), [](const auto* x, const auto* y) {
        return x->range.starting_hash_key < y->range.starting_hash_key;
      });
      bool tiles = splits.front()->range.starting_hash_key == p.range.starting_hash_key &&
                   splits.back()->range.ending_hash_key == p.range.ending_hash_key;
      for (size_t i = 1; i < splits.size() && tiles; ++i) {
        const HashKey end = splits[i - 1]->range.ending_hash_key;
        tiles =
            end < HashKey::Max() && HashKey(end.value() + 1) == splits[i]->range.starting_hash_key;
      }
      if (!tiles) {
        std::string ranges;
        for (const auto* c : splits) {
          ranges += absl::StrFormat(" %s %s", id(c->index), RangeText(c->range));
        }
        Lineage(p.index, absl::StrFormat("the children of %s %s do not cover exactly its "
                                         "range:%s",
                                         id(p.index), RangeText(p.range), ranges));
      }
    }
    // The open shards tile the hash-key space.
    std::vector<const internal::ShardMeta*> open;
    for (const internal::ShardMeta& s : shards) {
      if (!s.closed_us) open.push_back(&s);
    }
    std::sort(open.begin(), open.end(), [](const auto* x, const auto* y) {
      return x->range.starting_hash_key < y->range.starting_hash_key;
    });
    if (open.empty()) {
      Lineage(std::nullopt, "no open shard");
      return;
    }
    HashKey expected;  // 0
    bool covered_to_max = false;
    for (const internal::ShardMeta* s : open) {
      if (covered_to_max || s->range.starting_hash_key != expected) {
        Lineage(s->index,
                absl::StrFormat("the open shards do not tile the hash key space: %s starts at "
                                "%s, expected %s",
                                id(s->index), s->range.starting_hash_key.ToString(),
                                covered_to_max ? "none after 2^128-1" : expected.ToString()));
        return;
      }
      if (s->range.ending_hash_key == HashKey::Max()) {
        covered_to_max = true;
      } else {
        expected = HashKey(s->range.ending_hash_key.value() + 1);
      }
    }
    if (!covered_to_max) {
      Lineage(std::nullopt,
              absl::StrFormat("the open shards do not tile the hash key space: nothing covers "
                              "%s..2^128-1",
                              expected.ToString()));
    }
  }

  static std::string Where(const Finding& f) {
    std::string where;
    if (f.shard) where = absl::StrFormat("shard %s", ShardId(*f.shard).ToString());
    if (!f.file.empty()) {
      if (!where.empty()) where += ", ";
      where += (f.check == "segment" && f.shard && absl::EndsWith(f.file, ".seg"))
                   ? absl::StrFormat("segment %s", f.file)
                   : f.file;
    }
    if (f.offset) where += absl::StrFormat(", offset %d", *f.offset);
    return where;
  }

  void Print(bool json) {
    uint64_t segments = 0, frames = 0, records = 0;
    for (const ShardSummary& s : summaries_) {
      segments += s.segments;
      frames += s.frames;
      records += s.records;
    }
    const int damage = damage_count();
    const int notes = static_cast<int>(findings_.size()) - damage;
    if (json) {
      for (const ShardSummary& s : summaries_) {
        std::cout << JsonObject()
                         .Str("kind", "shard")
                         .Str("shard_id", ShardId(s.index).ToString())
                         .Str("state", s.state)
                         .Int("segments", s.segments)
                         .Uint("frames", s.frames)
                         .Uint("records", s.records)
                         .Uint("bytes", s.bytes)
                         .Bool("ok", !s.damaged)
                         .Line();
      }
      for (const Finding& f : findings_) {
        JsonObject o;
        o.Str("kind", f.severity == Severity::kDamage ? "damage" : "note").Str("check", f.check);
        if (f.shard) {
          o.Str("shard_id", ShardId(*f.shard).ToString());
        } else {
          o.Null("shard_id");
        }
        o.Str("file", f.file);
        if (f.offset) {
          o.Uint("offset", *f.offset);
        } else {
          o.Null("offset");
        }
        std::cout << o.Str("message", f.message).Line();
      }
      std::cout << JsonObject()
                       .Str("kind", "summary")
                       .Str("result", damage > 0 ? "damaged" : "ok")
                       .Int("damage", damage)
                       .Int("notes", notes)
                       .Int("shards", static_cast<int64_t>(summaries_.size()))
                       .Uint("segments", segments)
                       .Uint("frames", frames)
                       .Uint("records", records)
                       .Line();
      return;
    }
    if (meta_) {
      std::cout << absl::StrFormat("METADATA: ok (stream %s, %d shards)\n", meta_->name,
                                   meta_->shards.size());
    }
    Table table({"SHARD", "STATE", "SEGMENTS", "FRAMES", "RECORDS", "BYTES", "RESULT"},
                {Align::kLeft, Align::kLeft, Align::kRight, Align::kRight, Align::kRight,
                 Align::kRight, Align::kLeft});
    for (const ShardSummary& s : summaries_) {
      table.AddRow({ShardId(s.index).ToString(), s.state, std::to_string(s.segments),
                    std::to_string(s.frames), std::to_string(s.records), std::to_string(s.bytes),
                    s.damaged ? "DAMAGED" : "ok"});
    }
    std::cout << table.Render();
    for (const Finding& f : findings_) {
      const std::string where = Where(f);
      std::cout << (f.severity == Severity::kDamage ? "damage: " : "note: ") << where
                << (where.empty() ? "" : ": ") << f.message << "\n";
    }
    if (damage > 0) {
      std::cout << absl::StrFormat(
          "verify: %s is DAMAGED: %d problem%s (and %d note%s) in %d shards, %d segments, %d "
          "frames, %d records\n",
          dir_, damage, damage == 1 ? "" : "s", notes, notes == 1 ? "" : "s", summaries_.size(),
          segments, frames, records);
    } else {
      std::cout << absl::StrFormat(
          "verify: %s is ok: %d shards, %d segments, %d frames, %d records checked (%d note%s)\n",
          dir_, summaries_.size(), segments, frames, records, notes, notes == 1 ? "" : "s");
    }
  }

  const std::string dir_;
  bool has_metadata_file_ = false;
  std::optional<internal::StreamMeta> meta_;
  std::vector<uint64_t> ceilings_;
  std::vector<Finding> findings_;
  std::vector<ShardSummary> summaries_;
  uint64_t progress_done_ = 0;
  uint64_t encrypted_frames_ = 0;
  std::unique_ptr<internal::FrameKeyring> keyring_;  // with --keyring
};

}  // namespace

int RunVerify(const VerifyOptions& options) { return Verifier(options.dir).Run(options.json); }

}  // namespace rill::cli
