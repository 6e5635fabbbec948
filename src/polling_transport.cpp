#include "polling_transport.h"

#include "polling_codec.h"

namespace mn::polling {

bool PollingTransport::push(std::string packet) {
  if (state_ == State::closed || state_ == State::upgraded) return false;
  queued_bytes_ += packet.size() + 1;  // and its separator
  queue_.push_back(std::move(packet));
  return true;
}

PollingTransport::GetOutcome PollingTransport::on_get(Clock::time_point now) {
  GetOutcome out;
  switch (state_) {
    case State::upgraded:
      out.session_unknown = false;
      return out;
    case State::closed:
      if (last_.empty() || now - closed_at_ > limits_.close_linger) return out;
      out.action = GetAction::answer;
      out.body = std::move(last_.front());
      last_.pop_front();
      return out;
    case State::polling:
    case State::upgrading:
      break;
  }
  if (get_held_) {
    close(CloseBy::server, now);
    out.action = GetAction::overlap;
    out.session_unknown = false;
    return out;
  }
  get_held_ = true;
  if (ready()) {
    out.action = GetAction::answer;
    out.body = take_response();
  } else {
    out.action = GetAction::hold;
  }
  return out;
}

bool PollingTransport::ready() const {
  if (!get_held_) return false;
  switch (state_) {
    case State::polling: return !queue_.empty();
    case State::upgrading: return probed_ || !queue_.empty();
    case State::upgraded: return true;  // a noop, so it returns
    case State::closed: return !last_.empty();
  }
  return false;
}

std::string PollingTransport::take_response() {
  get_held_ = false;
  if (state_ == State::closed) {
    if (last_.empty()) return std::string(kClose);
    std::string body = std::move(last_.front());
    last_.pop_front();
    return body;
  }
  if (queue_.empty() || state_ == State::upgraded) return std::string(kNoop);
  std::string body;
  body.reserve(queued_bytes_);
  for (auto& p : queue_) {
    if (!body.empty()) body += kSeparator;
    body += p;
  }
  queue_.clear();
  queued_bytes_ = 0;
  return body;
}

void PollingTransport::get_lost(Clock::time_point now) {
  if (!get_held_) return;
  get_held_ = false;
  if (state_ == State::polling || state_ == State::upgrading) close(CloseBy::server, now, true);
}

PollingTransport::PostOutcome PollingTransport::on_post(std::string_view body, Clock::time_point now) {
  PostOutcome out;
  if (state_ == State::closed || state_ == State::upgraded) {
    out.session_unknown = state_ == State::closed;
    out.error = state_ == State::closed ? "session closed" : "session moved to its WebSocket";
    return out;
  }
  auto d = decode_payload(body);
  if (!d.ok) {
    out.error = d.error;
    close(CloseBy::server, now);
    return out;
  }
  out.ok = true;
  out.binary = d.binary;
  for (auto p : d.packets) {
    if (p == kClose) {
      out.client_closed = true;
      break;
    }
    out.packets.emplace_back(p);
  }
  return out;
}

void PollingTransport::probe_opened(Clock::time_point now) {
  if (state_ != State::polling) return;
  state_ = State::upgrading;
  probed_ = false;
  probe_at_ = now;
}

PollingTransport::ProbeAction PollingTransport::on_probe_packet(std::string_view packet) {
  if (state_ != State::upgrading) return ProbeAction::refuse;
  if (!probed_ && packet == kProbePing) {
    probed_ = true;
    return ProbeAction::reply_probe;
  }
  if (probed_ && packet == kUpgrade) {
    state_ = State::upgraded;
    return ProbeAction::upgraded;
  }
  return ProbeAction::refuse;
}

std::vector<std::string> PollingTransport::take_queue() {
  std::vector<std::string> out(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
  queue_.clear();
  queued_bytes_ = 0;
  return out;
}

void PollingTransport::probe_lost() {
  if (state_ != State::upgrading) return;
  state_ = State::polling;
  probed_ = false;
}

bool PollingTransport::upgrade_expired(Clock::time_point now) const {
  return state_ == State::upgrading && now - probe_at_ > limits_.upgrade_timeout;
}

void PollingTransport::close(CloseBy by, Clock::time_point now, bool drop_queue) {
  if (state_ == State::closed || state_ == State::upgraded) return;
  state_ = State::closed;
  closed_at_ = now;
  probed_ = false;
  last_.clear();
  if (by == CloseBy::client) {
    if (get_held_) last_.emplace_back(kNoop);
  } else {
    // Worth keeping for a GET that is not there yet: a packet that tells the client something
    // (a refusal, an event), not pings alone. Otherwise the session ends now (but for a held
    // GET's close packet), and a later GET is refused as the reference server refuses it.
    std::vector<std::string> told;
    if (!drop_queue)
      for (auto& p : queue_)
        if (p != "2") told.push_back(std::move(p));
    if (!told.empty()) last_.push_back(encode_payload(told));
    if (!told.empty() || get_held_) last_.emplace_back(kClose);
  }
  queue_.clear();
  queued_bytes_ = 0;
}

bool PollingTransport::finished(Clock::time_point now) const {
  return state_ == State::closed && !get_held_ && (last_.empty() || now - closed_at_ > limits_.close_linger);
}

}  // namespace mn::polling
