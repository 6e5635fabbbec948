// The wake-up policy (wake_policy.h) against a simulated database and a fake clock: commits, the
// triggers' NOTIFYs while armed, reads that return what committed since the last one, and the
// NOTIFY lock's queue. Each scenario the policy's rules exist for (docs/wake-up.md), in
// simulated seconds that take microseconds.
#include "wake_policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <set>

using namespace std::chrono_literals;
using mn::LogRow;
using mn::PgSnapshot;
using mn::WakeAction;
using mn::WakeActions;
using mn::WakeMode;
using mn::WakePolicy;
using mn::WakePolicyConfig;
using Time = WakePolicy::Time;

namespace {

// The reader and the database, simulated: reads take no time, a look at the lock's queue and a
// question about other databases are answered at once.
class Sim {
 public:
  explicit Sim(WakePolicyConfig cfg) : policy(cfg) {}

  WakePolicy policy;
  Time now = Time{} + 1h;
  bool armed = false;         // the triggers NOTIFY
  int queue = 0;              // sessions a look at the NOTIFY lock finds waiting
  std::set<uint64_t> open;    // transactions in progress (in this database unless in `elsewhere`)
  std::set<uint64_t> elsewhere;
  bool schema_without_other_databases_check = false;
  std::optional<Time> read_at;  // the scheduled read
  // What happened.
  int reads = 0, rows_read = 0, wakeups = 0, arms = 0, disarms = 0, looks = 0, asks = 0;
  std::vector<Time> read_times;
  std::vector<Time> disarmed_at;
  std::vector<std::chrono::milliseconds> delays;  // every read_after, in order
  std::vector<std::pair<Time, double>> waits;     // each row read: when, and how long it waited (ms)

  void connect() {
    run(policy.connected(now));
    read();
  }

  // One transaction with one row commits now; woken for if armed.
  void commit() {
    const uint64_t xid = next_xid_++;
    unread_.push_back(row(xid));
    committed_at_.push_back(now);
    if (!armed) return;
    ++wakeups;
    run(policy.woken(now, xid, last_read_.sees(xid)));
  }

  // Begins a transaction that logs a row and stays open (in this database) until finish().
  uint64_t begin() {
    const uint64_t xid = next_xid_++;
    open.insert(xid);
    return xid;
  }
  void finish(uint64_t xid) {
    open.erase(xid);
    if (!elsewhere.count(xid)) unread_.push_back(row(xid));
    if (armed && !elsewhere.count(xid)) {
      ++wakeups;
      run(policy.woken(now, xid, last_read_.sees(xid)));
    }
  }

  // Lets time pass to `t`, making the reads scheduled meanwhile.
  void until(Time t) {
    while (read_at && *read_at <= t) {
      now = std::max(now, *read_at);
      read_at.reset();
      read();
    }
    now = std::max(now, t);
  }
  void wait(std::chrono::microseconds d) { until(now + d); }

  // `n` commits `every` apart, reads happening in between as scheduled.
  void stream(int n, std::chrono::microseconds every) {
    for (int i = 0; i < n; ++i) {
      wait(every);
      commit();
    }
  }

  // The database's snapshot now.
  PgSnapshot cursor() const {
    PgSnapshot s;
    s.xmax = next_xid_;
    s.xmin = open.empty() ? next_xid_ : *open.begin();
    s.xip.assign(open.begin(), open.end());
    return s;
  }

  void read() {
    ++reads;
    read_times.push_back(now);
    policy.read_sent(now);
    std::vector<LogRow> rows;
    rows.swap(unread_);
    for (Time t : committed_at_) waits.emplace_back(now, std::chrono::duration<double, std::milli>(now - t).count());
    committed_at_.clear();
    rows_read += static_cast<int>(rows.size());
    const PgSnapshot seen = cursor();
    last_read_ = seen;
    policy.read_returned(now, rows, seen, 0);
    run(policy.read_delivered(now, !rows.empty(), seen));
  }

