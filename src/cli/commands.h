// The commands of the `rill` tool: one options struct and one Run function each. main.cc fills
// the structs from the command line (CLI11); each Run prints its output to stdout, errors to
// stderr, and returns the process' exit code (ExitCode in cli/common.h).
//
// Thread safety: each Run is called once, from the main thread.
#ifndef RILL_CLI_COMMANDS_H_
#define RILL_CLI_COMMANDS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace rill::cli {

// How record data is written by get and tail.
struct RecordOutput {
  bool json = false;             // one JSON object per record
  bool raw = false;              // only the data bytes, each followed by "\n"
  bool length_prefixed = false;  // with raw: u32 big-endian length, then the bytes
};

struct DescribeOptions {
  std::string dir;
  bool json = false;
};
int RunDescribe(const DescribeOptions& options);

struct ShardsOptions {
  std::string dir;
  bool json = false;
};
int RunShards(const ShardsOptions& options);

struct GetOptions {
  std::string dir;
  std::string shard;
  // trim-horizon | latest | at:SEQ | after:SEQ | time:T
  std::string from = "trim-horizon";
  int64_t limit = 100;
  RecordOutput output;
};
int RunGet(const GetOptions& options);

struct TailOptions {
  std::string dir;
  bool follow = false;
  int64_t max = 0;  // 0: no limit
  double interval_seconds = 0.2;
  RecordOutput output;
};
int RunTail(const TailOptions& options);

struct PutOptions {
  std::string dir;
  std::string key;
  std::string key_field;
  bool length_prefixed = false;
  bool json = false;
};
int RunPut(const PutOptions& options);

struct SplitOptions {
  std::string dir;
  std::string shard;
  std::string at;  // empty: the midpoint of the shard's range
  bool json = false;
};
int RunSplit(const SplitOptions& options);

struct MergeOptions {
  std::string dir;
  std::string shard;
  std::string adjacent;
  bool json = false;
};
int RunMerge(const MergeOptions& options);

struct ScaleOptions {
  std::string dir;
  int count = 0;
  bool json = false;
};
int RunScale(const ScaleOptions& options);

struct GroupsOptions {
  std::string dir;
  std::string store;
  std::string app;  // empty: every application in the store
  bool json = false;
};
int RunGroups(const GroupsOptions& options);

struct MetricsOptions {
  std::string dir;
  std::string format = "prometheus";  // prometheus | json
};
int RunMetrics(const MetricsOptions& options);

struct VerifyOptions {
  std::string dir;
  bool json = false;
};
int RunVerify(const VerifyOptions& options);

struct ServeOptions {
  std::vector<std::string> dirs;
  std::string host = "127.0.0.1";
  int port = 4567;
  bool no_auth = false;
  std::string access_key;
  std::string secret_key;
};
int RunServe(const ServeOptions& options);

struct TopOptions {
  std::string dir;
  double interval_seconds = 1.0;
  int64_t iterations = 0;  // 0: until q, Ctrl-C or SIGTERM
};
int RunTop(const TopOptions& options);

}  // namespace rill::cli

#endif  // RILL_CLI_COMMANDS_H_
