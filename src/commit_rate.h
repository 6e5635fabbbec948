// CommitRate: how many events per second, lately: each event adds 1/tau to an estimate that
// decays as exp(-dt/tau), so a steady rate R reads R after a few tau, and silence fades it.
// CommitBurst: whether the last few commits came faster than a given rate.
// ContendedLimit: the limit that commits queueing on the NOTIFY lock set, and how it relaxes.
// QuietStretch: whether the commits a polling reader finds have fallen well below its limit.
// Pure (the caller passes the time), for the adaptive wake-up's choice between being woken
// by every commit and polling.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace mn {

class CommitRate {
 public:
  using Clock = std::chrono::steady_clock;

  explicit CommitRate(std::chrono::milliseconds tau = std::chrono::milliseconds(100))
      : tau_s_(std::chrono::duration<double>(tau).count()) {}

  void add(Clock::time_point now, double events = 1) {
    value_ = per_second(now) + events / tau_s_;
    at_ = now;
  }

  // Events counted now that happened at unknown times since `since` (a read of the log):
  // spread evenly over that span. Counted as if all came now, a steady rate R read in batches
  // every d reads R (d/tau) / (1 - exp(-d/tau)) just after each batch: at 1,000/s read every
  // 20 ms, 1,103/s, always above half of a 2,000/s limit, so a stream there never looked slow
  // enough to be woken for again. Spread, it reads R; for a span of 0 it is add() above.
  void add(Clock::time_point now, double events, Clock::time_point since) {
    const double x = std::max(0.0, std::chrono::duration<double>(now - since).count()) / tau_s_;
    const double weight = x > 1e-9 ? -std::expm1(-x) / x : 1.0;
    value_ = per_second(now) + events * weight / tau_s_;
    at_ = now;
  }

  // A rate known some other way (a burst, below): the estimate reads at least that from now.
  void raise_to(Clock::time_point now, double rate) {
    if (rate > per_second(now)) {
      value_ = rate;
      at_ = now;
    }
  }

  // A rate measured some other way replaces the estimate, also a higher one raise_to() set (the
  // adaptive reader: a burst that a read found over).
  void set(Clock::time_point now, double rate) {
    value_ = rate;
    at_ = now;
  }

  double per_second(Clock::time_point now) const {
    if (value_ == 0) return 0;
    double dt = std::chrono::duration<double>(now - at_).count();
    return dt <= 0 ? value_ : value_ * std::exp(-dt / tau_s_);
  }

 private:
  double tau_s_;
  double value_ = 0;
  Clock::time_point at_{};
};

// The estimate above believes a new rate only after a few tau: at the start of a burst from
// idle, 135 ms of commits at 2,700/s (here, each taking the NOTIFY lock in turn) before it
// reads 2,000/s. The span of the last kCommits commits tells within kCommits commits. The
// price is noise: that span varies by about a fifth at a steady rate, so it is trusted only
// where the estimate had not seen a rate near the limit before those commits (starts(), below).
// It needs kCommits commits to say anything at all, so a lone commit never reads as a high rate
// (the estimate above cannot tell one from a rate below 1/tau).
class CommitBurst {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kCommits = 20;

  // Records one commit, and the estimate as it was just before it; returns the rate of the last
  // kCommits commits, per second (0 until there have been that many).
  double add(Clock::time_point now, double estimate_before = 0) {
    at_[next_] = now;
    before_[next_] = estimate_before;
    next_ = (next_ + 1) % kCommits;
    if (seen_ < kCommits) ++seen_;
    return rate(now);
  }

  // The rate of the last kCommits commits as of `now` (0 until there have been that many): at a
  // commit, the rate add() returned; after it, lower, as if the next one were coming now.
  double rate(Clock::time_point now) const {
    if (seen_ < kCommits) return 0;
    // at_[next_] is the oldest of the last kCommits: kCommits - 1 gaps from it to the newest.
    const double span = std::chrono::duration<double>(now - at_[next_]).count();
    return (kCommits - 1) / std::max(span, 1e-6);
  }

  // The estimate as it was just before the oldest of the last kCommits commits: what was known
  // of the rate before they came. Not the estimate now, which those commits have raised: by
  // about kCommits / tau (150-200/s), past a quarter of any limit under 800/s, and a limit the
  // NOTIFY lock's queue lowered is that low (the adaptive reader's contended rate, 100-300/s on
  // a fast disk). Against the estimate now, no burst was ever seen under such a limit, and each
  // start from idle let 10-110 ms of commits through one at a time until the estimate reached
  // the limit.
  double estimate_before() const { return before_[next_]; }

  // Whether a burst's rate (`burst`) says commits come faster than `limit` where the estimate
  // before them (`before`, estimate_before()) did not know it: only from well below the limit.
  // At a steady rate near half the limit, 20 random commits are now and then closer than the
  // limit allows (at 1,000/s, about one in 200 spans of 20 is under 9.5 ms); the estimate knows
  // that rate, and a burst must not stop the NOTIFYs there.
  static bool starts(double burst, double before, double limit) {
    return burst > limit && before < limit / 4;
  }

  // The rate commits came at when they were seen queueing on the NOTIFY lock: the adaptive
  // reader's lowered limit, from which on a NOTIFY per commit costs the application. The
  // estimate (`estimate`, now) lags a start from idle, when the queue is usually seen: it read
  // 70-108/s where the notifying commits had come at 300/s or more, and a steady stream above
  // half that limit (100/s) was then polled, not woken, for as long as it lasted. The span of
  // the last kCommits commits does not lag; the estimate still speaks for a rate kept up
  // longer than they span.
  static double contended_rate(double estimate, double burst_now) { return std::max(estimate, burst_now); }

