#include "ws_listener.h"

#include "listener_setup.h"
#include "origin_policy.h"
#include "polling_codec.h"
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
  o.reuse_port_group = static_cast<uint32_t>(cfg.reuse_port_group);
  o.max_http_body_bytes = cfg.max_message_bytes;  // long-polling POSTs: maxPayload
  return o;
}

template <class Cfg>
class WsListenerFor final : public WsListener {
 public:
  using Server = websocketpp::server<Cfg>;
  using ConnPtr = typename Server::connection_ptr;
  static constexpr bool kTls = std::is_same_v<Cfg, WsTlsConfig>;

  WsListenerFor(asio::io_context& io, const Config& cfg, SessionHost& host, PollingSessions& polling,
                const HttpProbes& probes)
      : cfg_(cfg), host_(host), polling_(polling), probes_(probes), settings_(settings(cfg)) {
    setup_listener(
        server_, io, settings_, [this](const ConnPtr& con) { return accept(con); },
        [this](const ConnPtr& con) {
          polling_.ended(con.get());
          host_.ended(con.get());
        });
    server_.set_validate_handler([this](websocketpp::connection_hdl h) { return on_validate(h); });
    server_.set_open_handler([this](websocketpp::connection_hdl h) {
      ConnPtr con = server_.get_con_from_hdl(h);
      if (Session* s = host_.find(con.get())) host_.opened(*s);
      else polling_.opened(con.get());
      free_handshake(*con);
    });
    server_.set_message_handler([this](websocketpp::connection_hdl h, typename Server::message_ptr m) {
      const bool text = m->get_opcode() == websocketpp::frame::opcode::text;
      if (Session* s = session(h)) host_.message(*s, text, m->get_payload());
      else polling_.message(server_.get_con_from_hdl(h).get(), text, m->get_payload());
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
  // Nothing reads an open connection's handshake (request, response, URI) again: its headers
  // and strings are a third of an idle socket's memory. (websocketpp offers no call to drop
  // them; the request and response are the connection's own, non-const members.) Moved out,
  // not assigned over: a string assigned a short one keeps its old buffer. The moved-from
  // parsers are empty, as a parsed request is (its read buffer is dropped once parsed).
  static void free_handshake(typename Server::connection_type& con) {
    using Request = typename Cfg::request_type;
    using Response = typename Cfg::response_type;
    Request request(std::move(const_cast<Request&>(con.get_request())));
    Response response(std::move(const_cast<Response&>(con.get_response())));
    static const auto no_uri = std::make_shared<websocketpp::uri>(false, "-", "/");
    con.set_uri(no_uri);
  }

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
    if (u.route == Route::socketio_probe) {
      if (polling_.probe(u.sid, std::make_unique<WsLink<Cfg>>(server_, h, con.get())) !=
          PollingSessions::Probe::refused)
        return true;
      // No such session here (gone, upgraded already, or on another process).
      u.status = 400;
      u.body = polling::error_body(polling::ErrorCode::session_id_unknown);
    }
    write_reply(con, u.status, u.content_type, u.body);
    return false;
  }

  void on_http(websocketpp::connection_hdl h) {
    ConnPtr con = server_.get_con_from_hdl(h);
    const std::string& resource = con->get_resource();
    if (resource.rfind("/socket.io/", 0) == 0 || resource.rfind("/socket.io?", 0) == 0 || resource == "/socket.io")
      return on_polling(con);
    UpgradeRequest request{false, con->get_resource(), {}, {}};
    Upgrade u = decide_upgrade(request, cfg_, UpgradeState{});
    if (u.route == Route::refused) return write_reply(con, u.status, u.content_type, u.body);
    auto reply = handle_http(con->get_request().get_method(), u.target, probes_);
    write_reply(con, reply.status, reply.content_type, reply.body, true);
  }

  // Engine.IO long-polling: answered when PollingSessions says, perhaps after this handler.
  void on_polling(const ConnPtr& con) {
    con->defer_http_response();
    PollingSessions::Request r;
    r.key = con.get();
    r.method = con->get_request().get_method();
    r.resource = con->get_resource();
    r.content_type = con->get_request_header("Content-Type");
    r.origin = con->get_request_header("Origin");
    r.authorization = con->get_request_header("Authorization");
    r.peer = con->get_remote_endpoint();
    asio::error_code ec;
    auto remote = con->get_raw_socket().remote_endpoint(ec);
    r.address = ec ? std::string("?") : remote.address().to_string();
    r.body = con->get_request_body();
    // A page on another origin reads the replies only if told it may (CORS); the origins
    // allowed are those --allowed-origins allows (any, when it is empty).
    std::string cors;
    if (!r.origin.empty() && (cfg_.allowed_origin_list.empty() || origin_allowed(r.origin, cfg_.allowed_origin_list)))
      cors = r.origin;
    // The reply holds the connection: while deferred, websocketpp has nothing pending on it
    // and would let it go (closing it unanswered).
    polling_.http(r, [c = con, cors](const PollingSessions::Response& reply) {
      websocketpp::lib::error_code error;
      write_reply(c, reply.status, reply.content_type, reply.body, true);
      // websocketpp closes every HTTP connection after its response: say so, or a client that
      // keeps connections alive (browsers, Node's default agent) sends its next request on a
      // closed one, and a POST is not retried.
      c->append_header("Connection", "close");
      if (!cors.empty()) {
        c->append_header("Access-Control-Allow-Origin", cors);
        c->append_header("Vary", "Origin");
      }
      c->send_http_response(error);
    });
  }

  const Config& cfg_;
  SessionHost& host_;
  PollingSessions& polling_;
  const HttpProbes& probes_;
  ListenerSettings settings_;
  Server server_;
  std::shared_ptr<asio::ssl::context> tls_;  // TLS: for new connections (SIGHUP replaces it)
};

}  // namespace

std::unique_ptr<WsListener> WsListener::make(asio::io_context& io, const Config& cfg, SessionHost& host,
                                             PollingSessions& polling, const HttpProbes& probes) {
  if (cfg.tls_cert_file.empty()) return std::make_unique<WsListenerFor<WsConfig>>(io, cfg, host, polling, probes);
  return std::make_unique<WsListenerFor<WsTlsConfig>>(io, cfg, host, polling, probes);
}

}  // namespace mn
