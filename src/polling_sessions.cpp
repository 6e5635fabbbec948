#include "polling_sessions.h"

#include "plain_protocol.h"
#include "socketio_codec.h"
#include "upgrade.h"

#include <asio/post.hpp>
#include <spdlog/spdlog.h>

#include <vector>

namespace mn {
namespace {

using polling::Clock;
using polling::ErrorCode;

constexpr uint16_t kCloseNormal = 1000;
constexpr uint16_t kCloseGoingAway = 1001;
constexpr uint16_t kCloseInvalidPayload = 1007;
constexpr uint16_t kClosePolicy = 1008;
constexpr uint16_t kCloseTryAgainLater = 1013;

PollingSessions::Response error(ErrorCode code) {
  return {polling::error_status(code), "application/json", polling::error_body(code)};
}

PollingSessions::Response payload(std::string body) {
  return {200, std::string(polling::kPayloadContentType), std::move(body)};
}

}  // namespace

struct PollingSessions::Entry {
  Entry(std::string id, const polling::Limits& limits) : sid(std::move(id)), t(limits) {}
  std::string sid;
  polling::PollingTransport t;
  Reply held;                        // the held GET's reply
  const void* held_key = nullptr;    // and its connection
  std::unique_ptr<SessionLink> ws;   // the probe WebSocket; once upgraded, the session's
  bool upgraded = false;
  bool flush_posted = false;
  bool client_closing = false;       // the client posted "1": the held GET gets a noop
  std::string end_reason = "connection lost";
};

// The session's link as the host sees it: the polling queue, or once upgraded, the WebSocket.
class PollingSessions::Link final : public SessionLink {
 public:
  Link(PollingSessions& owner, Entry& e) : owner_(owner), e_(e) {}

  const void* key() const override { return &e_; }
  bool writable() const override {
    if (e_.upgraded) return e_.ws && e_.ws->writable();
    return e_.t.state() == polling::State::polling || e_.t.state() == polling::State::upgrading;
  }
  std::optional<size_t> unsent() const override {
    if (e_.upgraded) return e_.ws ? e_.ws->unsent() : std::nullopt;
    if (!writable()) return std::nullopt;
    return e_.t.queued_bytes();
  }
  bool write(const std::string& frame) override {
    if (e_.upgraded) return e_.ws && e_.ws->write(frame);
    if (!e_.t.push(frame)) return false;
    owner_.flush_soon(e_);
    return true;
  }
  void close(uint16_t code, const std::string& reason) override {
    if (e_.upgraded) {
      if (e_.ws) e_.ws->close(code, reason);
      return;
    }
    // Engine.IO has no close codes: the client sees a close packet (the reason is logged).
    // Too slow: what is queued is dropped, as unsent frames are with a WebSocket.
    e_.t.close(e_.client_closing ? polling::PollingTransport::CloseBy::client
                                 : polling::PollingTransport::CloseBy::server,
               Clock::now(), code == kCloseTryAgainLater);
    if (e_.ws) owner_.drop_probe(e_, "session closed");
    owner_.flush(e_);
    // Not now: the host is still using this session.
    asio::post(owner_.io_, [&owner = owner_, sid = e_.sid] {
      if (Entry* e = owner.find(sid)) owner.finish_if_done(*e);
    });
  }
  void set_close_timeout(std::chrono::milliseconds timeout) override {
    if (e_.upgraded && e_.ws) e_.ws->set_close_timeout(timeout);
  }
  void ping() override {}  // Socket.IO pings in its own packets
  std::string end_reason() const override { return e_.end_reason; }

