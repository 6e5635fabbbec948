// WsServer: the one listening port. websocketpp on the process's io_context serves
//   /ws          the plain JSON protocol (plain_protocol.h)
//   /socket.io/  Socket.IO over Engine.IO's WebSocket transport (socketio_codec.h)
//   /healthz, /readyz, /metrics  over plain HTTP (http_endpoints.h)
// over TCP, or over TLS 1.2+ when --tls-cert-file is set (the same code either way, ImplFor
// a websocketpp config).
// It authenticates at the handshake (a bad token never gets a socket, let alone a room), owns
// every Session, enforces the limits (connections, per user, unauthenticated ones overall and
// per address, message size and rate, handshake time, unsent bytes per connection, keepalive,
// token expiry, Origin) and logs one line per connect and per disconnect.
//
// Single-threaded: websocketpp runs with concurrency::none; every handler runs on the
// io_context's one thread, as do all calls into this class.
#pragma once

#include "config.h"
#include "hub.h"
#include "jwt_verifier.h"
#include "session.h"

#include <asio.hpp>

#include <functional>
#include <memory>
#include <string>

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

class WsServer : public Transport {
 public:
  using ReadyProbe = std::function<bool()>;
  using MetricsText = std::function<std::string()>;

  WsServer(asio::io_context& io, const Config& cfg, Hub& hub);
  ~WsServer() override;

  // Binds and starts accepting. Throws std::runtime_error when the address cannot be bound.
  void listen();
  uint16_t port() const;
  uint16_t admin_port() const;  // 0 without --admin-listen

  void set_ready_probe(ReadyProbe p) { ready_ = std::move(p); }
  // Whether sessions may start: not before the reader has its first position in the log,
  // or a client caught up to a snapshot taken before that position would miss what lies
  // between the two. (Later, while the reader reconnects, its position is kept: no gap.)
  void set_started_probe(ReadyProbe p) { started_ = std::move(p); }
  void set_metrics(MetricsText m) { metrics_ = std::move(m); }
  // New keys take effect for new handshakes and for in-band refreshes of open sockets; open
  // sessions keep the identity they proved until their token expires.
  void set_jwt(std::shared_ptr<const JwtVerifier> v) { jwt_ = std::move(v); }

  // Stops accepting, closes every session with `code` (1001 on shutdown), then calls `done`
  // once all have gone or `grace` has passed.
  void shutdown(uint16_t code, const std::string& reason, std::chrono::milliseconds grace,
                std::function<void()> done);

  // TLS: new connections get the certificate and key in these files now; open ones keep theirs.
  // Throws std::runtime_error (keeping the old ones) if they do not load.
  void reload_tls(const std::string& cert_file, const std::string& key_file);

  void begin_turn() override { ++turn_; }
  SendResult send(Session& s, const std::string& frame) override;
  void close(Session& s, uint16_t code, const std::string& reason) override;

  size_t open_sockets() const;
  size_t sessions() const;
  size_t unauthenticated() const;
  const ServerStats& stats() const;

 private:
  struct Impl;
  template <class Cfg>
  struct ImplFor;
  std::unique_ptr<Impl> impl_;
  std::shared_ptr<const JwtVerifier> jwt_;
  uint64_t turn_ = 1;
  ReadyProbe ready_;
  ReadyProbe started_;
  MetricsText metrics_;
};

}  // namespace mn
