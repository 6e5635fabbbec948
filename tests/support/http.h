// A blocking HTTP/1.1 client for tests, over a plain socket to 127.0.0.1: one request per
// connection (Connection: close), nothing cached, nothing retried.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace mn::test {

struct HttpResponse {
  int status = 0;  // 0: no connection, or no complete response before the timeout
  std::string body;
  std::map<std::string, std::string> headers;  // names lower-cased; repeated names joined ", "
};

HttpResponse http_get(uint16_t port, const std::string& path,
                      const std::vector<std::pair<std::string, std::string>>& headers = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds(5));

HttpResponse http_request(uint16_t port, const std::string& method, const std::string& path,
                          const std::vector<std::pair<std::string, std::string>>& headers = {},
                          const std::string& body = "",
                          std::chrono::milliseconds timeout = std::chrono::seconds(5));

// A connected blocking TCP socket to 127.0.0.1:port (close-on-exec), or -1. recv_buffer_bytes
// (if > 0) is set before connecting, the only time it can still shrink the TCP window.
int connect_loopback(uint16_t port, int recv_buffer_bytes = 0,
                     std::chrono::milliseconds timeout = std::chrono::seconds(5));

// Waits until fd is readable or the deadline passes; true if readable (or at EOF/error).
bool wait_readable(int fd, std::chrono::steady_clock::time_point deadline);

}  // namespace mn::test
