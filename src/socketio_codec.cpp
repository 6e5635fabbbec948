#include "socketio_codec.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>

namespace mn::socketio {
namespace {

using Json = nlohmann::json;

// Names socket.io-parser refuses as event names: the client keeps them for itself.
constexpr std::array<std::string_view, 6> kReservedEvents = {
    "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"};

// Longer ack ids are not numbers a client produces (it counts from 0 per connection).
constexpr size_t kMaxAckIdDigits = 15;

constexpr std::string_view kIdAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr size_t kSessionIdChars = 20;

// Our JSON goes to clients as text frames, which must be UTF-8: never throw on bad bytes.
std::string dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Parsed invalid(const char* why) {
  Parsed p;
  p.type = ClientPacket::invalid;
  p.error = why;
  return p;
}

bool valid_event_payload(const Json& payload) {
  if (!payload.is_array() || payload.empty()) return false;
  const Json& name = payload.front();
  if (name.is_number()) return true;
  if (!name.is_string()) return false;
  const auto& s = name.get_ref<const std::string&>();
  return std::find(kReservedEvents.begin(), kReservedEvents.end(), s) == kReservedEvents.end();
}

ConnectAuth read_auth(const Json& auth) {
  ConnectAuth a;
  if (auto it = auth.find("token"); it != auth.end()) {
    if (it->is_string()) a.token = it->get<std::string>();
    else a.bad_token = true;
  }
  if (auto it = auth.find("pid"); it != auth.end() && it->is_string()) a.pid = it->get<std::string>();
  if (auto it = auth.find("offset"); it != auth.end() && it->is_string()) a.offset = it->get<std::string>();
  return a;
}

// A Socket.IO packet: type digit, optional "/nsp,", optional ack id, optional JSON.
Parsed parse_socketio(std::string_view s) {
  if (s.empty()) return invalid("empty Socket.IO packet");
  const char type = s[0];
  if (type < '0' || type > '6') return invalid("unknown Socket.IO packet type");
  if (type == '5' || type == '6') {
    Parsed p;
    p.type = ClientPacket::binary;
    return p;
  }
  if (type == '4') return invalid("CONNECT_ERROR is not a client packet");

  Parsed p;
  size_t pos = 1;
  if (pos < s.size() && s[pos] == '/') {
    size_t comma = s.find(',', pos);
    if (comma == std::string_view::npos) comma = s.size();
    p.nsp = std::string(s.substr(pos, comma - pos));
    pos = std::min(comma + 1, s.size());
  }
  size_t digits = 0;
  while (pos + digits < s.size() && s[pos + digits] >= '0' && s[pos + digits] <= '9') ++digits;
  if (digits > kMaxAckIdDigits) return invalid("ack id too long");
  if (digits > 0) p.ack_id = std::stoull(std::string(s.substr(pos, digits)));
  pos += digits;

  std::optional<Json> payload;
  if (pos < s.size()) {
    Json j = Json::parse(s.substr(pos), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return invalid("payload is not JSON");
    payload = std::move(j);
  }

  switch (type) {
    case '0':
      if (payload && !payload->is_object()) return invalid("CONNECT payload is not an object");
      p.type = ClientPacket::connect;
      if (payload) p.auth = read_auth(*payload);
      return p;
    case '1':
      if (payload) return invalid("DISCONNECT with a payload");
      p.type = ClientPacket::disconnect;
      return p;
    case '2':
      if (payload && !valid_event_payload(*payload)) return invalid("EVENT payload is not [name, ...]");
      p.type = ClientPacket::event;
      if (payload) {
        if ((*payload)[0].is_string()) p.event = (*payload)[0].get<std::string>();
        if (payload->size() > 1) {
          const Json& arg = (*payload)[1];
          if (arg.is_string()) p.token = arg.get<std::string>();
          else if (arg.is_object())
            if (auto t = arg.find("token"); t != arg.end() && t->is_string()) p.token = t->get<std::string>();
        }
      }
      return p;
    case '3':
      if (payload && !payload->is_array()) return invalid("ACK payload is not an array");
      p.type = ClientPacket::ack;
      return p;
  }
  return invalid("unknown Socket.IO packet type");
}

}  // namespace

std::string open_frame(const std::string& engine_sid, std::chrono::milliseconds ping_interval,
                       std::chrono::milliseconds ping_timeout, std::size_t max_payload, bool can_upgrade) {
  auto upgrades = nlohmann::ordered_json::array();
  if (can_upgrade) upgrades.push_back("websocket");
  nlohmann::ordered_json j = {{"sid", engine_sid},
                              {"upgrades", upgrades},
                              {"pingInterval", ping_interval.count()},
                              {"pingTimeout", ping_timeout.count()},
                              {"maxPayload", max_payload}};
  return "0" + dump(j);
}

std::string connect_frame(const std::string& sid, const std::string& pid) {
  nlohmann::ordered_json j = {{"sid", sid}, {"pid", pid}};
  return "40" + dump(j);
}

std::string connect_error_frame(const std::string& nsp, const std::string& message,
                                const std::string& data_json) {
  std::string out = "44";
  if (nsp != "/") {
    out += nsp;
    out += ',';
  }
  out += "{\"message\":";
  out += dump(message);
  if (!data_json.empty()) {
    out += ",\"data\":";
    out += data_json;
  }
  out += '}';
  return out;
}

std::string ack_frame(uint64_t id, const std::string& data_json) {
  return "43" + std::to_string(id) + "[" + data_json + "]";
}

std::string position_frame(const std::string& offset) {
  return "42[\"position\"," + nlohmann::json(offset).dump() + ']';
}

std::string event_frame(const std::string& name, const std::string& data_json, const std::string& offset) {
  std::string out = "42[";
  out += nlohmann::json(name).dump();
  out += ',';
  out += data_json;
  out += ',';
  out += nlohmann::json(offset).dump();
  out += ']';
  return out;
}

Parsed parse_client_frame(std::string_view frame) {
  if (frame.empty()) return invalid("empty frame");
  Parsed p;
  switch (frame[0]) {
    case '1':
      p.type = ClientPacket::close;
      return p;
    case '3':
      p.type = ClientPacket::pong;
      return p;
    case '5':
    case '6':
      p.type = ClientPacket::ignored;
      return p;
    case '4':
      return parse_socketio(frame.substr(1));
    case '2':
      // Engine.IO v3 heartbeats ran the other way; a v4 client never pings.
      return invalid("ping from the client (Engine.IO v4 heartbeats are server-driven)");
    default:
      return invalid("unknown Engine.IO packet type");
  }
}

std::string session_id(uint64_t random_hi, uint64_t random_lo) {
  std::string out;
  out.reserve(kSessionIdChars);
  for (size_t i = 0; i < kSessionIdChars; ++i) {
    uint64_t& word = i < kSessionIdChars / 2 ? random_hi : random_lo;
    out += kIdAlphabet[word & 63];
    word >>= 6;
  }
  return out;
}

bool is_session_id(std::string_view s) {
  if (s.size() < 8 || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return kIdAlphabet.find(c) != std::string_view::npos; });
}

std::string make_pid(const std::string& sid, const std::string& position) { return sid + "~" + position; }

std::optional<PidParts> split_pid(std::string_view pid) {
  auto tilde = pid.find('~');
  if (tilde == std::string_view::npos) return std::nullopt;
  std::string_view sid = pid.substr(0, tilde), position = pid.substr(tilde + 1);
  if (!is_session_id(sid) || position.empty() || position.find('~') != std::string_view::npos) return std::nullopt;
  return PidParts{std::string(sid), std::string(position)};
}

}  // namespace mn::socketio
