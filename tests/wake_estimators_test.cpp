// The wake-up policy's estimators (wake_estimators.h).
#include "wake_estimators.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using mn::CommitBurst;
using mn::CommitRate;
using mn::ContendedLimit;
using mn::QuietStretch;

TEST(CommitRate, ASteadyRateReadsAsThatRate) {
  CommitRate r;
  auto t = CommitRate::Clock::time_point{} + 1h;
  for (int i = 0; i < 1000; ++i) r.add(t += 1ms);  // 1000 per second for one second
  EXPECT_NEAR(r.per_second(t), 1000, 60);
  CommitRate slow;
  for (int i = 0; i < 100; ++i) slow.add(t += 10ms);  // 100 per second
  EXPECT_NEAR(slow.per_second(t), 100, 10);
}

TEST(CommitRate, SilenceFadesItAndNothingIsZero) {
  CommitRate r;
  auto t = CommitRate::Clock::time_point{} + 1h;
  EXPECT_EQ(r.per_second(t), 0);
  for (int i = 0; i < 1000; ++i) r.add(t += 100us);  // 10000 per second for 0.1 s
  EXPECT_GT(r.per_second(t), 5000);
  EXPECT_LT(r.per_second(t + 500ms), 100);
}

TEST(CommitRate, RaisedToAKnownRateItReadsThatAndFadesFromIt) {
  CommitRate r;
  auto t = CommitRate::Clock::time_point{} + 1h;
  r.add(t);
  r.raise_to(t, 2500);
  EXPECT_DOUBLE_EQ(r.per_second(t), 2500);
  r.raise_to(t, 100);  // never lowered
  EXPECT_DOUBLE_EQ(r.per_second(t), 2500);
  EXPECT_NEAR(r.per_second(t + 100ms), 2500 / std::exp(1.0), 1);
}

TEST(CommitRate, SetToAMeasuredRateItReadsThatEvenBelowARaisedOneAndFadesFromIt) {
  CommitRate r;
  auto t = CommitRate::Clock::time_point{} + 1h;
  r.raise_to(t, 10000);  // a burst
  r.set(t + 20ms, 150);  // what a read then found
  EXPECT_DOUBLE_EQ(r.per_second(t + 20ms), 150);
  EXPECT_NEAR(r.per_second(t + 120ms), 150 / std::exp(1.0), 0.01);
}

// What the adaptive reader sees while it polls: each read counts the commits since the last one.
// Counted as if they all came at the read, a steady rate read in batches reads high right after
// each batch, and a stream at half the limit would never look slow enough to be woken for.
TEST(CommitRate, ASteadyRateCountedInBatchesReadsThatRateRightAfterEachBatch) {
  CommitRate r;
  auto t = CommitRate::Clock::time_point{} + 1h;
  double lowest = 1e9, highest = 0;
  for (int i = 0; i < 100; ++i) {  // 2 s of reads, 20 commits each
    const auto since = t;
    r.add(t += 20ms, 20, since);
    if (i >= 50) {
      lowest = std::min(lowest, r.per_second(t));
      highest = std::max(highest, r.per_second(t));
    }
  }
  EXPECT_NEAR(lowest, 1000, 5);
  EXPECT_NEAR(highest, 1000, 5);
  CommitRate at_once;
  at_once.add(t, 20, t);  // a span of nothing: the same as 20 events now
  EXPECT_DOUBLE_EQ(at_once.per_second(t), 200);
}

TEST(CommitBurst, SaysNothingUntilTwentyCommitsThenTheirRate) {
  CommitBurst b;
  auto t = CommitBurst::Clock::time_point{} + 1h;
  for (size_t i = 1; i < CommitBurst::kCommits; ++i) EXPECT_EQ(b.add(t += 1ms), 0) << "commit " << i;
  EXPECT_NEAR(b.add(t += 1ms), 1000, 1);
  EXPECT_NEAR(b.add(t += 1ms), 1000, 1);
  EXPECT_GT(b.add(t), 1000) << "two commits at the same instant count as close together";
}

