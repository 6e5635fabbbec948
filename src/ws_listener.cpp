#include "ws_listener.h"

#include "listener_setup.h"
#include "tls_context.h"

#include <spdlog/spdlog.h>

#include <type_traits>

namespace mn {
namespace {

// One session's frames over its WebSocket connection. It holds the connection weakly: once the
// connection is gone, frames are dropped and the session's end is reported by the listener.
template <class Cfg>
class WsLink final : public SessionLink {
 public:
  using Server = websocketpp::server<Cfg>;
  using ConnPtr = typename Server::connection_ptr;

  WsLink(Server& server, websocketpp::connection_hdl hdl, const void* key)
      : server_(server), hdl_(std::move(hdl)), key_(key) {}

  const void* key() const override { return key_; }
  bool writable() const override {
    auto c = con();
    return c && c->get_state() == websocketpp::session::state::open;
  }
  std::optional<size_t> unsent() const override {
    auto c = con();
    if (!c) return std::nullopt;
    return c->get_buffered_amount();
  }
  bool write(const std::string& frame) override {
    auto c = con();
    return c && !c->send(frame, websocketpp::frame::opcode::text);
  }
  void close(uint16_t code, const std::string& reason) override {
    websocketpp::lib::error_code ec;
    if (auto c = con()) c->close(code, reason, ec);
  }
  void set_close_timeout(std::chrono::milliseconds timeout) override {
    if (auto c = con()) c->set_close_handshake_timeout(timeout.count());
  }
  void ping() override {
    websocketpp::lib::error_code ec;
    if (auto c = con()) c->ping("", ec);
  }
  std::string end_reason() const override {
    auto c = con();
    if (!c) return "connection lost";
    auto code = c->get_remote_close_code();
    if (code == websocketpp::close::status::no_status || code == websocketpp::close::status::abnormal_close)
      return "connection lost (" + c->get_ec().message() + ")";
    const std::string& why = c->get_remote_close_reason();
    return "client closed (" + std::to_string(code) + (why.empty() ? "" : " " + why) + ")";
  }

 private:
  ConnPtr con() const {
    websocketpp::lib::error_code ec;
    auto c = server_.get_con_from_hdl(hdl_, ec);
    if (ec) return nullptr;
    return c;
  }

  Server& server_;
  websocketpp::connection_hdl hdl_;
  const void* key_;
};

ListenerSettings settings(const Config& cfg) {
  ListenerSettings o;
  o.flag = "listen";
  o.spec = cfg.listen;
  o.host = cfg.listen_host;
  o.port = cfg.listen_port;
  o.open_handshake_ms = cfg.handshake_timeout.count();
  o.max_message_bytes = cfg.max_message_bytes;
  o.reuse_port = cfg.reuse_port;
  return o;
}

template <class Cfg>
class WsListenerFor final : public WsListener {
 public:
  using Server = websocketpp::server<Cfg>;
  using ConnPtr = typename Server::connection_ptr;
  static constexpr bool kTls = std::is_same_v<Cfg, WsTlsConfig>;

  WsListenerFor(asio::io_context& io, const Config& cfg, SessionHost& host, const HttpProbes& probes)
      : cfg_(cfg), host_(host), probes_(probes),
        settings_(settings(cfg)) {
    setup_listener(
        server_, io, settings_, [this](const ConnPtr& con) { return accept(con); },
        [this](const ConnPtr& con) { host_.ended(con.get()); });
    server_.set_validate_handler([this](websocketpp::connection_hdl h) { return on_validate(h); });
    server_.set_open_handler([this](websocketpp::connection_hdl h) {
      if (Session* s = session(h)) host_.opened(*s);
    });
    server_.set_message_handler([this](websocketpp::connection_hdl h, typename Server::message_ptr m) {
      if (Session* s = session(h))
        host_.message(*s, m->get_opcode() == websocketpp::frame::opcode::text, m->get_payload());
    });
    server_.set_pong_handler([this](websocketpp::connection_hdl h, std::string) {
      if (Session* s = session(h)) host_.pong(*s);
    });
    // websocketpp answers every ping with a pong unless this returns false.
    server_.set_ping_handler([this](websocketpp::connection_hdl h, std::string) {
      Session* s = session(h);
      return s && host_.ping(*s);
    });
    server_.set_http_handler([this](websocketpp::connection_hdl h) { on_http(h); });
    if constexpr (kTls) {
      tls_ = make_tls_context(cfg.tls_cert_file, cfg.tls_key_file);
      server_.set_tls_init_handler([this](websocketpp::connection_hdl) { return tls_; });
    }
  }

