#include "hub.h"

#include "plain_protocol.h"
#include "socketio_codec.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace mn {
namespace {

// Close codes a client can act on. 1013 (try again later): reconnect with the last offset.
constexpr uint16_t kTryAgainLater = 1013;
constexpr size_t kHoldBudgetFactor = 16;

}  // namespace

Hub::Hub(History& history, const Config& cfg) : history_(history), cfg_(cfg) {}

Session* Hub::find(uint64_t serial, uint64_t generation) {
  auto it = open_.find(serial);
  if (it == open_.end() || it->second->catch_up_generation != generation) return nullptr;
  return it->second;
}

std::string Hub::event_frame(Protocol p, const Event& e, const std::string& offset) const {
  // A log id names one change only within a timeline: after a failover that lost changes
  // already delivered, the new primary hands their ids out again. So past timeline 1 the id
  // a client deduplicates by says the timeline too.
  return p == Protocol::plain
             ? plain::event_frame(e.name, e.data_json,
                                  timeline_ <= 1 ? std::to_string(e.id)
                                                 : std::to_string(timeline_) + "." + std::to_string(e.id),
                                  offset)
             : socketio::event_frame(e.name, e.data_json, offset);
}

std::string Hub::offset_at(const StreamPosition& at) const {
  Offset o;
  o.log_id = log_id_;
  o.pos = at;
  o.timeline = timeline_;
  return encode_offset(o);
}

std::string Hub::snapshot_frame(Protocol p, const std::vector<Membership>& channels,
                                const std::string& offset) const {
  return p == Protocol::plain ? plain::snapshot_frame(channels, offset)
                              : socketio::event_frame("channel.snapshot", plain::snapshot_data(channels), offset);
}

bool Hub::send(Session& s, const std::string& frame) {
  switch (transport_->send(s, frame)) {
    case SendResult::sent:
      ++stats_.frames_sent;
      ++s.events_sent;
      return true;
    case SendResult::closed_backpressure:
      ++stats_.closed_backpressure;
      return false;
    case SendResult::dropped:
      return false;
  }
  return false;
}

void Hub::open(Session& s) {
  s.phase = Phase::catching_up;
  rooms_.join(s);
  open_[s.serial] = &s;
  if (!s.resume_from) return start_snapshot(s);

  uint64_t serial = s.serial, gen = ++s.catch_up_generation;
  Offset from = *s.resume_from;
  history_.replay(s.user_id, from, [this, serial, gen, from](ReplayResult res) {
    Session* sp = find(serial, gen);
    if (!sp) return;
    Session& ss = *sp;
    transport_->begin_turn();
    if (!res.error.empty()) {
      return transport_->close(ss, kTryAgainLater, "database unavailable; reconnect with your offset");
    }
    if (!res.resumable) {
      spdlog::info("session {} user={}: cannot resume ({}); sending a snapshot", ss.serial, ss.user_id, res.why_not);
      return start_snapshot(ss);
    }
    ++stats_.resumes;
    if (start_frame_ && !send(ss, start_frame_(ss, true, offset_at(from.pos)))) return;
    for (const auto& row : res.rows) {
      auto mapped = map_row(row);
      if (!mapped.event) {
        ++stats_.events_unmappable;
        spdlog::error("log row {} skipped in replay: {}", row.id, mapped.error);
        continue;
      }
      if (!send(ss, event_frame(ss.protocol, *mapped.event, offset_at({from.pos.base, res.now, row.id})))) return;
      ss.position_xmax = res.now.xmax;
    }
    ss.position_xmax = std::max(ss.position_xmax, from.pos.upto.xmax);
    finish_catch_up(ss, res.now);
  });
}

void Hub::start_snapshot(Session& s) {
  s.phase = Phase::catching_up;
  uint64_t serial = s.serial, gen = ++s.catch_up_generation;
  history_.snapshot(s.user_id, [this, serial, gen](const SnapshotResult& res) {
    Session* sp = find(serial, gen);
    if (!sp) return;
    Session& ss = *sp;
    transport_->begin_turn();
    if (!res.error.empty()) {
      return transport_->close(ss, kTryAgainLater, "database unavailable; reconnect to get a snapshot");
    }
    ++stats_.snapshots;
    std::string position = offset_at({res.now, res.now, 0});
    // The start frame goes out once per connection; a resync after TRUNCATE is just a snapshot.
    if (start_frame_ && ss.events_sent == 0 && !send(ss, start_frame_(ss, false, position))) return;
    static const std::vector<Membership> none;
    auto it = res.by_user.find(ss.user_id);
    if (!send(ss, snapshot_frame(ss.protocol, it == res.by_user.end() ? none : it->second, position))) return;
    ss.position_xmax = res.now.xmax;
    finish_catch_up(ss, res.now);
  });
}

void Hub::finish_catch_up(Session& s, const PgSnapshot& covered) {
  s.barrier = covered;
  barred_.insert(s.serial);
  s.phase = Phase::live;
  auto held = std::move(s.held);
  s.held.clear();
  s.held_bytes = 0;
  for (const auto& h : held) {
    if (covered.sees(h.out->xid)) continue;  // already in the replay or the snapshot
    if (!send_after_catch_up(s, h, covered)) return;
  }
}

