#include "deliver/simple_destinations.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rill/base/error.h"
#include "rill/stream/stream_api.h"

namespace rill::deliver_internal {
namespace {

class StreamDestinationImpl final : public Destination {
 public:
  explicit StreamDestinationImpl(StreamDestination options) : options_(std::move(options)) {}

  std::string_view metric_name() const override { return "Stream"; }
  std::string_view error_output_type() const override { return "stream-failed"; }
  absl::Duration retry_duration() const override { return options_.retry_duration; }

  DeliveryAttempt Deliver(const Batch& batch, int /*attempt*/) override {
    if (batch.delivery_id != resume_id_) {
      resume_id_ = batch.delivery_id;
      next_ = 0;
      rejected_.clear();
    }
    for (; next_ < batch.records.size(); ++next_) {
      const BatchRecord& r = batch.records[next_];
      const std::string_view key = r.key_size > 0 ? batch.partition_key(r) : batch.record_id(r);
      absl::StatusOr<PutRecordResult> put = options_.stream->PutRecord(key, batch.data(r));
      if (put.ok()) continue;
      const ErrorCode code = GetErrorCode(put.status());
      std::string error_code = absl::StrCat("Stream.", std::string(ErrorCodeName(code)));
      std::string message = std::string(put.status().message());
      // A record the stream will never take (too large for it) is not worth retrying, and holds
      // back none of the others.
      if (code == ErrorCode::kInvalidArgument || code == ErrorCode::kValidation) {
        rejected_.emplace_back(next_, std::move(message));
        rejected_code_ = std::move(error_code);
        continue;
      }
      DeliveryAttempt attempt = code == ErrorCode::kResourceNotFound
                                    ? DeliveryAttempt::Permanent(error_code, std::move(message))
                                    : DeliveryAttempt::Retryable(error_code, std::move(message));
      attempt.delivered = next_;  // the rejected ones among them are in `rejected`
      attempt.rejected = rejected_;
      attempt.rejected_error_code = rejected_code_;
      return attempt;
    }
    DeliveryAttempt attempt = DeliveryAttempt::Delivered();
    attempt.rejected = std::move(rejected_);
    attempt.rejected_error_code = std::move(rejected_code_);
    resume_id_.clear();
    next_ = 0;
    rejected_.clear();
    return attempt;
  }

 private:
  const StreamDestination options_;
  // The batch being delivered, how far its earlier attempts got and what the stream refused.
  std::string resume_id_;
  size_t next_ = 0;
  std::vector<std::pair<size_t, std::string>> rejected_;
  std::string rejected_code_;
};

class CallbackDestinationImpl final : public Destination {
 public:
  explicit CallbackDestinationImpl(CallbackDestination options) : options_(std::move(options)) {}

  std::string_view metric_name() const override { return "Callback"; }
  std::string_view error_output_type() const override { return "callback-failed"; }
  absl::Duration retry_duration() const override { return options_.retry_duration; }

  DeliveryAttempt Deliver(const Batch& batch, int /*attempt*/) override {
    records_.clear();
    records_.reserve(batch.records.size());
    for (const BatchRecord& r : batch.records) {
      records_.push_back(DeliveredRecord{batch.record_id(r), r.arrival, batch.data(r)});
    }
    const absl::Status status = options_.deliver(records_, batch.partition_keys);
    if (status.ok()) return DeliveryAttempt::Delivered();
    return DeliveryAttempt::Retryable(
        absl::StrCat("Callback.", std::string(ErrorCodeName(GetErrorCode(status)))),
        std::string(status.message()));
  }

 private:
  const CallbackDestination options_;
  std::vector<DeliveredRecord> records_;  // reused between batches
};

}  // namespace

std::unique_ptr<Destination> MakeStreamDestination(StreamDestination options) {
  return std::make_unique<StreamDestinationImpl>(std::move(options));
}

std::unique_ptr<Destination> MakeCallbackDestination(CallbackDestination options) {
  return std::make_unique<CallbackDestinationImpl>(std::move(options));
}

}  // namespace rill::deliver_internal
