// The destinations that need no outside system: another rill stream, and a callback.
#ifndef RILL_SRC_DELIVER_SIMPLE_DESTINATIONS_H_
#define RILL_SRC_DELIVER_SIMPLE_DESTINATIONS_H_

#include <memory>

#include "deliver/destination.h"
#include "rill/deliver/destinations.h"

namespace rill::deliver_internal {

// Puts each record with its source partition key (its record id for DirectPut). A retry resumes
// after the records an earlier attempt of the same batch put, so that a throttled put does not
// duplicate what went through before it.
std::unique_ptr<Destination> MakeStreamDestination(StreamDestination options);

std::unique_ptr<Destination> MakeCallbackDestination(CallbackDestination options);

}  // namespace rill::deliver_internal

#endif  // RILL_SRC_DELIVER_SIMPLE_DESTINATIONS_H_
