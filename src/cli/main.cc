// `rill`: the operator's command for durable rill streams. Every command takes the directory of a
// durable stream (StorageOptions::directory). See docs/cli.md, and `rill --help`.
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "rill/version.h"

namespace {

using rill::cli::ExitCodeHelp;

constexpr char kDirHelp[] = "the stream's directory (its StorageOptions::directory)";
constexpr char kJsonHelp[] = "one JSON object per line instead of a table";

void AddRecordOutput(CLI::App* command, rill::cli::RecordOutput* output) {
  command->add_flag("--json", output->json, "one JSON object per record");
  command->add_flag("--raw", output->raw,
                    "write only each record's data bytes, each followed by a newline");
  command->add_flag("--length-prefixed", output->length_prefixed,
                    "with --raw: write each record as a u32 big-endian length and its bytes "
                    "(what `rill put --length-prefixed` reads)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "rill: inspect and operate durable rill streams (the directories of "
      "StorageOptions::directory).\nThe read-only commands (describe, shards, get, tail, groups, "
      "metrics, verify, top) work\nwhile another process has the stream open; put, split, merge, "
      "scale and serve need it to themselves.",
      "rill"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "rill " RILL_VERSION_STRING);
  app.footer(std::string(ExitCodeHelp()));
  // Options of the whole tool may come after the command too.
  app.fallthrough();
  std::string keyring;
  app.add_option("--keyring", keyring, "the keyring file (FileKeyProvider) of encrypted streams")
      ->envname("RILL_KEYRING");

  rill::cli::DescribeOptions describe;
  CLI::App* describe_cmd = app.add_subcommand(
      "describe",
      "the stream's summary: name, status, mode, shards, retention, creation time, consumers, "
      "records, bytes on disk");
  describe_cmd->add_option("DIR", describe.dir, kDirHelp)->required();
  describe_cmd->add_flag("--json", describe.json, kJsonHelp);

  rill::cli::ShardsOptions shards;
  CLI::App* shards_cmd = app.add_subcommand(
      "shards", "every shard: hash-key range, lineage, open or closed, records, bytes");
  shards_cmd->add_option("DIR", shards.dir, kDirHelp)->required();
  shards_cmd->add_flag("--json", shards.json, kJsonHelp);

  rill::cli::GetOptions get;
  CLI::App* get_cmd = app.add_subcommand("get", "records of one shard from a position");
  get_cmd->add_option("DIR", get.dir, kDirHelp)->required();
  get_cmd->add_option("--shard,-s", get.shard, "the shard: shardId-000000000001 or 1")->required();
  get_cmd
      ->add_option("--from", get.from,
                   "trim-horizon | latest | at:SEQ | after:SEQ | time:T, T in RFC 3339 or "
                   "seconds since the epoch")
      ->capture_default_str();
  get_cmd->add_option("-n,--limit", get.limit, "most records to print")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  AddRecordOutput(get_cmd, &get.output);

  rill::cli::TailOptions tail;
  CLI::App* tail_cmd = app.add_subcommand(
      "tail",
      "every record of every shard, in order per shard, parents before children; -f follows "
      "new records until Ctrl-C or SIGTERM");
  tail_cmd->add_option("DIR", tail.dir, kDirHelp)->required();
  tail_cmd->add_flag("-f,--follow", tail.follow, "keep printing records as they are put");
  tail_cmd->add_option("--max", tail.max, "stop after this many records (0: no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  tail_cmd
      ->add_option("--interval", tail.interval_seconds,
                   "with -f: seconds between looks at the stream")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 3600.0));
  AddRecordOutput(tail_cmd, &tail.output);

  rill::cli::PutOptions put;
  CLI::App* put_cmd = app.add_subcommand(
      "put",
      "put records read from stdin, one per line (or --length-prefixed); needs the stream to "
      "itself");
  put_cmd->add_option("DIR", put.dir, kDirHelp)->required();
  put_cmd->add_option("--key,-k", put.key,
                      "the partition key of every record (with --key-field: of records "
                      "without the field)");
  put_cmd->add_option("--key-field", put.key_field,
                      "take each record's partition key from this field of the line's JSON "
                      "object");
  put_cmd->add_flag("--length-prefixed", put.length_prefixed,
                    "read records as a u32 big-endian length and that many bytes");
  put_cmd->add_flag("--json", put.json, "the result as one JSON object");

  rill::cli::SplitOptions split;
  CLI::App* split_cmd =
      app.add_subcommand("split", "split an open shard in two (SplitShard); needs the stream");
  split_cmd->add_option("DIR", split.dir, kDirHelp)->required();
  split_cmd->add_option("--shard,-s", split.shard, "the shard to split")->required();
  split_cmd->add_option("--at", split.at,
                        "the second child's starting hash key, in decimal (default: the "
                        "middle of the shard's range)");
  split_cmd->add_flag("--json", split.json, kJsonHelp);

  rill::cli::MergeOptions merge;
  CLI::App* merge_cmd = app.add_subcommand(
      "merge", "merge two adjacent open shards into one (MergeShards); needs the stream");
  merge_cmd->add_option("DIR", merge.dir, kDirHelp)->required();
  merge_cmd->add_option("--shard,-s", merge.shard, "the first shard")->required();
  merge_cmd->add_option("--adjacent,-a", merge.adjacent, "the shard adjacent to it")->required();
  merge_cmd->add_flag("--json", merge.json, kJsonHelp);

  rill::cli::ScaleOptions scale;
  CLI::App* scale_cmd = app.add_subcommand(
      "scale", "scale to a number of open shards (UpdateShardCount); needs the stream");
  scale_cmd->add_option("DIR", scale.dir, kDirHelp)->required();
  scale_cmd->add_option("--count,-c", scale.count, "the open shard count to reach")
      ->required()
      ->check(CLI::PositiveNumber);
  scale_cmd->add_flag("--json", scale.json, kJsonHelp);

  rill::cli::GroupsOptions groups;
  CLI::App* groups_cmd = app.add_subcommand(
      "groups", "consumer applications' leases, owners, checkpoints and lag per shard");
  groups_cmd->add_option("DIR", groups.dir, kDirHelp)->required();
  groups_cmd
      ->add_option("--store", groups.store,
                   "the checkpoint store: a FileCheckpointStore directory, or a "
                   "SqliteCheckpointStore file (*.db, *.sqlite)")
      ->required();
  groups_cmd->add_option("--app", groups.app, "only this application (default: all)");
  groups_cmd->add_flag("--json", groups.json, kJsonHelp);

  rill::cli::MetricsOptions metrics;
  CLI::App* metrics_cmd = app.add_subcommand(
      "metrics", "the metrics the process holding the stream last wrote to DIR/METRICS");
  metrics_cmd->add_option("DIR", metrics.dir, kDirHelp)->required();
  metrics_cmd->add_option("--format", metrics.format, "prometheus or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"prometheus", "json"}));

  rill::cli::VerifyOptions verify;
  CLI::App* verify_cmd = app.add_subcommand(
      "verify",
      "check every file: segment frames (checksums, full decode), counters, lineage, METADATA "
      "and COUNTERS; exit 4 on damage");
  verify_cmd->add_option("DIR", verify.dir, kDirHelp)->required();
  verify_cmd->add_flag("--json", verify.json, "one JSON object per finding, then a summary");

  rill::cli::ServeOptions serve;
  CLI::App* serve_cmd = app.add_subcommand(
      "serve", "serve streams on the Kinesis wire API until Ctrl-C or SIGTERM; needs the streams");
  serve_cmd->add_option("DIR", serve.dirs, "the streams' directories")->required();
  serve_cmd->add_option("--host", serve.host, "address to listen on")->capture_default_str();
  serve_cmd->add_option("--port,-p", serve.port, "port to listen on (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  CLI::Option* no_auth = serve_cmd->add_flag(
      "--no-auth", serve.no_auth, "accept unsigned requests (anyone who can connect may write)");
  CLI::Option* access_key = serve_cmd->add_option("--access-key", serve.access_key,
                                                  "the access key id clients sign with");
  CLI::Option* secret_key =
      serve_cmd->add_option("--secret-key", serve.secret_key, "its secret access key");
  access_key->needs(secret_key);
  secret_key->needs(access_key);
  no_auth->excludes(access_key);
  no_auth->excludes(secret_key);

  rill::cli::TopOptions top;
  CLI::App* top_cmd = app.add_subcommand(
      "top", "a live view of the stream's traffic per shard, from DIR/METRICS; q or Ctrl-C quits");
  top_cmd->add_option("DIR", top.dir, kDirHelp)->required();
  top_cmd->add_option("--interval", top.interval_seconds, "seconds between refreshes")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 3600.0));
  top_cmd->add_option("--iterations", top.iterations, "stop after this many refreshes (0: until q)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "rill: error: " << e.what() << "\nRun `rill --help` for the commands, or "
              << "`rill <command> --help` for one.\n";
    return rill::cli::kExitUsage;
  }

  rill::cli::SetKeyringPath(keyring);
  if (*describe_cmd) return rill::cli::RunDescribe(describe);
  if (*shards_cmd) return rill::cli::RunShards(shards);
  if (*get_cmd) return rill::cli::RunGet(get);
  if (*tail_cmd) return rill::cli::RunTail(tail);
  if (*put_cmd) return rill::cli::RunPut(put);
  if (*split_cmd) return rill::cli::RunSplit(split);
  if (*merge_cmd) return rill::cli::RunMerge(merge);
  if (*scale_cmd) return rill::cli::RunScale(scale);
  if (*groups_cmd) return rill::cli::RunGroups(groups);
  if (*metrics_cmd) return rill::cli::RunMetrics(metrics);
  if (*verify_cmd) return rill::cli::RunVerify(verify);
  if (*serve_cmd) return rill::cli::RunServe(serve);
  if (*top_cmd) return rill::cli::RunTop(top);
  return rill::cli::kExitUsage;
}
