// Socket.IO v5 over Engine.IO v4, WebSocket transport only: the packets this server sends
// and parses. Pure string work, no I/O, so it is unit-tested and fuzzed on its own.
//
// Engine.IO packet = one text frame: a type digit and its data.
//   0 open  1 close  2 ping  3 pong  4 message  (5 upgrade, 6 noop: polling only)
// A Socket.IO packet rides in an Engine.IO message ("4"): a type digit, an optional
// "/namespace," and an optional JSON payload.
//   0 CONNECT  1 DISCONNECT  2 EVENT  3 ACK  4 CONNECT_ERROR  (5, 6: binary, refused)
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mn::socketio {

// 42["name",<data>,"<offset>"]: the offset last, as a string, so socket.io-client records it
// for connection-state recovery.
std::string event_frame(const std::string& name, const std::string& data_json, const std::string& offset);

}  // namespace mn::socketio
