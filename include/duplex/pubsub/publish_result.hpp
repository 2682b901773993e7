// What publish() says about one message: how many subscribers got it queued and how many were skipped.
#pragma once

#include <cstddef>

namespace duplex::pubsub {

struct publish_result {
    // Subscribers the message was queued for. For subscribers on the publisher's own executor the count
    // is exact; for those on other executors (another thread or strand) the message is handed to their
    // executor without waiting, and each is counted as queued unless it was at its backpressure limit
    // when publish ran (its executor decides again when the message arrives: one that reached its limit
    // meanwhile drops it, and counts it in its own dropped()).
    std::size_t queued = 0;
    // Subscribers at their backpressure limit (the message was dropped for them, or with
    // backpressure_policy::close_connection they are being closed with 1008), or closing.
    std::size_t skipped = 0;

    publish_result& operator+=(const publish_result& other) noexcept {
        queued += other.queued;
        skipped += other.skipped;
        return *this;
    }
};

}  // namespace duplex::pubsub