  void run(const WakeActions& actions) {
    for (const auto& a : actions) {
      switch (a.kind) {
        case WakeAction::arm:
          armed = true;
          ++arms;
          break;
        case WakeAction::disarm:
          armed = false;
          ++disarms;
          disarmed_at.push_back(now);
          break;
        case WakeAction::read_now:
          read_at = now;
          break;
        case WakeAction::read_after:
          read_at = now + a.after;
          delays.push_back(a.after);
          break;
        case WakeAction::look_at_queue:
          ++looks;
          ++looks_out;
          break;
        case WakeAction::ask_other_databases: {
          ++asks;
          if (schema_without_other_databases_check) {
            policy.other_databases_unknowable();
            break;
          }
          std::vector<uint64_t> others;
          for (uint64_t x : a.xids)
            if (elsewhere.count(x)) others.push_back(x);
          policy.other_databases(a.arm_id, others);
          break;
        }
      }
    }
    // Answers come after the actions that asked, as on the connection.
    while (looks_out > 0) {
      --looks_out;
      run(policy.queue_seen(now, queue, false));
    }
    // A read_now is made at once (the simulated read takes no time).
    if (read_at && *read_at <= now) {
      read_at.reset();
      read();
    }
  }

  // The longest a row read in [from, to) waited, in ms.
  double longest_wait(Time from, Time to) const {
    double most = 0;
    for (const auto& [at, ms] : waits)
      if (at >= from && at < to) most = std::max(most, ms);
    return most;
  }

  // Reads in [from, to).
  int reads_between(Time from, Time to) const {
    return static_cast<int>(std::count_if(read_times.begin(), read_times.end(),
                                          [&](Time t) { return t >= from && t < to; }));
  }

 private:
  static LogRow row(uint64_t xid) {
    static int64_t id = 0;
    LogRow r;
    r.id = ++id;
    r.xid = xid;
    r.op = "j";
    return r;
  }

  int looks_out = 0;
  uint64_t next_xid_ = 1000;
  std::vector<LogRow> unread_;
  std::vector<Time> committed_at_;  // of the rows commit() added to unread_
  PgSnapshot last_read_;
};

WakePolicyConfig adaptive(double limit = 2000, std::chrono::milliseconds busy = 20ms) {
  return {WakeMode::adaptive, 1000ms, busy, limit};
}

// Connected, settled and armed, then idle for a second.
Sim idle(WakePolicyConfig cfg) {
  Sim s(cfg);
  s.connect();
  s.wait(1s);
  return s;
}

}  // namespace

TEST(WakePolicy, ConnectedItArmsReadsAndWithNothingOpenIsArmedAtTheFirstRead) {
  Sim s(adaptive());
  s.connect();
  EXPECT_TRUE(s.armed);
  EXPECT_EQ(s.reads, 1);
  EXPECT_EQ(s.policy.state(), WakePolicy::State::armed);
  ASSERT_FALSE(s.delays.empty());
  EXPECT_EQ(s.delays.back(), 1000ms) << "armed: the next read a poll interval on";
}

TEST(WakePolicy, AStreamUnderTheLimitIsWokenForCommitByCommit) {
  Sim s = idle(adaptive());
  s.stream(2000, 1ms);  // 1,000/s for two seconds, half the limit
  EXPECT_EQ(s.disarms, 0);
  EXPECT_EQ(s.wakeups, 2000);
  EXPECT_EQ(s.rows_read, 2000);
  EXPECT_EQ(s.policy.state(), WakePolicy::State::armed);
}

TEST(WakePolicy, AStreamOverTheLimitStopsTheWakeUpsAndIsReadContinuously) {
  Sim s = idle(adaptive());
  const Time start = s.now;
  s.stream(3000, 333us);  // 3,000/s for a second
  EXPECT_FALSE(s.armed);
  EXPECT_EQ(s.policy.polling_spells(), 1u);
  EXPECT_LT(s.wakeups, 100) << "woken only until the burst rule saw the stream";
  // Once the spell is under way, each read that returns rows is followed by the next a read gap
  // on: a read a millisecond, and no change waits longer than that (a read here takes no time).
  EXPECT_NEAR(s.reads_between(start + 500ms, start + 1s), 500, 2);
  EXPECT_LE(s.longest_wait(start + 100ms, start + 1s), 1.0);
  // After it, the estimate fades under half the limit and the reader arms again.
  s.wait(1s);
  EXPECT_TRUE(s.armed);
  EXPECT_EQ(s.rows_read, 3000);
}

