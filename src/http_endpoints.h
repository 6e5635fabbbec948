// HTTP endpoints on the WebSocket port, for orchestrators and monitoring:
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

HttpReply handle_http(const std::string& method, const RequestTarget& target, bool ready,
                      const std::function<std::string()>& metrics);

}  // namespace mn
