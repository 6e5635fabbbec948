// History: what a client gets before it goes live. Either a replay of the log rows of its user
// that its offset has not seen, or a snapshot of its user's current memberships. Both come
// with the PostgreSQL snapshot they were read in, which the hub uses to join them to the live
// stream without a gap and without applying anything twice.
//
// Runs on its own connection (the listener's connection stays free for wake-ups), connected
// on demand and again after a failure. Snapshot requests made in the same loop turn are
// answered by one query, so a thousand clients reconnecting at once cost one round trip per
// thousand, not a thousand. Replays go one query at a time, each for all the resumes waiting
// (up to a thousand), which share its read of the log (replay_batch.h). Every request is
// answered exactly once: a connection lost with queries under way answers them with an error.
// Single-threaded: calls and callbacks on the io_context's thread.
#pragma once

#include "config.h"
#include "event.h"
#include "offset.h"
#include "pg_connection.h"
#include "plain_protocol.h"

#include <asio.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace mn {

struct ReplayResult {
  std::string error;       // non-empty: the query could not be made (database unavailable)
  bool resumable = false;  // false: the offset is past retention, from another log, or a
                           // TRUNCATE lies in the gap; the client needs a snapshot instead
  std::string why_not;     // for the log line when not resumable
  PgSnapshot now;
  std::vector<LogRow> rows;  // the user's unseen rows, id order, all visible in `now`
  std::string log_id;
};

struct SnapshotResult {
  std::string error;
  PgSnapshot now;
  std::unordered_map<std::string, std::vector<Membership>> by_user;
  std::string log_id;
};

struct HistoryStats {
  uint64_t replay_queries = 0;  // reads of the log for resuming clients
  uint64_t replay_resumes = 0;  // resumes they answered
  double replay_seconds = 0;    // their time, sent to answered
};

class History {
 public:
  using ReplayHandler = std::function<void(ReplayResult)>;
  using SnapshotHandler = std::function<void(const SnapshotResult&)>;

  History(asio::io_context& io, const Config& cfg);
  ~History();
  void stop();

  // `done` runs once, on a later loop turn, with the result of a query shared with the other
  // resumes waiting then.
  void replay(const std::string& user_id, const Offset& from, ReplayHandler done);
  void snapshot(const std::string& user_id, SnapshotHandler done);
  const HistoryStats& stats() const { return stats_; }

  // Whether a user id can exist in the membership table's user column (a token's `sub` of
  // "abc" can never match a uuid column, and must not make the whole batched query fail).
  static bool fits_column_type(const std::string& type_name, const std::string& user_id);

 private:
  struct PendingSnapshot {
    std::string user_id;
    SnapshotHandler done;
  };
  struct PendingReplay {
    std::string user_id;
    Offset from;
    ReplayHandler done;
  };
  void ensure_connected();
  void on_connected();
  void fail_all(const std::string& reason);
  void flush_snapshots();
  // Runs `flush` on a later loop turn, so that every request of this turn joins its query,
  // and once connected.
  void flush_later(bool& scheduled, void (History::*flush)());
  void schedule_replays();
  void flush_replays();
  void read_replays(std::shared_ptr<std::vector<PendingReplay>> batch, uint64_t in_flight_id);
  void answer_replays(std::vector<PendingReplay>& batch, const PgResult& r);
  // What each resume of a batch gets from the replay query's result (error, not resumable, rows).
  std::vector<ReplayResult> judge_replays(const std::vector<PendingReplay>& batch, const PgResult& r);
  void answer_snapshots(std::vector<PendingSnapshot>& batch, const std::string& log_id, uint64_t in_flight_id,
                        const PgResult& r, const std::string& durable_error);
  // Answers each with `error`: its query could not be made, or its answer was lost.
  static void answer_error(std::vector<PendingReplay>& replays, const std::string& error);
  static void answer_error(std::vector<PendingSnapshot>& snapshots, const std::string& error);
  // Registers what to tell a query's waiters if the connection is lost before it answers;
  // the query's handler calls done_in_flight() first thing.
  uint64_t track_in_flight(std::function<void(const std::string& why)> on_lost);
  void done_in_flight(uint64_t id) { in_flight_.erase(id); }

  asio::io_context& io_;
  const Config& cfg_;
  std::shared_ptr<PgConnection> conn_;
  bool ready_ = false;
  std::string snapshot_sql_;
  std::string user_type_;
  std::string log_id_;
  std::vector<std::function<void()>> waiting_;  // work queued until connected
  std::vector<PendingSnapshot> snapshots_;
  bool flush_scheduled_ = false;
  std::vector<PendingReplay> replays_;  // not yet in a query
  bool replay_running_ = false;
  bool replay_flush_scheduled_ = false;
  std::map<uint64_t, std::function<void(const std::string&)>> in_flight_;
  uint64_t next_in_flight_ = 0;
  HistoryStats stats_;
};

}  // namespace mn