TEST(WakePolicy, DrainingAnEmptyReadInAStreamIsAGapAndOnlyAStallLongerThanTheBusyPollIntervalWaitsIt) {
  Sim s = idle(adaptive());
  s.stream(600, 333us);  // 3,000/s: draining, reading continuously
  ASSERT_EQ(s.policy.state(), WakePolicy::State::draining);
  EXPECT_EQ(s.delays.back(), WakePolicy::kReadGap);
  // A gap of a few milliseconds: empty reads, each followed by the next after the read gap.
  Time from = s.now;
  s.wait(5ms);
  EXPECT_EQ(s.delays.back(), WakePolicy::kReadGap);
  EXPECT_GE(s.reads_between(from, s.now), 4);
  // A stall past the busy-poll interval since the last rows: the busy-poll interval, and the
  // reader stays disarmed (a pause is no reason to be woken by every commit).
  s.wait(20ms);
  EXPECT_EQ(s.delays.back(), 20ms);
  EXPECT_FALSE(s.armed);
  // The stream resumes: the next read finds rows, and reads are continuous again.
  s.wait(15ms);
  const Time back = s.now;
  s.stream(300, 333us);
  EXPECT_EQ(s.delays.back(), WakePolicy::kReadGap);
  EXPECT_LE(s.longest_wait(back + 25ms, s.now), 1.0);
  EXPECT_EQ(s.policy.polling_spells(), 1u);
}

TEST(WakePolicy, DrainingAStreamWithGapsBetweenCommitsWaitsNoReadLongerThanTheReadGapForIt) {
  // 2,000/s in pairs 1 ms apart (commits bunched, as many writers make them): a read a
  // millisecond after one that found rows can find nothing.
  Sim s = idle(adaptive(1000));
  for (int i = 0; i < 1000; ++i) {
    s.commit();
    s.commit();
    s.wait(i % 7 == 6 ? 3ms : 1ms);
  }
  ASSERT_EQ(s.policy.state(), WakePolicy::State::draining);
  const Time from = s.now - 500ms;
  EXPECT_LE(s.longest_wait(from, s.now), 3.0) << "no change waits a busy-poll interval";
}

TEST(WakePolicy, TheReadGapIsNeverLongerThanTheBusyPollInterval) {
  WakePolicy p(adaptive(50, 1ms));
  Time t = Time{} + 1h;
  p.connected(t);
  PgSnapshot seen;
  seen.xmin = seen.xmax = 10;
  std::vector<LogRow> rows(1);
  for (int i = 0; i < 200; ++i) {  // 200 commits 100 us apart: far over a limit of 50/s
    t += 100us;
    rows[0].xid = seen.xmax;
    p.read_sent(t);
    p.read_returned(t, rows, seen, 0);
    seen.xmin = seen.xmax = seen.xmax + 1;
    p.read_delivered(t, true, seen);
  }
  ASSERT_EQ(p.state(), WakePolicy::State::draining);
  p.read_sent(t);
  p.read_returned(t, rows, seen, 0);
  EXPECT_EQ(p.read_delivered(t, true, seen).read_after(), 1ms);
}

TEST(WakePolicy, ABurstFromIdleStopsTheWakeUpsWithinTwentyCommitsAndOnlyUntilAReadFindsItOver) {
  Sim s = idle(adaptive(400));
  s.stream(25, 100us);  // 10,000/s for 25 commits
  EXPECT_FALSE(s.armed) << "a burst";
  EXPECT_EQ(s.wakeups, 20) << "seen at its 20th commit";
  EXPECT_EQ(s.policy.polling_spells(), 1u);
  // Then 10 a second: the first read a busy-poll interval into the spell finds the burst over.
  s.wait(30ms);
  EXPECT_TRUE(s.armed);
  const int woken = s.wakeups;
  s.stream(5, 100ms);
  EXPECT_EQ(s.wakeups - woken, 5) << "each change after the burst is woken for";
  EXPECT_EQ(s.policy.polling_spells(), 1u);
  EXPECT_EQ(s.rows_read, 30);
}