TEST(CommitBurst, OnlyTheLastTwentyCommitsCount) {
  CommitBurst b;
  auto t = CommitBurst::Clock::time_point{} + 1h;
  for (int i = 0; i < 100; ++i) b.add(t += 100ms);  // an hour of 10 per second...
  double rate = 0;
  for (int i = 0; i < 10; ++i) rate = b.add(t += 200us);
  EXPECT_LT(rate, 50) << "half the window still slow";
  for (int i = 0; i < 10; ++i) rate = b.add(t += 200us);  // ...then 5000 per second
  EXPECT_NEAR(rate, 5000, 1);
}

// Why the adaptive wake-up has both: commits over the limit from idle cross it after 20 commits
// by their span, after hundreds by the estimate, each of them a commit the application waited
// for on the NOTIFY lock.
TEST(CommitBurst, TheStartOfABurstIsSeenInTwentyCommitsWhereTheRateEstimateNeedsHundreds) {
  CommitBurst burst;
  CommitRate estimate;
  auto t = CommitRate::Clock::time_point{} + 1h;
  int by_burst = 0, by_estimate = 0;
  for (int i = 1; i <= 2000 && (!by_burst || !by_estimate); ++i) {
    t += std::chrono::microseconds(370);
    const double b = burst.add(t, estimate.per_second(t));
    estimate.add(t);
    if (!by_burst && CommitBurst::starts(b, burst.estimate_before(), 2000)) by_burst = i;
    if (!by_estimate && estimate.per_second(t) >= 2000) by_estimate = i;
  }
  EXPECT_EQ(by_burst, static_cast<int>(CommitBurst::kCommits));
  EXPECT_GT(by_estimate, 300);
}

// Once commits were seen queueing on the NOTIFY lock, the adaptive reader's limit is the rate
// they went at then, a low one. A burst from idle takes turns on the lock at about that rate
// again, and the burst's own 20 commits lift the estimate past a quarter of such a limit: judged
// by the estimate now, no burst would ever be seen.
TEST(CommitBurst, UnderALimitTheLocksQueueLoweredTheStartOfABurstIsStillSeenInTwentyCommits) {
  CommitBurst burst;
  CommitRate estimate;
  auto t = CommitRate::Clock::time_point{} + 1h;
  const double limit = 300;
  int by_burst = 0, by_estimate = 0;
  double estimate_at_twenty = 0;
  for (int i = 1; i <= 1000 && (!by_burst || !by_estimate); ++i) {
    t += std::chrono::microseconds(2500);  // 400/s, one at a time
    const double b = burst.add(t, estimate.per_second(t));
    estimate.add(t);
    if (i == static_cast<int>(CommitBurst::kCommits)) estimate_at_twenty = estimate.per_second(t);
    if (!by_burst && CommitBurst::starts(b, burst.estimate_before(), limit)) by_burst = i;
    if (!by_estimate && estimate.per_second(t) >= limit) by_estimate = i;
  }
  EXPECT_EQ(by_burst, static_cast<int>(CommitBurst::kCommits));
  EXPECT_GT(estimate_at_twenty, limit / 4) << "the burst's own commits, which the old check counted";
  EXPECT_GT(by_estimate, 50);
}

TEST(CommitBurst, ItsRateFallsAfterTheLastCommitAsIfTheNextWereComingNow) {
  CommitBurst b;
  auto t = CommitBurst::Clock::time_point{} + 1h;
  for (size_t i = 1; i < CommitBurst::kCommits; ++i) b.add(t += 1ms);
  EXPECT_EQ(b.rate(t), 0) << "nothing until twenty commits";
  EXPECT_NEAR(b.rate(t), b.add(t += 1ms), 1e-9);
  EXPECT_NEAR(b.rate(t), 1000, 1);
  EXPECT_NEAR(b.rate(t + 19ms), 500, 1);
  EXPECT_LT(b.rate(t + 1s), 20) << "a burst long over";
}

