// RawTcpWsClient (declared in ws_client.h): kept apart from WsClient so neither file
// needs the other's machinery.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <random>

#include "support/http.h"
#include "support/ws_client.h"

namespace mn::test {

using Clock = std::chrono::steady_clock;

int RawTcpWsClient::Frame::close_code() const {
  if (payload.size() < 2) return 1005;
  return (static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1]);
}

std::unique_ptr<RawTcpWsClient> RawTcpWsClient::connect(uint16_t port,
                                                        const std::string& path_and_query,
                                                        const HeaderList& headers,
                                                        int recv_buffer_bytes,
                                                        std::chrono::milliseconds timeout) {
  std::unique_ptr<RawTcpWsClient> c(new RawTcpWsClient);
  const auto deadline = Clock::now() + timeout;
  c->fd_ = connect_loopback(port, recv_buffer_bytes, timeout);
  if (c->fd_ < 0) return c;
  // Blocked sends must end: a server that stops reading is one of the things under test.
  timeval tv{5, 0};
  ::setsockopt(c->fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

  std::string request = "GET " + path_and_query + " HTTP/1.1\r\nHost: 127.0.0.1:" +
                        std::to_string(port) +
                        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\n";
  for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
  request += "\r\n";
  if (!c->send_raw_bytes(request)) return c;

  std::size_t head_end = std::string::npos;
  while ((head_end = c->buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (!c->fill(c->buffer_.size() + 1, deadline)) return c;
  }
  c->response_ = c->buffer_.substr(0, head_end + 2);
  // Frames the server sent right behind its response stay buffered for read_frame.
  c->buffer_.erase(0, head_end + 4);
  const auto sp = c->response_.find(' ');
  if (sp != std::string::npos) c->status_ = std::atoi(c->response_.c_str() + sp + 1);
  return c;
}

RawTcpWsClient::~RawTcpWsClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawTcpWsClient::send_raw_bytes(const std::string& bytes) {
  if (fd_ < 0) return false;
  for (std::size_t sent = 0; sent < bytes.size();) {
    const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

std::string RawTcpWsClient::make_frame(uint8_t opcode, const std::string& payload, bool fin,
                                       bool masked) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0x00) | (opcode & 0x0f)));
  const uint8_t mask_bit = masked ? 0x80 : 0x00;
  const std::size_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(mask_bit | n));
  } else if (n <= 0xffff) {
    f.push_back(static_cast<char>(mask_bit | 126));
    for (int shift = 8; shift >= 0; shift -= 8) f.push_back(static_cast<char>((n >> shift) & 0xff));
  } else {
    f.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8) f.push_back(static_cast<char>((n >> shift) & 0xff));
  }
  if (!masked) return f + payload;
  static thread_local std::mt19937 rng{std::random_device{}()};
  char key[4];
  for (char& k : key) k = static_cast<char>(rng() & 0xff);
  f.append(key, 4);
  for (std::size_t i = 0; i < n; ++i) f.push_back(static_cast<char>(payload[i] ^ key[i % 4]));
  return f;
}

bool RawTcpWsClient::fill(std::size_t want, Clock::time_point deadline) {
  char buf[16384];
  while (buffer_.size() < want) {
    if (eof_ || fd_ < 0 || !wait_readable(fd_, deadline)) return false;
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(buf, static_cast<std::size_t>(n));
  }
  return true;
}

std::optional<RawTcpWsClient::Frame> RawTcpWsClient::read_frame(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  if (!fill(2, deadline)) return std::nullopt;
  const auto byte = [this](std::size_t i) { return static_cast<unsigned char>(buffer_[i]); };
  Frame frame;
  frame.fin = (byte(0) & 0x80) != 0;
  frame.opcode = byte(0) & 0x0f;
  const bool masked = (byte(1) & 0x80) != 0;
  std::size_t header = 2;
  uint64_t length = byte(1) & 0x7f;
  const std::size_t extra = length == 126 ? 2 : length == 127 ? 8 : 0;
  if (extra) {
    if (!fill(2 + extra, deadline)) return std::nullopt;
    length = 0;
    for (std::size_t i = 0; i < extra; ++i) length = (length << 8) | byte(2 + i);
    header += extra;
  }
  const std::size_t mask_at = header;
  if (masked) header += 4;
  if (!fill(header + length, deadline)) return std::nullopt;
  frame.payload = buffer_.substr(header, length);
  if (masked) {
    for (std::size_t i = 0; i < frame.payload.size(); ++i) {
      frame.payload[i] = static_cast<char>(frame.payload[i] ^ buffer_[mask_at + i % 4]);
    }
  }
  buffer_.erase(0, header + length);
  return frame;
}

bool RawTcpWsClient::peer_closed(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  buffer_.clear();
  while (!eof_) {
    if (!fill(1, deadline) && !eof_) return false;
    buffer_.clear();
  }
  return true;
}

}  // namespace mn::test