 private:
  std::array<Clock::time_point, kCommits> at_{};
  std::array<double, kCommits> before_{};
  size_t next_ = 0;
  size_t seen_ = 0;
};

// The adaptive reader's limit once commits were seen queueing on the NOTIFY lock: the rate
// they came at then (CommitBurst::contended_rate()). That rate is the disk's under that load
// (the lock is held through each WAL flush: under bench part B's 16 writers, 147/s, where 100/s
// alone never queued). Kept, it polled the 100/s for as long as it lasted once the
// load had passed (part B, 100/s right after its 16 writers: p50 10.65 ms in one run, p99 18.07
// ms in another, against 0.25 and 1.16 ms before them). So the limit relaxes, a doubling every
// relax_after() from when it was set, until it reaches the configured one and is gone. A
// stream it then lets be woken that still makes commits queue is seen again within three looks,
// and sets it again. Seen right after being woken again (within kFirstRelax of it, under five
// minutes after the last time), the relaxation was too soon: relax_after() doubles, up to a
// minute, so a rate the disk cannot take tries being woken less and less often (each try is
// 70-100 ms of commits one at a time). Otherwise it is a new load, which may end at once
// (part B's rounds begin from idle every few seconds, and each would have doubled it): a second.
class ContendedLimit {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kFirstRelax{1000};
  static constexpr std::chrono::milliseconds kMaxRelax{60000};
  static constexpr std::chrono::milliseconds kForget{300000};

  // Commits were seen queueing at `rate` per second; the reader waits for wake-ups since
  // `woken_since`.
  void seen(Clock::time_point now, double rate, Clock::time_point woken_since) {
    const bool soon_again = set_ && now - set_at_ < kForget && now - woken_since < kFirstRelax;
    relax_after_ = soon_again ? std::min(relax_after_ * 2, kMaxRelax) : kFirstRelax;
    rate_ = std::max(rate, 1.0);
    set_at_ = now;
    set_ = true;
  }

  // The limit now, 0 if none: the rate seen, doubled for each relax_after() since, gone at `cap`.
  double at(Clock::time_point now, double cap) const {
    if (!set_) return 0;
    double v = rate_;
    for (auto n = relaxations(now); v < cap; --n) {
      if (n == 0) return v;
      v *= 2;
    }
    return 0;
  }

  std::chrono::milliseconds relax_after() const { return relax_after_; }

  // Where a burst from idle (CommitBurst::starts()) stops the NOTIFYs, 0 if no queue was ever
  // seen: half the rate commits last queued at, relaxed or not. The limit above is for a rate
  // kept up; a burst from idle at that rate queues again, and here the lock let notifying
  // commits through at 150-1,500/s, under the configured limit: once the limit had relaxed, a
  // load's start was told only by the queue, three looks and 70-100 ms in, not in 20 commits.
  // Half: a burst taking turns on the lock comes at about that rate, give or take a fifth.
  double burst_limit() const { return set_ ? rate_ / 2 : 0; }

 private:
  int64_t relaxations(Clock::time_point now) const {
    return now <= set_at_ ? 0 : (now - set_at_) / relax_after_;
  }

  bool set_ = false;
  double rate_ = 0;
  Clock::time_point set_at_{};
  std::chrono::milliseconds relax_after_ = kFirstRelax;
};

// Whether the commits a polling reader finds have fallen well below its limit: the rate over
// every read since one first found them under `rate`. Each read covers the commits since the
// one before it was sent, so the first to find a load over can only tell a busy-poll interval
// after it ended; from then on the reader reads every millisecond. The rate estimate above
// still reads the load for a few tau after it (a quarter of a second from bench part B's
// 11,000/s down to half the 2,000/s limit), and in that time the reader stays polling, not
// woken: at the busy-poll interval, the first 10-24 changes of 100/s right after the load waited
// 2-20 ms each (p99 3.45-12.43 ms over five runs). Read every millisecond while this holds, they
// wait one.
// Measured over the whole stretch, not the last read: reads a millisecond apart find 0 or 1
// commit each, which is no rate at all. Quiet means under a quarter of the limit, well below
// the half at which the estimate lets the reader be woken again, so a stream polled for being
// over that half is not read every millisecond whenever one busy-poll interval of it ran thin
// (at 1,100/s against 2,000, one in 650 does).
class QuietStretch {
 public:
  using Clock = std::chrono::steady_clock;

  // A read found `commits` that committed between `from` (when the read before it was sent)
  // and `to` (when this one was); returns whether every read since the stretch began found,
  // together, fewer than `rate` per second. Only a read that spans `at_least` begins one (the
  // reader's busy-poll interval): a read sent right after another, as when a wake-up came while
  // one was out, finds next to nothing at any rate. A read that ends a stretch may begin the next.
  bool add(Clock::time_point from, Clock::time_point to, double commits, double rate, Clock::duration at_least) {
    if (on_ && under(commits_ + commits, to - since_, rate)) {
      commits_ += commits;
      return true;
    }
    on_ = to - from >= at_least && under(commits, to - from, rate);
    since_ = from;
    commits_ = commits;
    return on_;
  }

  // What the last add() returned, until reset().
  bool holds() const { return on_; }
  void reset() { on_ = false; }

 private:
  static bool under(double commits, Clock::duration span, double rate) {
    return commits < rate * std::chrono::duration<double>(span).count();
  }

  bool on_ = false;
  Clock::time_point since_{};
  double commits_ = 0;
};

}  // namespace mn