// Commits queue on the NOTIFY lock mostly at the start of a burst from idle, where the estimate
// lags. The limit the queue sets is where a NOTIFY per commit starts to cost: taken from the
// lagging estimate, it would be well under the rate the commits really came at, and steady
// streams far under that rate would be polled, not woken.
TEST(CommitBurst, CommitsSeenQueueingAtTheStartOfABurstSetTheLimitAtTheRateTheyCameNotTheLaggingEstimate) {
  CommitBurst burst;
  CommitRate estimate;
  auto t = CommitRate::Clock::time_point{} + 1h;
  for (int i = 0; i < 24; ++i) {  // 80 ms at 300/s
    t += std::chrono::microseconds(3333);
    burst.add(t, estimate.per_second(t));
    estimate.add(t);
  }
  t += 1ms;  // the look's answer
  EXPECT_LT(estimate.per_second(t), 200) << "what the estimate alone says";
  EXPECT_NEAR(CommitBurst::contended_rate(estimate.per_second(t), burst.rate(t)), 300, 20);
}

// A queue seen under a rate kept up for seconds: the estimate knows it, whatever the last few
// commits' span says (an unlucky gap, or the last commits long ago).
TEST(CommitBurst, CommitsSeenQueueingAfterASteadyRateSetTheLimitAtLeastAtThatRate) {
  CommitBurst burst;
  CommitRate estimate;
  auto t = CommitRate::Clock::time_point{} + 1h;
  for (int i = 0; i < 1000; ++i) {  // 2 s at 500/s
    t += 2ms;
    burst.add(t, estimate.per_second(t));
    estimate.add(t);
  }
  t += 30ms;  // a stall before the answer: the last twenty commits now span 68 ms
  EXPECT_LT(burst.rate(t), 300);
  EXPECT_GT(estimate.per_second(t), 350);
  EXPECT_EQ(CommitBurst::contended_rate(estimate.per_second(t), burst.rate(t)), estimate.per_second(t));
}

namespace {

// A minute of random (Poisson) commits at `rate` per second, judged against `limit`: how many
// spans of 20 crossed the limit, and how many of those CommitBurst took for the start of a burst.
struct RandomMinute {
  int over_limit = 0;
  int starts = 0;
};
RandomMinute random_minute(double rate, double limit, unsigned seed) {
  std::mt19937 rng(seed);
  std::exponential_distribution<double> gap_us(rate / 1e6);
  CommitBurst burst;
  CommitRate estimate;
  auto t = CommitRate::Clock::time_point{} + 1h;
  RandomMinute m;
  for (int i = 0; i < static_cast<int>(rate * 60); ++i) {
    t += std::chrono::microseconds(static_cast<int64_t>(gap_us(rng)));
    const double b = burst.add(t, estimate.per_second(t));
    estimate.add(t);
    m.over_limit += b > limit;
    m.starts += CommitBurst::starts(b, burst.estimate_before(), limit);
  }
  return m;
}

}  // namespace

// Random commits at half the limit now and then come 20 within 9.5 ms. Taken for a burst, each
// would stop the NOTIFYs of an application the limit says should have them, and at that rate
// polling goes on for as long as the rate stays there.
TEST(CommitBurst, AMinuteOfRandomCommitsAtHalfTheLimitNeverLooksLikeTheStartOfABurst) {
  const RandomMinute m = random_minute(1000, 2000, 7);
  EXPECT_GT(m.over_limit, 0) << "the spans alone do cross the limit";
  EXPECT_EQ(m.starts, 0);
}

// The same under a limit the NOTIFY lock's queue lowered to 300/s: the low-rate case after a
// contended burst.
TEST(CommitBurst, AMinuteOfRandomCommitsAtHalfALoweredLimitNeverLooksLikeTheStartOfABurst) {
  const RandomMinute m = random_minute(150, 300, 11);
  EXPECT_GT(m.over_limit, 0) << "the spans alone do cross the limit";
  EXPECT_EQ(m.starts, 0);
}

