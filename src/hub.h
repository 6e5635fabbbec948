// Hub: turns log batches into frames for the sessions in each user's room, and brings every
// new session up to the live stream without a gap.
//
// Joining the live stream: an authenticated session joins its room at once, then asks History
// for a replay (it sent an offset we can honour) or a snapshot (it did not). While that query
// is out, live events for it are held. The query's PostgreSQL snapshot C says what it covered:
// held and later live events whose transaction C already saw are dropped (they are in the
// replay or the snapshot), the rest go out after it, in order. A TRUNCATE (or a log that
// changed under us) sends every session through the snapshot path again.
//
// Offsets: an event read between reader snapshots F and T, with log id i, goes out with the
// position (F, T, i) (see offset.h). A replayed event gets (client's base, C, i); a snapshot
// gets (C, C, 0). Until a read's snapshot covers C, the session's events go out with (F or C,
// T or C, i) instead: a read that began before C can bring rows C had, which the session does
// not get again, and (F, T, i) would say that it has not had those whose ids come after i. A
// resume from it would send them again, after a snapshot that had them (the client has no id
// to drop them by).
//
// Single-threaded: everything on the io_context's thread.
#pragma once

#include "event.h"
#include "history.h"
#include "rooms.h"
#include "session.h"

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace mn {

struct HubStats {
  uint64_t events_mapped = 0;
  uint64_t events_unmappable = 0;
  uint64_t frames_sent = 0;
  uint64_t closed_backpressure = 0;
  uint64_t resumes = 0;
  uint64_t snapshots = 0;
  uint64_t resyncs = 0;
  uint64_t positions_sent = 0;
};

class Hub {
 public:
  // How a session's first frames look in its protocol (plain: a "session" frame; Socket.IO:
  // the CONNECT reply). Set by the server that owns the protocols.
  using StartFrame = std::function<std::string(Session&, bool recovered, const std::string& position)>;

  Hub(History& history, const Config& cfg);
  // The server that owns the sockets; set once, before any session opens.
  void attach(Transport& t) { transport_ = &t; }

  void set_start_frame(StartFrame f) { start_frame_ = std::move(f); }

  // An authenticated session: join its room and catch it up (replay or snapshot).
  void open(Session& s);
  // The session is gone; forget it. Safe for sessions that never opened.
  void close(Session& s);
  void on_batch(const Batch& batch);
  // A live session that has been given no position since the log was last read gets a
  // position frame: the reader's, which it has reached. Without one, a client's offset is as
  // old as its user's last change (hours, for a quiet user), and its resume reads the whole
  // log since then. The server calls this with each keepalive ping.
  void refresh_position(Session& s);

  const Rooms& rooms() const { return rooms_; }
  const HubStats& stats() const { return stats_; }
  const std::string& log_id() const { return log_id_; }

 private:
  void start_snapshot(Session& s);
  void finish_catch_up(Session& s, const PgSnapshot& covered);
  void resync_all(const std::string& why);
  void deliver_rows(const Batch& batch);
  // After a read: sessions whose catch-up `read_to` covers need no barrier any more.
  void lift_barriers(const PgSnapshot& read_to);
  // `e.event` and `e.span` are set when `s` is catching up or has a barrier.
  bool deliver(Session& s, const HeldEvent& e, uint64_t upto_xmax);
  // Sends `e` to a session whose catch-up was read in `covered`: as framed for everyone where
  // `e`'s read began past `covered`, else framed again with the offset (from or covered, to or
  // covered, its id), since the session has what the reader had read up to `from` and what its
  // catch-up had.
  bool send_after_catch_up(Session& s, const HeldEvent& e, const PgSnapshot& covered);
  bool send(Session& s, const std::string& frame);
  std::string event_frame(Protocol p, const Event& e, const std::string& offset) const;
  // An offset at `at` in this log, on the current timeline.
  std::string offset_at(const StreamPosition& at) const;
  std::string snapshot_frame(Protocol p, const std::vector<Membership>& channels,
                             const std::string& offset) const;
  Session* find(uint64_t serial, uint64_t generation);
  static uint64_t xmax_of(const std::optional<PgSnapshot>& p) { return p ? p->xmax : 0; }

  Transport* transport_ = nullptr;
  History& history_;
  const Config& cfg_;
  StartFrame start_frame_;
  Rooms rooms_;
  std::unordered_map<uint64_t, Session*> open_;
  std::unordered_set<uint64_t> barred_;  // sessions with a barrier (serials)
  std::string log_id_;
  uint32_t timeline_ = 1;  // the reader's server's: in offsets, and in event ids past timeline 1
  HubStats stats_;
  std::optional<PgSnapshot> read_to_;  // the last read's snapshot
  std::string position_frames_[2];     // for read_to_, per protocol; made on first use
};

}  // namespace mn
