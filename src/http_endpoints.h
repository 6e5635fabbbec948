// HTTP endpoints on the WebSocket port (and the admin address), for orchestrators and monitoring:
//   GET /healthz  200 while the process runs
//   GET /readyz   200 once the listener is connected and caught up, else 503
//   GET /metrics  Prometheus text format
// Anything else is 404 (405 for another method). Pure: the server passes in what it knows.
#pragma once

#include "request_target.h"

#include <functional>
#include <string>

namespace mn {

struct HttpReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// What the endpoints report, as the server's owner tells it (WsServer::set_ready_probe,
// set_metrics); unset: not ready, no metrics.
struct HttpProbes {
  std::function<bool()> ready;
  std::function<std::string()> metrics;
};

HttpReply handle_http(const std::string& method, const RequestTarget& target, bool ready,
                      const std::function<std::string()>& metrics);
inline HttpReply handle_http(const std::string& method, const RequestTarget& target, const HttpProbes& probes) {
  return handle_http(method, target, probes.ready ? probes.ready() : false, probes.metrics);
}

}  // namespace mn
