// EventLogReader: the listener. Keeps one connection to the primary, LISTENs for wake-ups and
// reads membership_notifier.event_log with a cursor that cannot skip a row.
//
// Why a snapshot and not "id > last id": ids are taken before commit, so a transaction holding
// id 7 can commit after one holding id 9 has been read; "id > 9" would never return 7. The
// cursor is instead the pg_snapshot of the previous read: the next read returns exactly the
// rows that snapshot could not see (xid >= its xmax, or xid among its in-progress list), i.e.
// every transaction that committed since, whatever its ids. Rows within a batch are ordered
// by id, which orders dependent changes of one pair (a change to a row is logged after the
// transaction that made the row committed).
//
// Only the log is delivered, and only once durable. A wake-up (wake_payload.h) names a row and
// proves that the triggers sent it; it makes the reader read sooner, nothing more: a forged one
// is counted and ignored, and no payload can move the cursor. A read's rows go out once the
// WAL is flushed past them (durable_gate.h), so no client hears of a change that a crash could
// take back.
//
// Failover: each read happens on a timeline (a promoted standby starts a new one). Now and
// then the reader marks in the database how far it has delivered on its timeline
// (membership_notifier.delivered). On reconnecting to a server on another timeline, the mark
// of the old one, and a look-up of the rows delivered past it (delivery_record.h), say whether
// everything delivered survived; if not, clients are resynchronised (Batch::reset). Event ids
// carry the timeline past timeline 1, so no id names two changes.
//
// When to read, and whether the triggers should wake it, is the wake-up policy's decision
// (wake_policy.h, pure): the reader tells it what happened and carries out what it says.
// The read statement is in log_read_sql.cpp; the failover marks in failover_marks.cpp.
//
// On (re)connect: LISTEN first, then read from the cursor, then ready. Environmental failures
// (server gone, standby, migration missing, timeouts) mean: log, back off with jitter, retry.
// Single-threaded: all calls and callbacks on the io_context's thread.
#pragma once

#include "config.h"
#include "delivery_record.h"
#include "event.h"
#include "pg_connection.h"
#include "pg_snapshot.h"
#include "wake_payload.h"
#include "wake_policy.h"

#include <asio.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace mn {

struct ReaderStats {
  // Upper bounds (seconds) of the read-time histogram's buckets: a read sent to its answer.
  static constexpr std::array<double, 9> kReadBuckets{0.0005, 0.001, 0.002, 0.005, 0.01,
                                                      0.025, 0.1, 0.5, 2};
  uint64_t connects = 0;
  uint64_t disconnects = 0;
  uint64_t reads = 0;
  std::array<uint64_t, kReadBuckets.size()> reads_within{};  // cumulative, per bucket
  double read_seconds = 0;
  uint64_t rows = 0;
  uint64_t notifications = 0;  // wake-ups that verified
  uint64_t forged_wakeups = 0;  // NOTIFYs on the channel that the triggers did not send
  uint64_t durable_waits = 0;   // reads whose rows waited for a flush (or the standbys)
  uint64_t history_lost = 0;    // reconnects to a timeline that lacked delivered changes
  uint64_t polling_spells = 0;  // adaptive: times commits came fast enough to stop the NOTIFYs
  uint64_t notify_contention = 0;  // ... of which: times commits were seen queueing on the NOTIFY lock
};

class EventLogReader {
 public:
  using BatchHandler = std::function<void(const Batch&)>;
  using ReadyHandler = std::function<void()>;

  EventLogReader(asio::io_context& io, const Config& cfg, BatchHandler on_batch);
  ~EventLogReader();

  void start();
  void stop();
  // Before stop(): says this sidecar waits no more, so that the triggers stop trying to wake it
  // (a mark left set costs every membership commit a check, and with another sidecar's stale
  // row, the NOTIFY lock). Calls `done` once answered, or after `timeout`; never re-arms after.
  void stand_down(std::chrono::milliseconds timeout, std::function<void()> done);
  // Called once the first catch-up after a connect is done (every time it becomes ready).
  void on_ready(ReadyHandler h) { on_ready_ = std::move(h); }

  bool ready() const { return ready_; }
  const std::string& log_id() const { return log_id_; }
  const std::optional<PgSnapshot>& position() const { return cursor_; }
  uint32_t timeline() const { return timeline_; }
  const ReaderStats& stats() const { return stats_; }

  // The SQL that returns the rows a snapshot could not see, plus the current snapshot (in
  // the one row whose column 0 is not NULL); its parameters for that snapshot.
  static const char* read_sql();
  // What the reader's connection sets before it prepares read_sql().
  static const char* session_sql();
  static PgConnection::Params read_params(const PgSnapshot& since);

 private:
  void connect();
  void on_connected();
  void subscribe();
  void lost(const std::string& reason);
  void schedule_reconnect(const std::string& reason);
  void read();
  void on_read(PgResult r);
  void schedule_poll(std::chrono::milliseconds after);
  void on_notification(const std::string& payload);
  void deliver(Batch batch, bool got_rows, const PgSnapshot& seen);
  void mark_delivered();
  // The connection's first answer: which log, timeline, key; whether a failover lost anything.
  void take_server_state(const PgResult& r);
  // Carries out what the wake-up policy decided, in order.
  void execute(const WakeActions& actions);
  void set_waiting(bool waiting);
  void look_at_queue();
  void ask_other_databases(uint64_t arm_id, const std::vector<uint64_t>& xids);

  asio::io_context& io_;
  const Config& cfg_;
  BatchHandler on_batch_;
  ReadyHandler on_ready_;
  std::shared_ptr<PgConnection> conn_;
  asio::steady_timer reconnect_timer_;
  asio::steady_timer poll_timer_;
  std::mt19937 rng_;
  int attempt_ = 0;
  bool stopped_ = true;
  bool standing_down_ = false;
  bool ready_ = false;
  bool reading_ = false;
  bool dirty_ = false;  // woken while a read was in flight: read again after it
  std::chrono::steady_clock::time_point read_sent_{};
  std::string log_id_;
  std::string wake_key_;              // membership_notifier.wake_key, 32 bytes
  uint32_t timeline_ = 0;             // of the server connected to; 0 before the first connect
  DeliveryRecord delivered_;          // on timeline_, lately
  std::chrono::steady_clock::time_point marked_{};  // the last mark_delivered()
  std::shared_ptr<PgConnection> mark_conn_;           // its connection, made on first use
  bool marking_ = false;
  std::chrono::steady_clock::time_point forged_logged_{};
  std::optional<PgSnapshot> cursor_;
  bool pending_reset_ = false;
  WakePolicy policy_;
  ReaderStats stats_;
};

}  // namespace mn
