// The estimators the wake-up policy (wake_policy.h) decides with. Pure: the caller passes the time.
//  - CommitRate: commits per second lately, an exponentially decaying average.
//  - CommitBurst: the rate of the last 20 commits, which sees a burst before the average does.
//  - ContendedLimit: the limit that commits queueing on the NOTIFY lock set, and how it relaxes.
//  - QuietStretch: whether the commits a polling reader finds have fallen well below its limit.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace mn {

// Each event adds 1/tau to an estimate that decays as exp(-dt/tau): a steady rate R reads R
// after a few tau, and silence fades it.
class CommitRate {
 public:
  using Clock = std::chrono::steady_clock;

  explicit CommitRate(std::chrono::milliseconds tau = std::chrono::milliseconds(100))
      : tau_s_(std::chrono::duration<double>(tau).count()) {}

  void add(Clock::time_point now, double events = 1) {
    value_ = per_second(now) + events / tau_s_;
    at_ = now;
  }

  // Events counted now that happened at unknown times since `since` (a read of the log), spread
  // evenly over that span. Counted as if all came now, a steady rate R read in batches every d
  // reads R (d/tau) / (1 - exp(-d/tau)) right after each batch, above R; spread, it reads R. For
  // a span of 0 this is add() above.
  void add(Clock::time_point now, double events, Clock::time_point since) {
    const double x = std::max(0.0, std::chrono::duration<double>(now - since).count()) / tau_s_;
    const double weight = x > 1e-9 ? -std::expm1(-x) / x : 1.0;
    value_ = per_second(now) + events * weight / tau_s_;
    at_ = now;
  }

  // A rate known some other way (a burst): the estimate reads at least that from now.
  void raise_to(Clock::time_point now, double rate) {
    if (rate > per_second(now)) {
      value_ = rate;
      at_ = now;
    }
  }

  // A rate measured some other way replaces the estimate, also a higher one raise_to() set (a
  // burst that a read found over).
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

// The average above believes a new rate only after a few tau; the span of the last kCommits
// commits tells within kCommits commits. It varies by about a fifth at a steady rate, so it is
// trusted only where the average had not seen a rate near the limit before those commits
// (starts()). It says nothing before kCommits commits, so a lone commit never reads as a high rate.
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
  // of the rate before they came. Not the estimate now, which those very commits have raised by
  // about kCommits / tau, enough to hide a burst under a low limit.
  double estimate_before() const { return before_[next_]; }

  // Whether a burst's rate (`burst`) says commits come faster than `limit` where the estimate
  // before them (`before`, estimate_before()) did not know it: only from well below the limit,
  // since at a steady rate near half the limit 20 random commits are now and then closer
  // together than the limit allows.
  static bool starts(double burst, double before, double limit) {
    return burst > limit && before < limit / 4;
  }

  // The rate commits came at when they were seen queueing on the NOTIFY lock: the higher of the
  // average (a rate kept up longer than the last kCommits span) and the burst's (the average
  // lags a start from idle, when the queue is usually seen).
  static double contended_rate(double estimate, double burst_now) { return std::max(estimate, burst_now); }

 private:
  std::array<Clock::time_point, kCommits> at_{};
  std::array<double, kCommits> before_{};
  size_t next_ = 0;
  size_t seen_ = 0;
};

// The limit once commits were seen queueing on the NOTIFY lock: the rate they came at then (the
// disk's rate under that load, since the lock is held through each WAL flush). It relaxes by a
// doubling every relax_after() from when it was set, until it reaches the configured limit and
// is gone, so one slow minute does not keep the reader polling for good. Seen again within
// kFirstRelax of being woken again (and within kForget of the last time), the relaxation was
// too soon: relax_after() doubles, up to kMaxRelax, so a rate the disk cannot take is tried
// less and less often. Otherwise it is a new load, and relax_after() starts from kFirstRelax.
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
  // kept up; a burst at the rate that once queued queues again, whatever the relaxed limit says.
  // Half: commits taking turns on the lock come at about that rate, give or take a fifth.
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

// Whether the commits a polling reader finds have fallen well below `rate`: judged over every
// read since the first that found them under it, since reads a millisecond apart find 0 or 1
// commit each, which is no rate at all. Only a read spanning `at_least` (the busy-poll interval)
// begins a stretch: a read sent right after another finds next to nothing at any rate.
class QuietStretch {
 public:
  using Clock = std::chrono::steady_clock;

  // A read found `commits` that committed between `from` (when the read before it was sent)
  // and `to` (when this one was); returns whether every read since the stretch began found,
  // together, fewer than `rate` per second. A read that ends a stretch may begin the next.
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
