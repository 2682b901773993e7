// duplex — umbrella header: everything an application needs.
#pragma once

#include <duplex/client/connect.hpp>
#include <duplex/client/websocket_client.hpp>
#include <duplex/config.hpp>
#include <duplex/websocket/close_status.hpp>
#include <duplex/websocket/error.hpp>
#include <duplex/websocket/handshake.hpp>
#include <duplex/websocket/message.hpp>
#include <duplex/websocket/options.hpp>
#include <duplex/websocket/state.hpp>
#include <duplex/websocket/stream.hpp>
#include <duplex/websocket/websocket.hpp>
#include <duplex/app/accept_context.hpp>
#include <duplex/app/app.hpp>
#include <duplex/app/http_protocols.hpp>
#include <duplex/http2/limits.hpp>
#include <duplex/app/http_context.hpp>
#include <duplex/app/websocket_handlers.hpp>
#include <duplex/app/websocket_options.hpp>
#include <duplex/app/websocket_session.hpp>
#include <duplex/pubsub/pubsub.hpp>
#include <duplex/task_completion_source.hpp>
// Last: extern template declarations of the common instantiations under DUPLEX_SEPARATE_COMPILATION.
#include <duplex/instantiations.hpp>
