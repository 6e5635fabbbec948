#include "keepalive.h"

#include <algorithm>
#include <vector>

namespace mn {

KeepaliveStep keepalive_step(const Session& s, std::chrono::steady_clock::time_point now, double wall,
                             const Config& cfg) {
  if (s.phase == Phase::handshake || s.phase == Phase::closing) return KeepaliveStep::none;
  if (s.phase == Phase::awaiting_auth && now - s.opened_at > cfg.auth_timeout) return KeepaliveStep::auth_timed_out;
  if (s.valid_until && wall > *s.valid_until) return KeepaliveStep::token_expired;
  if (s.ping_outstanding) return now - s.last_ping > cfg.ping_timeout ? KeepaliveStep::no_pong : KeepaliveStep::none;
  if (now - s.last_ping >= cfg.ping_interval) return KeepaliveStep::ping;
  return KeepaliveStep::none;
}

Keepalive::Keepalive(asio::io_context& io, const Config& cfg, Hooks hooks)
    : cfg_(cfg), hooks_(std::move(hooks)), timer_(io) {}

void Keepalive::start() { schedule(); }

void Keepalive::stop() { timer_.cancel(); }

void Keepalive::schedule() {
  auto tick = std::min({std::chrono::milliseconds(100), cfg_.ping_interval, cfg_.ping_timeout});
  timer_.expires_after(tick);
  timer_.async_wait([this](const asio::error_code& ec) {
    if (ec) return;
    sweep(std::chrono::steady_clock::now(),
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
    schedule();
  });
}

void Keepalive::sweep(std::chrono::steady_clock::time_point now, double wall) {
  std::vector<Session*> dead, timed_out_auth, pinged, expired;
  hooks_.each_session([&](Session& s) {
    switch (keepalive_step(s, now, wall, cfg_)) {
      case KeepaliveStep::none:
        return;
      case KeepaliveStep::auth_timed_out:
        timed_out_auth.push_back(&s);
        return;
      case KeepaliveStep::token_expired:
        expired.push_back(&s);
        return;
      case KeepaliveStep::no_pong:
        dead.push_back(&s);
        return;
      case KeepaliveStep::ping:
        s.ping_outstanding = true;
        s.last_ping = now;
        pinged.push_back(&s);
        hooks_.ping(s);
        return;
    }
  });
  // After the loop: a send or a close may end a session, and the loop must not see that.
  for (Session* s : pinged) hooks_.pinged(*s);
  for (Session* s : timed_out_auth) hooks_.close(*s, 1008, "no CONNECT packet within auth timeout");
  for (Session* s : expired) {
    hooks_.count(KeepaliveStep::token_expired);
    s->valid_until.reset();
    hooks_.close(*s, close_code::token_expired, "token expired; reconnect with a new token, or refresh it before exp");
  }
  for (Session* s : dead) {
    hooks_.count(KeepaliveStep::no_pong);
    // A peer that does not answer pings is unlikely to answer a close handshake: say why
    // (1001), but give it only a moment before the connection is cut.
    if (s->link) s->link->set_close_timeout(std::min<std::chrono::milliseconds>(std::chrono::milliseconds(1000), cfg_.ping_timeout));
    hooks_.close(*s, 1001, "no pong within ping timeout");
  }
}

}  // namespace mn
