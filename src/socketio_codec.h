// Socket.IO v5 over Engine.IO v4, WebSocket transport only: the packets this server sends
// and parses. Pure string work, no I/O, so it is unit-tested and fuzzed on its own.
//
// Engine.IO packet = one text frame: a type digit and its data.
//   0 open  1 close  2 ping  3 pong  4 message  (5 upgrade, 6 noop: polling_codec.h)
// A Socket.IO packet rides in an Engine.IO message ("4"): a type digit, an optional
// "/namespace," and an optional JSON payload.
//   0 CONNECT  1 DISCONNECT  2 EVENT  3 ACK  4 CONNECT_ERROR  (5, 6: binary, refused)
//
// Reading follows socket.io-parser's decoder (what the client itself would accept), so a
// frame that a stock client could have sent is never refused here.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mn::socketio {

// ---- Server to client -----------------------------------------------------------------

// 0{"sid":…,"upgrades":[],"pingInterval":…,"pingTimeout":…,"maxPayload":…}. `upgrades` is
// ["websocket"] for a session that starts on long-polling (`can_upgrade`), and empty on a
// WebSocket, which has nothing to upgrade to.
std::string open_frame(const std::string& engine_sid, std::chrono::milliseconds ping_interval,
                       std::chrono::milliseconds ping_timeout, std::size_t max_payload,
                       bool can_upgrade = false);

// Engine.IO ping; in v4 the server pings and the client answers "3".
inline const std::string& ping_frame() {
  static const std::string frame = "2";
  return frame;
}

// 40{"sid":…,"pid":…}: the CONNECT reply. A `pid` turns on connection-state recovery in the
// client: it records the last string argument of every event as its offset and sends
// both back with its next CONNECT.
std::string connect_frame(const std::string& sid, const std::string& pid);

// 44{"message":…} or 44{"message":…,"data":<data_json>}; with a namespace other than "/",
// 44/<nsp>,{…}. The client emits connect_error with err.message and err.data.
std::string connect_error_frame(const std::string& nsp, const std::string& message,
                                const std::string& data_json = "");

// 43<id>[<data>]: the answer to a client's event that asked for one (its ack callback).
std::string ack_frame(uint64_t id, const std::string& data_json);

// 42["name",<data>,"<offset>"]: the offset last, as a string, so socket.io-client records it
// for connection-state recovery.
std::string event_frame(const std::string& name, const std::string& data_json, const std::string& offset);
// 42["position","<offset>"]: a newer offset for a client that has had no event for a while
// (hub.h, refresh_position). The offset is the last argument, so socket.io-client records it.
std::string position_frame(const std::string& offset);

// ---- Client to server -----------------------------------------------------------------

enum class ClientPacket {
  pong,        // "3": answer to our ping
  close,       // "1": the client is leaving
  ignored,     // "5", "6": polling-era packets, meaningless here but harmless
  connect,     // "40[/nsp,][{auth}]"
  disconnect,  // "41[/nsp,]"
  event,       // "42[/nsp,][id][…]": nothing here listens to client events
  ack,         // "43[/nsp,]id[…]"
  binary,      // "45…", "46…": binary attachments, which this server never takes
  invalid,     // anything a stock client does not send
};

// What a CONNECT carries. Members of the wrong JSON type count as absent, except `token`:
// a token that is there but not a string is `bad_token`, so it is refused, not ignored
// in favour of the one from the upgrade request.
struct ConnectAuth {
  std::optional<std::string> token;
  bool bad_token = false;
  std::optional<std::string> pid;     // connection-state recovery: the pid we gave it
  std::optional<std::string> offset;  // ... and the last offset it received, if any
};

struct Parsed {
  ClientPacket type = ClientPacket::invalid;
  std::string nsp = "/";
  ConnectAuth auth;   // connect only
  // event only: its name ("" if a number), the ack id if the client wants an answer, and a
  // token if its first argument is a string or an object with a string "token".
  std::string event;
  std::optional<uint64_t> ack_id;
  std::optional<std::string> token;
  std::string error;  // invalid only: short, fixed text fit for a close reason and a log
                      // line; never echoes the frame, which may hold a token
};

Parsed parse_client_frame(std::string_view frame);

// ---- Recovery ids ---------------------------------------------------------------------

// A fresh Engine.IO or Socket.IO session id: 20 characters of [A-Za-z0-9_-] from `random`.
std::string session_id(uint64_t random_hi, uint64_t random_lo);
bool is_session_id(std::string_view s);

// The pid (private session id) we give a client is "<sid>~<position>": the Socket.IO sid to
// hand back on recovery and the offset where its stream began. Everything needed to
// recover it lives in the client, so any instance, after any restart, can.
std::string make_pid(const std::string& sid, const std::string& position);
struct PidParts {
  std::string sid;
  std::string position;  // still to be decoded and checked (decode_offset)
};
// nullopt unless `pid` has the shape make_pid gives.
std::optional<PidParts> split_pid(std::string_view pid);

}  // namespace mn::socketio
