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
// On (re)connect: LISTEN first, then read from the cursor, then ready. Environmental failures
// (server gone, standby, migration missing, timeouts) mean: log, back off with jitter, retry.
// Single-threaded: all calls and callbacks on the io_context's thread.
#pragma once

#include "commit_rate.h"
#include "config.h"
#include "delivery_record.h"
#include "event.h"
#include "wake_payload.h"
#include "pg_connection.h"
#include "pg_snapshot.h"

#include <asio.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

namespace mn {

// Rows that committed between two reads, in id order. `reset` means the cursor could not
// continue (first read against a different log: restored or another database): clients must
// resynchronise from the current state.
struct Batch {
  PgSnapshot from;
  PgSnapshot to;
  // A read of the log (not a wake-up's payload): every row `to` sees has now been handed over,
  // so `to` is a position any live session has reached. Reads that found nothing come too.
  bool read = false;
  std::vector<LogRow> rows;
  std::string log_id;
  uint32_t timeline = 1;  // of the server read: event ids carry it past timeline 1
  bool reset = false;
};

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
  // Parses one result row of read_sql() or of a replay (columns 1..7); nullopt when malformed.
  static std::optional<LogRow> parse_row(const PgResult& r, int row);

 private:
  void connect();
  void on_connected();
  void subscribe();
  void lost(const std::string& reason);
  void schedule_reconnect(const std::string& reason);
  void read();
  void on_read(PgResult r);
  void schedule_poll(std::chrono::milliseconds after);
  void wake();
  void on_notification(const std::string& payload);
  void deliver(Batch batch, bool got_rows, const PgSnapshot& seen);
  void mark_delivered();
  // The connection's first answer: which log, timeline, key; whether a failover lost anything.
  void take_server_state(const PgResult& r);
  bool settled(const PgSnapshot& seen);
  // Drops from the arm's list (armed_at_) the transactions of other databases.
  void leave_out_other_databases();
  // Just armed (waiting): settle from the next read on.
  void start_settling();
  // Armed once settled; else schedules the next settling read. True when armed.
  bool settle(const PgSnapshot& seen);
  void poll_while_armed();
  std::chrono::milliseconds quiet_poll_every() const;
  void adapt(bool got_rows, const PgSnapshot& seen);
  void set_waiting(bool waiting);
  // Stops the wake-ups; `why` is logged (debug), `by_burst`: see burst_unconfirmed_.
  void start_polling(const char* why, bool by_burst = false);
  double max_notify_rate() const;
  double burst_limit() const;  // where a burst stops the NOTIFYs (ContendedLimit::burst_limit())
  void check_notify_contention();

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
  // When the last read was sent (about when its snapshot was taken): this read's commits came after.
  std::optional<std::chrono::steady_clock::time_point> counted_since_;
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
  enum class Wake { armed, draining, settling } wake_ = Wake::settling;
  std::optional<PgSnapshot> armed_at_;
  uint64_t arms_ = 0;  // counts arms, so that an answer about an earlier one's list is dropped
  bool other_databases_check_works_ = true;  // false on a schema without the function
  std::chrono::milliseconds settle_delay_{2};
  ReaderStats stats_;

  double queue_usage_ = 1;          // pg_notification_queue_usage() at the last read
  CommitRate commit_rate_;          // transactions with membership changes per second, lately
  CommitBurst commit_burst_;        // ... over the last few wake-ups' transactions
  uint64_t last_woken_xid_ = 0;
  std::unordered_set<uint64_t> woken_;  // counted in commit_rate_ at their wake-up, not yet read
  // The polling spell (draining): when it began, and the commits reads have counted since.
  std::chrono::steady_clock::time_point spell_started_{};
  double spell_commits_ = 0;
  // It was begun by a burst (CommitBurst), not by the measured rate, and no read has yet told a
  // passing burst (a writer catching up) from the start of a stream. Until one does, the estimate
  // holds the burst's rate, which takes hundreds of milliseconds to fade. Read only while
  // draining, and set by start_polling(), the only way in.
  bool burst_unconfirmed_ = false;
  // Draining: commits have come under a quarter of the limit since some read (QuietStretch);
  // adapt() then reads again after quiet_poll_every(), not a busy-poll interval on. Reset by
  // start_polling().
  QuietStretch quiet_stretch_;
  // A spell begun by commits queueing on the NOTIFY lock: when those already queued should have
  // gone through it (set by check_notify_contention(), reset by start_polling()). No re-arm
  // before then.
  std::chrono::steady_clock::time_point queue_drains_at_{};

  // Adaptive mode: the limit that commits queueing on the NOTIFY lock set (ContendedLimit).
  ContendedLimit contended_;
  std::chrono::steady_clock::time_point woken_since_{};  // the last arm
  std::chrono::steady_clock::time_point contention_checked_{};
  bool contention_check_out_ = false;
  int contention_seen_ = 0;  // checks in a row that found a queue
  bool contention_check_works_ = true;                 // false on a schema without the function
};

}  // namespace mn