TEST(WakePolicy, AStreamUnderTheLimitAfterABurstIsWokenForAgainAtTheFirstReadAfterAnInterval) {
  Sim s = idle(adaptive(1200, 300ms));
  s.stream(25, 50us);       // a burst
  EXPECT_FALSE(s.armed);
  s.stream(800, 1160us);  // then about 860 a second: over half the limit, under all of it
  EXPECT_EQ(s.policy.polling_spells(), 1u);
  EXPECT_EQ(s.arms, 2) << "armed again once, at the first read a busy-poll interval into the spell";
  // Polled for that interval (about 260 commits), woken for the rest.
  EXPECT_GT(s.wakeups, 500);
}

TEST(WakePolicy, APauseOfAFewReadsInAFastStreamDoesNotArmAgain) {
  Sim s = idle(adaptive(50, 5ms));
  s.stream(200, 100us);
  s.wait(50ms);  // ten reads find nothing
  s.stream(200, 100us);
  EXPECT_EQ(s.policy.polling_spells(), 1u);
  EXPECT_EQ(s.arms, 1) << "armed only at the connect";
}

TEST(WakePolicy, CommitsQueueingOnTheNotifyLockUnderTheLimitStopTheWakeUpsAtTheirRate) {
  // A slow disk: commits take turns on the lock at 400/s, a fifth of the limit.
  Sim s = idle(adaptive());
  s.queue = 3;
  s.stream(100, 2500us);
  EXPECT_FALSE(s.armed);
  EXPECT_EQ(s.policy.notify_contention(), 1u);
  EXPECT_GE(s.looks, 3);
  ASSERT_EQ(s.disarmed_at.size(), 1u);
  const double limit = s.policy.max_notify_rate(s.disarmed_at[0]);
  EXPECT_GT(limit, 40);
  EXPECT_LT(limit, 400) << "the limit is the rate the commits were seen queueing at";
  // The stream goes on: polled, not woken.
  const int woken = s.wakeups;
  s.stream(200, 2500us);
  EXPECT_EQ(s.wakeups, woken);
  EXPECT_EQ(s.policy.polling_spells(), 1u);
}

TEST(WakePolicy, CommitsTakingTurnsAtTenASecondStillStopTheWakeUps) {
  // A slower disk: a flush takes 100 ms, and commits come one per flush.
  Sim s = idle(adaptive());
  s.queue = 5;
  s.stream(10, 100ms);
  EXPECT_FALSE(s.armed);
  EXPECT_EQ(s.policy.notify_contention(), 1u);
  EXPECT_LT(s.policy.max_notify_rate(s.now), 40);
}

TEST(WakePolicy, AQueueSeenNowAndThenIsAChanceMeetingAndThreeLooksInARowAreContention) {
  Sim s = idle(adaptive());
  // Every other look finds a queue: never three in a row.
  for (int i = 0; i < 40; ++i) {
    s.queue = i % 2 ? 2 : 0;
    s.stream(20, 1ms);
  }
  EXPECT_TRUE(s.armed);
  EXPECT_EQ(s.policy.notify_contention(), 0u);
  EXPECT_GT(s.looks, 10);
  s.queue = 2;
  s.stream(100, 1ms);
  EXPECT_FALSE(s.armed);
  EXPECT_EQ(s.policy.notify_contention(), 1u);
}

TEST(WakePolicy, SettlingBehindATransactionLeftOpenItStillLooksForTheQueueOnTheLock) {
  Sim s(adaptive());
  s.begin();  // open in this database for good: settling until it ends
  s.connect();
  ASSERT_EQ(s.policy.state(), WakePolicy::State::settling);
  s.queue = 3;
  s.stream(100, 2500us);  // the triggers notify from the arm on, and commits queue
  EXPECT_EQ(s.policy.state(), WakePolicy::State::draining);
  EXPECT_FALSE(s.armed);
  EXPECT_EQ(s.policy.notify_contention(), 1u);
}

