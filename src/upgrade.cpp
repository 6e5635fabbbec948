#include "upgrade.h"

#include "origin_policy.h"
#include "plain_protocol.h"
#include "polling_codec.h"

#include <strings.h>

namespace mn {
namespace {

Upgrade& refuse(Upgrade& u, int status, const std::string& code, const std::string& message,
                Refusal counted = Refusal::none, std::string log = {}) {
  u.route = Route::refused;
  u.status = status;
  u.code = code;
  u.body = plain::error_frame(code, message);
  u.counted = counted;
  u.log = std::move(log);
  return u;
}

}  // namespace

std::string bearer_token(const std::string& header) {
  static const std::string prefix = "Bearer ";
  if (header.size() > prefix.size() && strncasecmp(header.c_str(), prefix.c_str(), prefix.size()) == 0)
    return header.substr(prefix.size());
  return {};
}

Upgrade decide_upgrade(const UpgradeRequest& request, const Config& cfg, const UpgradeState& state) {
  Upgrade u;
  u.target = RequestTarget::parse(request.resource);
  const std::string& path = u.target.path;

  const bool socketio = path == "/socket.io/" || path == "/socket.io";
  if (!request.websocket && !socketio) {
    // With an admin address, what tells about the service (readiness, metrics) stays off the
    // public port; liveness stays on both.
    if (!cfg.admin_listen.empty() && (path == "/metrics" || path == "/readyz"))
      return refuse(u, 404, "not_found", "/metrics and /readyz are served on the admin address (--admin-listen) only");
    u.route = Route::http;
    return u;
  }

  if (path != "/ws" && !socketio) return refuse(u, 404, "not_found", "WebSocket endpoints: /ws and /socket.io/");
  // Browsers send Origin with every upgrade; other clients send none and are judged by their token.
  if (!cfg.allowed_origin_list.empty() && !request.origin.empty() &&
      !origin_allowed(request.origin, cfg.allowed_origin_list))
    return refuse(u, 403, "origin_not_allowed", "this Origin may not open a socket here (--allowed-origins)",
                  Refusal::origin, "origin not allowed");
  if (socketio) {
    // Engine.IO's own checks, in the reference server's order and with its errors (which
    // clients and proxies may match on). A probe joins a session already counted.
    const auto v = polling::classify_request("GET", u.target, request.websocket);
    if (v.kind == polling::RequestKind::upgrade) {
      u.route = Route::socketio_probe;
      u.sid = v.sid;
      return u;
    }
    const bool opens = v.kind == polling::RequestKind::open || v.kind == polling::RequestKind::websocket_open;
    if (!opens) {
      u.status = polling::error_status(v.error);
      u.body = polling::error_body(v.kind == polling::RequestKind::refused ? v.error : polling::ErrorCode::bad_request);
      return u;
    }
  }
  if (state.stopping || (state.limits && state.limits->at_capacity()))
    return refuse(u, 503, "over_capacity", "connection limit reached; try again later", Refusal::over_capacity);
  // Before the reader has its first position, a client caught up to a snapshot taken before
  // that position would miss what lies between the two.
  if (!state.started) return refuse(u, 503, "starting", "not connected to the database yet; try again shortly");

  std::string token = bearer_token(request.authorization);
  if (token.empty()) token = u.target.single("access_token").value_or("");
  if (socketio) {
    u.route = Route::socketio;
    u.token = std::move(token);
    return u;
  }

  if (token.empty())
    return refuse(u, 401, "missing_token", "send a JWT as 'Authorization: Bearer <token>' or ?access_token=<token>",
                  Refusal::unauthorized);
  JwtOutcome outcome;
  if (state.jwt) outcome = state.jwt->verify(token, state.now);
  else outcome.error = "no JWT verifier configured";
  if (!outcome.ok)
    return refuse(u, 401, "invalid_token", outcome.error, Refusal::unauthorized, "invalid token (" + outcome.error + ")");
  u.user_id = outcome.user_id;
  u.valid_until = outcome.valid_until;
  const auto admission = state.limits ? state.limits->check(u.user_id) : ConnectionLimits::Admission::admitted;
  if (admission == ConnectionLimits::Admission::over_capacity)
    return refuse(u, 503, "over_capacity", "connection limit reached; try again later", Refusal::over_capacity);
  if (admission == ConnectionLimits::Admission::too_many_connections)
    return refuse(u, 429, "too_many_connections",
                  "this user has as many sockets open as --max-connections-per-user allows", Refusal::per_user,
                  "user " + u.user_id + " has --max-connections-per-user sockets");
  if (u.target.has("offset")) {
    u.resume_requested = true;
    u.resume_from = decode_offset(u.target.single("offset").value_or(""));
  }
  u.route = Route::plain;
  return u;
}

}  // namespace mn
