// Engine.IO v4 long-polling on the wire: what a polling request asks for, the payloads (the
// bodies of GET responses and POST requests) and the refusals. Pure string work, no I/O, so
// it is unit-tested and fuzzed on its own; polling_transport.h holds a session's state.
//
// A payload is one or more packets separated by the record separator \x1e (which JSON text
// never holds raw). A packet is a type digit and its data, as on the WebSocket transport
// (socketio_codec.h); a binary packet is "b" and base64. This server only takes text: a
// binary packet is reported as such and refused by the session (as a binary frame is on the
// WebSocket).
//
// Requests follow the reference server (engine.io): the first GET without `sid` opens a
// session (answered with the open packet, `upgrades: ["websocket"]`); later GETs with `sid`
// fetch what is queued, POSTs with `sid` carry packets from the client. Refusals are HTTP 400
// (403 for Forbidden) with the reference's JSON error body, which clients and proxies may
// match on.
#pragma once

#include "request_target.h"

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mn::polling {

// The packet separator in a payload.
inline constexpr char kSeparator = '\x1e';

// ---- Payloads ---------------------------------------------------------------------------

// The packets joined by \x1e, for a GET response. Packets must not be empty or hold \x1e
// (server packets are JSON-based text, which never does).
std::string encode_payload(const std::vector<std::string>& packets);

struct DecodedPayload {
  bool ok = false;
  std::vector<std::string_view> packets;  // views into the decoded body, in order; text only
  bool binary = false;                    // a "b…" (base64) packet was among them
  const char* error = "";                 // !ok: short fixed text, never echoes the body
};

// A POST body. Refused: an empty body or packet, a packet whose type is not an Engine.IO
// type digit or "b", text that is not UTF-8, and more than `max_packets` packets.
DecodedPayload decode_payload(std::string_view body, size_t max_packets = 4096);

bool is_utf8(std::string_view s);

// ---- Requests ---------------------------------------------------------------------------

// The reference server's error codes and messages.
enum class ErrorCode { transport_unknown = 0, session_id_unknown = 1, bad_handshake_method = 2,
                       bad_request = 3, forbidden = 4, unsupported_protocol_version = 5 };

// {"code":N,"message":"…"} as engine.io writes it.
std::string error_body(ErrorCode code);
// HTTP status of a refusal: 403 for forbidden, else 400.
int error_status(ErrorCode code);

enum class RequestKind {
  open,     // GET, no sid: a new polling session
  poll,     // GET with sid: fetch queued packets
  send,     // POST with sid: packets from the client
  upgrade,  // WebSocket upgrade request with sid: a probe to move a polling session over
  websocket_open,  // WebSocket upgrade request, no sid: a WebSocket-only session
  refused,
};

struct RequestVerdict {
  RequestKind kind = RequestKind::refused;
  std::string sid;                  // poll, send, upgrade
  ErrorCode error = ErrorCode::bad_request;  // refused
};

// What an HTTP request (or WebSocket upgrade request, `is_upgrade`) to /socket.io/ asks for,
// checked in the reference server's order: transport, then sid (the session's existence is
// the caller's to check), then method, then protocol version (for new sessions).
// `content_type` matters for POSTs only: application/octet-stream is an Engine.IO v3 binary
// payload, which is refused. A body over the announced maxPayload never gets here: the HTTP
// layer answers 413, as the reference does.
RequestVerdict classify_request(std::string_view method, const RequestTarget& target, bool is_upgrade,
                                std::string_view content_type = {});

// The open packet that starts a polling session: `0{"sid":…,"upgrades":["websocket"],…}`.
std::string open_packet(const std::string& engine_sid, std::chrono::milliseconds ping_interval,
                        std::chrono::milliseconds ping_timeout, size_t max_payload);

// The HTTP reply bodies the reference server gives.
inline constexpr std::string_view kPostAccepted = "ok";          // text/html
inline constexpr std::string_view kPayloadContentType = "text/plain; charset=UTF-8";

// The probe of an upgrade: the client's "2probe" on the new WebSocket, our "3probe".
inline constexpr std::string_view kProbePing = "2probe";
inline constexpr std::string_view kProbePong = "3probe";
inline constexpr std::string_view kUpgrade = "5";
inline constexpr std::string_view kNoop = "6";
inline constexpr std::string_view kClose = "1";

}  // namespace mn::polling