TEST(WakePolicy, TheLimitTheQueueSetRelaxesSoOneWriterAfterItIsWokenForAgainWithinSeconds) {
  Sim s = idle(adaptive());
  s.queue = 3;
  s.stream(200, 2500us);  // 400/s, queueing
  ASSERT_FALSE(s.armed);
  s.queue = 0;
  // One writer at 200/s: over half the lowered limit, until it has relaxed.
  s.stream(1000, 5ms);
  EXPECT_TRUE(s.armed);
  const int woken = s.wakeups;
  s.stream(200, 5ms);
  EXPECT_EQ(s.wakeups - woken, 200);
}

TEST(WakePolicy, NoReArmBeforeTheCommitsQueuedOnTheLockHaveHadTheirTurns) {
  Sim s = idle(adaptive());
  s.queue = 7;
  for (int i = 0; i < 20 && s.armed; ++i) s.stream(1, 100ms);  // one per flush, until seen
  ASSERT_EQ(s.disarmed_at.size(), 1u);
  // Seven waiting and the one holding the lock, at the rate they were seen coming at.
  const Time seen = s.disarmed_at[0];
  const auto drained = std::chrono::duration<double>(8 / s.policy.max_notify_rate(seen));
  s.queue = 0;
  s.until(seen + std::chrono::duration_cast<std::chrono::microseconds>(drained * 0.9));
  EXPECT_FALSE(s.armed) << "still draining the queue";
  s.until(seen + std::chrono::duration_cast<std::chrono::microseconds>(drained) + 100ms);
  EXPECT_TRUE(s.armed);
}

TEST(WakePolicy, AfterALoadTheReaderReadsEveryMillisecondUntilItArmsAgain) {
  Sim s = idle(adaptive(400, 100ms));
  s.stream(2000, 100us);  // 10,000/s
  ASSERT_FALSE(s.armed);
  // Then 50/s, under a quarter of the limit: once a read spanning a busy-poll interval finds
  // that, reads come a millisecond apart.
  s.stream(10, 20ms);
  ASSERT_FALSE(s.armed) << "the estimate still reads the load";
  EXPECT_EQ(s.delays.back(), 1ms);
  const Time from = s.now;
  s.stream(5, 20ms);
  EXPECT_GT(s.reads_between(from, s.now), 50) << "a read a millisecond while the estimate fades";
  // Once it has faded under half the limit: armed again.
  s.wait(1s);
  EXPECT_TRUE(s.armed);
}

TEST(WakePolicy, AStreamAfterAPauseIsReadEveryBusyPollIntervalNotEveryMillisecond) {
  // A busy-poll interval of 10 ms: about 450 commits a second are over the limit but not a
  // stream (kStreamCommits), so an empty read waits the interval.
  WakePolicyConfig cfg = adaptive(200, 10ms);
  cfg.poll_interval = 10s;
  Sim s = idle(cfg);
  s.wait(3s);
  const Time start = s.now;
  s.stream(25, 50us);      // a burst
  s.stream(800, 2200us);  // about 450 a second, over the limit
  EXPECT_EQ(s.policy.polling_spells(), 1u);
  ASSERT_EQ(s.disarmed_at.size(), 1u);
  // About 1.8 s of stream, each read that returns rows followed by the next a millisecond on
  // and each empty one a busy-poll interval on; begun at the first read, a quiet stretch would
  // read every millisecond, rows or not (about 1,800 reads).
  EXPECT_LT(s.reads_between(s.disarmed_at[0], s.now), 900);
  EXPECT_GT(s.disarmed_at[0], start);
}

TEST(WakePolicy, ReArmingWhileATransactionIsOpenReadsOnUntilItHasFinished) {
  Sim s = idle(adaptive(400));
  s.stream(200, 100us);  // a load: polling
  ASSERT_FALSE(s.armed);
  const uint64_t open = s.begin();  // its trigger looked while disarmed: it will not NOTIFY
  s.wait(500ms);
  ASSERT_TRUE(s.armed);
  EXPECT_EQ(s.policy.state(), WakePolicy::State::settling);
  const int reads = s.reads;
  s.wait(200ms);
  EXPECT_GT(s.reads, reads) << "reads on while it is open";
  EXPECT_GT(s.delays.back(), 40ms) << "backing off from the busy-poll interval";
  s.finish(open);  // committed while settling
  s.wait(500ms);
  EXPECT_EQ(s.policy.state(), WakePolicy::State::armed);
  EXPECT_EQ(s.rows_read, 201);
}

