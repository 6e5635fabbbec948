#include "socketio_session.h"

#include "socketio_codec.h"

namespace mn {

SocketIoProtocol::SocketIoProtocol(const Config& cfg, Transport& transport, Hub& hub, JwtSource jwt)
    : cfg_(cfg), transport_(transport), hub_(hub), jwt_(std::move(jwt)) {}

bool SocketIoProtocol::accept_handshake(const RequestTarget&, int& status, std::string& body) const {
  status = 400;
  body = R"({"code":0,"message":"Transport unknown"})";
  return false;  // not yet implemented
}

void SocketIoProtocol::on_open(Session& s, const std::string&) {
  transport_.close(s, 1011, "Socket.IO not implemented yet");
}

void SocketIoProtocol::on_text(Session& s, const std::string&) {
  transport_.close(s, 1011, "Socket.IO not implemented yet");
}

void SocketIoProtocol::send_ping(Session& s) { transport_.send(s, "2"); }

std::string SocketIoProtocol::start_frame(Session&, bool, const std::string&) { return "40{}"; }

}  // namespace mn