 private:
  PollingSessions& owner_;
  Entry& e_;
};

PollingSessions::PollingSessions(asio::io_context& io, const Config& cfg, SessionHost& host)
    : io_(io), cfg_(cfg), host_(host), sweep_(io) {
  // A client closed while it had no GET out gets its last packets (a refusal, the close) on
  // its next one, which comes at once unless it has gone.
  limits_.close_linger = std::min<std::chrono::milliseconds>(cfg.ping_timeout, std::chrono::seconds(5));
}

PollingSessions::~PollingSessions() { stop(); }

void PollingSessions::start() {
  stopped_ = false;
  sweep();
}

void PollingSessions::stop() {
  stopped_ = true;
  sweep_.cancel();
}

std::string PollingSessions::new_sid() {
  for (;;) {
    uint64_t hi = random_(), lo = random_();
    std::string sid = socketio::session_id(hi, lo);
    if (!by_sid_.count(sid)) return sid;
  }
}

PollingSessions::Entry* PollingSessions::find(const std::string& sid) {
  auto it = by_sid_.find(sid);
  return it == by_sid_.end() ? nullptr : it->second.get();
}

Session* PollingSessions::session_of(Entry& e) { return host_.find(&e); }

void PollingSessions::http(const Request& request, Reply reply) {
  const auto target = RequestTarget::parse(request.resource);
  const auto v = polling::classify_request(request.method, target, false, request.content_type);
  switch (v.kind) {
    case polling::RequestKind::open:
      return open(request, std::move(reply));
    case polling::RequestKind::poll:
    case polling::RequestKind::send: {
      Entry* e = find(v.sid);
      if (!e) return reply(error(ErrorCode::session_id_unknown));
      // Its session is the one counted (unauthenticated until CONNECT), not each request.
      host_.settled(request.key);
      return v.kind == polling::RequestKind::poll ? poll(*e, request, std::move(reply))
                                                  : post(*e, request, std::move(reply));
    }
    default:
      return reply(error(v.error));
  }
}

void PollingSessions::open(const Request& request, Reply reply) {
  if (!host_.may_accept())
    return reply({503, "application/json", plain::error_frame("over_capacity", "connection limit reached; try again later")});
  const std::string sid = new_sid();
  auto owned = std::make_unique<Entry>(sid, limits_);
  Entry& e = *owned;
  by_sid_.emplace(sid, std::move(owned));
  // The session takes its first request's place among the unauthenticated (counted once, not
  // twice, so it pushes out no other).
  host_.settled(request.key);
  host_.accepted(&e, request.address, [this, sid] {
    // Pushed out by newer unauthenticated connections: at once, nothing more for it.
    Entry* victim = find(sid);
    if (!victim) return;
    victim->t.close(polling::PollingTransport::CloseBy::server, Clock::now(), true);
    flush(*victim);
    asio::post(io_, [this, sid] {
      if (Entry* gone = find(sid)) finish_if_done(*gone, true);
    });
  });
  UpgradeRequest up{false, request.resource, request.origin, request.authorization};
  Upgrade u = host_.upgrade(up, request.peer, std::make_unique<Link>(*this, e));
  Session* s = u.route == Route::socketio ? host_.find(&e) : nullptr;
  if (!s) {
    host_.ended(&e);
    by_sid_.erase(sid);
    return reply({u.status ? u.status : 400, u.content_type, u.body});
  }
  s->engine_sid = sid;
  s->can_upgrade = true;
  host_.opened(*s);  // queues the open packet
  auto g = e.t.on_get(Clock::now());
  if (g.action == polling::PollingTransport::GetAction::answer) return reply(payload(std::move(g.body)));
  // The open packet is always queued; should it not be, this GET is simply held.
  e.held = std::move(reply);
  e.held_key = request.key;
  by_connection_[request.key] = &e;
}

void PollingSessions::poll(Entry& e, const Request& request, Reply reply) {
  using GetAction = polling::PollingTransport::GetAction;
  auto g = e.t.on_get(Clock::now());
  switch (g.action) {
    case GetAction::answer:
      reply(payload(std::move(g.body)));
      if (e.t.state() == polling::State::closed) finish_if_done(e);
      return;
    case GetAction::hold:
      e.held = std::move(reply);
      e.held_key = request.key;
      by_connection_[request.key] = &e;
      return;
    case GetAction::overlap:
      // A second GET while one is held: the protocol says the session ends.
      reply(error(ErrorCode::bad_request));
      if (Session* s = session_of(e)) host_.close(*s, kClosePolicy, "a second poll request while one was held");
      flush(e);
      return;
    case GetAction::refuse:
      return reply(error(g.session_unknown ? ErrorCode::session_id_unknown : ErrorCode::bad_request));
  }
}

void PollingSessions::post(Entry& e, const Request& request, Reply reply) {
  auto p = e.t.on_post(request.body, Clock::now());
  if (!p.ok) {
    reply(error(p.session_unknown ? ErrorCode::session_id_unknown : ErrorCode::bad_request));
    if (e.t.state() == polling::State::closed && !p.session_unknown) {
      if (Session* s = session_of(e)) host_.close(*s, kCloseInvalidPayload, std::string("unparseable payload: ") + p.error);
      flush(e);
    }
    return;
  }
  Session* s = session_of(e);
  auto open = [&] { return s && s->phase != Phase::closing; };
  // Each packet counts against the client's message rate, as a WebSocket message does.
  for (const auto& packet : p.packets) {
    if (!open()) break;
    host_.message(*s, true, packet);
  }
  if (p.binary && open()) host_.message(*s, false, {});
  if (p.client_closed && open()) {
    e.client_closing = true;
    host_.close(*s, kCloseNormal, "client closed the Engine.IO session");
  }
  reply({200, "text/html", std::string(polling::kPostAccepted)});
}

PollingSessions::Probe PollingSessions::probe(const std::string& sid, std::unique_ptr<SessionLink> link) {
  Entry* e = find(sid);
  Session* s = e ? session_of(*e) : nullptr;
  if (!e || !s || s->phase == Phase::closing || e->t.state() == polling::State::closed) return Probe::refused;
  if (!e->t.may_upgrade()) {
    to_close_[link->key()] = std::move(link);
    return Probe::close_when_open;
  }
  e->t.probe_opened(Clock::now());
  by_connection_[link->key()] = e;
  host_.settled(link->key());
  e->ws = std::move(link);
  return Probe::accepted;
}

void PollingSessions::opened(const void* key) {
  auto it = to_close_.find(key);
  if (it == to_close_.end()) return;
  it->second->close(kClosePolicy, "this session is being upgraded or was already");
}

bool PollingSessions::message(const void* key, bool text, const std::string& payload_text) {
  auto it = by_connection_.find(key);
  if (it == by_connection_.end()) return false;
  Entry& e = *it->second;
  if (!e.ws || e.ws->key() != key) return false;
  if (!e.upgraded) {
    probe_message(e, text, payload_text);
  } else if (Session* s = session_of(e)) {
    host_.message(*s, text, payload_text);
  }
  return true;
}

void PollingSessions::probe_message(Entry& e, bool text, const std::string& packet) {
  using ProbeAction = polling::PollingTransport::ProbeAction;
  const auto action = text ? e.t.on_probe_packet(packet) : ProbeAction::refuse;
  switch (action) {
    case ProbeAction::reply_probe:
      e.ws->write(std::string(polling::kProbePong));
      // The held GET returns now (with what is queued, or a noop), so the client can pause.
      return flush(e);
    case ProbeAction::upgraded:
      e.upgraded = true;
      // What was still queued goes first, in order; then everything else.
      for (const auto& p : e.t.take_queue()) e.ws->write(p);
      flush(e);
      if (Session* s = session_of(e)) spdlog::debug("upgrade session={} to websocket", s->serial);
      return;
    case ProbeAction::refuse:
      return drop_probe(e, "unexpected packet during the upgrade");
  }
}

void PollingSessions::drop_probe(Entry& e, const std::string& why) {
  if (!e.ws || e.upgraded) return;
  auto ws = std::move(e.ws);
  by_connection_.erase(ws->key());
  ws->close(kClosePolicy, why);
  e.t.probe_lost();
}

void PollingSessions::ended(const void* key) {
  to_close_.erase(key);
  auto it = by_connection_.find(key);
  if (it == by_connection_.end()) return;
  Entry& e = *it->second;
  by_connection_.erase(it);
  if (e.held_key == key) {
    // The client went away with a GET out (the reference server ends the session too).
    e.held = nullptr;
    e.held_key = nullptr;
    if (e.t.state() == polling::State::closed) return finish_if_done(e);
    e.t.get_lost(Clock::now());
    e.end_reason = "connection lost (a poll request closed before its answer)";
    return finish_if_done(e, true);
  }
  if (e.ws && e.ws->key() == key) {
    if (e.upgraded) {
      e.end_reason = e.ws->end_reason();
      return finish_if_done(e, true);
    }
    e.ws.reset();
    e.t.probe_lost();
  }
}

void PollingSessions::flush(Entry& e) {
  if (!e.held || !e.t.ready()) return;
  auto reply = std::exchange(e.held, nullptr);
  by_connection_.erase(e.held_key);
  e.held_key = nullptr;
  reply(payload(e.t.take_response()));
  if (e.t.state() == polling::State::closed) {
    asio::post(io_, [this, sid = e.sid] {
      if (Entry* gone = find(sid)) finish_if_done(*gone);
    });
  }
}

void PollingSessions::flush_soon(Entry& e) {
  if (e.flush_posted || !e.held) return;
  e.flush_posted = true;
  asio::post(io_, [this, sid = e.sid] {
    Entry* found = find(sid);
    if (!found) return;
    found->flush_posted = false;
    flush(*found);
  });
}

void PollingSessions::finish_if_done(Entry& e, bool now) {
  if (!now && !e.t.finished(Clock::now())) return;
  if (e.held) {
    auto reply = std::exchange(e.held, nullptr);
    by_connection_.erase(e.held_key);
    reply(payload(std::string(polling::kClose)));
  }
  if (e.ws) {
    by_connection_.erase(e.ws->key());
    if (!e.upgraded) e.ws->close(kCloseGoingAway, "session closed");
  }
  const std::string sid = e.sid;
  host_.ended(&e);  // logs the disconnect through the link, which needs the entry
  by_sid_.erase(sid);
}

void PollingSessions::sweep() {
  if (stopped_) return;
  const auto now = Clock::now();
  std::vector<std::string> done;
  for (auto& [sid, e] : by_sid_) {
    if (e->t.upgrade_expired(now)) drop_probe(*e, "upgrade not completed in time");
    if (e->t.finished(now)) done.push_back(sid);
  }
  for (const auto& sid : done)
    if (Entry* e = find(sid)) finish_if_done(*e);
  sweep_.expires_after(std::chrono::milliseconds(500));
  sweep_.async_wait([this](const asio::error_code& ec) {
    if (!ec) sweep();
  });
}

}  // namespace mn
