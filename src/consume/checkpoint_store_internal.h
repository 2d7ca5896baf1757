// What the checkpoint stores share: the rules for application names and lease rows.
#ifndef RILL_SRC_CONSUME_CHECKPOINT_STORE_INTERNAL_H_
#define RILL_SRC_CONSUME_CHECKPOINT_STORE_INTERNAL_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "rill/consume/checkpoint_store.h"

namespace rill::internal {

// OK for 1-128 characters of [a-zA-Z0-9_.-], else kInvalidArgument naming the rule.
absl::Status ValidateApplicationName(std::string_view application);

// OK for a non-empty lease key, else kInvalidArgument.
absl::Status ValidateLeaseKey(std::string_view lease_key);

// ValidateApplicationName, then ValidateLeaseKey for every lease (CreateLeasesIfAbsent).
absl::Status ValidateLeases(std::string_view application, absl::Span<const Lease> leases);

}  // namespace rill::internal

#endif  // RILL_SRC_CONSUME_CHECKPOINT_STORE_INTERNAL_H_
