// How `rill get` and `rill tail` print records: an aligned table (data as text when it is
// printable UTF-8, else base64, with an ENCODING column saying which), one JSON object per record
// ("data" or "data_base64"), or the raw data bytes.
//
// Thread safety: not thread-safe; one writer per output.
#ifndef RILL_CLI_RECORD_WRITER_H_
#define RILL_CLI_RECORD_WRITER_H_

#include <string>
#include <vector>

#include "cli/commands.h"
#include "rill/base/shard_id.h"
#include "rill/stream/record.h"

namespace rill::cli {

class RecordWriter {
 public:
  // `shard_column`: the table starts with the shard (tail reads every shard; get one).
  RecordWriter(RecordOutput output, bool shard_column);
  // Copies what it needs of `record` (whose views may dangle after the read's result goes).
  void Add(ShardId shard, const Record& record);
  // Writes what was added since the last call and flushes stdout. The table's header is
  // written with the first rows (or, with `header_if_empty`, on the first call even without
  // rows); later calls align their own rows.
  void Flush(bool header_if_empty = false);

 private:
  RecordOutput output_;
  bool shard_column_;
  bool header_written_ = false;
  std::vector<std::vector<std::string>> rows_;
  std::string pending_;  // JSON lines or raw bytes
};

}  // namespace rill::cli

#endif  // RILL_CLI_RECORD_WRITER_H_
