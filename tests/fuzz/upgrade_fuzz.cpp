// Fuzzes decide_upgrade: every request on the public port, upgrade or not, is decided there
// before anything else looks at it.
// Input: a flags byte (bit 0: a WebSocket upgrade; 1: --admin-listen set; 2: --allowed-origins
// set; 3: stopping; 4: the reader has started), then the request target, the Origin and the
// Authorization header, separated by newlines.
// Properties: nothing throws; no token that was not signed with the key opens a /ws session;
// a refusal has one of the documented statuses and a JSON body of fixed text (only a handful
// of distinct bodies and log lines however many requests: none echoes the request); the path alone sends a request to 404; a Socket.IO session only for
// EIO 4 without a sid, on the WebSocket transport for an upgrade and long-polling otherwise; a
// probe only for a WebSocket with a well-formed sid; nothing is admitted while stopping or
// before the reader has started; an Origin off the list never gets a session or a probe.
#include "upgrade.h"
#include "fuzz_check.h"

#include "origin_policy.h"
#include "polling_codec.h"
#include "socketio_codec.h"

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

namespace {

std::string_view next_field(std::string_view& in) {
  const auto nl = in.find('\n');
  std::string_view field = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  return field;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  mn::UpgradeRequest request;
  request.websocket = flags & 1;
  request.resource = std::string(next_field(in));
  request.origin = std::string(next_field(in));
  request.authorization = std::string(in);

  static const mn::JwtVerifier jwt([] {
    mn::JwtSettings s;
    s.key = "fuzz-secret-that-no-input-can-sign-with-0123456789";
    return s;
  }());
  mn::Config cfg;
  cfg.max_connections = 4;
  cfg.max_connections_per_user = 1;
  if (flags & 2) cfg.admin_listen = "127.0.0.1:9090";
  if (flags & 4) cfg.allowed_origin_list = {"https://app.example.com", "*.example.org"};
  mn::ConnectionLimits limits(cfg);
  mn::UpgradeState state;
  state.stopping = flags & 8;
  state.started = flags & 16;
  state.limits = &limits;
  state.jwt = &jwt;

  const mn::Upgrade u = mn::decide_upgrade(request, cfg, state);
  const std::string& path = u.target.path;
  const std::string token = mn::bearer_token(request.authorization).empty()
                                ? u.target.single("access_token").value_or("")
                                : mn::bearer_token(request.authorization);

  FUZZ_CHECK(u.route != mn::Route::plain);
  if (u.route == mn::Route::refused) {
    FUZZ_CHECK(u.status == 400 || u.status == 401 || u.status == 403 || u.status == 404 || u.status == 429 ||
               u.status == 503);
    FUZZ_CHECK(!nlohmann::json::parse(u.body, nullptr, false).is_discarded());
    static std::set<std::string> texts;
    texts.insert(u.body);
    texts.insert(u.log);
    FUZZ_CHECK(texts.size() <= 64);
  }
  const bool socketio_path = path == "/socket.io/" || path == "/socket.io";
  if (!request.websocket && !socketio_path) {
    const bool admin_only = (flags & 2) && (path == "/metrics" || path == "/readyz");
    FUZZ_CHECK(u.route == (admin_only ? mn::Route::refused : mn::Route::http));
    return 0;
  }
  if (path != "/ws" && !socketio_path) FUZZ_CHECK(u.route == mn::Route::refused && u.status == 404);
  const bool origin_ok = cfg.allowed_origin_list.empty() || request.origin.empty() ||
                         mn::origin_allowed(request.origin, cfg.allowed_origin_list);
  if (u.route == mn::Route::socketio_probe) {
    FUZZ_CHECK(request.websocket && socketio_path && origin_ok);
    FUZZ_CHECK(u.target.single("transport") == "websocket" && u.target.single("sid") == u.sid);
    FUZZ_CHECK(mn::socketio::is_session_id(u.sid));
  }
  if (u.route == mn::Route::socketio) {
    FUZZ_CHECK(socketio_path);
    const auto v = mn::polling::classify_request("GET", u.target, request.websocket);
    FUZZ_CHECK(v.kind == (request.websocket ? mn::polling::RequestKind::websocket_open : mn::polling::RequestKind::open));
    FUZZ_CHECK(u.target.single("transport") == (request.websocket ? "websocket" : "polling"));
    FUZZ_CHECK(u.target.single("EIO") == "4" && !u.target.has("sid"));
    FUZZ_CHECK(!state.stopping && state.started);
    FUZZ_CHECK(u.token == token);
    if (!cfg.allowed_origin_list.empty() && !request.origin.empty())
      FUZZ_CHECK(mn::origin_allowed(request.origin, cfg.allowed_origin_list));
  }
  return 0;
}
