#include "admin_listener.h"

#include "listener_setup.h"
#include "plain_protocol.h"

#include <spdlog/spdlog.h>

namespace mn {

namespace {

// Probes are short requests: 2 s for one to arrive in full.
ListenerSettings admin_settings(const Config& cfg) {
  ListenerSettings o;
  o.flag = "admin-listen";
  o.spec = cfg.admin_listen;
  o.host = cfg.admin_host;
  o.port = cfg.admin_port;
  o.open_handshake_ms = 2000;
  return o;
}

}  // namespace

struct AdminListener::Impl {
  using Server = websocketpp::server<WsConfig>;

  Impl(asio::io_context& io, const Config& c, const HttpProbes& p)
      : cfg(c), probes(p),
        settings(admin_settings(c)) {
    setup_listener(
        server, io, settings,
        [this](const Server::connection_ptr&) {
          if (sockets >= kMaxSockets) return false;
          ++sockets;
          return true;
        },
        [this](const Server::connection_ptr&) { --sockets; });
    server.set_validate_handler([this](websocketpp::connection_hdl h) {
      write_reply(server.get_con_from_hdl(h), 404, "application/json",
                  plain::error_frame("not_found", "the admin address serves /healthz, /readyz and /metrics, no WebSocket"));
      return false;
    });
    server.set_http_handler([this](websocketpp::connection_hdl h) {
      auto con = server.get_con_from_hdl(h);
      auto reply = handle_http(con->get_request().get_method(), RequestTarget::parse(con->get_resource()), probes);
      write_reply(con, reply.status, reply.content_type, reply.body, true);
    });
  }

  const Config& cfg;
  const HttpProbes& probes;
  ListenerSettings settings;
  Server server;
  size_t sockets = 0;
};

AdminListener::AdminListener(asio::io_context& io, const Config& cfg, const HttpProbes& probes)
    : impl_(std::make_unique<Impl>(io, cfg, probes)) {}

AdminListener::~AdminListener() = default;

void AdminListener::listen() {
  bind_and_accept(impl_->server, impl_->settings);
  spdlog::info("admin endpoints (/healthz, /readyz, /metrics) on {}:{}", impl_->cfg.admin_host, port());
}

void AdminListener::stop() {
  websocketpp::lib::error_code ec;
  impl_->server.stop_listening(ec);
}

uint16_t AdminListener::port() const { return local_port(impl_->server); }

}  // namespace mn
