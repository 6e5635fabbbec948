// Fuzzes the Socket.IO/Engine.IO codec: every text frame on /socket.io/ reaches
// parse_client_frame, before CONNECT authenticates anything.
// Input mode (first byte): 0 - the rest is a raw frame; 1 - the rest is a token, sent in a
// CONNECT's auth; 2 - the rest is a pid. Properties: nothing throws; an invalid frame has a
// short fixed reason that never echoes the frame; a token sent in CONNECT is read back
// byte for byte; make_pid/split_pid and session_id/is_session_id agree; the frames we write
// around client-supplied strings are JSON that reads back to the same strings.
#include "socketio_codec.h"
#include "fuzz_check.h"

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

namespace {

using mn::socketio::ClientPacket;

void check_raw(std::string_view frame) {
  const auto p = mn::socketio::parse_client_frame(frame);
  if (p.type == ClientPacket::invalid) {
    FUZZ_CHECK(!p.error.empty() && p.error.size() <= 80);
    // Fixed text: however many frames are tried, only a handful of distinct reasons appear.
    static std::set<std::string> reasons;
    reasons.insert(p.error);
    FUZZ_CHECK(reasons.size() <= 24);
  } else {
    FUZZ_CHECK(p.error.empty());
  }
  if (p.type != ClientPacket::connect) FUZZ_CHECK(!p.auth.token && !p.auth.pid && !p.auth.offset);
  if (p.auth.token) FUZZ_CHECK(!p.auth.bad_token);
  if (!frame.empty() && frame[0] != '4') FUZZ_CHECK(p.nsp == "/");
}

void check_token(const std::string& token) {
  if (!mn::fuzz::is_utf8(token)) return;  // a JSON text cannot carry it
  const std::string frame = "40" + nlohmann::json{{"token", token}}.dump();
  const auto p = mn::socketio::parse_client_frame(frame);
  FUZZ_CHECK(p.type == ClientPacket::connect && p.nsp == "/");
  FUZZ_CHECK(p.auth.token && *p.auth.token == token && !p.auth.bad_token);
  const std::string nsp_frame = "40/admin," + nlohmann::json{{"token", token}, {"offset", token}}.dump();
  const auto q = mn::socketio::parse_client_frame(nsp_frame);
  FUZZ_CHECK(q.type == ClientPacket::connect && q.nsp == "/admin");
  FUZZ_CHECK(q.auth.token == token && q.auth.offset == token);

  // Server frames built around the string stay JSON that reads back to it.
  const std::string err = mn::socketio::connect_error_frame("/", token);
  FUZZ_CHECK(err.rfind("44", 0) == 0);
  const auto ej = nlohmann::json::parse(err.substr(2), nullptr, false);
  FUZZ_CHECK(ej.is_object() && ej["message"] == token);
  const std::string ev = mn::socketio::event_frame(token, "{}", token);
  const auto evj = nlohmann::json::parse(ev.substr(2), nullptr, false);
  FUZZ_CHECK(ev.rfind("42", 0) == 0 && evj.is_array() && evj.size() == 3 && evj[0] == token &&
             evj[2] == token);
  const auto pos = nlohmann::json::parse(mn::socketio::position_frame(token).substr(2), nullptr, false);
  FUZZ_CHECK(pos.is_array() && pos.size() == 2 && pos[1] == token);
}

void check_pid(std::string_view in) {
  const auto parts = mn::socketio::split_pid(in);
  if (parts) {
    FUZZ_CHECK(mn::socketio::is_session_id(parts->sid) && !parts->position.empty());
    FUZZ_CHECK(mn::socketio::make_pid(parts->sid, parts->position) == in);
  }
  uint64_t hi = 0, lo = 0;
  for (size_t i = 0; i < in.size() && i < 16; ++i)
    (i < 8 ? hi : lo) = ((i < 8 ? hi : lo) << 8) | static_cast<unsigned char>(in[i]);
  const std::string sid = mn::socketio::session_id(hi, lo);
  FUZZ_CHECK(sid.size() == 20 && mn::socketio::is_session_id(sid));
  const std::string position(in);
  const auto back = mn::socketio::split_pid(mn::socketio::make_pid(sid, position));
  const bool splittable = !position.empty() && position.find('~') == std::string::npos;
  FUZZ_CHECK(back.has_value() == splittable);
  if (back) FUZZ_CHECK(back->sid == sid && back->position == position);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      check_raw(rest);
      break;
    case 1:
      check_token(std::string(rest));
      break;
    default:
      check_pid(rest);
      break;
  }
  return 0;
}
