// Keepalive: one timer for every session, not one per session. Each session is pinged every
// --ping-interval (a WebSocket ping on /ws, "2" on Socket.IO), and one that has not answered
// within --ping-timeout is closed (1001); a Socket.IO session that sent no CONNECT within
// --auth-timeout is closed (1008); a session whose token has expired (its exp plus leeway,
// unless refreshed) is closed (4001). With each ping the hub gives an idle client a newer
// offset (hub.h, refresh_position).
//
// The sweep runs every 100 ms (or the ping interval or timeout, if shorter): each session's
// pings fall due at its own phase (set when it opens), so a tick serves a tenth of a second's
// worth of sessions, not all of them at once.
//
// keepalive_step is the rule for one session, pure; Keepalive runs it on a timer.
#pragma once

#include "config.h"
#include "session.h"

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <functional>

namespace mn {

enum class KeepaliveStep { none, ping, auth_timed_out, token_expired, no_pong };

// What the sweep does to `s` now. `wall` is seconds since the epoch (for the token's exp).
KeepaliveStep keepalive_step(const Session& s, std::chrono::steady_clock::time_point now, double wall,
                             const Config& cfg);

class Keepalive {
 public:
  struct Hooks {
    // Calls its argument for every session the server holds.
    std::function<void(const std::function<void(Session&)>&)> each_session;
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
  // One sweep over every session (what each tick does).
  void sweep(std::chrono::steady_clock::time_point now, double wall);

 private:
  void schedule();

  const Config& cfg_;
  Hooks hooks_;
  asio::steady_timer timer_;
};

}  // namespace mn
