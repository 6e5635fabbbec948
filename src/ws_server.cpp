#include "ws_server.h"

#include "http_endpoints.h"
#include "origin_policy.h"
#include "plain_protocol.h"
#include "request_target.h"
#include "socketio_session.h"
#include "tls_context.h"
#include "ws_log.h"

#include <spdlog/spdlog.h>
#include <websocketpp/concurrency/none.hpp>
#include <websocketpp/config/asio.hpp>
#include <websocketpp/server.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <list>
#include <random>
#include <type_traits>
#include <unordered_map>

namespace mn {
namespace {

// websocketpp's stock asio config, made single-threaded (no mutexes) and small: the default
// 16 KiB read buffer lives inside every connection object, and clients have little to say.
struct WsConfig : public websocketpp::config::asio {
  typedef WsConfig type;
  typedef websocketpp::config::asio base;
  typedef websocketpp::concurrency::none concurrency_type;
  typedef base::request_type request_type;
  typedef base::response_type response_type;
  typedef base::message_type message_type;
  typedef base::con_msg_manager_type con_msg_manager_type;
  typedef base::endpoint_msg_manager_type endpoint_msg_manager_type;
  typedef WsLog<websocketpp::log::elevel> elog_type;
  typedef WsLog<websocketpp::log::alevel> alog_type;
  typedef base::rng_type rng_type;
  struct transport_config : public base::transport_config {
    typedef type::concurrency_type concurrency_type;
    typedef type::alog_type alog_type;
    typedef type::elog_type elog_type;
    typedef type::request_type request_type;
    typedef type::response_type response_type;
    typedef websocketpp::transport::asio::basic_socket::endpoint socket_type;
    static const bool enable_multithreading = false;
  };
  typedef websocketpp::transport::asio::endpoint<transport_config> transport_type;
  static const size_t connection_read_buffer_size = 1024;
  static const size_t max_message_size = 64 * 1024;  // the configured limit is lower
  static const size_t max_http_body_size = 0;        // no request here has a body
};

// The same over TLS (--tls-cert-file): websocketpp's TLS socket policy on Asio's OpenSSL.
struct WsTlsConfig : public websocketpp::config::asio_tls {
  typedef WsTlsConfig type;
  typedef websocketpp::config::asio_tls base;
  typedef websocketpp::concurrency::none concurrency_type;
  typedef base::request_type request_type;
  typedef base::response_type response_type;
  typedef base::message_type message_type;
  typedef base::con_msg_manager_type con_msg_manager_type;
  typedef base::endpoint_msg_manager_type endpoint_msg_manager_type;
  typedef WsLog<websocketpp::log::elevel> elog_type;
  typedef WsLog<websocketpp::log::alevel> alog_type;
  typedef base::rng_type rng_type;
  struct transport_config : public base::transport_config {
    typedef type::concurrency_type concurrency_type;
    typedef type::alog_type alog_type;
    typedef type::elog_type elog_type;
    typedef type::request_type request_type;
    typedef type::response_type response_type;
    typedef websocketpp::transport::asio::tls_socket::endpoint socket_type;
    static const bool enable_multithreading = false;
  };
  typedef websocketpp::transport::asio::endpoint<transport_config> transport_type;
  static const size_t connection_read_buffer_size = 1024;
  static const size_t max_message_size = 64 * 1024;
  static const size_t max_http_body_size = 0;
};

// The admin address (--admin-listen) is plain HTTP always.
using AdminServer = websocketpp::server<WsConfig>;

// Sockets beyond max_connections + max_unauthenticated (those being cut, refusals being
// written) are allowed this many more; past that a new socket is closed the moment it is
// accepted, so file descriptors run out neither here nor in websocketpp's accept loop (which
// spins on EMFILE).
constexpr size_t kHandshakeHeadroom = 64;
// The admin listener (--admin-listen) serves probes, one short request each: past this many
// open at once a new one is closed at accept, so it cannot be used to exhaust descriptors.
constexpr size_t kAdminSockets = 16;

std::string bearer_token(const std::string& header) {
  static const std::string prefix = "Bearer ";
  if (header.size() > prefix.size() && strncasecmp(header.c_str(), prefix.c_str(), prefix.size()) == 0)
    return header.substr(prefix.size());
  return {};
}

// Binds `s` to host:port and starts accepting; `flag` and `spec` (its value) name it in errors.
template <class S>
void bind_and_accept(S& s, const std::string& flag, const std::string& spec, const std::string& host,
                     uint16_t port) {
  websocketpp::lib::error_code ec;
  asio::error_code aec;
  auto addr = asio::ip::make_address(host, aec);
  if (aec) throw std::runtime_error("--" + flag + ": bad address '" + host + "': " + aec.message());
  s.listen(asio::ip::tcp::endpoint(addr, port), ec);
  if (ec) throw std::runtime_error("cannot listen on " + spec + ": " + ec.message());
  s.start_accept(ec);
  if (ec) throw std::runtime_error("cannot accept on " + spec + ": " + ec.message());
}

// A connection not yet authenticated, in the order they came.
struct Unauthenticated {
  const void* key;
  websocketpp::connection_hdl hdl;
  std::string address;
};

template <class S>
uint16_t local_port(S& s) {
  asio::error_code ec;
  auto ep = s.get_local_endpoint(ec);
  return ec ? 0 : ep.port();
}

}  // namespace

// What WsServer does, whichever socket type it serves: ImplFor<WsConfig> or ImplFor<WsTlsConfig>.
struct WsServer::Impl {
  virtual ~Impl() = default;
  virtual void listen() = 0;
  virtual uint16_t port() = 0;
  virtual uint16_t admin_port() = 0;
  virtual SendResult send(Session& s, const std::string& frame) = 0;
  virtual void close(Session& s, uint16_t code, const std::string& reason) = 0;
  virtual void shutdown(uint16_t code, const std::string& reason, std::chrono::milliseconds grace,
                        std::function<void()> done) = 0;
  virtual std::string start_frame(Session& s, bool recovered, const std::string& position) = 0;
  virtual void reload_tls(const std::string& cert_file, const std::string& key_file) = 0;
  virtual size_t open_sockets() const = 0;
  virtual size_t sessions() const = 0;
  virtual size_t unauthenticated() const = 0;
  virtual const ServerStats& stats() const = 0;
};

template <class Cfg>
struct WsServer::ImplFor final : WsServer::Impl {
  using Server = websocketpp::server<Cfg>;
  using ConnPtr = typename Server::connection_ptr;
  static constexpr bool kTls = std::is_same_v<Cfg, WsTlsConfig>;

