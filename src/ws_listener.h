// WsListener: the public port (--listen), over TCP, or over TLS 1.2+ when --tls-cert-file is
// set (the same code either way, for two websocketpp configs). WebSocket upgrades on /ws and
// /socket.io/ become sessions of the SessionHost, each carried by a WebSocket SessionLink;
// HTTP requests to /socket.io/ (Engine.IO long-polling) and WebSockets that upgrade a polling
// session go to PollingSessions, which answers them now or later (a held GET); other plain
// HTTP requests get the endpoints of http_endpoints.h. What a request becomes is decided
// in upgrade.h; this file only carries it out. websocketpp stays behind this interface.
#pragma once

#include "config.h"
#include "http_endpoints.h"
#include "polling_sessions.h"
#include "session_host.h"

#include <asio/io_context.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace mn {

class WsListener {
 public:
  // `host`, `polling` and `probes` must outlive it.
  static std::unique_ptr<WsListener> make(asio::io_context& io, const Config& cfg, SessionHost& host,
                                          PollingSessions& polling, const HttpProbes& probes);
  virtual ~WsListener() = default;

  // Binds and starts accepting. Throws std::runtime_error when the address cannot be bound.
  virtual void listen() = 0;
  virtual void stop() = 0;
  virtual uint16_t port() = 0;
  // TLS: new connections get the certificate and key in these files now; open ones keep theirs.
  // Throws std::runtime_error (keeping the old ones) if they do not load. Without TLS: nothing.
  virtual void reload_tls(const std::string& cert_file, const std::string& key_file) = 0;
};

}  // namespace mn