// The limit the lock's queue sets is the disk's rate under that load. Kept, it would poll a
// lighter stream that never queued for as long as it lasted after the load.
TEST(ContendedLimit, ItRelaxesByADoublingEverySecondUntilTheConfiguredLimitThenIsGone) {
  ContendedLimit l;
  auto t = ContendedLimit::Clock::time_point{} + 1h;
  EXPECT_EQ(l.at(t, 2000), 0) << "none until a queue is seen";
  l.seen(t, 147, t - 10s);
  EXPECT_EQ(l.relax_after(), 1s);
  EXPECT_EQ(l.at(t, 2000), 147);
  EXPECT_EQ(l.at(t + 999ms, 2000), 147);
  EXPECT_EQ(l.at(t + 1s, 2000), 294);
  EXPECT_EQ(l.at(t + 3500ms, 2000), 1176);
  EXPECT_EQ(l.at(t + 4s, 2000), 0) << "2,352/s: past the configured limit";
  EXPECT_EQ(l.at(t + 1h, 2000), 0);
  ContendedLimit over;
  over.seen(t, 2500, t - 10s);
  EXPECT_EQ(over.at(t, 2000), 0) << "a queue over the configured limit: that limit stands";
}

// A stream the relaxed limit let be woken, whose commits queue again at once: the disk cannot
// take it, so it tries less and less often, up to once a minute.
TEST(ContendedLimit, SeenAgainRightAfterBeingWokenItRelaxesHalfAsOftenUpToAMinute) {
  ContendedLimit l;
  auto t = ContendedLimit::Clock::time_point{} + 1h;
  l.seen(t, 150, t - 10s);
  std::chrono::milliseconds expected = 1s;
  for (int i = 0; i < 10; ++i) {
    t += expected * 3;  // relaxed to 1,200/s: a stream of 500/s is woken again...
    ASSERT_EQ(l.at(t, 2000), 1200);
    l.seen(t + 80ms, 150, t);  // ...and queues within three looks
    t += 80ms;
    expected = std::min<std::chrono::milliseconds>(expected * 2, 60s);
    EXPECT_EQ(l.relax_after(), expected) << "try " << i;
  }
  EXPECT_EQ(l.at(t + 59s, 2000), 150);
}

// A queue at the start of a load that found the reader woken for a while (a new burst from
// idle, which may be over at once), or five minutes after the last: from a second again.
TEST(ContendedLimit, ANewLoadStartsFromASecondAgain) {
  ContendedLimit l;
  auto t = ContendedLimit::Clock::time_point{} + 1h;
  // Seen after `gap`, woken for `woken` before it.
  const auto seen_after = [&](std::chrono::milliseconds gap, std::chrono::milliseconds woken) {
    t += gap;
    l.seen(t, 150, t - woken);
  };
  seen_after(0s, 10s);
  seen_after(3s, 10ms);
  seen_after(6s, 10ms);
  ASSERT_EQ(l.relax_after(), 4s);
  seen_after(20s, 5s);
  EXPECT_EQ(l.relax_after(), 1s) << "woken for 5 s before it";
  seen_after(3s, 10ms);
  ASSERT_EQ(l.relax_after(), 2s);
  seen_after(6min, 10ms);
  EXPECT_EQ(l.relax_after(), 1s) << "six minutes after the last";
}

// Relaxed to the configured limit, the limit no longer tells a load's start: its commits take
// turns on the lock at the rate that queued before, far under it. Half that rate still does,
// within 20 commits.
TEST(ContendedLimit, ABurstFromIdleAtTheRateThatQueuedStillStopsTheNotifiesOnceTheLimitRelaxed) {
  ContendedLimit l;
  auto t = ContendedLimit::Clock::time_point{} + 1h;
  l.seen(t, 150, t - 10s);
  t += 10min;
  ASSERT_EQ(l.at(t, 2000), 0);
  EXPECT_EQ(l.burst_limit(), 75);
  CommitBurst burst;
  CommitRate estimate;
  int by_burst = 0;
  for (int i = 1; i <= 40 && !by_burst; ++i) {
    t += std::chrono::microseconds(6667);  // 150/s, one at a time
    const double b = burst.add(t, estimate.per_second(t));
    estimate.add(t);
    EXPECT_FALSE(CommitBurst::starts(b, burst.estimate_before(), 2000)) << "commit " << i;
    if (CommitBurst::starts(b, burst.estimate_before(), l.burst_limit())) by_burst = i;
  }
  EXPECT_EQ(by_burst, static_cast<int>(CommitBurst::kCommits));
}

