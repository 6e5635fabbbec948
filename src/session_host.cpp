#include "session_host.h"

#include "plain_protocol.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

namespace mn {
namespace {

constexpr uint16_t kCloseUnsupportedData = 1003;
constexpr uint16_t kCloseTryAgainLater = 1013;
// A close reason must fit 123 bytes.
constexpr size_t kCloseReasonBytes = 120;

}  // namespace

SessionHost::SessionHost(asio::io_context& io, const Config& cfg, Hub& hub)
    : cfg_(cfg), hub_(hub), limits_(cfg),
      sio_(cfg, *this, hub, [this] { return jwt_; },
           SocketIoProtocol::Hooks{[this](Session& s) { return admit(s); },
                                   [this](Session& s) { return may_reply(s); },
                                   [this](bool ok) { ++(ok ? stats_.refreshes : stats_.refreshes_refused); }}),
      keepalive_(io, cfg,
                 Keepalive::Hooks{
                     [this](const void* key) { return find(key); },
                     [this](Session& s) {
                       if (s.protocol == Protocol::socketio) sio_.send_ping(s);
                       else s.link->ping();
                     },
                     [this](Session& s) { hub_.refresh_position(s); },
                     [this](Session& s, uint16_t code, const std::string& reason) { close(s, code, reason); },
                     [this](KeepaliveStep step) {
                       ++(step == KeepaliveStep::no_pong ? stats_.ping_timeouts : stats_.tokens_expired);
                     }}),
      grace_(io) {
  hub_.attach(*this);
  hub_.set_start_frame([this](Session& s, bool recovered, const std::string& position) {
    return start_frame(s, recovered, position);
  });
}

SessionHost::~SessionHost() = default;

// ---- Connections ----

bool SessionHost::may_accept() {
  ++stats_.accepted;
  if (sockets_ >= cfg_.max_connections + cfg_.max_unauthenticated + kHandshakeHeadroom || stopping_) {
    ++stats_.refused_over_capacity;
    return false;
  }
  return true;
}

void SessionHost::accepted(const void* key, const std::string& address, std::function<void()> cut_it) {
  ++sockets_;
  if (auto victim = limits_.add_unauthenticated(key, address, std::move(cut_it))) cut(std::move(*victim));
}

// Cuts the connection at once (no close handshake: an idle peer would hold it for the close
// timeout); its end frees the rest.
void SessionHost::cut(ConnectionLimits::Unauthenticated victim) {
  ++stats_.unauthenticated_cut;
  if (Session* s = find(victim.key); s && s->phase != Phase::handshake) {
    s->close_reason = "cut: newer unauthenticated connections";
    s->phase = Phase::closing;
  }
  if (victim.cut) victim.cut();
}

Upgrade SessionHost::upgrade(const UpgradeRequest& request, const std::string& peer,
                             std::unique_ptr<SessionLink> link) {
  UpgradeState state;
  state.stopping = stopping_;
  state.started = !started_ || started_();
  state.limits = &limits_;
  state.jwt = jwt_.get();
  state.now = std::chrono::system_clock::now();
  Upgrade u = decide_upgrade(request, cfg_, state);
  switch (u.counted) {
    case Refusal::none: break;
    case Refusal::origin: ++stats_.refused_origin; break;
    case Refusal::over_capacity: ++stats_.refused_over_capacity; break;
    case Refusal::unauthorized: ++stats_.refused_unauthorized; break;
    case Refusal::per_user: ++stats_.refused_per_user; break;
  }
  if (!u.log.empty()) spdlog::info("refused {}: {}", peer, u.log);
  if (u.route != Route::plain && u.route != Route::socketio) return u;

  const void* key = link->key();
  auto s = new_session(std::move(link), u.route == Route::plain ? Protocol::plain : Protocol::socketio, peer);
  if (u.route == Route::socketio) {
    // Socket.IO authenticates with its CONNECT packet, after the upgrade.
    s->handshake_token = std::move(u.token);
  } else {
    s->user_id = u.user_id;
    s->valid_until = u.valid_until;
    admit(*s);  // decide_upgrade checked the limits, and nothing has changed since
    s->resume_requested = u.resume_requested;
    s->resume_from = u.resume_from;
  }
  sessions_.emplace(key, std::move(s));
  return u;
}

std::unique_ptr<Session> SessionHost::new_session(std::unique_ptr<SessionLink> link, Protocol p,
                                                  const std::string& peer) {
  auto s = std::make_unique<Session>();
  s->serial = next_serial_++;
  s->link = std::move(link);
  s->protocol = p;
  s->peer = peer;
  s->message_tokens = static_cast<double>(cfg_.client_message_burst);
  s->tokens_at = std::chrono::steady_clock::now();
  return s;
}

Session* SessionHost::find(const void* key) {
  auto it = sessions_.find(key);
  return it == sessions_.end() ? nullptr : it->second.get();
}

// The session proved its user: count it in, or say why not.
const char* SessionHost::admit(Session& s) {
  switch (limits_.admit(s.link->key(), s.user_id)) {
    case ConnectionLimits::Admission::over_capacity:
      return "over_capacity";
    case ConnectionLimits::Admission::too_many_connections:
      ++stats_.refused_per_user;
      return "too_many_connections";
    case ConnectionLimits::Admission::admitted:
      break;
  }
  s.authenticated = true;
  return nullptr;
}

void SessionHost::release(Session& s) {
  if (!s.authenticated) return;
  s.authenticated = false;
  limits_.release(s.user_id);
}

void SessionHost::opened(Session& s) {
  ++stats_.sessions_opened;
  s.opened_at = std::chrono::steady_clock::now();
  // A random phase: sessions that connected together (after a restart, say) must not all be
  // pinged in one turn of the loop every interval, stalling deliveries meanwhile. The first
  // ping comes after half an interval at the earliest, as a peer expecting one per interval
  // may reasonably assume.
  auto half = std::max<int64_t>(1, cfg_.ping_interval.count() / 2);
  s.last_ping = s.opened_at - std::chrono::milliseconds(static_cast<int64_t>(rng_() % half));
  if (s.protocol == Protocol::socketio) {
    s.phase = Phase::awaiting_auth;
    sio_.on_open(s, std::exchange(s.handshake_token, std::string()));
  } else {
    spdlog::info("connect session={} user={} peer={} protocol=ws resume={}", s.serial, s.user_id, s.peer,
                 s.resume_from ? "yes" : (s.resume_requested ? "invalid" : "no"));
    hub_.open(s);
  }
  keepalive_.watch(s);
}

void SessionHost::ended(const void* key) {
  --sockets_;
  limits_.forget_unauthenticated(key);
  if (auto it = sessions_.find(key); it != sessions_.end()) {
    end_session(*it->second);
    sessions_.erase(it);
  }
  maybe_drained();
}

// The session is gone: out of the hub and the limits, counted, and its disconnect logged with
// the reason the server gave, or else the one its transport saw.
void SessionHost::end_session(Session& s) {
  hub_.close(s);
  release(s);
  if (s.phase == Phase::handshake) {
    ++stats_.handshakes_failed;
    return;
  }
  ++stats_.sessions_closed;
  const std::string reason = s.close_reason.empty() ? s.link->end_reason() : s.close_reason;
  spdlog::info("disconnect session={} user={} peer={} reason=\"{}\" sent={}", s.serial, s.user_id, s.peer, reason,
               s.events_sent);
}

// ---- What a client sends ----

// Every message and control frame takes a token; an empty bucket closes the client (4029).
bool SessionHost::take_message(Session& s) {
  if (s.phase == Phase::closing) return false;
  auto now = std::chrono::steady_clock::now();
  double refill = std::chrono::duration<double>(now - s.tokens_at).count() * cfg_.client_message_rate;
  s.message_tokens = std::min(static_cast<double>(cfg_.client_message_burst), s.message_tokens + refill);
  s.tokens_at = now;
  if (s.message_tokens >= 1) {
    s.message_tokens -= 1;
    return true;
  }
  ++stats_.closed_too_many_messages;
  // It is likely not reading either: a moment for the close handshake, not the usual 5 s.
  s.link->set_close_timeout(std::chrono::milliseconds(1000));
  close(s, close_code::too_many_messages, "too many messages: over --client-message-rate");
  return false;
}

// Replies to a client's own messages (pongs, error frames, acks) are not queued while it has
// more than its budget unsent: it is not reading them, and they would pile up.
bool SessionHost::may_reply(Session& s) {
  auto unsent = s.link->unsent();
  if (!unsent) return false;
  if (*unsent <= cfg_.max_buffered_bytes) return true;
  ++stats_.replies_withheld;
  return false;
}

void SessionHost::pong(Session& s) {
  if (take_message(s)) s.ping_outstanding = false;
}

bool SessionHost::ping(Session& s) { return take_message(s) && may_reply(s); }

void SessionHost::message(Session& s, bool text, const std::string& payload) {
  if (s.phase == Phase::closing) return;
  if (!take_message(s)) return;
  if (s.protocol == Protocol::socketio && text) {
    sio_.on_text(s, payload);
    return keepalive_.watch(s);  // a CONNECT or a refresh may have brought a token's exp
  }
  if (!text) {
    ++stats_.bad_messages;
    return close(s, kCloseUnsupportedData, "binary frames are not accepted");
  }
  auto m = plain::parse_client_message(payload);
  if (m.kind == plain::ClientMessage::refresh) return refresh(s, m.token);
  ++stats_.bad_messages;
  if (m.kind == plain::ClientMessage::invalid) {
    ++stats_.refreshes_refused;
    spdlog::info("refresh refused session={} user={}: {}", s.serial, s.user_id, m.error);
    return close(s, close_code::refresh_refused, "refresh refused: " + m.error);
  }
  // Anything else: say so, once per message, and carry on.
  if (may_reply(s)) send(s, plain::error_frame("unexpected_message", "this endpoint accepts only {\"event\":\"refresh\"}"));
}

// /ws: a new token for the open socket. It must verify now (with the keys in force now) and
// name the same user; then the socket lives until its exp instead.
void SessionHost::refresh(Session& s, const std::string& token) {
  JwtOutcome outcome;
  if (jwt_) outcome = jwt_->verify(token, std::chrono::system_clock::now());
  else outcome.error = "no JWT verifier configured";
  std::string why;
  if (!outcome.ok) why = "invalid token (" + outcome.error + ")";
  else if (outcome.user_id != s.user_id) why = "the token names another user";
  if (!why.empty()) {
    ++stats_.refreshes_refused;
    spdlog::info("refresh refused session={} user={}: {}", s.serial, s.user_id, why);
    return close(s, close_code::refresh_refused, "refresh refused: " + why);
  }
  ++stats_.refreshes;
  s.valid_until = outcome.valid_until;
  keepalive_.watch(s);
  if (may_reply(s)) send(s, plain::refreshed_frame(outcome.valid_until));
}

// ---- What the hub asks ----

SendResult SessionHost::send(Session& s, const std::string& frame) {
  if (s.phase == Phase::closing || !s.link->writable()) return SendResult::dropped;
  // A transport queues without bound and writes only after this turn of the loop, so a burst
  // (a big transaction, a replay, a snapshot) is always "unsent" while it is being queued.
  // Slowness is judged between turns instead: a client over the budget must drain within the
  // grace period, and must not fall a further budget behind meanwhile.
  if (s.budget_turn != turn_) {
    s.budget_turn = turn_;
    const size_t unsent = s.link->unsent().value_or(0);
    auto now = std::chrono::steady_clock::now();
    if (unsent <= cfg_.max_buffered_bytes) {
      s.over_budget_mark = 0;
    } else if (s.over_budget_mark == 0) {
      s.over_budget_mark = unsent;
      s.over_budget_since = now;
    } else if (now - s.over_budget_since > cfg_.slow_client_grace ||
               unsent > s.over_budget_mark + cfg_.max_buffered_bytes) {
      close(s, kCloseTryAgainLater, "too slow: unsent data over the limit; reconnect with your last offset");
      return SendResult::closed_backpressure;
    }
  }
  return s.link->write(frame) ? SendResult::sent : SendResult::dropped;
}

void SessionHost::close(Session& s, uint16_t code, const std::string& reason) {
  if (s.phase == Phase::closing) return;
  s.phase = Phase::closing;
  s.close_reason = reason;
  hub_.close(s);  // nothing more is delivered to it
  s.link->close(code, reason.substr(0, kCloseReasonBytes));
}

std::string SessionHost::start_frame(Session& s, bool recovered, const std::string& position) {
  return s.protocol == Protocol::plain ? plain::session_frame(s.user_id, recovered)
                                       : sio_.start_frame(s, recovered, position);
}

// ---- Start and stop ----

void SessionHost::start() { keepalive_.start(); }

void SessionHost::shutdown(uint16_t code, const std::string& reason, std::chrono::milliseconds grace,
                           std::function<void()> done) {
  stopping_ = true;
  keepalive_.stop();
  std::vector<Session*> all;
  for (auto& [key, s] : sessions_) all.push_back(s.get());
  for (Session* s : all) {
    if (s->phase == Phase::handshake) continue;
    close(*s, code, reason);
  }
  on_drained_ = std::move(done);
  grace_.expires_after(grace);
  grace_.async_wait([this](const asio::error_code& e) {
    if (e) return;
    if (auto d = std::exchange(on_drained_, nullptr)) d();
  });
  maybe_drained();
}

void SessionHost::maybe_drained() {
  if (stopping_ && sockets_ == 0 && on_drained_) {
    grace_.cancel();
    auto done = std::exchange(on_drained_, nullptr);
    done();
  }
}

}  // namespace mn
