#include "keepalive.h"

#include <asio/post.hpp>

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

std::optional<std::chrono::steady_clock::time_point> keepalive_due(const Session& s,
                                                                   std::chrono::steady_clock::time_point now,
                                                                   double wall, const Config& cfg) {
  using std::chrono::milliseconds;
  if (s.phase == Phase::handshake || s.phase == Phase::closing) return std::nullopt;
  // keepalive_step's timeouts are strict ("more than"): a millisecond past them.
  auto due = s.ping_outstanding ? s.last_ping + cfg.ping_timeout + milliseconds(1) : s.last_ping + cfg.ping_interval;
  if (s.phase == Phase::awaiting_auth) due = std::min(due, s.opened_at + cfg.auth_timeout + milliseconds(1));
  if (s.valid_until) {
    auto left = std::chrono::duration<double>(std::max(0.0, *s.valid_until - wall));
    due = std::min(due, now + std::chrono::ceil<milliseconds>(left) + milliseconds(1));
  }
  return due;
}

Keepalive::Keepalive(asio::io_context& io, const Config& cfg, Hooks hooks)
    : io_(io), cfg_(cfg), hooks_(std::move(hooks)), timer_(io) {}

void Keepalive::start() {
  stopped_ = false;
  schedule();
}

void Keepalive::stop() {
  stopped_ = true;
  timer_.cancel();
  due_.clear();
}

void Keepalive::watch(Session& s) {
  watch(s, std::chrono::steady_clock::now(),
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
}

void Keepalive::watch(Session& s, std::chrono::steady_clock::time_point now, double wall) {
  arm(s, now, wall, false);
}

// A session has one live entry. A new one is queued only when the session's entry has just
// been consumed, or when the new deadline is earlier than the live entry's: a client that
// refreshes its token over and over cannot grow the queue.
void Keepalive::arm(Session& s, std::chrono::steady_clock::time_point now, double wall, bool consumed) {
  if (stopped_) return;
  auto due = keepalive_due(s, now, wall, cfg_);
  if (!due) return;
  if (!consumed && s.keepalive_generation != 0 && s.keepalive_at <= *due) return;
  s.keepalive_generation = ++generation_;
  s.keepalive_at = *due;
  due_.schedule(*due, s.link ? s.link->key() : &s, s.keepalive_generation);
}

void Keepalive::schedule() {
  auto tick = std::min({std::chrono::milliseconds(10), cfg_.ping_interval, cfg_.ping_timeout});
  timer_.expires_after(tick);
  timer_.async_wait([this](const asio::error_code& ec) {
    if (ec || stopped_) return;
    turn();
  });
}

// One turn of the loop: the sessions due, at most kPerTurn; if more are due, another turn right
// after whatever else is waiting (deliveries), else the next tick.
void Keepalive::turn() {
  bool more = sweep(std::chrono::steady_clock::now(),
                    std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  if (!more) return schedule();
  asio::post(io_, [this] {
    if (!stopped_) turn();
  });
}

bool Keepalive::sweep(std::chrono::steady_clock::time_point now, double wall) {
  std::vector<Session*> looked, dead, timed_out_auth, pinged, expired;
  due_.pop_due(now, kPerTurn, [&](const void* key, uint64_t generation) {
    Session* found = hooks_.find(key);
    if (!found || found->keepalive_generation != generation) return;  // gone, or rescheduled since
    Session& s = *found;
    looked.push_back(&s);
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
  // Each session looked at gets its next look (none once closing).
  for (Session* s : looked) arm(*s, now, wall, true);
  return due_.next() && *due_.next() <= now;
}

}  // namespace mn
