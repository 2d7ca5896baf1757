// Reference tables (internal): Kinesis Data Analytics' reference data source (an S3 object
// there, a local file here) loaded whole into memory for joins with in-application streams.
//
// Thread safety: reentrant. Allocation: the file's contents (read whole) and the rows.
#ifndef RILL_SQL_REFERENCE_TABLE_H_
#define RILL_SQL_REFERENCE_TABLE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rill/sql/record_format.h"
#include "rill/sql/value.h"

namespace rill::sql {

// KDA's limit on a reference data source's size.
inline constexpr uint64_t kMaxReferenceTableBytes = uint64_t{1} << 30;

// Loads every row of a file with `format`: CSV (rows at format.row_delimiter, as
// RecordDecoder reads a record) or JSON lines (one JSON record per line; blank lines skipped;
// a record's row path may give several rows). Errors: kResourceNotFound for a missing file
// (naming the path); kInvalidArgument for an invalid format, or for a row that does not convert
// (naming the line number, 1-based, and the reason): a reference table loads entirely or not at
// all; kLimitExceeded for a file over 1 GiB; kInternalFailure for a file that cannot be read.
absl::StatusOr<std::vector<std::vector<Value>>> LoadReferenceTable(const std::string& path,
                                                                   const RecordFormat& format);

}  // namespace rill::sql

#endif  // RILL_SQL_REFERENCE_TABLE_H_
