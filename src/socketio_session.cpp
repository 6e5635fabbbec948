#include "socketio_session.h"

#include "offset.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

#include <strings.h>

namespace mn {
namespace {

constexpr uint16_t kCloseNormal = 1000;
constexpr uint16_t kCloseUnsupportedData = 1003;
constexpr uint16_t kCloseInvalidPayload = 1007;
constexpr uint16_t kClosePolicy = 1008;

// socket.io-client sends whatever the application put in `auth`; accept the header form too.
std::string strip_bearer(const std::string& token) {
  static const std::string prefix = "Bearer ";
  if (token.size() > prefix.size() && strncasecmp(token.c_str(), prefix.c_str(), prefix.size()) == 0)
    return token.substr(prefix.size());
  return token;
}

}  // namespace

SocketIoProtocol::SocketIoProtocol(const Config& cfg, Transport& transport, Hub& hub, JwtSource jwt, Hooks hooks)
    : cfg_(cfg), transport_(transport), hub_(hub), jwt_(std::move(jwt)), hooks_(std::move(hooks)),
      random_(std::random_device{}()) {}

std::string SocketIoProtocol::new_id() {
  uint64_t hi = random_(), lo = random_();
  return socketio::session_id(hi, lo);
}

void SocketIoProtocol::on_open(Session& s, const std::string& bearer) {
  s.handshake_token = bearer;  // kept only until CONNECT
  if (s.engine_sid.empty()) s.engine_sid = new_id();
  transport_.send(s, socketio::open_frame(s.engine_sid, cfg_.ping_interval, cfg_.ping_timeout, cfg_.max_message_bytes,
                                          s.can_upgrade));
}

void SocketIoProtocol::on_text(Session& s, const std::string& frame) {
  using socketio::ClientPacket;
  auto p = socketio::parse_client_frame(frame);
  switch (p.type) {
    case ClientPacket::pong:
      s.ping_outstanding = false;
      return;
    case ClientPacket::close:
      return transport_.close(s, kCloseNormal, "client closed the Engine.IO session");
    case ClientPacket::event:
      if (p.nsp == "/" && p.event == "refresh" &&
          (s.phase == Phase::catching_up || s.phase == Phase::live))
        return on_refresh(s, p);
      // Nothing listens to other client events; an ack they ask for never comes, as with a
      // reference server that has no handler for them.
      return;
    case ClientPacket::ignored:
    case ClientPacket::ack:
      return;
    case ClientPacket::binary:
      return transport_.close(s, kCloseUnsupportedData, "binary Socket.IO packets are not accepted");
    case ClientPacket::invalid:
      return transport_.close(s, kCloseInvalidPayload, "unparseable packet: " + p.error);
    case ClientPacket::disconnect:
      if (p.nsp == "/") transport_.close(s, kCloseNormal, "client disconnected");
      return;
    case ClientPacket::connect:
      if (p.nsp != "/") {
        if (hooks_.may_reply(s)) transport_.send(s, socketio::connect_error_frame(p.nsp, "Invalid namespace"));
        return;
      }
      // Already connected (or being caught up): a stock client never does this; a second
      // session on one socket is not something to build for.
      if (s.phase != Phase::awaiting_auth) return;
      return on_connect(s, p.auth);
  }
}

void SocketIoProtocol::refuse(Session& s, const char* code, const std::string& why, const char* message) {
  spdlog::info("refused {}: {} protocol=socket.io", s.peer, why);
  transport_.send(s, socketio::connect_error_frame("/", message, std::string(R"({"code":")") + code + "\"}"));
  // The client destroys its socket on CONNECT_ERROR and does not reconnect; the close only
  // keeps a client that ignores it from holding the connection.
  transport_.close(s, kClosePolicy, std::string(message) + ": " + code);
}

void SocketIoProtocol::on_connect(Session& s, const socketio::ConnectAuth& auth) {
  std::string token = auth.token ? strip_bearer(*auth.token) : std::string();
  if (token.empty() && !auth.bad_token) token = s.handshake_token;
  s.handshake_token.clear();
  if (auth.bad_token) return refuse(s, "invalid_token", "invalid token (not a string)");
  if (token.empty()) return refuse(s, "missing_token", "no token");
  auto verifier = jwt_();
  if (!verifier) return refuse(s, "invalid_token", "no JWT verifier configured");
  auto outcome = verifier->verify(token, std::chrono::system_clock::now());
  if (!outcome.ok) return refuse(s, "invalid_token", "invalid token (" + outcome.error + ")");
  s.user_id = outcome.user_id;
  if (const char* refused = hooks_.admit(s)) {
    return refuse(s, refused, std::string(refused) + " user=" + s.user_id, "refused");
  }
  s.valid_until = outcome.valid_until;

  if (auth.pid) {
    s.resume_requested = true;
    if (auto parts = socketio::split_pid(*auth.pid)) {
      // The offset of the last event received, or where the stream began if none came.
      auto from = decode_offset(auth.offset ? *auth.offset : parts->position);
      if (from) {
        s.resume_from = std::move(from);
        s.sid = std::move(parts->sid);
        s.pid = *auth.pid;
      }
    }
  }
  spdlog::info("connect session={} user={} peer={} protocol=socket.io resume={}", s.serial, s.user_id, s.peer,
               s.resume_from ? "yes" : (s.resume_requested ? "invalid" : "no"));
  hub_.open(s);
}

void SocketIoProtocol::on_refresh(Session& s, const socketio::Parsed& p) {
  auto answer = [&](const std::string& json) {
    if (p.ack_id && hooks_.may_reply(s)) transport_.send(s, socketio::ack_frame(*p.ack_id, json));
  };
  auto verifier = jwt_();
  std::string why;
  if (!p.token || p.token->empty()) why = "no token";
  else if (!verifier) why = "no JWT verifier configured";
  if (why.empty()) {
    auto outcome = verifier->verify(strip_bearer(*p.token), std::chrono::system_clock::now());
    if (!outcome.ok) {
      why = "invalid token (" + outcome.error + ")";
    } else if (outcome.user_id != s.user_id) {
      hooks_.refreshed(false);
      answer(R"({"ok":false,"code":"another_user"})");
      spdlog::info("refresh refused session={} user={}: the token names another user", s.serial, s.user_id);
      return transport_.close(s, close_code::refresh_refused, "refresh refused: the token names another user");
    } else {
      s.valid_until = outcome.valid_until;
      hooks_.refreshed(true);
      nlohmann::json reply = {{"ok", true}, {"validUntil", nullptr}};
      if (outcome.valid_until) reply["validUntil"] = static_cast<long long>(std::min(*outcome.valid_until, 1e15));
      return answer(reply.dump());
    }
  }
  hooks_.refreshed(false);
  answer(R"({"ok":false,"code":"invalid_token"})");
  spdlog::info("refresh refused session={} user={}: {}", s.serial, s.user_id, why);
  transport_.close(s, close_code::refresh_refused, "refresh refused: " + why);
}

void SocketIoProtocol::send_ping(Session& s) { transport_.send(s, socketio::ping_frame()); }

std::string SocketIoProtocol::start_frame(Session& s, bool recovered, const std::string& position) {
  if (!recovered || s.pid.empty()) {
    s.sid = new_id();
    s.pid = socketio::make_pid(s.sid, position);
  }
  return socketio::connect_frame(s.sid, s.pid);
}

}  // namespace mn