TEST(WakePolicy, ATransactionOpenInAnotherDatabaseDoesNotKeepItSettling) {
  Sim s(adaptive());
  const uint64_t other = s.begin();
  s.elsewhere.insert(other);
  s.connect();
  EXPECT_EQ(s.asks, 1);
  EXPECT_EQ(s.policy.state(), WakePolicy::State::settling);
  s.wait(100ms);
  EXPECT_EQ(s.policy.state(), WakePolicy::State::armed) << "settled at the read after the answer";
  EXPECT_TRUE(s.armed);
}

TEST(WakePolicy, WithoutTheOtherDatabasesCheckItWaitsForEveryDatabasesTransactions) {
  Sim s(adaptive());
  const uint64_t other = s.begin();
  s.elsewhere.insert(other);
  s.schema_without_other_databases_check = true;
  s.connect();
  s.wait(2s);
  EXPECT_EQ(s.policy.state(), WakePolicy::State::settling);
  s.finish(other);
  s.wait(2s);
  EXPECT_EQ(s.policy.state(), WakePolicy::State::armed);
}

TEST(WakePolicy, StandingDownItNeverArmsAgain) {
  Sim s = idle(adaptive(400));
  s.stream(200, 100us);
  ASSERT_FALSE(s.armed);
  s.policy.standing_down();
  s.wait(2s);
  EXPECT_FALSE(s.armed);
  EXPECT_EQ(s.arms, 1);
}

TEST(WakePolicy, InNotifyModeEveryCommitWakesItAtAnyRate) {
  Sim s = idle({WakeMode::notify, 1000ms, 20ms, 2000});
  s.queue = 5;
  s.stream(5000, 100us);  // 10,000/s, and a queue on the lock
  EXPECT_EQ(s.wakeups, 5000);
  EXPECT_EQ(s.disarms, 0);
  EXPECT_EQ(s.looks, 0);
  EXPECT_EQ(s.delays.back(), 1000ms);
}

TEST(WakePolicy, InNotifyModeAHalfFullNotificationQueueMakesItReadEveryBusyPollInterval) {
  WakePolicy p({WakeMode::notify, 1000ms, 20ms, 2000});
  const Time t = Time{} + 1h;
  p.connected(t);
  p.read_sent(t);
  p.read_returned(t, {}, PgSnapshot{}, 0.5);
  EXPECT_EQ(p.read_delivered(t, false, PgSnapshot{}).read_after(), 20ms);
}

TEST(WakePolicy, InPollModeItNeverArmsAndReadsEveryPollIntervalAndOnceMoreAfterRows) {
  Sim s({WakeMode::poll, 250ms, 20ms, 2000});
  s.connect();
  EXPECT_EQ(s.arms, 0);
  const Time start = s.now;
  s.stream(10, 100ms);  // 10/s
  EXPECT_EQ(s.wakeups, 0);
  // At 250, 501 and 752 ms (a poll interval after the read before), each finding rows and so
  // followed by one a millisecond later that finds nothing.
  EXPECT_EQ(s.reads_between(start + 1us, s.now + 2ms), 6);
  EXPECT_EQ(s.delays.back(), 250ms);
}

TEST(WakePolicy, InPollModeUnderLoadItReadsContinuously) {
  Sim s({WakeMode::poll, 1000ms, 20ms, 2000});
  s.connect();
  s.wait(1s);
  const Time start = s.now;
  s.stream(8000, 250us);  // 4,000/s for two seconds
  EXPECT_EQ(s.wakeups, 0);
  // The first read, a poll interval on, finds a second's rows; from then on a read a millisecond.
  EXPECT_LE(s.longest_wait(start + 1s + 1ms, s.now), 1.0);
  s.wait(30ms);
  EXPECT_EQ(s.delays.back(), 1000ms) << "back to the poll interval once reads find nothing for a busy-poll interval";
  EXPECT_EQ(s.rows_read, 8000);
}
