// WakePolicy: when the listener reads the log, and whether the triggers should wake it. A pure
// state machine: its inputs are timestamped facts (connected, a verified wake-up arrived, a read
// was sent, returned, was delivered, the NOTIFY lock's queue was seen), its outputs are actions
// (arm, disarm, read now, read after a delay, look at the lock's queue, ask which transactions
// belong to other databases). No sockets, no libpq: the reader (event_log_reader.h) executes the
// actions in the order given, and passes the clock in. Decisions are logged (spdlog, mostly at
// debug). The rules are in docs/wake-up.md.
//
// The states, in adaptive mode:
//  - settling: just armed (set_waiting(true)). A transaction whose trigger looked before the
//    arm committed notifies no one, but it had its xid then, so it is in the in-progress list of
//    the first read after arming, or visible to it. Reading on, with backoff, until none of those
//    is still running closes that gap. Other databases' transactions cannot log a change here
//    and are left out (ask_other_databases).
//  - armed: woken by every commit, each wake-up answered by a read; a read every poll interval
//    as a safety net.
//  - draining (a polling spell): disarmed while commits come faster than waking allows, reading
//    continuously: the next read a gap (kReadGap) after one that returned rows, or that found
//    nothing within a busy-poll interval of one that did while commits come as a stream
//    (kStreamCommits: a gap between commits, not the end of the stream); a busy-poll interval
//    after that.
// In notify mode the policy stays armed; in poll mode it never arms, and reads continuously
// while reads return rows (and for a busy-poll interval after), every poll interval otherwise.
#pragma once

#include "config.h"
#include "event.h"
#include "pg_snapshot.h"
#include "wake_estimators.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_set>
#include <vector>

namespace mn {

// What the policy needs of the settings (config.h).
struct WakePolicyConfig {
  WakeMode mode = WakeMode::adaptive;
  std::chrono::milliseconds poll_interval{1000};
  std::chrono::milliseconds busy_poll_interval{20};
  double adaptive_notify_max_rate = 2000;

  static WakePolicyConfig from(const Config& c) {
    return {c.wake_mode, c.poll_interval, c.busy_poll_interval, c.adaptive_notify_max_rate};
  }
};

struct WakeAction {
  enum Kind {
    arm,                   // SELECT set_waiting(true): the triggers wake this reader
    disarm,                // SELECT set_waiting(false): they stop
    read_now,              // read (if a read is out: once more after it)
    read_after,            // read `after` from now, replacing any read scheduled before
    look_at_queue,         // ask how many sessions queue for the NOTIFY lock: queue_seen()
    ask_other_databases,   // ask which of `xids` belong to other databases: other_databases(arm, ...)
  };
  Kind kind;
  std::chrono::milliseconds after{0};
  uint64_t arm_id = 0;
  std::vector<uint64_t> xids;
};

// The actions one fact calls for, in order (a few at most).
class WakeActions {
 public:
  void add(WakeAction a) { list_.push_back(std::move(a)); }
  void add(WakeAction::Kind k, std::chrono::milliseconds after = std::chrono::milliseconds(0)) {
    list_.push_back(WakeAction{k, after, 0, {}});
  }
  std::vector<WakeAction>::const_iterator begin() const { return list_.begin(); }
  std::vector<WakeAction>::const_iterator end() const { return list_.end(); }
  size_t size() const { return list_.size(); }
  bool empty() const { return list_.empty(); }
  const WakeAction& operator[](size_t i) const { return list_[i]; }
  // Whether an action of kind `k` is among them.
  bool has(WakeAction::Kind k) const;
  // The delay of the last read_after, if any.
  std::optional<std::chrono::milliseconds> read_after() const;

 private:
  std::vector<WakeAction> list_;
};

class WakePolicy {
 public:
  using Clock = std::chrono::steady_clock;
  using Time = Clock::time_point;

  enum class State { settling, armed, draining };

  explicit WakePolicy(WakePolicyConfig cfg) : cfg_(cfg) {}

  // Connected: LISTEN (not in poll mode) is queued, the first read comes next. Arms in notify
  // and adaptive modes; the read is the caller's.
  WakeActions connected(Time now);
  // Before stopping: never arm again.
  void standing_down() { standing_down_ = true; }

  // A verified wake-up for transaction `xid`; `already_read`: the cursor sees it.
  WakeActions woken(Time now, uint64_t xid, bool already_read);

  // A read of the log was sent.
  void read_sent(Time now) { read_sent_ = now; }
  // It returned these rows (sorted by id), in snapshot `seen`; `queue_usage` is
  // pg_notification_queue_usage().
  void read_returned(Time now, const std::vector<LogRow>& rows, const PgSnapshot& seen, double queue_usage);
  // Its rows are delivered, and no wake-up came meanwhile: what next.
  WakeActions read_delivered(Time now, bool got_rows, const PgSnapshot& seen);

