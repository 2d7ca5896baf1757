// The PostgreSQL destination: each batch is COPYed into a table, exactly once.
//
// One transaction per attempt: BEGIN; an advisory lock on the delivery stream's name (two
// processes delivering for the same stream name take turns); the stream's progress rows of
// rill_delivery_progress, FOR UPDATE; COPY of the records above their shard's progress; the
// progress raised to the batch's last sequence number of each shard; COMMIT. A lost COMMIT, a
// crash or a redelivery after a restored checkpoint thus never writes a row twice: the next
// attempt re-reads the progress and skips what committed.
//
// Rows a table refuses (SQLSTATE class 22 data exception or 23 integrity constraint violation,
// e.g. "abc" for an integer column) do not fail the batch: the attempt is redone with a savepoint
// per group of rows, narrowing each failing group down to its bad rows, which the attempt
// reports in DeliveryAttempt::rejected ("PostgreSQL.DataError" with the server's message) while
// the rest commit. So is a record that is not a JSON object when columns are mapped.
//
// Names: the table ("name" or "schema.name") and the columns are identifiers taken literally
// (case-sensitive; they are quoted for the server), not SQL.
//
// Thread safety: one delivery thread calls Open() then Deliver(); nothing else.
#ifndef RILL_SRC_DELIVER_POSTGRES_DESTINATION_H_
#define RILL_SRC_DELIVER_POSTGRES_DESTINATION_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "deliver/destination.h"
#include "rill/deliver/destinations.h"

namespace rill::deliver_internal {

// The options' errors, before anything connects: kInvalidArgument for an empty conninfo or
// table, a table name of more than two dotted parts or an empty part, columns and json_paths of
// different sizes, an empty or repeated column, a json_path outside the jq subset, copy_options
// together with columns, or copy_options with HEADER (each record is a row); kValidation for
// retry_duration outside 0-7200 s, buffering.size_bytes outside 1-128 MiB or buffering.interval
// outside 0-900 s.
absl::Status ValidatePostgresDestination(const PostgresDestination& options);

// The destination for `options` (which ValidatePostgresDestination accepts; Open() checks
// again). Open() connects (kInternalFailure with libpq's message if it cannot), checks that the
// table exists (kResourceNotFound) and that the server accepts the COPY statement (columns that
// exist, valid copy_options: kInvalidArgument with the server's message otherwise), and creates
// rill_delivery_progress if absent. Deliver() reconnects a lost connection (the same libpq
// connection, reset); failures other than rejected rows are kRetryable "PostgreSQL.
// ConnectionFailed" (no connection) or "PostgreSQL.CopyFailed" (the server refused the
// transaction: a serialization failure, a dropped table, ...).
// `source` names the incarnation of the source whose sequence numbers the progress holds (the
// delivery stream's core passes the source stream's ARN and creation time, or DirectPut's own
// id): progress is kept per (delivery stream, source, shard), so that a source recreated under
// the same name, which numbers its records anew, is not skipped as already delivered.
std::unique_ptr<Destination> MakePostgresDestination(PostgresDestination options,
                                                     std::string delivery_stream_name,
                                                     std::string source = "");

}  // namespace rill::deliver_internal

#endif  // RILL_SRC_DELIVER_POSTGRES_DESTINATION_H_