  WsServer& owner;
  asio::io_context& io;
  const Config& cfg;
  Hub& hub;
  Server server;
  AdminServer admin;  // --admin-listen: /healthz, /readyz, /metrics, nothing else
  std::shared_ptr<asio::ssl::context> tls;  // TLS: for new connections (SIGHUP replaces it)
  size_t admin_sockets = 0;
  asio::steady_timer sweep;
  std::unordered_map<const void*, std::unique_ptr<Session>> sessions_by_connection;
  size_t sockets = 0;
  uint64_t next_serial = 1;
  bool stopping = false;
  ServerStats stats_;
  std::function<void()> on_drained;
  asio::steady_timer grace;
  SocketIoProtocol sio;
  std::minstd_rand rng{std::random_device{}()};

  // Connections not yet authenticated, oldest first, and how many each remote address holds.
  std::list<Unauthenticated> unauthenticated_list;
  std::unordered_map<const void*, std::list<Unauthenticated>::iterator> unauthenticated_of;
  std::unordered_map<std::string, size_t> unauthenticated_per_address;
  size_t authenticated = 0;
  std::unordered_map<std::string, size_t> sockets_per_user;

  ImplFor(WsServer& o, asio::io_context& i, const Config& c, Hub& h)
      : owner(o), io(i), cfg(c), hub(h), sweep(i), grace(i),
        sio(c, o, h, [&o] { return o.jwt_; },
            SocketIoProtocol::Hooks{[this](Session& s) { return admit(s); },
                                    [this](Session& s) { return may_reply(s); },
                                    [this](bool ok) { ++(ok ? stats_.refreshes : stats_.refreshes_refused); }}) {}

  // ---- Connections not yet authenticated ----

  void forget_unauthenticated(const void* key) {
    auto it = unauthenticated_of.find(key);
    if (it == unauthenticated_of.end()) return;
    auto per = unauthenticated_per_address.find(it->second->address);
    if (per != unauthenticated_per_address.end() && --per->second == 0) unauthenticated_per_address.erase(per);
    unauthenticated_list.erase(it->second);
    unauthenticated_of.erase(it);
  }

  // Cuts the connection at once (no close handshake: an idle peer would hold it for the
  // close timeout); its termination handler frees the rest.
  void cut(std::list<Unauthenticated>::iterator it) {
    auto hdl = it->hdl;
    forget_unauthenticated(it->key);
    ++stats_.unauthenticated_cut;
    websocketpp::lib::error_code ec;
    auto con = server.get_con_from_hdl(hdl, ec);
    if (ec) return;
    if (Session* s = session_of(con); s && s->phase != Phase::handshake) {
      s->close_reason = "cut: newer unauthenticated connections";
      s->phase = Phase::closing;
    }
    con->terminate(websocketpp::error::make_error_code(websocketpp::error::general));
  }

