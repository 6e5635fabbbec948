// WebSocket clients for tests.
//
// WsClient is a real client (websocketpp) with its own io_context on a background thread;
// received messages queue up until the test takes them. It never throws on a refused
// handshake: the test asserts on handshake_status() instead.
//
// RawTcpWsClient writes the upgrade request by hand and then does only what the test says:
// for clients that never read, and for frames no real client would send.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mn::test {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct WsOptions {
  HeaderList headers;
  std::chrono::milliseconds timeout{5000};
  std::vector<std::string> subprotocols;  // sent as Sec-WebSocket-Protocol
  // (A small receive buffer, for a client that stops reading: RawTcpWsClient. websocketpp
  // hands its init handler a socket not yet opened, where SO_RCVBUF cannot be set.)
};

class WsClient {
 public:
  // ws://127.0.0.1:<port><path_and_query>. Returns once open, refused, or timed out.
  static std::unique_ptr<WsClient> connect(uint16_t port, const std::string& path_and_query,
                                           const HeaderList& headers = {},
                                           std::chrono::milliseconds timeout = std::chrono::seconds(5));
  static std::unique_ptr<WsClient> connect_with(uint16_t port, const std::string& path_and_query,
                                                const WsOptions& options);
  ~WsClient();
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  // 101 once open; else the HTTP status of the refusal, or 0 if no response came at all.
  int handshake_status() const;
  std::string handshake_body() const;                     // body of a refusal
  std::string response_header(const std::string& name) const;  // of the handshake response
  std::string selected_subprotocol() const;
  std::string error() const;  // websocketpp's reason for a failed connection, for messages
  bool is_open() const;

  // The next data message (text or binary payload); nullopt on timeout or once closed and
  // every queued message has been taken.
  std::optional<std::string> next(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Throws std::runtime_error if the message is not JSON: the test should fail loudly.
  std::optional<nlohmann::json> next_json(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Everything that arrives until nothing has for `quiet`.
  std::vector<std::string> drain(std::chrono::milliseconds quiet = std::chrono::milliseconds(200));
  std::size_t queued() const;

  // Asynchronous: queued to the client's thread, in call order.
  void send_text(const std::string& text);
  void send_binary(const std::string& bytes);
  void close(uint16_t code = 1000, const std::string& reason = "");

  // Stops taking bytes off the socket (after at most one more buffer already in flight), so
  // the kernel buffers fill and the server sees a slow consumer. While paused, a close by the
  // server goes unnoticed; resume_reading() to observe it.
  void stop_reading();
  void resume_reading();

  bool wait_closed(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // The server's close code; 1006 if the TCP connection ended without a close frame,
  // 1005 if the close frame had no code, 0 while open or if it never opened.
  int close_code() const;
  std::string close_reason() const;

  struct Impl;

 private:
  explicit WsClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class RawTcpWsClient {
 public:
  struct Frame {
    bool fin = true;
    uint8_t opcode = 0;
    std::string payload;
    // For a close frame: its code (1005 if it has none).
    int close_code() const;
  };

  // Never returns null; a refused TCP connection gives handshake_status() 0.
  static std::unique_ptr<RawTcpWsClient> connect(uint16_t port, const std::string& path_and_query,
                                                 const HeaderList& headers = {},
                                                 int recv_buffer_bytes = 0,
                                                 std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~RawTcpWsClient();
  RawTcpWsClient(const RawTcpWsClient&) = delete;
  RawTcpWsClient& operator=(const RawTcpWsClient&) = delete;

  int fd() const { return fd_; }
  bool handshake_ok() const { return status_ == 101; }
  int handshake_status() const { return status_; }
  const std::string& handshake_response() const { return response_; }  // status line + headers

  // Blocking write of exactly these bytes; false if the peer is gone or 5 s pass.
  bool send_raw_bytes(const std::string& bytes);
  // A frame as a client sends it (masked unless told otherwise); tests may corrupt the bytes.
  static std::string make_frame(uint8_t opcode, const std::string& payload, bool fin = true,
                                bool masked = true);
  bool send_frame(uint8_t opcode, const std::string& payload, bool fin = true, bool masked = true) {
    return send_raw_bytes(make_frame(opcode, payload, fin, masked));
  }

  // The next frame from the server; nullopt on timeout or end of stream.
  std::optional<Frame> read_frame(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Reads and discards until the server has closed the TCP connection (true) or `timeout`
  // passes (false). Reading frees the server's buffers: call it once the server has had time
  // to decide, not to find out whether it would.
  bool peer_closed(std::chrono::milliseconds timeout = std::chrono::seconds(5));

 private:
  RawTcpWsClient() = default;
  bool fill(std::size_t want, std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  int status_ = 0;
  bool eof_ = false;
  std::string response_;
  std::string buffer_;  // bytes read but not yet returned as frames
};

}  // namespace mn::test
