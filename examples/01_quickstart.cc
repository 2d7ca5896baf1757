// Tutorial 1: a stream, two producers, and a reader per shard.
//
// Creates a 4-shard stream, puts records from two threads (each thread is a "game server" sending
// player actions), then reads every shard from TRIM_HORIZON and prints what each shard holds.
// Every status is checked: rill reports errors as values, never by aborting.
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "rill/rill.h"

namespace {

constexpr int kPlayers = 50;
constexpr int kActionsPerServer = 5000;

// Puts kActionsPerServer actions of the server's players; returns how many puts failed.
int RunServer(rill::Stream& stream, int server) {
  int failures = 0;
  for (int i = 0; i < kActionsPerServer; ++i) {
    const std::string player = "player-" + std::to_string(server * kPlayers + i % kPlayers);
    const std::string action = "{\"server\":" + std::to_string(server) +
                               ",\"action\":" + std::to_string(i) + ",\"kind\":\"move\"}";
    absl::StatusOr<rill::PutRecordResult> put = stream.PutRecord(player, action);
    if (!put.ok()) {
      std::fprintf(stderr, "put failed: %s\n", put.status().ToString().c_str());
      ++failures;
    }
  }
  return failures;
}

}  // namespace

int main() {
  rill::StreamOptions options;
  options.name = "player-actions";
  options.shard_count = 4;
  absl::StatusOr<std::unique_ptr<rill::Stream>> created = rill::Stream::Create(options);
  if (!created.ok()) {
    std::fprintf(stderr, "cannot create the stream: %s\n", created.status().ToString().c_str());
    return 1;
  }
  rill::Stream& stream = **created;
  std::printf("stream %s: %zu shards, retention %s\n", stream.name().c_str(),
              stream.ListShards().size(), absl::FormatDuration(stream.retention()).c_str());

  // Two producer threads put at once; each shard keeps the order of their puts.
  int failures[2] = {0, 0};
  std::thread a([&] { failures[0] = RunServer(stream, 0); });
  std::thread b([&] { failures[1] = RunServer(stream, 1); });
  a.join();
  b.join();
  if (failures[0] + failures[1] != 0) return 1;

  // Read every shard from the oldest record, page by page.
  int total = 0;
  for (const rill::ShardDescription& shard : stream.ListShards()) {
    absl::StatusOr<rill::ShardIterator> it =
        stream.GetShardIterator(shard.shard_id, rill::StartingPosition::TrimHorizon());
    if (!it.ok()) {
      std::fprintf(stderr, "GetShardIterator: %s\n", it.status().ToString().c_str());
      return 1;
    }
    int records = 0;
    std::map<std::string, int> per_player;
    rill::SequenceNumber first, last;
    std::optional<rill::ShardIterator> next = *it;
    while (next) {
      absl::StatusOr<rill::GetRecordsResult> batch = stream.GetRecords(*next, 1000);
      if (!batch.ok()) {
        std::fprintf(stderr, "GetRecords: %s\n", batch.status().ToString().c_str());
        return 1;
      }
      if (batch->records.empty()) break;  // caught up with an open shard
      for (const rill::Record& r : batch->records) {
        if (records == 0) first = r.sequence_number;
        last = r.sequence_number;
        ++per_player[std::string(r.partition_key)];
        ++records;
      }
      next = batch->next_shard_iterator;
    }
    total += records;
    std::printf("%s  hash keys from %s\n  %d records from %zu players, sequence numbers %s .. %s\n",
                shard.shard_id.ToString().c_str(),
                shard.hash_key_range.starting_hash_key.ToString().c_str(), records,
                per_player.size(), first.ToString().c_str(), last.ToString().c_str());
  }
  std::printf("read %d of %d records\n", total, 2 * kActionsPerServer);
  return total == 2 * kActionsPerServer ? 0 : 1;
}
