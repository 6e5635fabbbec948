// SocketIoProtocol: the Socket.IO side of a session on /socket.io/ (Engine.IO v4 over
// WebSocket or long-polling, Socket.IO v5 on top; the transport is the session's link, see
// polling_sessions.h for long-polling). The upgrade is accepted in upgrade.h; SessionHost owns the
// session and hands this class its events; this class speaks the protocol through Transport
// and brings an authenticated session to the hub, as /ws does at its handshake.
//
// Life of a session: OPEN packet at once; the client's CONNECT ("40{auth}") within
// auth_timeout, checked like a /ws token; then the hub catches it up (recovery or snapshot)
// and the CONNECT reply goes out as its start frame. Heartbeat is server-driven: "2" every
// ping interval, "3" expected back within the ping timeout (the same --ping-interval and
// --ping-timeout as /ws, announced in the OPEN packet; the keepalive sweep runs both).
//
// Recovery without server memory: the pid in the CONNECT reply is "<sid>~<position>"
// (socketio_codec.h), and the client sends it back with the offset of the last event it
// received. The resume position is that offset, or without one (no event arrived before the
// drop) the position in the pid; the hub replays from it. Only the token decides the user,
// so a forged pid or offset can at most replay the token's own user's events.
//
// Token refresh: once connected, the client may emit "refresh" with a new token (a string, or
// {token}) and an ack callback; the ack gets {"ok":true,"validUntil":<unix s>|null}. A token
// that does not verify, or names another user, gets {"ok":false,"code":…} and the socket is
// closed (4003). Without a refresh the socket is closed at its token's exp plus leeway (4001,
// the keepalive sweep, keepalive.h).
//
// Close codes: 1003 for binary packets, 1007 for a frame that does not parse, 1008 after an
// unauthorized or refused CONNECT, 1000 when the client says goodbye ("1" or "41"), 4003 for a
// refused refresh; the server adds 1008 for no CONNECT within auth_timeout, 1001 for no pong,
// 4001 at token expiry and 4029 for too many packets. Nothing sends "41": a
// server that goes away just closes, and the client reconnects and recovers.
//
// Single-threaded: called on the io_context's thread only.
#pragma once

#include "config.h"
#include "hub.h"
#include "jwt_verifier.h"
#include "session.h"
#include "socketio_codec.h"

#include <functional>
#include <memory>
#include <random>
#include <string>

namespace mn {

class SocketIoProtocol {
 public:
  using JwtSource = std::function<std::shared_ptr<const JwtVerifier>()>;
  struct Hooks {
    // A CONNECT proved its user: count the session in (server capacity, the user's cap).
    // Returns nullptr, or the code it is refused with ("over_capacity", "too_many_connections").
    std::function<const char*(Session&)> admit;
    // Whether a reply to the client's own packet may be queued: not while it has more unsent
    // than its budget (it is not reading, and replies would pile up).
    std::function<bool(Session&)> may_reply;
    // An in-band token refresh was accepted (true) or refused (false), for the metrics.
    std::function<void(bool)> refreshed;
  };

  SocketIoProtocol(const Config& cfg, Transport& transport, Hub& hub, JwtSource jwt, Hooks hooks);

  // The WebSocket is open: send OPEN, wait for CONNECT. `bearer` is a token that came with
  // the upgrade request (Authorization header or access_token parameter), if any.
  void on_open(Session& s, const std::string& bearer);
  void on_text(Session& s, const std::string& frame);
  // Heartbeat: the server pings (Engine.IO v4).
  void send_ping(Session& s);
  // The CONNECT reply, sent by the hub once the session is caught up. Not recovered: a new
  // sid, and a pid that remembers `position`, where this session's stream starts.
  std::string start_frame(Session& s, bool recovered, const std::string& position);

 private:
  void on_connect(Session& s, const socketio::ConnectAuth& auth);
  void on_refresh(Session& s, const socketio::Parsed& p);
  void refuse(Session& s, const char* code, const std::string& why, const char* message = "unauthorized");
  std::string new_id();

  const Config& cfg_;
  Transport& transport_;
  Hub& hub_;
  JwtSource jwt_;
  Hooks hooks_;
  std::mt19937_64 random_;
};

}  // namespace mn