  // The answer to look_at_queue: how many sessions wait for the NOTIFY lock (nullopt: the answer
  // could not be parsed); `reading`: a read is out.
  WakeActions queue_seen(Time now, std::optional<int> waiters, bool reading);
  // The schema has no function to look with: the rate limit alone decides.
  void queue_unseeable() {
    look_out_ = false;
    look_works_ = false;
  }
  // The answer to ask_other_databases: those of the arm's transactions that are other databases'.
  void other_databases(uint64_t arm_id, const std::vector<uint64_t>& xids);
  // The schema has no function to ask with: wait for every database's transactions.
  void other_databases_unknowable() { ask_works_ = false; }

  State state() const { return state_; }
  // Commits per second lately (transactions with membership changes).
  double rate(Time now) const { return commit_rate_.per_second(now); }
  // The limit now: the configured one, or lower while commits queueing on the lock set it.
  double max_notify_rate(Time now) const;
  uint64_t polling_spells() const { return polling_spells_; }
  uint64_t notify_contention() const { return notify_contention_; }

  // While woken by every commit, how often to look at the NOTIFY lock's queue, how often once a
  // look has found one (each look in between is another round of commits taken one at a time),
  // from what commit rate on (commits taking turns on a slow disk's lock come at one per flush,
  // a few a second), and how many looks in a row that find a queue of two or more stop the
  // NOTIFYs (one now and then is a chance meeting).
  static constexpr std::chrono::milliseconds kLookEvery{50};
  static constexpr std::chrono::milliseconds kConfirmEvery{10};
  static constexpr double kLookMinRate = 2;
  static constexpr int kLooks = 3;
  // Reading continuously (draining, or polling in poll mode), the gap after a read that returned
  // rows before the next: short enough that a change waits about one read, long enough that
  // each read takes a batch and the database's CPU per change does not grow with the rate.
  static constexpr std::chrono::milliseconds kReadGap{1};
  // Commits per busy-poll interval from which they are a stream: a read that finds nothing then
  // is a gap between commits (at 2,000/s a read a millisecond and a bit apart finds nothing
  // one time in fifteen), and waiting the interval would hold the next commits that long.
  static constexpr double kStreamCommits = 5;
  // Draining, once commits have fallen well below the limit (QuietStretch): how often to read.
  // A read of a few rows is a round trip of a small fraction of a millisecond.
  static constexpr std::chrono::milliseconds kQuietPollEvery{1};
  // Transactions counted at their wake-up and not yet read; past this, reads count them again.
  static constexpr size_t kMaxWokenUnread = 100000;

 private:
  void start_settling(Time now);
  void start_polling(Time now, const char* why, bool by_burst, WakeActions& out);
  void look_at_queue(Time now, WakeActions& out);
  void poll_while_armed(WakeActions& out) const;
  // Armed once settled; else schedules the next settling read.
  void settle(const PgSnapshot& seen, WakeActions& out);
  WakeActions drain(Time now, bool got_rows);
  double burst_limit(Time now) const;
  std::chrono::milliseconds read_gap() const;
  // Whether commits come as a stream and the last read that returned rows is less than a
  // busy-poll interval ago.
  bool stream_lasts(Time now) const;
  std::chrono::milliseconds quiet_poll_every() const;

  WakePolicyConfig cfg_;
  State state_ = State::settling;
  bool standing_down_ = false;

  // Settling: the in-progress list of the first read after the arm, and which arm it is.
  std::optional<PgSnapshot> armed_at_;
  uint64_t arms_ = 0;
  bool ask_works_ = true;
  std::chrono::milliseconds settle_delay_{2};

  double queue_usage_ = 1;  // pg_notification_queue_usage() at the last read
  std::optional<Time> rows_returned_at_;  // the last read that returned rows
  Time read_sent_{};
  // When the read before the last was sent: the last read's commits came after.
  std::optional<Time> counted_since_;
  CommitRate commit_rate_;
  CommitBurst commit_burst_;
  uint64_t last_woken_xid_ = 0;
  std::unordered_set<uint64_t> woken_;  // counted in commit_rate_ at their wake-up, not yet read

  // The polling spell: when it began, and the commits reads have counted since.
  Time spell_started_{};
  double spell_commits_ = 0;
  // Begun by a burst (CommitBurst), not by the measured rate, and no read has yet told a passing
  // burst from the start of a stream. Until one does, the estimate holds the burst's rate.
  bool burst_unconfirmed_ = false;
  QuietStretch quiet_stretch_;
  // A spell begun by commits queueing on the NOTIFY lock: when those already queued should have
  // gone through it. No re-arm before then.
  Time queue_drains_at_{};

  ContendedLimit contended_;
  Time woken_since_{};  // the last arm
  Time looked_{};       // the last look at the lock's queue
  bool look_out_ = false;
  int queue_seen_in_a_row_ = 0;
  bool look_works_ = true;

  uint64_t polling_spells_ = 0;
  uint64_t notify_contention_ = 0;
};

}  // namespace mn
