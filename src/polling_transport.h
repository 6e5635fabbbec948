// PollingTransport: one Engine.IO v4 long-polling session's transport state, from the open
// packet to its close or its upgrade to a WebSocket. Pure (no sockets, no timers: the caller
// passes the time), so every rule here is unit-tested with a fake clock and fuzzed.
//
// What the server sends is queued here until the client's next GET takes it all, as one
// payload. At most one GET is held at a time: a second one while the first is held is a
// protocol error that closes the session, as in the reference server. A held GET is answered
// as soon as there is something to send (the server's ping, every --ping-interval, is such a
// thing, so a GET is never held longer than that).
//
// Budget: queued_bytes() is what the server judges against --max-buffered-bytes, by the same
// rule as a WebSocket's unsent bytes (SessionHost::send): a session whose client does not
// come for what is queued is closed (and dropped: close(server, drop_queue)), and its client
// resumes from its last offset.
//
// Upgrade (the stock client does it unless told `transports: ["polling"]`): the client opens
// a WebSocket with this session's sid and sends "2probe"; we answer "3probe" there and answer
// the held GET at once (with what is queued, or a "6" noop), so the client's poll returns and
// it can pause polling; any GET that still comes is answered at once too. The client then
// sends "5" on the WebSocket: from then on everything goes there, starting with what is still
// queued here, in order. Nothing is lost or sent twice: every packet leaves exactly once,
// either in a GET response or over the WebSocket. A probe that fails (closes, sends anything
// else, or takes longer than the upgrade timeout) leaves the session polling.
//
// Close: by the server (a refusal, an error, over budget) the held GET gets what was queued,
// and the next GET a "1" close packet (over budget: the close packet only). Not in one
// payload: the stock client hands packets to Socket.IO a tick later but acts on the close at
// once, so a connect_error followed by a close in one payload reaches the application after
// the disconnect. With no GET held, the next ones within close_linger get them, if they tell
// the client anything (a refusal after its CONNECT comes before its first GET: the stock client
// posts CONNECT first). By the client ("1" posted) the held GET gets a "6" noop. After that any
// request with this sid is refused (Session ID unknown), which the client takes as the end.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace mn::polling {

using Clock = std::chrono::steady_clock;

struct Limits {
  // The reference server's default: a client has this long from opening the probe WebSocket
  // to sending "5" on it.
  std::chrono::milliseconds upgrade_timeout{10000};
  // A session closed while no GET was held keeps its last packets this long for the next one.
  std::chrono::milliseconds close_linger{5000};
};

enum class State {
  polling,    // open, on long-polling
  upgrading,  // a probe WebSocket is open for it
  upgraded,   // moved to the WebSocket: requests with its sid are refused
  closed,     // closed; its last packets may still wait for a GET
};

class PollingTransport {
 public:
  explicit PollingTransport(Limits limits) : limits_(limits) {}

  State state() const { return state_; }

  // ---- Server to client ---------------------------------------------------------------

  // Queues one packet; false after a close or an upgrade, when nothing is queued here.
  bool push(std::string packet);
  // Bytes queued for the next GET, separators included.
  size_t queued_bytes() const { return queued_bytes_; }
  size_t queued_packets() const { return queue_.size(); }

  // ---- GET ----------------------------------------------------------------------------

  enum class GetAction {
    answer,   // reply 200 with `body` now
    hold,     // defer the reply; answer it with take_response() once ready()
    overlap,  // a GET was already held: the session is now closed; reply 400 to this one
              // (Bad request), and answer the held one (ready() is true)
    refuse,   // reply 400 with `error`: the session is gone, or moved to a WebSocket
  };
  struct GetOutcome {
    GetAction action = GetAction::refuse;
    std::string body;
    bool session_unknown = true;  // refuse: Session ID unknown (else Bad request)
  };
  GetOutcome on_get(Clock::time_point now);
  bool get_held() const { return get_held_; }
  // The held GET should be answered now.
  bool ready() const;
  // The held GET's body (everything queued, or "6", or the last packets of a closed session);
  // the GET is no longer held.
  std::string take_response();
  // The held GET's connection was lost before it was answered: the client is gone (the
  // reference server closes the session then too). Closes it.
  void get_lost(Clock::time_point now);

  // ---- POST ---------------------------------------------------------------------------

  struct PostOutcome {
    bool ok = false;                   // reply 200 "ok"; else 400 and the session is closed
    bool session_unknown = false;      // !ok and the session was already gone or upgraded
    std::vector<std::string> packets;  // text packets for the protocol, in order, up to a "1"
    bool client_closed = false;        // a "1" came: close(CloseBy::client) after the packets
    bool binary = false;               // a binary packet came: refuse it as on a WebSocket
    const char* error = "";            // !ok: short fixed text for the log
  };
  // Decodes a POST body (polling_codec.h). A body that does not decode closes the session.
  PostOutcome on_post(std::string_view body, Clock::time_point now);

  // ---- Upgrade ------------------------------------------------------------------------

  // A WebSocket request names this session: it may become the probe only while polling.
  bool may_upgrade() const { return state_ == State::polling; }
  void probe_opened(Clock::time_point now);
  enum class ProbeAction {
    reply_probe,  // send "3probe" on the WebSocket
    upgraded,     // "5": send take_queue() on the WebSocket, then everything else
    refuse,       // anything else: close the WebSocket (probe_lost()); the session polls on
  };
  ProbeAction on_probe_packet(std::string_view packet);
  // Once upgraded: what was still queued, in order, for the WebSocket. Empties the queue.
  std::vector<std::string> take_queue();
  // The probe WebSocket closed (or was refused) before the upgrade: back to polling.
  void probe_lost();
  // Upgrading for longer than the upgrade timeout: the caller closes the probe.
  bool upgrade_expired(Clock::time_point now) const;

  // ---- Close --------------------------------------------------------------------------

  enum class CloseBy { server, client };
  void close(CloseBy by, Clock::time_point now, bool drop_queue = false);
  // Closed, and its last packets are gone (taken by a GET, or kept for close_linger): the
  // caller may forget the sid.
  bool finished(Clock::time_point now) const;

 private:
  Limits limits_;
  State state_ = State::polling;
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  bool get_held_ = false;

  // Upgrade
  bool probed_ = false;  // "2probe" answered
  Clock::time_point probe_at_{};

  // Close: what the next GETs get, in order.
  std::deque<std::string> last_;
  Clock::time_point closed_at_{};
};

}  // namespace mn::polling