  // A new connection joins the unauthenticated. Past its address's cap, that address's oldest
  // makes room; past the overall cap, the oldest of the address holding the most. Newest-wins:
  // idle sockets cannot keep out a client that is authenticating now, and those from one
  // address (or a few) cut their own, not a client's from elsewhere, however fast they churn.
  void admit_unauthenticated(const ConnPtr& con, const std::string& address) {
    const size_t mine = unauthenticated_per_address[address];
    if (mine >= cfg.max_unauthenticated_per_address) {
      for (auto it = unauthenticated_list.begin(); it != unauthenticated_list.end(); ++it) {
        if (it->address == address) {
          cut(it);
          break;
        }
      }
    } else if (unauthenticated_list.size() >= cfg.max_unauthenticated) {
      size_t most = 0;
      for (const auto& [addr, n] : unauthenticated_per_address) most = std::max(most, n);
      for (auto it = unauthenticated_list.begin(); it != unauthenticated_list.end(); ++it) {
        if (unauthenticated_per_address[it->address] == most) {
          cut(it);
          break;
        }
      }
    }
    unauthenticated_list.push_back({con.get(), con->get_handle(), address});
    unauthenticated_of[con.get()] = std::prev(unauthenticated_list.end());
    ++unauthenticated_per_address[address];
  }

  // The session proved its user: count it in, or say why not.
  const char* admit(Session& s) {
    if (authenticated >= cfg.max_connections) return "over_capacity";
    size_t& n = sockets_per_user[s.user_id];
    if (n >= cfg.max_connections_per_user) {
      if (n == 0) sockets_per_user.erase(s.user_id);
      ++stats_.refused_per_user;
      return "too_many_connections";
    }
    ++n;
    ++authenticated;
    s.authenticated = true;
    websocketpp::lib::error_code ec;
    if (auto con = server.get_con_from_hdl(s.hdl, ec); !ec) forget_unauthenticated(con.get());
    return nullptr;
  }

  void release(Session& s) {
    if (!s.authenticated) return;
    s.authenticated = false;
    --authenticated;
    auto it = sockets_per_user.find(s.user_id);
    if (it != sockets_per_user.end() && --it->second == 0) sockets_per_user.erase(it);
  }

  // ---- What a client sends ----

  // Every message and control frame takes a token; an empty bucket closes the client (4029).
  bool take_message(Session& s, const ConnPtr& con) {
    if (s.phase == Phase::closing) return false;
    auto now = std::chrono::steady_clock::now();
    double refill = std::chrono::duration<double>(now - s.tokens_at).count() * cfg.client_message_rate;
    s.message_tokens = std::min(static_cast<double>(cfg.client_message_burst), s.message_tokens + refill);
    s.tokens_at = now;
    if (s.message_tokens >= 1) {
      s.message_tokens -= 1;
      return true;
    }
    ++stats_.closed_too_many_messages;
    // It is likely not reading either: a moment for the close handshake, not the usual 5 s.
    con->set_close_handshake_timeout(1000);
    owner.close(s, close_code::too_many_messages, "too many messages: over --client-message-rate");
    return false;
  }

  // Replies to a client's own messages (pongs, error frames, acks) are not queued while it has
  // more than its budget unsent: it is not reading them, and they would pile up.
  bool may_reply(Session& s) {
    websocketpp::lib::error_code ec;
    auto con = server.get_con_from_hdl(s.hdl, ec);
    if (ec) return false;
    if (con->get_buffered_amount() <= cfg.max_buffered_bytes) return true;
    ++stats_.replies_withheld;
    return false;
  }

  Session* session_of(const ConnPtr& con) {
    auto it = sessions_by_connection.find(con.get());
    return it == sessions_by_connection.end() ? nullptr : it->second.get();
  }

  template <class C>
  void reject(const C& con, websocketpp::http::status_code::value status,
              const std::string& code, const std::string& message) {
    con->set_status(status);
    con->append_header("Content-Type", "application/json");
    con->set_body(plain::error_frame(code, message));
  }