namespace {

using Read = std::pair<std::chrono::milliseconds, double>;  // how long it spans, commits found

// Reads back to back from `t` (moved on past them), at a rate of 500/s and an interval of 20 ms:
// what add() returned for each.
std::vector<bool> reads(QuietStretch& q, QuietStretch::Clock::time_point& t, const std::vector<Read>& rs) {
  std::vector<bool> out;
  for (const auto& [span, commits] : rs) {
    out.push_back(q.add(t, t + span, commits, 500, 20ms));
    t += span;
  }
  return out;
}

}  // namespace

// A load ends, then a light stream. The first read whose whole interval came after the load says
// so; the reads after it, a millisecond apart and finding 0 or 1 commit each, go on saying so,
// as a stretch.
TEST(QuietStretch, TheFirstReadThatFindsALoadOverBeginsItAndReadsAMillisecondApartKeepIt) {
  QuietStretch q;
  auto t = QuietStretch::Clock::time_point{} + 1h;
  std::vector<Read> load(5, {20ms, 220});
  EXPECT_EQ(reads(q, t, load), std::vector<bool>(5, false));
  EXPECT_EQ(reads(q, t, {{20ms, 2}}), std::vector<bool>{true}) << "100/s";
  std::vector<Read> after;
  for (int i = 0; i < 50; ++i) after.push_back({1ms, i % 10 == 0 ? 1 : 0});
  EXPECT_EQ(reads(q, t, after), std::vector<bool>(50, true));
}

// Measured over the stretch, not per read: 11 commits in a read of 20 ms are 550/s, over a rate of
// 500/s, but not after a read of 20 ms that found none (11 in 40 ms: 275/s); nor is one commit
// in a read a millisecond long (12 in 41 ms: 293/s).
TEST(QuietStretch, ReadsAreJudgedTogetherFromTheOneThatBeganIt) {
  QuietStretch q;
  auto t = QuietStretch::Clock::time_point{} + 1h;
  EXPECT_EQ(reads(q, t, {{20ms, 0}, {20ms, 11}, {1ms, 1}}), (std::vector<bool>{true, true, true}));
  QuietStretch fresh;
  EXPECT_EQ(reads(fresh, t, {{20ms, 11}}), std::vector<bool>{false}) << "one read alone: 550/s";
}

// The load comes back (or a pause in it ends): the stretch ends with the first read that brings
// its rate over (17 commits in 22 ms: 770/s), and the next quiet read begins a new one from its
// own window (250/s). After reset(), a read is judged alone: 550/s, where with the one before it
// would be 400/s.
TEST(QuietStretch, ALoadThatComesBackEndsItAndAQuietReadLaterBeginsANewOne) {
  QuietStretch q;
  auto t = QuietStretch::Clock::time_point{} + 1h;
  EXPECT_EQ(reads(q, t, {{20ms, 1}, {2ms, 16}, {20ms, 100}, {20ms, 5}}), (std::vector<bool>{true, false, false, true}));
  q.reset();
  EXPECT_EQ(reads(q, t, {{20ms, 11}}), std::vector<bool>{false});
}

// A read sent right after the one before (a wake-up came while it was out) finds next to nothing
// at any rate: only a read spanning the busy-poll interval begins a stretch.
TEST(QuietStretch, OnlyAReadSpanningTheGivenIntervalBeginsOne) {
  QuietStretch q;
  auto t = QuietStretch::Clock::time_point{} + 1h;
  EXPECT_FALSE(q.add(t, t, 0, 500, 20ms));
  EXPECT_FALSE(q.add(t, t + 5ms, 0, 500, 20ms));
  EXPECT_TRUE(q.add(t, t + 20ms, 0, 500, 20ms));
  EXPECT_FALSE(QuietStretch{}.add(t, t + 20ms, 0, 0, 20ms)) << "a limit of 0: never";
}
