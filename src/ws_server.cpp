#include "ws_server.h"

#include "admin_listener.h"
#include "polling_sessions.h"
#include "ws_listener.h"

namespace mn {

WsServer::WsServer(asio::io_context& io, const Config& cfg, Hub& hub)
    : io_(io), cfg_(cfg), host_(std::make_unique<SessionHost>(io, cfg, hub)),
      polling_(std::make_unique<PollingSessions>(io, cfg, *host_)),
      public_(WsListener::make(io, cfg, *host_, *polling_, probes_)) {}

WsServer::~WsServer() = default;

size_t WsServer::polling_sessions() const { return polling_->sessions(); }

void WsServer::listen() {
  public_->listen();
  host_->start();
  polling_->start();
  if (cfg_.admin_listen.empty()) return;
  admin_ = std::make_unique<AdminListener>(io_, cfg_, probes_);
  admin_->listen();
}

uint16_t WsServer::port() const { return public_->port(); }
uint16_t WsServer::admin_port() const { return admin_ ? admin_->port() : 0; }

void WsServer::shutdown(uint16_t code, const std::string& reason, std::chrono::milliseconds grace,
                        std::function<void()> done) {
  public_->stop();
  if (admin_) admin_->stop();
  host_->shutdown(code, reason, grace, std::move(done));
}

void WsServer::reload_tls(const std::string& cert_file, const std::string& key_file) {
  public_->reload_tls(cert_file, key_file);
}

}  // namespace mn