  void setup() {
    server.clear_access_channels(websocketpp::log::alevel::all);  // logs frames otherwise
    server.clear_error_channels(websocketpp::log::elevel::all);
    server.set_error_channels(websocketpp::log::elevel::fatal);
    server.init_asio(&io);
    server.set_reuse_addr(true);
    server.set_listen_backlog(4096);
    server.set_open_handshake_timeout(cfg.handshake_timeout.count());
    server.set_close_handshake_timeout(5000);
    server.set_max_message_size(cfg.max_message_bytes);
    server.set_max_http_body_size(0);
    bool reuse_port = cfg.reuse_port;
    server.set_tcp_pre_bind_handler([reuse_port](std::shared_ptr<asio::ip::tcp::acceptor> a) {
      int one = 1;
      if (reuse_port && ::setsockopt(a->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        return websocketpp::lib::error_code(errno, std::system_category());
      return websocketpp::lib::error_code();
    });
    server.set_tcp_pre_init_handler([this](websocketpp::connection_hdl h) { on_accepted(h); });
    server.set_validate_handler([this](websocketpp::connection_hdl h) { return on_validate(h); });
    server.set_open_handler([this](websocketpp::connection_hdl h) { on_open(h); });
    server.set_message_handler([this](websocketpp::connection_hdl h, typename Server::message_ptr m) { on_message(h, m); });
    if constexpr (kTls) {
      tls = make_tls_context(cfg.tls_cert_file, cfg.tls_key_file);
      server.set_tls_init_handler([this](websocketpp::connection_hdl) { return tls; });
    }
    server.set_pong_handler([this](websocketpp::connection_hdl h, std::string) {
      auto con = server.get_con_from_hdl(h);
      auto* s = session_of(con);
      if (s && take_message(*s, con)) s->ping_outstanding = false;
    });
    // websocketpp answers every ping with a pong unless this returns false.
    server.set_ping_handler([this](websocketpp::connection_hdl h, std::string) {
      auto con = server.get_con_from_hdl(h);
      auto* s = session_of(con);
      return s && take_message(*s, con) && may_reply(*s);
    });
    server.set_http_handler([this](websocketpp::connection_hdl h) { on_http(h); });
  }

  void on_accepted(websocketpp::connection_hdl h) {
    ConnPtr con = server.get_con_from_hdl(h);
    ++stats_.accepted;
    asio::error_code ec;
    if (sockets >= cfg.max_connections + cfg.max_unauthenticated + kHandshakeHeadroom || stopping) {
      ++stats_.refused_over_capacity;
      con->get_raw_socket().close(ec);  // fails the connection at once; its fd is freed now
      return;
    }
    ++sockets;
    if constexpr (kTls) {
      // The context may have been replaced (SIGHUP) since this connection was made ready for
      // accept: serve the current certificate.
      SSL* ssl = con->get_socket().native_handle();
      if (SSL_get_SSL_CTX(ssl) != tls->native_handle()) SSL_set_SSL_CTX(ssl, tls->native_handle());
    }
    auto remote = con->get_raw_socket().remote_endpoint(ec);
    admit_unauthenticated(con, ec ? std::string("?") : remote.address().to_string());
    con->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ec);
    // A fixed send buffer: left to autotuning, the kernel grows it to megabytes for a client
    // that stops reading, which hides the backlog from the budget and costs kernel memory.
    con->get_raw_socket().set_option(asio::socket_base::send_buffer_size(static_cast<int>(cfg.socket_send_buffer)), ec);
    // Called for every connection that got here, however it ends (HTTP, failed handshake,
    // closed WebSocket): the one place that frees what the connection holds.
    con->set_termination_handler([this](ConnPtr c) { on_terminated(c); });
  }

  std::unique_ptr<Session> new_session(websocketpp::connection_hdl h, const ConnPtr& con, Protocol p) {
    auto s = std::make_unique<Session>();
    s->serial = next_serial++;
    s->hdl = h;
    s->protocol = p;
    s->peer = con->get_remote_endpoint();
    s->message_tokens = static_cast<double>(cfg.client_message_burst);
    s->tokens_at = std::chrono::steady_clock::now();
    return s;
  }

  bool on_validate(websocketpp::connection_hdl h) {
    ConnPtr con = server.get_con_from_hdl(h);
    auto target = RequestTarget::parse(con->get_resource());
    const bool socketio = target.path == "/socket.io/" || target.path == "/socket.io";
    if (target.path != "/ws" && !socketio) {
      reject(con, websocketpp::http::status_code::not_found, "not_found",
             "WebSocket endpoints: /ws and /socket.io/");
      return false;
    }
    if (!cfg.allowed_origin_list.empty()) {
      const std::string origin = con->get_request_header("Origin");
      if (!origin.empty() && !origin_allowed(origin, cfg.allowed_origin_list)) {
        ++stats_.refused_origin;
        spdlog::info("refused {}: origin not allowed", con->get_remote_endpoint());
        reject(con, websocketpp::http::status_code::forbidden, "origin_not_allowed",
               "this Origin may not open a socket here (--allowed-origins)");
        return false;
      }
    }
    if (stopping || authenticated >= cfg.max_connections) {
      ++stats_.refused_over_capacity;
      reject(con, websocketpp::http::status_code::service_unavailable, "over_capacity",
             "connection limit reached; try again later");
      return false;
    }
    if (owner.started_ && !owner.started_()) {
      reject(con, websocketpp::http::status_code::service_unavailable, "starting",
             "not connected to the database yet; try again shortly");
      return false;
    }
    std::string token = bearer_token(con->get_request_header("Authorization"));
    if (token.empty()) token = target.single("access_token").value_or("");
    if (socketio) {
      // Socket.IO authenticates with its CONNECT packet, after the upgrade.
      int status = 400;
      std::string body;
      if (!sio.accept_handshake(target, status, body)) {
        con->set_status(static_cast<websocketpp::http::status_code::value>(status));
        con->append_header("Content-Type", "application/json");
        con->set_body(body);
        return false;
      }
      auto s = new_session(h, con, Protocol::socketio);
      s->handshake_token = std::move(token);
      sessions_by_connection.emplace(con.get(), std::move(s));
      return true;
    }
    if (token.empty()) {
      ++stats_.refused_unauthorized;
      reject(con, websocketpp::http::status_code::unauthorized, "missing_token",
             "send a JWT as 'Authorization: Bearer <token>' or ?access_token=<token>");
      return false;
    }
    auto outcome = owner.jwt_->verify(token, std::chrono::system_clock::now());
    if (!outcome.ok) {
      ++stats_.refused_unauthorized;
      spdlog::info("refused {}: invalid token ({})", con->get_remote_endpoint(), outcome.error);
      reject(con, websocketpp::http::status_code::unauthorized, "invalid_token", outcome.error);
      return false;
    }
    auto s = new_session(h, con, Protocol::plain);
    s->user_id = outcome.user_id;
    s->valid_until = outcome.valid_until;
    if (const char* refused = admit(*s)) {
      if (std::string(refused) == "over_capacity") {
        ++stats_.refused_over_capacity;
        reject(con, websocketpp::http::status_code::service_unavailable, "over_capacity",
               "connection limit reached; try again later");
      } else {
        spdlog::info("refused {}: user {} has --max-connections-per-user sockets", con->get_remote_endpoint(),
                     s->user_id);
        reject(con, websocketpp::http::status_code::too_many_requests, "too_many_connections",
               "this user has as many sockets open as --max-connections-per-user allows");
      }
      return false;
    }
    if (target.has("offset")) {
      s->resume_requested = true;
      auto offset = decode_offset(target.single("offset").value_or(""));
      if (offset) s->resume_from = std::move(*offset);
    }
    sessions_by_connection.emplace(con.get(), std::move(s));
    return true;
  }

  void on_open(websocketpp::connection_hdl h) {
    ConnPtr con = server.get_con_from_hdl(h);
    Session* s = session_of(con);
    if (!s) return;
    ++stats_.sessions_opened;
    s->opened_at = std::chrono::steady_clock::now();
    // A random phase: sessions that connected together (after a restart, say) must not all
    // be pinged in one turn of the loop every interval, stalling deliveries meanwhile. The
    // first ping comes after half an interval at the earliest, as a peer expecting one per
    // interval may reasonably assume (a Socket.IO peer's first "2" came at once otherwise, in
    // 1 of 25 sessions within a second of connecting).
    auto half = std::max<int64_t>(1, cfg.ping_interval.count() / 2);
    s->last_ping = s->opened_at - std::chrono::milliseconds(static_cast<int64_t>(rng() % half));
    if (s->protocol == Protocol::socketio) {
      s->phase = Phase::awaiting_auth;
      return sio.on_open(*s, std::exchange(s->handshake_token, std::string()));
    }
    spdlog::info("connect session={} user={} peer={} protocol=ws resume={}", s->serial, s->user_id,
                 s->peer, s->resume_from ? "yes" : (s->resume_requested ? "invalid" : "no"));
    hub.open(*s);
  }

  void on_message(websocketpp::connection_hdl h, typename Server::message_ptr msg) {
    ConnPtr con = server.get_con_from_hdl(h);
    Session* s = session_of(con);
    if (!s || s->phase == Phase::closing) return;
    if (!take_message(*s, con)) return;
    if (s->protocol == Protocol::socketio && msg->get_opcode() == websocketpp::frame::opcode::text) {
      return sio.on_text(*s, msg->get_payload());
    }
    if (msg->get_opcode() != websocketpp::frame::opcode::text) {
      ++stats_.bad_messages;
      return owner.close(*s, websocketpp::close::status::unsupported_data, "binary frames are not accepted");
    }
    auto m = plain::parse_client_message(msg->get_payload());
    if (m.kind == plain::ClientMessage::refresh) return refresh(*s, m.token);
    ++stats_.bad_messages;
    if (m.kind == plain::ClientMessage::invalid) {
      ++stats_.refreshes_refused;
      spdlog::info("refresh refused session={} user={}: {}", s->serial, s->user_id, m.error);
      return owner.close(*s, close_code::refresh_refused, "refresh refused: " + m.error);
    }
    // Anything else: say so, once per message, and carry on.
    if (may_reply(*s))
      owner.send(*s, plain::error_frame("unexpected_message", "this endpoint accepts only {\"event\":\"refresh\"}"));
  }

  // /ws: a new token for the open socket. It must verify now (with the keys in force now) and
  // name the same user; then the socket lives until its exp instead.
  void refresh(Session& s, const std::string& token) {
    auto outcome = owner.jwt_->verify(token, std::chrono::system_clock::now());
    std::string why;
    if (!outcome.ok) why = "invalid token (" + outcome.error + ")";
    else if (outcome.user_id != s.user_id) why = "the token names another user";
    if (!why.empty()) {
      ++stats_.refreshes_refused;
      spdlog::info("refresh refused session={} user={}: {}", s.serial, s.user_id, why);
      return owner.close(s, close_code::refresh_refused, "refresh refused: " + why);
    }
    ++stats_.refreshes;
    s.valid_until = outcome.valid_until;
    if (may_reply(s)) owner.send(s, plain::refreshed_frame(outcome.valid_until));
  }

  void setup_admin() {
    admin.clear_access_channels(websocketpp::log::alevel::all);
    admin.clear_error_channels(websocketpp::log::elevel::all);
    admin.init_asio(&io);
    admin.set_reuse_addr(true);
    admin.set_open_handshake_timeout(2000);
    admin.set_max_http_body_size(0);
    admin.set_tcp_pre_init_handler([this](websocketpp::connection_hdl h) {
      auto con = admin.get_con_from_hdl(h);
      asio::error_code ec;
      if (admin_sockets >= kAdminSockets) {
        con->get_raw_socket().close(ec);
        return;
      }
      ++admin_sockets;
      con->set_termination_handler([this](AdminServer::connection_ptr c) {
        --admin_sockets;
        asio::error_code ignored;
        c->get_raw_socket().close(ignored);  // as on_terminated: websocketpp would go on reading
      });
    });
    admin.set_validate_handler([this](websocketpp::connection_hdl h) {
      reject(admin.get_con_from_hdl(h), websocketpp::http::status_code::not_found, "not_found",
             "the admin address serves /healthz, /readyz and /metrics, no WebSocket");
      return false;
    });
    admin.set_http_handler([this](websocketpp::connection_hdl h) { answer_http(admin.get_con_from_hdl(h)); });
  }

  void on_http(websocketpp::connection_hdl h) {
    ConnPtr con = server.get_con_from_hdl(h);
    // With an admin address, what tells about the service (readiness, metrics) stays off the
    // public port; liveness stays on both.
    if (!cfg.admin_listen.empty()) {
      auto target = RequestTarget::parse(con->get_resource());
      if (target.path == "/metrics" || target.path == "/readyz") {
        reject(con, websocketpp::http::status_code::not_found, "not_found",
               "/metrics and /readyz are served on the admin address (--admin-listen) only");
        return;
      }
    }
    answer_http(con);
  }

  template <class C>
  void answer_http(const C& con) {
    auto target = RequestTarget::parse(con->get_resource());
    HttpReply reply = handle_http(con->get_request().get_method(), target,
                                  owner.ready_ ? owner.ready_() : false,
                                  owner.metrics_ ? owner.metrics_ : nullptr);
    con->set_status(static_cast<websocketpp::http::status_code::value>(reply.status));
    con->append_header("Content-Type", reply.content_type);
    con->append_header("Cache-Control", "no-store");
    con->set_body(reply.body);
  }

  void on_terminated(const ConnPtr& con) {
    --sockets;
    forget_unauthenticated(con.get());
    // websocketpp only shuts the socket down, and goes on reading (and parsing) whatever a
    // peer keeps sending after the end until it stops: close it, so the descriptor and the
    // connection are freed now and a flooder's next write meets a reset.
    asio::error_code ignored;
    con->get_raw_socket().close(ignored);
    auto it = sessions_by_connection.find(con.get());
    if (it == sessions_by_connection.end()) {
      maybe_drained();
      return;
    }
    Session& s = *it->second;
    hub.close(s);
    release(s);
    if (s.phase == Phase::handshake) {
      ++stats_.handshakes_failed;
    } else {
      ++stats_.sessions_closed;
      std::string reason = s.close_reason;
      if (reason.empty()) {
        auto code = con->get_remote_close_code();
        reason = code == websocketpp::close::status::no_status || code == websocketpp::close::status::abnormal_close
                     ? "connection lost (" + con->get_ec().message() + ")"
                     : "client closed (" + std::to_string(code) +
                           (con->get_remote_close_reason().empty() ? "" : " " + con->get_remote_close_reason()) + ")";
      }
      spdlog::info("disconnect session={} user={} peer={} reason=\"{}\" sent={}", s.serial, s.user_id,
                   s.peer, reason, s.events_sent);
    }
    sessions_by_connection.erase(it);
    maybe_drained();
  }

  void maybe_drained() {
    if (stopping && sockets == 0 && on_drained) {
      grace.cancel();
      auto done = std::exchange(on_drained, nullptr);
      done();
    }
  }

  void schedule_sweep() {
    // Every 100 ms: each session's pings fall due at its own phase, so a tick sends a tenth of
    // a second's worth. With a 1 s tick, 10,000 sessions meant ~400 pings (and their pongs)
    // in one loop turn each second: a 3-4 ms stall that delayed whatever event came then.
    auto tick = std::min({std::chrono::milliseconds(100), cfg.ping_interval, cfg.ping_timeout});
    sweep.expires_after(tick);
    sweep.async_wait([this](const asio::error_code& ec) {
      if (ec) return;
      keepalive();
      schedule_sweep();
    });
  }

  // One timer for all connections, not one per connection: a ping each ping_interval, and a
  // peer that has not answered within ping_timeout is dropped.
  void keepalive() {
    auto now = std::chrono::steady_clock::now();
    const double wall = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::vector<Session*> dead, timed_out_auth, pinged, expired;
    for (auto& [key, sp] : sessions_by_connection) {
      Session& s = *sp;
      if (s.phase == Phase::handshake || s.phase == Phase::closing) continue;
      if (s.phase == Phase::awaiting_auth && now - s.opened_at > cfg.auth_timeout) {
        timed_out_auth.push_back(&s);
        continue;
      }
      if (s.valid_until && wall > *s.valid_until) {
        expired.push_back(&s);
        continue;
      }
      if (s.ping_outstanding) {
        if (now - s.last_ping > cfg.ping_timeout) dead.push_back(&s);
        continue;
      }
      if (now - s.last_ping >= cfg.ping_interval) {
        s.ping_outstanding = true;
        s.last_ping = now;
        pinged.push_back(&s);
        if (s.protocol == Protocol::socketio) {
          sio.send_ping(s);
          continue;
        }
        asio::error_code ec;
        auto con = server.get_con_from_hdl(s.hdl, ec);
        if (!ec) con->ping("", ec);
      }
    }
    // With each ping, a newer offset for a client that has had no event since the last read
    // (hub.h). After the loop: a send may close its session.
    for (Session* s : pinged) hub.refresh_position(*s);
    for (Session* s : timed_out_auth) owner.close(*s, websocketpp::close::status::policy_violation, "no CONNECT packet within auth timeout");
    for (Session* s : expired) {
      ++stats_.tokens_expired;
      s->valid_until.reset();
      owner.close(*s, close_code::token_expired, "token expired; reconnect with a new token, or refresh it before exp");
    }
    for (Session* s : dead) {
      ++stats_.ping_timeouts;
      // A peer that does not answer pings is unlikely to answer a close handshake: say why
      // (1001), but give it only a moment before the connection is cut.
      asio::error_code ec;
      auto con = server.get_con_from_hdl(s->hdl, ec);
      if (!ec) con->set_close_handshake_timeout(std::min<long>(1000, cfg.ping_timeout.count()));
      owner.close(*s, websocketpp::close::status::going_away, "no pong within ping timeout");
    }
  }

  // ---- What WsServer asks of it ----

  void listen() override {
    bind_and_accept(server, "listen", cfg.listen, cfg.listen_host, cfg.listen_port);
    schedule_sweep();
    spdlog::info("listening on {}:{}{}", cfg.listen_host, port(), kTls ? " (TLS)" : "");
    if (cfg.admin_listen.empty()) return;
    setup_admin();
    bind_and_accept(admin, "admin-listen", cfg.admin_listen, cfg.admin_host, cfg.admin_port);
    spdlog::info("admin endpoints (/healthz, /readyz, /metrics) on {}:{}", cfg.admin_host, admin_port());
  }

  uint16_t admin_port() override { return cfg.admin_listen.empty() ? 0 : local_port(admin); }
  uint16_t port() override { return local_port(server); }

  SendResult send(Session& s, const std::string& frame) override {
    if (s.phase == Phase::closing) return SendResult::dropped;
    websocketpp::lib::error_code ec;
    ConnPtr con = server.get_con_from_hdl(s.hdl, ec);
    if (ec || con->get_state() != websocketpp::session::state::open) return SendResult::dropped;
    // websocketpp queues without bound and writes only after this turn of the loop, so a burst
    // (a big transaction, a replay, a snapshot) is always "unsent" while it is being queued.
    // Slowness is judged between turns instead: a client over the budget must drain within
    // the grace period, and must not fall a further budget behind meanwhile.
    if (s.budget_turn != owner.turn_) {
      s.budget_turn = owner.turn_;
      size_t unsent = con->get_buffered_amount();
      auto now = std::chrono::steady_clock::now();
      if (unsent <= cfg.max_buffered_bytes) {
        s.over_budget_mark = 0;
      } else if (s.over_budget_mark == 0) {
        s.over_budget_mark = unsent;
        s.over_budget_since = now;
      } else if (now - s.over_budget_since > cfg.slow_client_grace ||
                 unsent > s.over_budget_mark + cfg.max_buffered_bytes) {
        close(s, 1013, "too slow: unsent data over the limit; reconnect with your last offset");
        return SendResult::closed_backpressure;
      }
    }
    ec = con->send(frame, websocketpp::frame::opcode::text);
    return ec ? SendResult::dropped : SendResult::sent;
  }

  void close(Session& s, uint16_t code, const std::string& reason) override {
    if (s.phase == Phase::closing) return;
    s.phase = Phase::closing;
    s.close_reason = reason;
    hub.close(s);  // nothing more is delivered to it
    websocketpp::lib::error_code ec;
    ConnPtr con = server.get_con_from_hdl(s.hdl, ec);
    if (!ec) con->close(code, reason.substr(0, 120), ec);  // a close reason must fit 123 bytes
  }

  void shutdown(uint16_t code, const std::string& reason, std::chrono::milliseconds grace_period,
                std::function<void()> done) override {
    stopping = true;
    websocketpp::lib::error_code ec;
    server.stop_listening(ec);
    if (!cfg.admin_listen.empty()) admin.stop_listening(ec);
    sweep.cancel();
    std::vector<Session*> all;
    for (auto& [k, s] : sessions_by_connection) all.push_back(s.get());
    for (Session* s : all) {
      if (s->phase == Phase::handshake) continue;
      close(*s, code, reason);
    }
    on_drained = std::move(done);
    grace.expires_after(grace_period);
    grace.async_wait([this](const asio::error_code& e) {
      if (e) return;
      if (auto d = std::exchange(on_drained, nullptr)) d();
    });
    maybe_drained();
  }

  std::string start_frame(Session& s, bool recovered, const std::string& position) override {
    return s.protocol == Protocol::plain ? plain::session_frame(s.user_id, recovered)
                                         : sio.start_frame(s, recovered, position);
  }

  // New connections get the new certificate; open ones keep the context they were made with.
  void reload_tls(const std::string& cert_file, const std::string& key_file) override {
    if constexpr (kTls) {
      tls = make_tls_context(cert_file, key_file);
    } else {
      (void)cert_file;
      (void)key_file;
    }
  }

  size_t open_sockets() const override { return sockets; }
  size_t sessions() const override { return sessions_by_connection.size(); }
  size_t unauthenticated() const override { return unauthenticated_list.size(); }
  const ServerStats& stats() const override { return stats_; }
};

WsServer::WsServer(asio::io_context& io, const Config& cfg, Hub& hub) {
  if (cfg.tls_cert_file.empty()) {
    auto impl = std::make_unique<ImplFor<WsConfig>>(*this, io, cfg, hub);
    impl->setup();
    impl_ = std::move(impl);
  } else {
    auto impl = std::make_unique<ImplFor<WsTlsConfig>>(*this, io, cfg, hub);
    impl->setup();
    impl_ = std::move(impl);
  }
  hub.attach(*this);
  hub.set_start_frame([this](Session& s, bool recovered, const std::string& position) {
    return impl_->start_frame(s, recovered, position);
  });
}

WsServer::~WsServer() = default;

void WsServer::listen() { impl_->listen(); }
uint16_t WsServer::admin_port() const { return impl_->admin_port(); }
uint16_t WsServer::port() const { return impl_->port(); }
SendResult WsServer::send(Session& s, const std::string& frame) { return impl_->send(s, frame); }
void WsServer::close(Session& s, uint16_t code, const std::string& reason) { impl_->close(s, code, reason); }
void WsServer::shutdown(uint16_t code, const std::string& reason, std::chrono::milliseconds grace,
                        std::function<void()> done) {
  impl_->shutdown(code, reason, grace, std::move(done));
}
void WsServer::reload_tls(const std::string& cert_file, const std::string& key_file) {
  impl_->reload_tls(cert_file, key_file);
}
size_t WsServer::open_sockets() const { return impl_->open_sockets(); }
size_t WsServer::sessions() const { return impl_->sessions(); }
size_t WsServer::unauthenticated() const { return impl_->unauthenticated(); }
const ServerStats& WsServer::stats() const { return impl_->stats(); }

}  // namespace mn
