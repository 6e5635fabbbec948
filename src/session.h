// Session: one client connection, whatever its protocol, from handshake to close.
// Owned by SessionHost (session_host.h); the hub and the rooms refer to it while it is open.
#pragma once

#include "offset.h"
#include "pg_snapshot.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mn {

enum class Protocol { plain, socketio };

enum class Phase {
  handshake,     // WebSocket handshake in progress
  awaiting_auth, // Socket.IO: open, waiting for the client's CONNECT packet
  catching_up,   // authenticated, in its room; replay or snapshot query in flight
  live,          // receiving events as they are read
  closing,
};

struct Event;  // event.h

// What carries one session's frames to its client: a WebSocket connection (ws_listener.cpp),
// or another transport's. The server's rules (send budget, keepalive, closing with a reason)
// are written against this, not against a transport.
class SessionLink {
 public:
  virtual ~SessionLink() = default;
  // The connection's identity in the server's tables: the key it was accepted with.
  virtual const void* key() const = 0;
  // Frames may be queued: the connection is open (not closing, not gone).
  virtual bool writable() const = 0;
  // Bytes queued and not yet written to the socket; none once the connection is gone.
  virtual std::optional<size_t> unsent() const = 0;
  // Queues one text frame; false when the connection would not take it.
  virtual bool write(const std::string& frame) = 0;
  // Begins the close handshake with `code` and `reason` (at most 123 bytes).
  virtual void close(uint16_t code, const std::string& reason) = 0;
  // How long a close handshake may take before the connection is cut.
  virtual void set_close_timeout(std::chrono::milliseconds timeout) = 0;
  // The transport's own ping (a WebSocket ping frame).
  virtual void ping() = 0;
  // Why the connection ended, as the transport saw it (for a close the server did not start).
  virtual std::string end_reason() const = 0;
};

// One event framed for the wire, shared by every session it goes to.
struct OutgoingEvent {
  uint64_t xid = 0;
  std::string frame;
};

// A live event held while its session catches up: as framed for the sessions that were live,
// and what its offset was made of (the reader's snapshots before and after the read), to frame
// it again with an offset that also counts the catch-up (hub.h).
struct HeldEvent {
  struct Span {
    PgSnapshot from, to;
  };
  std::shared_ptr<const OutgoingEvent> out;
  std::shared_ptr<const Event> event;
  std::shared_ptr<const Span> span;
};

struct Session {
  uint64_t serial = 0;
  std::unique_ptr<SessionLink> link;
  Protocol protocol = Protocol::plain;
  Phase phase = Phase::handshake;
  std::string peer;
  std::string user_id;
  std::optional<Offset> resume_from;  // what the client asked to resume from
  bool resume_requested = false;      // it sent an offset (even one we could not decode)

  // While catching up, live events wait here; once the catch-up's snapshot is known, the ones
  // it already covered are dropped. `barrier` keeps filtering later batches (and
  // counting in the offsets) until a read's snapshot covers it.
  std::vector<HeldEvent> held;
  size_t held_bytes = 0;
  std::optional<PgSnapshot> barrier;
  uint64_t catch_up_generation = 0;  // a newer catch-up (after TRUNCATE) supersedes older ones

  // Keepalive
  std::chrono::steady_clock::time_point last_ping{};
  bool ping_outstanding = false;
  uint64_t keepalive_generation = 0;  // of its live entry in the keepalive's queue, 0: none
  std::chrono::steady_clock::time_point keepalive_at{};  // ... and when that entry is due

  // Socket.IO
  std::string handshake_token;  // a token sent with the upgrade request, until CONNECT
  std::string engine_sid;       // its Engine.IO session id (chosen at open unless set before)
  bool can_upgrade = false;     // on long-polling: the open packet offers the WebSocket
  std::string sid;
  std::string pid;
  std::chrono::steady_clock::time_point opened_at{};

  // Slow-consumer accounting (see SessionHost::send): checked once per delivery turn.
  uint64_t budget_turn = 0;
  std::chrono::steady_clock::time_point over_budget_since{};
  size_t over_budget_mark = 0;  // unsent bytes when it first went over

  // What the client sends (SessionHost): a token bucket over every message and control frame.
  double message_tokens = 0;
  std::chrono::steady_clock::time_point tokens_at{};
  // Counted against --max-connections and its user's --max-connections-per-user.
  bool authenticated = false;
  // Its token's exp plus the allowed clock skew, seconds since the epoch: closed (4001) then
  // unless a refresh moved it on. None: a token without exp.
  std::optional<double> valid_until;

  std::string close_reason;  // set when the server closes it, for the disconnect log line
  uint64_t events_sent = 0;
  uint64_t position_xmax = 0;  // xmax of the newest position the client has been given
};

// Application close codes (4000-4999), where 1008 (policy) would not tell the client what to do.
namespace close_code {
constexpr uint16_t token_expired = 4001;      // its token's exp (plus leeway) passed: reconnect with a new one
constexpr uint16_t refresh_refused = 4003;    // an in-band refresh did not verify or named another user
constexpr uint16_t too_many_messages = 4029;  // over --client-message-rate / --client-message-burst
}  // namespace close_code

// What became of a frame handed to a connection. No hidden queue: past the per-connection
// budget the client is closed (it resumes from its last offset), not buffered without bound.
enum class SendResult { sent, closed_backpressure, dropped };

// What the hub needs from the server that owns the sockets.
class Transport {
 public:
  virtual ~Transport() = default;
  // A new round of deliveries begins (a batch, a catch-up): frames queued within one round
  // cannot have been written yet, so slowness is judged between rounds, not within one.
  virtual void begin_turn() = 0;
  virtual SendResult send(Session& s, const std::string& frame) = 0;
  virtual void close(Session& s, uint16_t code, const std::string& reason) = 0;
};

}  // namespace mn
