#include "support/http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <optional>

namespace mn::test {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<long long>(0, left.count()));
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// The decoded body once the terminating chunk has arrived; nullopt while incomplete.
std::optional<std::string> dechunk(const std::string& raw) {
  std::string out;
  std::size_t pos = 0;
  for (;;) {
    const auto eol = raw.find("\r\n", pos);
    if (eol == std::string::npos) return std::nullopt;
    std::size_t size = 0;
    try {
      size = std::stoul(raw.substr(pos, eol - pos), nullptr, 16);
    } catch (const std::exception&) {
      return std::nullopt;
    }
    pos = eol + 2;
    if (size == 0) return out;  // trailers, if any, are of no interest to tests
    if (raw.size() < pos + size + 2) return std::nullopt;
    out.append(raw, pos, size);
    pos += size + 2;
  }
}

struct Parsed {
  bool head_complete = false;
  bool complete = false;
  HttpResponse response;
};

Parsed parse(const std::string& raw, bool no_body, bool at_eof) {
  Parsed p;
  const auto head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) return p;
  p.head_complete = true;
  const std::string head = raw.substr(0, head_end + 2);
  std::size_t line_end = head.find("\r\n");
  const std::string status_line = head.substr(0, line_end);
  const auto sp = status_line.find(' ');
  if (sp == std::string::npos) return p;
  p.response.status = std::atoi(status_line.c_str() + sp + 1);
  for (std::size_t pos = line_end + 2; pos < head.size(); pos = line_end + 2) {
    line_end = head.find("\r\n", pos);
    const std::string line = head.substr(pos, line_end - pos);
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string& slot = p.response.headers[lower(trim(line.substr(0, colon)))];
    slot += (slot.empty() ? "" : ", ") + trim(line.substr(colon + 1));
  }
  const std::string body = raw.substr(head_end + 4);
  const auto& h = p.response.headers;
  const int status = p.response.status;
  if (no_body || status == 204 || status == 304 || (status >= 100 && status < 200)) {
    p.complete = true;
  } else if (h.count("transfer-encoding") && lower(h.at("transfer-encoding")) == "chunked") {
    if (auto decoded = dechunk(body)) {
      p.response.body = std::move(*decoded);
      p.complete = true;
    }
  } else if (h.count("content-length")) {
    const std::size_t length = std::strtoul(h.at("content-length").c_str(), nullptr, 10);
    p.complete = body.size() >= length;
    p.response.body = body.substr(0, length);
  } else {
    p.complete = at_eof;
    p.response.body = body;
  }
  return p;
}

}  // namespace

bool wait_readable(int fd, Clock::time_point deadline) {
  for (;;) {
    pollfd pfd{fd, POLLIN, 0};
    const int r = ::poll(&pfd, 1, remaining_ms(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return true;  // let the read report it
  }
}

int connect_loopback(uint16_t port, int recv_buffer_bytes, std::chrono::milliseconds timeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  if (recv_buffer_bytes > 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &recv_buffer_bytes, sizeof recv_buffer_bytes);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int r = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  if (r != 0 && errno == EINPROGRESS) {
    pollfd pfd{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    r = ::poll(&pfd, 1, static_cast<int>(timeout.count())) == 1 &&
                ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0
            ? 0
            : -1;
  }
  if (r != 0) {
    ::close(fd);
    return -1;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

HttpResponse http_get(uint16_t port, const std::string& path,
                      const std::vector<std::pair<std::string, std::string>>& headers,
                      std::chrono::milliseconds timeout) {
  return http_request(port, "GET", path, headers, "", timeout);
}

HttpResponse http_request(uint16_t port, const std::string& method, const std::string& path,
                          const std::vector<std::pair<std::string, std::string>>& headers,
                          const std::string& body, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const int fd = connect_loopback(port, 0, timeout);
  if (fd < 0) return {};
  std::string request = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" +
                        std::to_string(port) + "\r\nConnection: close\r\n";
  for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
  if (!body.empty()) request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  request += "\r\n" + body;

  for (std::size_t sent = 0; sent < request.size();) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the server may answer early (e.g. 413) and close: read anyway
    sent += static_cast<std::size_t>(n);
  }

  std::string raw;
  Parsed parsed;
  char buf[16384];
  for (;;) {
    if (!wait_readable(fd, deadline)) break;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    const bool eof = n <= 0;
    if (!eof) raw.append(buf, static_cast<std::size_t>(n));
    parsed = parse(raw, method == "HEAD", eof);
    if (parsed.complete || eof) break;
  }
  ::close(fd);
  if (!parsed.complete) return {};
  return parsed.response;
}

}  // namespace mn::test
