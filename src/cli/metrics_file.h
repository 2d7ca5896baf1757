// <dir>/METRICS: the metrics snapshot the process holding a durable stream rewrites about once a
// second (one line, exactly rill::ToJson(stream->metrics())), read back by `rill metrics` and
// `rill top`.
//
// Thread safety: pure functions.
#ifndef RILL_CLI_METRICS_FILE_H_
#define RILL_CLI_METRICS_FILE_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "rill/metrics/metrics.h"

namespace rill::cli {

// Parses what rill::ToJson wrote, so that ToJson(*ParseMetricsJson(ToJson(s))) == ToJson(s).
// Unknown keys are ignored (a newer writer may add metrics); missing ones stay zero.
// kInvalidArgument naming what is wrong for text that is not such a snapshot.
absl::StatusOr<MetricsSnapshot> ParseMetricsJson(std::string_view json);

struct MetricsFile {
  std::string line;  // the file's JSON, without a trailing newline
  MetricsSnapshot snapshot;
};

// Reads and parses <dir>/METRICS. Failure kExitNotFound when there is none (no process has
// written metrics yet), kExitError when it does not parse.
absl::StatusOr<MetricsFile> ReadMetricsFile(const std::string& dir);

}  // namespace rill::cli

#endif  // RILL_CLI_METRICS_FILE_H_
