// Clients: many WebSocket receivers on one epoll thread, cheap enough to hold 10k sockets
// without becoming the thing measured. Raw sockets, no library: the same code speaks the
// sidecar's plain /ws protocol and Socket.IO v5 over Engine.IO v4's WebSocket transport, so
// one receiving client serves both the sidecar and the Node baseline.
//
// Socket i belongs to user `user_prefix + (i % users)`. A receipt is recorded for every
// channel.joined/left frame whose channelId is a probe id "P<tag>-<pair>" of the tag being
// recorded, stamped with CLOCK_MONOTONIC right after the read() that brought it in.
// With reconnect_ms > 0 (plain /ws only), a ready socket the server drops comes back after
// reconnect_ms plus up to one more reconnect_ms of jitter, with the last offset it was given
// (?offset=), as the protocol's client contract says; a failed attempt is retried with doubling
// delays up to 5 s. A socket that resumes (session recovered) is ready again at once; one that
// gets a snapshot instead is ready after it, and counted: its missed probe events are lost.
// Threads: the loop runs on its own thread; every public call is safe from any other thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace bench {

enum class Protocol { plain, socketio };

struct ClientOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  Protocol protocol = Protocol::plain;
  int sockets = 0;
  int users = 1;
  std::string user_prefix = "u";
  std::string secret;    // HS256 secret the tokens are signed with
  int max_pending = 200; // handshakes in flight at once
  int connect_timeout_s = 120;
  // Source addresses, socket i binding sources[i % size] before connect (empty: the kernel's
  // choice). Each loopback address has its own ephemeral ports, so 100k sockets fit.
  std::vector<std::string> sources;
  int reconnect_ms = 0;  // 0: a dropped socket stays closed
};

struct Receipt {
  uint32_t event;   // pair * 2 + (left ? 1 : 0)
  uint32_t socket;
  int64_t t_ns;     // CLOCK_MONOTONIC
};

struct ConnectSummary {
  int ok = 0;
  int failed = 0;
  double secs = 0;
  std::string first_error;
};

struct ClientCounters {
  uint64_t frames = 0;         // text frames received
  uint64_t stale = 0;          // probe events of another tag (late, or from an earlier run)
  uint64_t disconnects = 0;    // ready sockets the server closed or lost
  uint64_t pings = 0;          // pings answered (WebSocket or Engine.IO)
  int64_t max_stall_ns = 0;    // longest time the loop spent between two epoll_wait calls
  // Reconnects (reconnect_ms > 0): sockets back with their missed events (recovered) or with a
  // snapshot, failed attempts (retried), and the first drop to the last socket back.
  uint64_t recovered = 0;
  uint64_t resnapshots = 0;
  uint64_t retry_errors = 0;
  std::string first_retry_error;
  int64_t first_drop_ns = 0;
  int64_t last_back_ns = 0;
};

class Clients {
 public:
  explicit Clients(ClientOptions o);
  ~Clients();  // stops the loop and resets every socket (SO_LINGER 0: no TIME_WAIT pile-up)

  // Opens every socket, max_pending at a time; returns when all are ready or have failed.
  ConnectSummary connect_all();

  // Starts recording receipts for probe ids of `tag`; take() stops and hands them over.
  void record(const std::string& tag);
  std::vector<Receipt> take();
  size_t recorded() const;

  // Ready sockets per user index, for the expected delivery count.
  std::vector<int> ready_per_user() const;
  int ready() const;
  // Distinct non-probe channels each socket received a channel.joined for (loss check).
  std::vector<size_t> other_joined() const;
  ClientCounters counters(bool reset_stall);
  int tid() const { return tid_.load(); }
  const ClientOptions& options() const { return opts_; }

 private:
  struct Conn;
  void loop();
  void start_connect(int i);
  void on_event(int i, uint32_t events);
  void on_readable(Conn& c, int i);
  void handle_frames(Conn& c, int i, int64_t t);
  void on_text(Conn& c, int i, const std::string& text, int64_t t);
  void on_membership(Conn& c, int i, const std::string& text, size_t name_end, bool left, int64_t t);
  void send_frame(Conn& c, int i, uint8_t opcode, const std::string& payload);
  void flush(Conn& c, int i);
  void fail(Conn& c, int i, const std::string& why);
  void mark_ready(Conn& c, bool recovered);  // recovered: a resume, no snapshot to wait for
  void schedule_retry(Conn& c, int i);
  void run_due_retries(int64_t now);

  ClientOptions opts_;
  std::vector<std::string> tokens_;  // one per user
  std::vector<std::unique_ptr<Conn>> conns_;
  int epfd_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> tid_{0};

  // Connect phase (loop thread writes, connect_all waits).
  std::mutex conn_mu_;
  std::condition_variable conn_cv_;
  bool opening_ = false;
  int next_to_open_ = 0;
  int ok_ = 0;
  int failed_ = 0;
  std::string first_error_;

  // Recording (loop thread appends, any thread starts/takes).
  mutable std::mutex rec_mu_;
  std::string tag_;  // "P<tag>-" while recording, empty otherwise
  std::vector<Receipt> receipts_;
  std::vector<std::unordered_set<std::string>> others_;
  ClientCounters counters_;
  std::atomic<uint64_t> frames_{0};
  std::atomic<int64_t> max_stall_ns_{0};

  // Reconnects waiting for their time (loop thread only): (due, socket).
  std::vector<std::pair<int64_t, int>> retries_;
};

}  // namespace bench