bool Hub::send_after_catch_up(Session& s, const HeldEvent& e, const PgSnapshot& covered) {
  if (e.span->from.covers(covered)) return send(s, e.out->frame);
  // `covered` goes into both snapshots: an offset's `upto` is never older than its base (a
  // wake-up's `to` can be, when the catch-up saw its transaction still running).
  const StreamPosition at{PgSnapshot::either(e.span->from, covered), PgSnapshot::either(e.span->to, covered),
                          e.event->id};
  return send(s, event_frame(s.protocol, *e.event, offset_at(at)));
}

bool Hub::deliver(Session& s, const HeldEvent& e, uint64_t upto_xmax) {
  if (s.phase == Phase::catching_up) {
    // Held for one query's round trip, and mostly dropped after it (the catch-up covers
    // them); the bound is for a user who gets an enormous transaction in that moment.
    s.held_bytes += e.out->frame.size();
    if (s.held_bytes > kHoldBudgetFactor * cfg_.max_buffered_bytes) {
      transport_->close(s, kTryAgainLater, "too many events while catching up; reconnect with your offset");
      return false;
    }
    s.held.push_back(e);
    return true;
  }
  if (s.phase != Phase::live) return false;
  if (s.barrier && s.barrier->sees(e.out->xid)) return true;
  s.position_xmax = std::max(s.position_xmax, upto_xmax);
  return s.barrier ? send_after_catch_up(s, e, *s.barrier) : send(s, e.out->frame);
}

void Hub::refresh_position(Session& s) {
  if (s.phase != Phase::live || !read_to_ || read_to_->xmax <= s.position_xmax) return;
  // Safe for any live session: its catch-up and every read since have handed it each row of
  // its user that the read's snapshot sees (a catch-up newer than the read makes
  // position_xmax newer, and nothing is sent).
  auto& frame = position_frames_[s.protocol == Protocol::plain ? 0 : 1];
  if (frame.empty()) {
    std::string offset = offset_at({*read_to_, *read_to_, 0});
    frame = s.protocol == Protocol::plain ? plain::position_frame(offset) : socketio::position_frame(offset);
  }
  s.position_xmax = read_to_->xmax;
  if (send(s, frame)) ++stats_.positions_sent;
}

void Hub::close(Session& s) {
  if (open_.erase(s.serial) == 0) return;
  barred_.erase(s.serial);
  rooms_.leave(s);
  s.held.clear();
}

void Hub::resync_all(const std::string& why) {
  ++stats_.resyncs;
  spdlog::warn("{}: sending every connected client a fresh snapshot", why);
  std::vector<Session*> all;
  rooms_.for_each_session([&all](Session& s) { all.push_back(&s); });
  for (Session* s : all) {
    s->held.clear();
    s->held_bytes = 0;
    start_snapshot(*s);
  }
}

void Hub::on_batch(const Batch& batch) {
  if (!batch.log_id.empty()) log_id_ = batch.log_id;
  timeline_ = batch.timeline;
  if (!batch.rows.empty() || batch.reset) deliver_rows(batch);
  if (batch.read) {
    read_to_ = batch.to;
    position_frames_[0].clear();
    position_frames_[1].clear();
    lift_barriers(batch.to);
  }
}

void Hub::lift_barriers(const PgSnapshot& read_to) {
  // Every row from here on is one that `read_to` does not see: none that a catch-up it covers
  // had. (Only a read's snapshot says so: a wake-up's counts its transaction as read before
  // all of its rows have come.)
  for (auto it = barred_.begin(); it != barred_.end();) {
    auto open = open_.find(*it);
    Session* s = open == open_.end() ? nullptr : open->second;
    if (s && s->barrier && !read_to.covers(*s->barrier)) {
      ++it;
      continue;
    }
    if (s) s->barrier.reset();
    it = barred_.erase(it);
  }
}

void Hub::deliver_rows(const Batch& batch) {
  transport_->begin_turn();
  if (batch.reset) resync_all("the event log changed (restored, another database, or a failover lost changes)");
  for (const auto& row : batch.rows) {
    // The user's sockets here, looked up once: a row no socket here receives is not encoded.
    const std::vector<Session*>* room = row.user_id ? &rooms_.of(*row.user_id) : nullptr;
    auto mapped = map_row(row, row.op == "t" || (room && !room->empty()));
    if (!mapped.event) {
      ++stats_.events_unmappable;
      spdlog::error("log row {} (xid {}) skipped: {}", row.id, row.xid, mapped.error);
      continue;
    }
    const Event& ev = *mapped.event;
    ++stats_.events_mapped;
    if (ev.kind == EventKind::truncated) {
      resync_all("the membership table was truncated");
      continue;
    }
    if (!room || room->empty()) continue;
    std::string offset = offset_at({batch.from, batch.to, ev.id});
    std::vector<Session*> targets(room->begin(), room->end());  // a send may close a session
    std::shared_ptr<const OutgoingEvent> framed[2];
    HeldEvent held;
    for (Session* s : targets) {
      auto& f = framed[s->protocol == Protocol::plain ? 0 : 1];
      if (!f) f = std::make_shared<OutgoingEvent>(OutgoingEvent{ev.xid, event_frame(s->protocol, ev, offset)});
      held.out = f;
      // A session that is catching up, or whose catch-up the reader had not read past, may need
      // this event framed again: for it, the batch's rows that the catch-up had are dropped, and
      // its offset must say it has them (send_after_catch_up()).
      if ((s->phase == Phase::catching_up || s->barrier) && !held.event) {
        held.event = std::make_shared<const Event>(ev);
        held.span = std::make_shared<const HeldEvent::Span>(HeldEvent::Span{batch.from, batch.to});
      }
      deliver(*s, held, batch.to.xmax);
    }
  }
}

}  // namespace mn
