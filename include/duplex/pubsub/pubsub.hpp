// duplex pub/sub: topics and publish (topic_registry), a duplex::websocket's subscriptions (subscriber),
// and the backplane that joins the registries of several nodes (backplane, in_process_backplane). The
// Redis backplane is opt-in: #include <duplex/pubsub/redis_backplane.hpp> (it brings the Redis client).
#pragma once

#include <duplex/pubsub/backplane.hpp>
#include <duplex/pubsub/in_process_backplane.hpp>
#include <duplex/pubsub/publish_result.hpp>
#include <duplex/pubsub/subscriber.hpp>
#include <duplex/pubsub/topic_registry.hpp>
