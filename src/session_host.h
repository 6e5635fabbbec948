// SessionHost: every client session, whatever transport carries it, and the rules they share:
// who may connect (connection_limits.h) and what an upgrade becomes (upgrade.h); what a client
// may send (a message rate, 4029; /ws refreshes; Socket.IO packets go to SocketIoProtocol); how
// frames go out (a budget of unsent bytes, the typed SendResult); keepalive (keepalive.h);
// closing with a reason, and one log line per connect and per disconnect. A transport (the
// WebSocket listener, ws_listener.h) reports its connections' events here and carries each
// session's frames through its SessionLink; nothing here knows websocketpp.
//
// A connection is known by an opaque key (the transport's connection object) from accept to
// its end; it has a Session from an accepted upgrade on.
//
// Another transport plugs in the same way: a SessionLink of its own for its sessions' frames,
// a key per connection, and the calls below in the order a connection lives them (accepted,
// upgrade, opened, message/pong/ping, ended). What a request becomes stays in upgrade.h.
//
// Single-threaded: every call on the io_context's thread.
#pragma once

#include "config.h"
#include "connection_limits.h"
#include "hub.h"
#include "jwt_verifier.h"
#include "keepalive.h"
#include "session.h"
#include "socketio_session.h"
#include "upgrade.h"

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>

namespace mn {

struct ServerStats {
  uint64_t accepted = 0;
  uint64_t refused_over_capacity = 0;
  uint64_t refused_unauthorized = 0;
  uint64_t handshakes_failed = 0;
  uint64_t sessions_opened = 0;
  uint64_t sessions_closed = 0;
  uint64_t bad_messages = 0;
  uint64_t ping_timeouts = 0;
  uint64_t unauthenticated_cut = 0;       // pushed out by newer unauthenticated connections
  uint64_t refused_per_user = 0;          // over --max-connections-per-user
  uint64_t refused_origin = 0;            // not in --allowed-origins
  uint64_t closed_too_many_messages = 0;  // 4029
  uint64_t replies_withheld = 0;          // pongs and replies not queued for a client not reading
  uint64_t tokens_expired = 0;            // 4001
  uint64_t refreshes = 0;
  uint64_t refreshes_refused = 0;         // 4003
};

class SessionHost final : public Transport {
 public:
  // Sockets beyond max_connections + max_unauthenticated (those being cut, refusals being
  // written) are allowed this many more; past that a new socket is closed the moment it is
  // accepted, so file descriptors run out neither here nor in websocketpp's accept loop (which
  // spins on EMFILE).
  static constexpr size_t kHandshakeHeadroom = 64;

  // Attaches itself to the hub as its transport.
  SessionHost(asio::io_context& io, const Config& cfg, Hub& hub);
  ~SessionHost() override;

  void set_jwt(std::shared_ptr<const JwtVerifier> v) { jwt_ = std::move(v); }
  void set_started_probe(std::function<bool()> p) { started_ = std::move(p); }

  // ---- What a transport reports ----
  // A connection was accepted: whether it may stay (not while stopping, nor past the socket
  // cap). If not, the transport closes it at once.
  bool may_accept();
  // It stays: an open socket, not yet authenticated. `cut` ends it at once, should newer
  // unauthenticated connections need its place.
  void accepted(const void* key, const std::string& address, std::function<void()> cut);
  // What a request becomes (upgrade.h), counted and logged. A plain or Socket.IO verdict has a
  // Session now (phase handshake), carried by `link`.
  Upgrade upgrade(const UpgradeRequest& request, const std::string& peer, std::unique_ptr<SessionLink> link);
  Session* find(const void* key);
  // The connection serves a session counted under another key (a long-polling session's
  // request, or its WebSocket probe): it is not one of the unauthenticated ones.
  void settled(const void* key) { limits_.forget_unauthenticated(key); }
  // The upgrade is done: the session is open.
  void opened(Session& s);
  // A data message from the client.
  void message(Session& s, bool text, const std::string& payload);
  // A control frame from the client: a pong, or a ping (whether to answer it).
  void pong(Session& s);
  bool ping(Session& s);
  // The connection has ended, however (its socket is closed). Frees what it held, its session
  // included.
  void ended(const void* key);

  // ---- Transport: what the hub asks ----
  void begin_turn() override { ++turn_; }
  SendResult send(Session& s, const std::string& frame) override;
  void close(Session& s, uint16_t code, const std::string& reason) override;

  // Starts the keepalive sweep.
  void start();
  // Stops taking sessions, closes every one with `code`, then calls `done` once every socket
  // has gone or `grace` has passed.
  void shutdown(uint16_t code, const std::string& reason, std::chrono::milliseconds grace,
                std::function<void()> done);

  size_t open_sockets() const { return sockets_; }
  size_t sessions() const { return sessions_.size(); }
  size_t unauthenticated() const { return limits_.unauthenticated(); }
  const ServerStats& stats() const { return stats_; }

 private:
  std::unique_ptr<Session> new_session(std::unique_ptr<SessionLink> link, Protocol p, const std::string& peer);
  void cut(ConnectionLimits::Unauthenticated victim);
  const char* admit(Session& s);
  void release(Session& s);
  void end_session(Session& s);
  bool take_message(Session& s);
  bool may_reply(Session& s);
  void refresh(Session& s, const std::string& token);
  std::string start_frame(Session& s, bool recovered, const std::string& position);
  void maybe_drained();

  const Config& cfg_;
  Hub& hub_;
  std::shared_ptr<const JwtVerifier> jwt_;
  std::function<bool()> started_;
  ConnectionLimits limits_;
  std::unordered_map<const void*, std::unique_ptr<Session>> sessions_;
  size_t sockets_ = 0;
  uint64_t next_serial_ = 1;
  uint64_t turn_ = 1;
  bool stopping_ = false;
  ServerStats stats_;
  SocketIoProtocol sio_;
  Keepalive keepalive_;
  std::function<void()> on_drained_;
  asio::steady_timer grace_;
  std::minstd_rand rng_{std::random_device{}()};
};

}  // namespace mn
