#include "cli/record_writer.h"

#include <iostream>

#include "cli/format.h"

namespace rill::cli {

RecordWriter::RecordWriter(RecordOutput output, bool shard_column)
    : output_(output), shard_column_(shard_column) {}

void RecordWriter::Add(ShardId shard, const Record& record) {
  if (output_.raw) {
    if (output_.length_prefixed) {
      const auto n = static_cast<uint32_t>(record.data.size());
      const char length[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                              static_cast<char>(n >> 8), static_cast<char>(n)};
      pending_.append(length, 4);
      pending_.append(record.data);
    } else {
      pending_.append(record.data).push_back('\n');
    }
    return;
  }
  const bool text = IsPrintableText(record.data);
  if (output_.json) {
    JsonObject o;
    o.Str("shard_id", shard.ToString())
        .Str("sequence_number", record.sequence_number.ToString())
        .Str("arrival", TimeText(record.approximate_arrival_timestamp))
        .Str("partition_key", record.partition_key);
    if (text) {
      o.Str("data", record.data);
    } else {
      o.Str("data_base64", Base64(record.data));
    }
    pending_.append(o.Line());
    return;
  }
  std::vector<std::string> row;
  if (shard_column_) row.push_back(shard.ToString());
  row.push_back(record.sequence_number.ToString());
  row.push_back(TimeText(record.approximate_arrival_timestamp));
  row.push_back(DisplayText(record.partition_key));
  row.push_back(text ? "text" : "base64");
  row.push_back(text ? std::string(record.data) : Base64(record.data));
  rows_.push_back(std::move(row));
}

void RecordWriter::Flush(bool header_if_empty) {
  if (!output_.raw && !output_.json && (!rows_.empty() || (header_if_empty && !header_written_))) {
    std::vector<std::string> headers;
    if (shard_column_) headers.push_back("SHARD");
    for (const char* h : {"SEQUENCE", "ARRIVAL", "KEY", "ENCODING", "DATA"}) headers.push_back(h);
    Table table(std::move(headers));
    for (auto& row : rows_) table.AddRow(std::move(row));
    rows_.clear();
    std::string text = table.Render();
    if (header_written_) text.erase(0, text.find('\n') + 1);
    header_written_ = true;
    std::cout << text;
  }
  if (!pending_.empty()) {
    std::cout.write(pending_.data(), static_cast<std::streamsize>(pending_.size()));
    pending_.clear();
  }
  std::cout.flush();
}

}  // namespace rill::cli