  void listen() override {
    bind_and_accept(server_, settings_);
    spdlog::info("listening on {}:{}{}", cfg_.listen_host, port(), kTls ? " (TLS)" : "");
  }

  void stop() override {
    websocketpp::lib::error_code ec;
    server_.stop_listening(ec);
  }

  uint16_t port() override { return local_port(server_); }

  // New connections get the new certificate; open ones keep the context they were made with.
  void reload_tls(const std::string& cert_file, const std::string& key_file) override {
    if constexpr (kTls) {
      tls_ = make_tls_context(cert_file, key_file);
    } else {
      (void)cert_file;
      (void)key_file;
    }
  }

 private:
  Session* session(websocketpp::connection_hdl h) { return host_.find(server_.get_con_from_hdl(h).get()); }

  bool accept(const ConnPtr& con) {
    if (!host_.may_accept()) return false;
    if constexpr (kTls) {
      // The context may have been replaced (SIGHUP) since this connection was made ready for
      // accept: serve the current certificate.
      SSL* ssl = con->get_socket().native_handle();
      if (SSL_get_SSL_CTX(ssl) != tls_->native_handle()) SSL_set_SSL_CTX(ssl, tls_->native_handle());
    }
    asio::error_code ec;
    auto remote = con->get_raw_socket().remote_endpoint(ec);
    host_.accepted(con.get(), ec ? std::string("?") : remote.address().to_string(),
                   [this, hdl = con->get_handle()] { cut(hdl); });
    con->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ec);
    // A fixed send buffer: left to autotuning, the kernel grows it to megabytes for a client
    // that stops reading, which hides the backlog from the budget and costs kernel memory.
    con->get_raw_socket().set_option(asio::socket_base::send_buffer_size(static_cast<int>(cfg_.socket_send_buffer)),
                                     ec);
    return true;
  }

  void cut(const websocketpp::connection_hdl& hdl) {
    websocketpp::lib::error_code ec;
    auto con = server_.get_con_from_hdl(hdl, ec);
    if (!ec) con->terminate(websocketpp::error::make_error_code(websocketpp::error::general));
  }

  bool on_validate(websocketpp::connection_hdl h) {
    ConnPtr con = server_.get_con_from_hdl(h);
    UpgradeRequest request{true, con->get_resource(), con->get_request_header("Origin"),
                           con->get_request_header("Authorization")};
    Upgrade u = host_.upgrade(request, con->get_remote_endpoint(), std::make_unique<WsLink<Cfg>>(server_, h, con.get()));
    if (u.route == Route::plain || u.route == Route::socketio) return true;
    write_reply(con, u.status, u.content_type, u.body);
    return false;
  }

  void on_http(websocketpp::connection_hdl h) {
    ConnPtr con = server_.get_con_from_hdl(h);
    UpgradeRequest request{false, con->get_resource(), {}, {}};
    Upgrade u = decide_upgrade(request, cfg_, UpgradeState{});
    if (u.route == Route::refused) return write_reply(con, u.status, u.content_type, u.body);
    auto reply = handle_http(con->get_request().get_method(), u.target, probes_);
    write_reply(con, reply.status, reply.content_type, reply.body, true);
  }

  const Config& cfg_;
  SessionHost& host_;
  const HttpProbes& probes_;
  ListenerSettings settings_;
  Server server_;
  std::shared_ptr<asio::ssl::context> tls_;  // TLS: for new connections (SIGHUP replaces it)
};

}  // namespace

std::unique_ptr<WsListener> WsListener::make(asio::io_context& io, const Config& cfg, SessionHost& host,
                                             const HttpProbes& probes) {
  if (cfg.tls_cert_file.empty()) return std::make_unique<WsListenerFor<WsConfig>>(io, cfg, host, probes);
  return std::make_unique<WsListenerFor<WsTlsConfig>>(io, cfg, host, probes);
}

}  // namespace mn
