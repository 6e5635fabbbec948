#include "http_endpoints.h"

#include "plain_protocol.h"

namespace mn {

HttpReply handle_http(const std::string& method, const RequestTarget& target, bool ready,
                      const std::function<std::string()>& metrics) {
  HttpReply r;
  const bool known = target.path == "/healthz" || target.path == "/readyz" || target.path == "/metrics";
  if (known && method != "GET" && method != "HEAD") {
    r.status = 405;
    r.body = "method not allowed\n";
  } else if (target.path == "/healthz") {
    r.body = "ok\n";
  } else if (target.path == "/readyz") {
    r.status = ready ? 200 : 503;
    r.body = ready ? "ready\n" : "not ready: database listener not connected or not caught up\n";
  } else if (target.path == "/metrics") {
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics ? metrics() : "";
  } else if (target.path.rfind("/socket.io", 0) == 0) {
    // The reference server's answers: a transport it does not serve (polling, here), or the
    // WebSocket transport asked for without an upgrade.
    r.status = 400;
    r.content_type = "application/json";
    r.body = target.single("transport") == "websocket" ? R"({"code":3,"message":"Bad request"})"
                                                        : R"({"code":0,"message":"Transport unknown"})";
  } else if (target.path == "/ws") {
    r.status = 426;
    r.body = "this endpoint needs a WebSocket upgrade\n";
  } else {
    r.status = 404;
    r.body = "not found\n";
  }
  return r;
}

}  // namespace mn
