// InMemoryCheckpointStore, and the validation both stores share.
#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_format.h"
#include "base/strings.h"
#include "consume/checkpoint_store_internal.h"
#include "rill/base/error.h"
#include "rill/base/internal/mutex.h"
#include "rill/consume/checkpoint_store.h"

namespace rill {
namespace internal {

absl::Status ValidateApplicationName(std::string_view application) {
  const bool ok = IsKinesisName(application);
  if (ok) return absl::OkStatus();
  return InvalidArgumentError(absl::StrFormat(
      "application name '%s' is invalid: it must have 1-128 characters of [a-zA-Z0-9_.-]",
      ToAbsl(application.substr(0, 200))));
}

absl::Status ValidateLeaseKey(std::string_view lease_key) {
  if (!lease_key.empty()) return absl::OkStatus();
  return InvalidArgumentError("lease key must not be empty");
}

absl::Status ValidateLeases(std::string_view application, absl::Span<const Lease> leases) {
  if (absl::Status s = ValidateApplicationName(application); !s.ok()) return s;
  for (const Lease& lease : leases) {
    if (absl::Status s = ValidateLeaseKey(lease.lease_key); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace internal

absl::StatusOr<std::vector<absl::Status>> CheckpointStore::UpdateLeases(
    std::string_view application, absl::Span<const LeaseUpdate> updates) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  std::vector<absl::Status> results;
  results.reserve(updates.size());
  for (const LeaseUpdate& u : updates) {
    absl::Status s = UpdateLease(application, u.lease, u.expected_counter);
    // A storage error is the whole call's, as the batching stores report it.
    if (GetErrorCode(s) == ErrorCode::kInternalFailure) return s;
    results.push_back(std::move(s));
  }
  return results;
}

absl::StatusOr<std::vector<bool>> CheckpointStore::CreateLeasesIfAbsent(
    std::string_view application, absl::Span<const Lease> leases) {
  if (absl::Status s = internal::ValidateLeases(application, leases); !s.ok()) return s;
  std::vector<bool> created;
  created.reserve(leases.size());
  for (const Lease& lease : leases) {
    absl::StatusOr<bool> c = CreateLeaseIfAbsent(application, lease);
    if (!c.ok()) return c.status();
    created.push_back(*c);
  }
  return created;
}

struct InMemoryCheckpointStore::State {
  using Table = std::map<std::string, Lease, std::less<>>;
  internal::Mutex mu;
  std::map<std::string, Table, std::less<>> tables ABSL_GUARDED_BY(mu);  // by application

  // The application's table, or null if it has none yet.
  Table* Find(std::string_view application) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = tables.find(application);
    return it == tables.end() ? nullptr : &it->second;
  }
};

InMemoryCheckpointStore::InMemoryCheckpointStore() : state_(std::make_unique<State>()) {}
InMemoryCheckpointStore::~InMemoryCheckpointStore() = default;

absl::StatusOr<std::vector<Lease>> InMemoryCheckpointStore::ListLeases(
    std::string_view application) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  internal::MutexLock<internal::Mutex> lock(&state_->mu);
  std::vector<Lease> leases;
  if (const State::Table* table = state_->Find(application)) {
    leases.reserve(table->size());
    for (const auto& [key, lease] : *table) leases.push_back(lease);
  }
  return leases;
}

absl::StatusOr<std::optional<Lease>> InMemoryCheckpointStore::GetLease(std::string_view application,
                                                                       std::string_view lease_key) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  if (absl::Status s = internal::ValidateLeaseKey(lease_key); !s.ok()) return s;
  internal::MutexLock<internal::Mutex> lock(&state_->mu);
  const State::Table* table = state_->Find(application);
  if (table == nullptr) return std::optional<Lease>();
  auto it = table->find(lease_key);
  if (it == table->end()) return std::optional<Lease>();
  return std::optional<Lease>(it->second);
}

absl::StatusOr<bool> InMemoryCheckpointStore::CreateLeaseIfAbsent(std::string_view application,
                                                                  const Lease& lease) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  if (absl::Status s = internal::ValidateLeaseKey(lease.lease_key); !s.ok()) return s;
  internal::MutexLock<internal::Mutex> lock(&state_->mu);
  auto table = state_->tables.find(application);
  if (table == state_->tables.end()) {
    table = state_->tables.emplace(std::string(application), State::Table()).first;
  }
  return table->second.emplace(lease.lease_key, lease).second;
}

