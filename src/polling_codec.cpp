#include "polling_codec.h"

#include "socketio_codec.h"

namespace mn::polling {
namespace {

DecodedPayload refused(const char* why) {
  DecodedPayload d;
  d.error = why;
  return d;
}

bool is_packet_type(char c) { return (c >= '0' && c <= '6') || c == 'b'; }

}  // namespace

std::string encode_payload(const std::vector<std::string>& packets) {
  size_t size = packets.empty() ? 0 : packets.size() - 1;
  for (const auto& p : packets) size += p.size();
  std::string out;
  out.reserve(size);
  for (size_t i = 0; i < packets.size(); ++i) {
    if (i > 0) out += kSeparator;
    out += packets[i];
  }
  return out;
}

bool is_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

DecodedPayload decode_payload(std::string_view body, size_t max_packets) {
  if (body.empty()) return refused("empty payload");
  // Checked whole: a packet boundary never falls inside a multi-byte character (\x1e is ASCII).
  if (!is_utf8(body)) return refused("payload is not UTF-8");
  DecodedPayload d;
  size_t start = 0;
  for (;;) {
    size_t end = body.find(kSeparator, start);
    if (end == std::string_view::npos) end = body.size();
    std::string_view packet = body.substr(start, end - start);
    if (packet.empty()) return refused("empty packet in payload");
    if (!is_packet_type(packet[0])) return refused("unknown Engine.IO packet type in payload");
    if (d.packets.size() == max_packets) return refused("too many packets in payload");
    if (packet[0] == 'b') d.binary = true;
    else d.packets.push_back(packet);
    if (end == body.size()) break;
    start = end + 1;
  }
  d.ok = true;
  return d;
}

std::string error_body(ErrorCode code) {
  switch (code) {
    case ErrorCode::transport_unknown: return R"({"code":0,"message":"Transport unknown"})";
    case ErrorCode::session_id_unknown: return R"({"code":1,"message":"Session ID unknown"})";
    case ErrorCode::bad_handshake_method: return R"({"code":2,"message":"Bad handshake method"})";
    case ErrorCode::bad_request: return R"({"code":3,"message":"Bad request"})";
    case ErrorCode::forbidden: return R"({"code":4,"message":"Forbidden"})";
    case ErrorCode::unsupported_protocol_version: return R"({"code":5,"message":"Unsupported protocol version"})";
  }
  return R"({"code":3,"message":"Bad request"})";
}

int error_status(ErrorCode code) { return code == ErrorCode::forbidden ? 403 : 400; }

RequestVerdict classify_request(std::string_view method, const RequestTarget& target, bool is_upgrade,
                                std::string_view content_type) {
  RequestVerdict v;
  auto refuse = [&v](ErrorCode e) {
    v.kind = RequestKind::refused;
    v.error = e;
    return v;
  };
  const auto transport = target.single("transport");
  if (transport != "polling" && transport != "websocket") return refuse(ErrorCode::transport_unknown);
  const bool websocket = transport == "websocket";
  // Only the WebSocket transport is reached by an upgrade request, and only by one.
  if (websocket != is_upgrade) return refuse(ErrorCode::bad_request);

  if (target.has("sid")) {
    auto sid = target.single("sid");
    if (!sid || !socketio::is_session_id(*sid)) return refuse(ErrorCode::session_id_unknown);
    v.sid = std::move(*sid);
    if (websocket) {
      v.kind = RequestKind::upgrade;
      return v;
    }
    if (method == "GET") {
      v.kind = RequestKind::poll;
      return v;
    }
    if (method == "POST") {
      // Engine.IO v3 sent binary payloads so; v4 clients send text/plain.
      if (content_type.substr(0, 24) == "application/octet-stream") return refuse(ErrorCode::bad_request);
      v.kind = RequestKind::send;
      return v;
    }
    return refuse(ErrorCode::bad_request);
  }
  // A handshake: GET only, and only Engine.IO v4.
  if (method != "GET") return refuse(ErrorCode::bad_handshake_method);
  if (target.single("EIO") != "4") return refuse(ErrorCode::unsupported_protocol_version);
  v.kind = websocket ? RequestKind::websocket_open : RequestKind::open;
  return v;
}

std::string open_packet(const std::string& engine_sid, std::chrono::milliseconds ping_interval,
                        std::chrono::milliseconds ping_timeout, size_t max_payload) {
  return socketio::open_frame(engine_sid, ping_interval, ping_timeout, max_payload, /*can_upgrade=*/true);
}

}  // namespace mn::polling
