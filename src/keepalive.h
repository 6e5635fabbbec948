// Keepalive: one timer for every session, not one per session. Each session is pinged every
// --ping-interval (a WebSocket ping on /ws, "2" on Socket.IO), and one that has not answered
// within --ping-timeout is closed (1001); a Socket.IO session that sent no CONNECT within
// --auth-timeout is closed (1008); a session whose token has expired (its exp plus leeway,
// unless refreshed) is closed (4001). With each ping the hub gives an idle client a newer
// offset (hub.h, refresh_position).
//
// Nothing walks every session: each session has one entry in a queue ordered by when it next
// needs a look (deadline_queue.h), and a tick every 10 ms looks only at the sessions due, at
// most kPerTurn of them before letting other work run. Sessions' pings fall due at their own
// phase (set when they open), so 100,000 sessions pinged every 25 s are ~40 per tick.
//
// keepalive_step is the rule for one session and keepalive_due when it next applies, both
// pure; Keepalive runs them on a timer.
#pragma once

#include "config.h"
#include "deadline_queue.h"
#include "session.h"

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <optional>

namespace mn {

enum class KeepaliveStep { none, ping, auth_timed_out, token_expired, no_pong };

// What the sweep does to `s` now. `wall` is seconds since the epoch (for the token's exp).
KeepaliveStep keepalive_step(const Session& s, std::chrono::steady_clock::time_point now, double wall,
                             const Config& cfg);
// The earliest time at which keepalive_step may return something other than none for `s`, as
// things stand; nullopt for a session in its handshake or closing (nothing to watch).
std::optional<std::chrono::steady_clock::time_point> keepalive_due(const Session& s,
                                                                   std::chrono::steady_clock::time_point now,
                                                                   double wall, const Config& cfg);

class Keepalive {
 public:
  // Sessions looked at in one turn of the loop, at most; more due are looked at in the next.
  static constexpr size_t kPerTurn = 256;

  struct Hooks {
    // The open session of a connection key (SessionLink::key), or nullptr.
    std::function<Session*(const void*)> find;
    // Sends a ping in the session's protocol.
    std::function<void(Session&)> ping;
    // After the sweep, for every session pinged (hub.h, refresh_position).
    std::function<void(Session&)> pinged;
    // Closes a session with this code and reason (Transport::close).
    std::function<void(Session&, uint16_t, const std::string&)> close;
    // Counts a session closed for `step` (token_expired, no_pong), for the metrics.
    std::function<void(KeepaliveStep)> count;
  };

  Keepalive(asio::io_context& io, const Config& cfg, Hooks hooks);
  void start();
  void stop();
  // (Re)schedules the session's next look: when it opens, and whenever one of its deadlines
  // may have moved earlier (a new token's exp). Earlier entries for it become stale.
  void watch(Session& s);
  void watch(Session& s, std::chrono::steady_clock::time_point now, double wall);
  // Looks at the sessions due by `now`, at most kPerTurn. True when more are due.
  bool sweep(std::chrono::steady_clock::time_point now, double wall);
  size_t watched() const { return due_.size(); }

 private:
  void schedule();
  void turn();
  void arm(Session& s, std::chrono::steady_clock::time_point now, double wall, bool consumed);

  asio::io_context& io_;
  const Config& cfg_;
  Hooks hooks_;
  asio::steady_timer timer_;
  DeadlineQueue<const void*> due_;
  uint64_t generation_ = 0;  // unique per watch(), so that an entry never matches a later session
  bool stopped_ = false;
};

}  // namespace mn
