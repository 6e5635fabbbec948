// WsServer: what the process serves to clients, put together: the public port (ws_listener.h)
//   /ws          the plain JSON protocol (plain_protocol.h)
//   /socket.io/  Socket.IO over Engine.IO's WebSocket and long-polling transports
//                (socketio_session.h, polling_sessions.h)
//   /healthz, /readyz, /metrics  over plain HTTP (http_endpoints.h)
// over TCP or TLS; the admin address (admin_listener.h) when --admin-listen is set; and the
// sessions with their rules (session_host.h: limits, authentication, keepalive, budgets, one
// log line per connect and per disconnect). What an upgrade becomes is decided in upgrade.h.
//
// Single-threaded: every handler runs on the io_context's one thread, as do all calls into
// this class.
#pragma once

#include "config.h"
#include "http_endpoints.h"
#include "hub.h"
#include "jwt_verifier.h"
#include "session_host.h"

#include <asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace mn {

class AdminListener;
class PollingSessions;
class WsListener;

class WsServer {
 public:
  using ReadyProbe = std::function<bool()>;
  using MetricsText = std::function<std::string()>;

  // Attaches its sessions to the hub as the hub's transport.
  WsServer(asio::io_context& io, const Config& cfg, Hub& hub);
  ~WsServer();

  // Binds and starts accepting. Throws std::runtime_error when an address cannot be bound.
  void listen();
  uint16_t port() const;
  uint16_t admin_port() const;  // 0 without --admin-listen

  void set_ready_probe(ReadyProbe p) { probes_.ready = std::move(p); }
  // Whether sessions may start: not before the reader has its first position in the log,
  // or a client caught up to a snapshot taken before that position would miss what lies
  // between the two. (Later, while the reader reconnects, its position is kept: no gap.)
  void set_started_probe(ReadyProbe p) { host_->set_started_probe(std::move(p)); }
  void set_metrics(MetricsText m) { probes_.metrics = std::move(m); }
  // New keys take effect for new handshakes and for in-band refreshes of open sockets; open
  // sessions keep the identity they proved until their token expires.
  void set_jwt(std::shared_ptr<const JwtVerifier> v) { host_->set_jwt(std::move(v)); }

  // Stops accepting, closes every session with `code` (1001 on shutdown), then calls `done`
  // once all have gone or `grace` has passed.
  void shutdown(uint16_t code, const std::string& reason, std::chrono::milliseconds grace,
                std::function<void()> done);

  // TLS: new connections get the certificate and key in these files now; open ones keep theirs.
  // Throws std::runtime_error (keeping the old ones) if they do not load.
  void reload_tls(const std::string& cert_file, const std::string& key_file);

  size_t open_sockets() const { return host_->open_sockets(); }
  size_t sessions() const { return host_->sessions(); }
  size_t unauthenticated() const { return host_->unauthenticated(); }
  // Socket.IO sessions on the long-polling transport (not yet upgraded, or polling only).
  size_t polling_sessions() const;
  const ServerStats& stats() const { return host_->stats(); }

 private:
  asio::io_context& io_;
  const Config& cfg_;
  HttpProbes probes_;
  // Declared first, destroyed last: the listeners' connections report their end to it.
  std::unique_ptr<SessionHost> host_;
  std::unique_ptr<PollingSessions> polling_;
  std::unique_ptr<WsListener> public_;
  std::unique_ptr<AdminListener> admin_;
};

}  // namespace mn
