// Upgrade: what becomes of a request on the public port, decided in one place from the request
// (path, query, Origin, token) and what the server knows (stopping, started, the connection
// limits, the JWT keys):
//   a /ws session         the token verified at the handshake, the user under its caps
//   a Socket.IO session   /socket.io/ over the WebSocket transport, or a long-polling session's
//                         first GET (polling_sessions.h); it authenticates with its CONNECT
//                         packet after the upgrade or the open (socketio_session.h)
//   a Socket.IO probe     a WebSocket that names a long-polling session's sid, to upgrade it
//   an HTTP endpoint      a request without an upgrade (http_endpoints.h)
//   a refusal             an HTTP status and a body saying why, what to count, what to log
// In this order: path, Origin, capacity, the reader's start, then the token (and the
// Socket.IO handshake's parameters). Pure: no sockets; the listener carries out the verdict.
#pragma once

#include "config.h"
#include "connection_limits.h"
#include "jwt_verifier.h"
#include "offset.h"
#include "request_target.h"

#include <chrono>
#include <optional>
#include <string>

namespace mn {

struct UpgradeRequest {
  bool websocket = true;     // it asks to upgrade to a WebSocket; false: a plain HTTP request
                             // (on /socket.io/: a long-polling session's first GET)
  std::string resource;      // the request target: path and query
  std::string origin;        // the Origin header, empty when absent
  std::string authorization; // the Authorization header, empty when absent
};

// What the server knows when the request comes.
struct UpgradeState {
  bool stopping = false;
  bool started = true;  // the reader has its first position in the log (WsServer::set_started_probe)
  const ConnectionLimits* limits = nullptr;  // none: no caps
  const JwtVerifier* jwt = nullptr;          // none: every token is refused
  std::chrono::system_clock::time_point now{};
};

enum class Route { refused, http, plain, socketio, socketio_probe };

// Which counter a refusal goes to (ServerStats).
enum class Refusal { none, origin, over_capacity, unauthorized, per_user };

struct Upgrade {
  Route route = Route::refused;
  RequestTarget target;

  // Route::refused: the reply.
  int status = 0;
  std::string content_type = "application/json";
  std::string body;
  std::string code;     // the error code in the body ("missing_token", ...), empty for Socket.IO's own
  Refusal counted = Refusal::none;
  std::string log;      // logged as "refused <peer>: <log>" when not empty

  // Route::socketio: a token that came with the upgrade (header or access_token), if any.
  std::string token;
  // Route::socketio_probe: the long-polling session it names (which may not exist).
  std::string sid;
  // Route::plain: who the token proved, until when, and where the client asked to resume.
  std::string user_id;
  std::optional<double> valid_until;
  bool resume_requested = false;
  std::optional<Offset> resume_from;
};

Upgrade decide_upgrade(const UpgradeRequest& request, const Config& cfg, const UpgradeState& state);

// The token in "Authorization: Bearer <token>" (the scheme in any case), or empty.
std::string bearer_token(const std::string& authorization);


}  // namespace mn
