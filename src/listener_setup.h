// What both listeners (the public port and --admin-listen) share: websocketpp configured once,
// over TCP or TLS, single-threaded; the same setup, accept guard, bind and replies. Only the
// listeners' own files include this (it brings in websocketpp).
#pragma once

#include "reuse_port_steering.h"
#include "ws_log.h"

#include <websocketpp/concurrency/none.hpp>
#include <websocketpp/config/asio.hpp>
#include <websocketpp/server.hpp>

#include <sys/socket.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>

namespace mn {

// websocketpp's stock asio config (Base: config::asio, or config::asio_tls for
// --tls-cert-file, with Socket the matching socket policy), made single-threaded (no mutexes)
// and small: the default 16 KiB read buffer lives inside every connection object, and clients
// have little to say.
template <class Base, class Socket>
struct WsConfigFor : public Base {
  typedef WsConfigFor type;
  typedef Base base;
  typedef websocketpp::concurrency::none concurrency_type;
  typedef typename Base::request_type request_type;
  typedef typename Base::response_type response_type;
  typedef typename Base::message_type message_type;
  typedef typename Base::con_msg_manager_type con_msg_manager_type;
  typedef typename Base::endpoint_msg_manager_type endpoint_msg_manager_type;
  typedef WsLog<websocketpp::log::elevel> elog_type;
  typedef WsLog<websocketpp::log::alevel> alog_type;
  typedef typename Base::rng_type rng_type;
  struct transport_config : public Base::transport_config {
    typedef websocketpp::concurrency::none concurrency_type;
    typedef WsLog<websocketpp::log::alevel> alog_type;
    typedef WsLog<websocketpp::log::elevel> elog_type;
    typedef typename Base::request_type request_type;
    typedef typename Base::response_type response_type;
    typedef Socket socket_type;
    static const bool enable_multithreading = false;
  };
  typedef websocketpp::transport::asio::endpoint<transport_config> transport_type;
  // Clients send little after the handshake (refreshes, pongs, Socket.IO packets): a small
  // read buffer, part of every connection's memory; a handshake takes a few reads.
  static const size_t connection_read_buffer_size = 256;
  static const size_t max_message_size = 64 * 1024;  // the configured limit is lower
  static const size_t max_http_body_size = 0;        // set per listener (ListenerSettings)
};

using WsConfig = WsConfigFor<websocketpp::config::asio, websocketpp::transport::asio::basic_socket::endpoint>;
using WsTlsConfig = WsConfigFor<websocketpp::config::asio_tls, websocketpp::transport::asio::tls_socket::endpoint>;

struct ListenerSettings {
  std::string flag;  // "listen" or "admin-listen": names the listener in errors
  std::string spec;  // the flag's value
  std::string host;
  uint16_t port = 0;
  long open_handshake_ms = 5000;
  long close_handshake_ms = 5000;
  size_t max_message_bytes = 64 * 1024;
  int backlog = 4096;
  bool reuse_port = false;  // SO_REUSEPORT: several processes may share the port
  // 2 or more: that many processes share it, each client address steered to one of them
  // (reuse_port_steering.h), once the listener is up.
  uint32_t reuse_port_group = 0;
  // Largest request body (long-polling POSTs on the public port); larger: HTTP 413.
  size_t max_http_body_bytes = 0;
  // The listening socket, once bound (set by setup_listener's bind hook).
  std::shared_ptr<int> listen_fd = std::make_shared<int>(-1);
};

// Every accepted socket passes `admit(con)` or is closed at once (its descriptor freed now, not
// after a handshake timeout); one that stays gets `ended(con)` once, however it ends (HTTP, a
// failed handshake, a closed WebSocket), after its socket is closed: websocketpp only shuts the
// socket down and goes on reading (and parsing) whatever a peer keeps sending after the end,
// so the descriptor and the connection are freed now and a flooder's next write meets a reset.
template <class Server, class Admit, class Ended>
void setup_listener(Server& server, asio::io_context& io, const ListenerSettings& o, Admit admit, Ended ended) {
  server.clear_access_channels(websocketpp::log::alevel::all);  // logs frames otherwise
  server.clear_error_channels(websocketpp::log::elevel::all);
  server.set_error_channels(websocketpp::log::elevel::fatal);
  server.init_asio(&io);
  // No Server header: it tells an attacker the library's version, and each connection would
  // keep its own copy of the string.
  server.set_user_agent("");
  server.set_reuse_addr(true);
  server.set_listen_backlog(o.backlog);
  server.set_open_handshake_timeout(o.open_handshake_ms);
  server.set_close_handshake_timeout(o.close_handshake_ms);
  server.set_max_message_size(o.max_message_bytes);
  server.set_max_http_body_size(o.max_http_body_bytes);
  const bool reuse_port = o.reuse_port;
  server.set_tcp_pre_bind_handler([reuse_port, fd = o.listen_fd](std::shared_ptr<asio::ip::tcp::acceptor> a) {
    *fd = a->native_handle();
    int one = 1;
    if (reuse_port && ::setsockopt(a->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      return websocketpp::lib::error_code(errno, std::system_category());
    return websocketpp::lib::error_code();
  });
  server.set_tcp_pre_init_handler([&server, admit, ended](websocketpp::connection_hdl h) {
    auto con = server.get_con_from_hdl(h);
    if (!admit(con)) {
      asio::error_code ignored;
      con->get_raw_socket().close(ignored);
      return;
    }
    con->set_termination_handler([ended](typename Server::connection_ptr c) {
      asio::error_code ignored;
      c->get_raw_socket().close(ignored);
      ended(c);
    });
  });
}

// Binds to the settings' address and starts accepting. Throws std::runtime_error naming the
// flag and its value.
template <class Server>
void bind_and_accept(Server& server, const ListenerSettings& o) {
  websocketpp::lib::error_code ec;
  asio::error_code aec;
  auto addr = asio::ip::make_address(o.host, aec);
  if (aec) throw std::runtime_error("--" + o.flag + ": bad address '" + o.host + "': " + aec.message());
  server.listen(asio::ip::tcp::endpoint(addr, o.port), ec);
  if (ec) throw std::runtime_error("cannot listen on " + o.spec + ": " + ec.message());
  // Steering is attached once the socket has joined its group (at listen): each process then
  // sets the same program on the group, whatever order they start in.
  if (o.reuse_port_group >= 2) {
    auto error = attach_steering(*o.listen_fd, addr.is_v6(), o.reuse_port_group);
    if (!error.empty()) throw std::runtime_error("--reuse-port-group on " + o.spec + ": " + error);
  }
  server.start_accept(ec);
  if (ec) throw std::runtime_error("cannot accept on " + o.spec + ": " + ec.message());
}

template <class Server>
uint16_t local_port(Server& server) {
  asio::error_code ec;
  auto ep = server.get_local_endpoint(ec);
  return ec ? 0 : ep.port();
}

template <class Con>
void write_reply(const Con& con, int status, const std::string& content_type, const std::string& body,
                 bool no_store = false) {
  con->set_status(static_cast<websocketpp::http::status_code::value>(status));
  con->append_header("Content-Type", content_type);
  if (no_store) con->append_header("Cache-Control", "no-store");
  con->set_body(body);
}

}  // namespace mn