namespace {

// The common check of UpdateLease and DeleteLease.
absl::Status CheckCounter(std::string_view application, std::string_view lease_key,
                          const Lease* stored, int64_t expected_counter) {
  if (stored == nullptr) {
    return ResourceNotFoundError(absl::StrFormat("application %s has no lease %s",
                                                 internal::ToAbsl(application),
                                                 internal::ToAbsl(lease_key)));
  }
  if (stored->counter != expected_counter) {
    return ResourceInUseError(
        absl::StrFormat("lease %s of application %s has counter %d, not the expected %d",
                        internal::ToAbsl(lease_key), internal::ToAbsl(application), stored->counter,
                        expected_counter));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status InMemoryCheckpointStore::UpdateLease(std::string_view application, const Lease& lease,
                                                  int64_t expected_counter) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  if (absl::Status s = internal::ValidateLeaseKey(lease.lease_key); !s.ok()) return s;
  internal::MutexLock<internal::Mutex> lock(&state_->mu);
  State::Table* table = state_->Find(application);
  Lease* stored = nullptr;
  if (table != nullptr) {
    auto it = table->find(lease.lease_key);
    if (it != table->end()) stored = &it->second;
  }
  if (absl::Status s = CheckCounter(application, lease.lease_key, stored, expected_counter);
      !s.ok()) {
    return s;
  }
  *stored = lease;
  return absl::OkStatus();
}

absl::Status InMemoryCheckpointStore::DeleteLease(std::string_view application,
                                                  std::string_view lease_key,
                                                  int64_t expected_counter) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  if (absl::Status s = internal::ValidateLeaseKey(lease_key); !s.ok()) return s;
  internal::MutexLock<internal::Mutex> lock(&state_->mu);
  State::Table* table = state_->Find(application);
  State::Table::iterator it;
  const Lease* stored = nullptr;
  if (table != nullptr) {
    it = table->find(lease_key);
    if (it != table->end()) stored = &it->second;
  }
  if (absl::Status s = CheckCounter(application, lease_key, stored, expected_counter); !s.ok()) {
    return s;
  }
  table->erase(it);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<absl::Status>> InMemoryCheckpointStore::UpdateLeases(
    std::string_view application, absl::Span<const LeaseUpdate> updates) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  std::vector<absl::Status> results;
  results.reserve(updates.size());
  internal::MutexLock<internal::Mutex> lock(&state_->mu);
  State::Table* table = state_->Find(application);
  for (const LeaseUpdate& u : updates) {
    if (absl::Status s = internal::ValidateLeaseKey(u.lease.lease_key); !s.ok()) {
      results.push_back(std::move(s));
      continue;
    }
    Lease* stored = nullptr;
    if (table != nullptr) {
      auto it = table->find(u.lease.lease_key);
      if (it != table->end()) stored = &it->second;
    }
    absl::Status s = CheckCounter(application, u.lease.lease_key, stored, u.expected_counter);
    if (s.ok()) *stored = u.lease;
    results.push_back(std::move(s));
  }
  return results;
}

absl::StatusOr<std::vector<bool>> InMemoryCheckpointStore::CreateLeasesIfAbsent(
    std::string_view application, absl::Span<const Lease> leases) {
  if (absl::Status s = internal::ValidateLeases(application, leases); !s.ok()) return s;
  std::vector<bool> created;
  created.reserve(leases.size());
  internal::MutexLock<internal::Mutex> lock(&state_->mu);
  auto table = state_->tables.find(application);
  if (table == state_->tables.end()) {
    table = state_->tables.emplace(std::string(application), State::Table()).first;
  }
  for (const Lease& lease : leases)
    created.push_back(table->second.emplace(lease.lease_key, lease).second);
  return created;
}

}  // namespace rill
