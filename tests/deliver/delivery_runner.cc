// A delivering process for the crash test (tests/deliver/delivery_crash_test.cc): it puts records
// into a durable source stream and delivers them with two delivery streams, one to zstd objects
// in a directory, one to a PostgreSQL table, until it is killed.
//
//   delivery_runner DIR CONNINFO run RUN   puts records RUN * 1,000,000 + i, i = 0, 1, ..., and
//                                          logs each acknowledged one in DIR/acked-RUN.log
//   delivery_runner DIR CONNINFO drain     puts nothing; delivers everything, closes, exits 0
//
// Records are {"n":N,"v":"..."}. The transformation fails every N divisible by 97, so that the
// error outputs have records the test can account for.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "rill/consume/sqlite_checkpoint_store.h"
#include "rill/deliver/delivery_stream.h"
#include "rill/stream/stream.h"

namespace {

int Fail(const absl::Status& status, const char* what) {
  std::fprintf(stderr, "delivery_runner: %s: %s\n", what, status.ToString().c_str());
  return 2;
}

rill::TransformFunction FailMultiplesOf97() {
  return [](const rill::TransformInvocation& invocation)
             -> absl::StatusOr<std::vector<rill::TransformedRecord>> {
    std::vector<rill::TransformedRecord> out;
    out.reserve(invocation.records.size());
    for (const rill::TransformInput& in : invocation.records) {
      rill::TransformedRecord& t = out.emplace_back();
      t.record_id = std::string(in.record_id);
      // {"n":N,...}
      const std::string data(in.data);
      const size_t comma = data.find(',');
      int64_t n = -1;
      if (comma == std::string::npos || !absl::SimpleAtoi(data.substr(5, comma - 5), &n)) {
        t.result = rill::TransformResult::kProcessingFailed;
      } else if (n % 97 == 0) {
        t.result = rill::TransformResult::kProcessingFailed;
      } else {
        t.result = rill::TransformResult::kOk;
        t.data = data;
      }
    }
    return out;
  };
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: delivery_runner DIR CONNINFO run RUN | drain\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const std::string conninfo = argv[2];
  const std::string mode = argv[3];
  int run = 0;
  if (mode == "run" && (argc < 5 || !absl::SimpleAtoi(argv[4], &run))) return 2;

  rill::StreamOptions source_options;
  source_options.name = "events";
  source_options.shard_count = 2;
  source_options.storage = rill::StorageOptions{.directory = (dir / "source").string()};
  auto source = rill::Stream::Open(source_options);
  if (!source.ok()) return Fail(source.status(), "source");

  auto files_store = rill::SqliteCheckpointStore::Open((dir / "files.db").string());
  if (!files_store.ok()) return Fail(files_store.status(), "files.db");
  auto pg_store = rill::SqliteCheckpointStore::Open((dir / "pg.db").string());
  if (!pg_store.ok()) return Fail(pg_store.status(), "pg.db");

  rill::ProcessingConfiguration processing;
  processing.transform = FailMultiplesOf97();
  processing.buffer_size_bytes = 200 * 1024;

  rill::DeliveryStreamOptions files;
  files.name = "to-files";
  files.source_stream = source->get();
  files.checkpoint_store = files_store->get();
  files.starting_position = rill::StartingPosition::TrimHorizon();
  files.processing = processing;
  files.processing.append_delimiter = true;
  files.destination = rill::ObjectStoreDestination{
      .directory = (dir / "bucket").string(),
      .prefix = "events/",
      .error_output_prefix = "errors/!{firehose:error-output-type}/",
      .custom_time_zone = "UTC",
      .file_extension = "",
      .compression = rill::CompressionFormat::kZstd,
      .buffering = {.size_bytes = 1 << 20, .interval = absl::ZeroDuration()}};
  auto to_files = rill::DeliveryStream::Create(files);
  if (!to_files.ok()) return Fail(to_files.status(), "to-files");

  rill::DeliveryStreamOptions pg;
  pg.name = "to-pg";
  pg.source_stream = source->get();
  pg.checkpoint_store = pg_store->get();
  pg.starting_position = rill::StartingPosition::TrimHorizon();
  pg.processing = processing;
  rill::PostgresDestination table;
  table.conninfo = conninfo;
  table.table = "events";
  table.columns = {"n", "v"};
  table.json_paths = {".n", ".v"};
  table.buffering = {.size_bytes = 1 << 20, .interval = absl::ZeroDuration()};
  pg.destination = table;
  pg.error_output = rill::ErrorOutput{.directory = (dir / "pg-errors").string(),
                                      .prefix = "!{firehose:error-output-type}/",
                                      .custom_time_zone = "UTC"};
  auto to_pg = rill::DeliveryStream::Create(pg);
  if (!to_pg.ok()) return Fail(to_pg.status(), "to-pg");

  if (mode == "drain") {
    // Read until a round finds nothing new, then close (which flushes and checkpoints).
    int64_t seen = -1;
    for (int quiet = 0; quiet < 3;) {
      for (auto* d : {to_files->get(), to_pg->get()}) {
        d->Poll().IgnoreError();
        d->Flush().IgnoreError();
      }
      const int64_t now =
          (*to_files)->metrics().incoming_records + (*to_pg)->metrics().incoming_records;
      quiet = now == seen ? quiet + 1 : 0;
      seen = now;
    }
    absl::Status a = (*to_files)->Close();
    absl::Status b = (*to_pg)->Close();
    if (!a.ok()) return Fail(a, "close to-files");
    if (!b.ok()) return Fail(b, "close to-pg");
    return 0;
  }

  if (!(*to_files)->Start().ok() || !(*to_pg)->Start().ok()) return 2;
  const std::string log_path = (dir / absl::StrCat("acked-", run, ".log")).string();
  const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return 2;
  // Puts until killed (the test kills it within seconds; a minute is a safety net).
  std::vector<std::string> data;
  std::vector<rill::PutRecordsEntry> entries;
  for (int64_t i = 0; i < 100000; ++i) {
    const int64_t n = int64_t{run} * 1000000 + i;
    auto put = (*source)->PutRecord(absl::StrCat("key-", n % 13),
                                    absl::StrCat("{\"n\":", n, ",\"v\":\"value\\t", n, "\"}"));
    if (!put.ok()) return Fail(put.status(), "put");
    const std::string line = absl::StrCat(n, "\n");
    if (write(log, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return 2;
    if (i % 20 == 19) usleep(2000);  // real time: a producer's pace, so kills land mid-stream
  }
  return 3;
}
