#include "wake_policy.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace mn {
namespace {

double ms_between(WakePolicy::Time a, WakePolicy::Time b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

bool WakeActions::has(WakeAction::Kind k) const {
  return std::any_of(list_.begin(), list_.end(), [k](const WakeAction& a) { return a.kind == k; });
}

std::optional<std::chrono::milliseconds> WakeActions::read_after() const {
  std::optional<std::chrono::milliseconds> out;
  for (const auto& a : list_)
    if (a.kind == WakeAction::read_after) out = a.after;
  return out;
}

WakeActions WakePolicy::connected(Time now) {
  WakeActions out;
  // A look or a question sent on the lost connection never answers; after `migrate up` and a
  // reconnect the functions may be there now.
  look_out_ = false;
  queue_seen_in_a_row_ = 0;
  look_works_ = true;
  ask_works_ = true;
  woken_.clear();
  if (cfg_.mode != WakeMode::poll && !standing_down_) out.add(WakeAction::arm);
  // Registered as waiting: in adaptive mode that is an arm, so settle as after one.
  start_settling(now);
  return out;
}

void WakePolicy::start_settling(Time now) {
  state_ = State::settling;
  woken_since_ = now;
  armed_at_.reset();  // taken from the next read
  ++arms_;
  settle_delay_ = cfg_.busy_poll_interval;
}

WakeActions WakePolicy::woken(Time now, uint64_t xid, bool already_read) {
  WakeActions out;
  // The wake-ups of one transaction's rows come together at its commit: a new xid is a commit.
  double burst = 0;
  if (xid != last_woken_xid_) {
    burst = commit_burst_.add(now, commit_rate_.per_second(now));
    last_woken_xid_ = xid;
  }
  // Already read (a read raced its wake-up, or an old payload sent again): nothing to read for
  // it, nor to count.
  if (already_read) return out;
  // A commit counts in the rate when it wakes the reader, not a read later: at a burst's start
  // the reads lag the wake-ups, and the spell the burst begins must not count the burst itself.
  if (woken_.size() < kMaxWokenUnread && woken_.insert(xid).second) commit_rate_.add(now);
  out.add(WakeAction::read_now);
  if (cfg_.mode != WakeMode::adaptive || state_ == State::draining) return out;
  if (commit_rate_.per_second(now) >= max_notify_rate(now)) {
    // Commits come too fast to be worth a NOTIFY each.
    start_polling(now, "the rate limit", false, out);
  } else if (CommitBurst::starts(burst, commit_burst_.estimate_before(), burst_limit(now))) {
    // The start of a burst: every commit from here on would take the NOTIFY lock in turn until
    // the estimate caught up. The estimate takes the burst's rate, so the spell lasts as long as
    // the burst does, or until the first read that spans a busy-poll interval finds it over.
    commit_rate_.raise_to(now, burst);
    start_polling(now, "a burst", true, out);
  }
  return out;
}

void WakePolicy::read_returned(Time now, const std::vector<LogRow>& rows, const PgSnapshot& seen, double queue_usage) {
  queue_usage_ = queue_usage;
  if (!rows.empty()) rows_returned_at_ = now;
  // Transactions that committed between the previous read's snapshot and this one's, less those
  // counted at their wake-up.
  const auto window_from = counted_since_.value_or(read_sent_);
  const auto commits =
      static_cast<double>(count_transactions(rows, [this](uint64_t xid) { return woken_.count(xid) > 0; }));
  const auto all = static_cast<double>(count_transactions(rows, [](uint64_t) { return false; }));
  for (auto it = woken_.begin(); it != woken_.end();) it = seen.sees(*it) ? woken_.erase(it) : std::next(it);
  if (commits > 0) {
    commit_rate_.add(now, commits, window_from);
    spell_commits_ += commits;
  }
  counted_since_ = read_sent_;
  if (state_ != State::draining) return;
  // Every read while draining counts toward the quiet stretch, over all the transactions it
  // found, woken for or not. The window starts no earlier than the spell: the first read of a
  // spell that a burst began after a pause spans the pause, and would begin a stretch there.
  const double quiet_rate = max_notify_rate(now) / 4;
  const bool was_quiet = quiet_stretch_.holds();
  const auto from = std::max(window_from, spell_started_);
  if (quiet_stretch_.add(from, read_sent_, all, quiet_rate, cfg_.busy_poll_interval) && !was_quiet)
    spdlog::debug("commits fell under {:.0f}/s while polling: reading every {} ms until woken again", quiet_rate,
                  quiet_poll_every().count());
}

WakeActions WakePolicy::read_delivered(Time now, bool got_rows, const PgSnapshot& seen) {
  WakeActions out;
  if (cfg_.mode == WakeMode::poll) {
    // Under load, read continuously: a read that returned rows is followed by the next after
    // the read gap; one that found nothing by the poll interval.
    out.add(WakeAction::read_after, got_rows || stream_lasts(now) ? read_gap() : cfg_.poll_interval);
    return out;
  }
  if (cfg_.mode == WakeMode::notify) {
    // Armed from the first read on; every commit notifies.
    poll_while_armed(out);
    return out;
  }
  if (got_rows && state_ != State::draining && commit_rate_.per_second(now) >= max_notify_rate(now))
    start_polling(now, "the rate limit", false, out);
  switch (state_) {
    case State::draining: {
      WakeActions next = drain(now, got_rows);
      for (const auto& a : next) out.add(a);
      return out;
    }
    case State::settling:
      look_at_queue(now, out);
      settle(seen, out);
      return out;
    case State::armed:
      look_at_queue(now, out);
      poll_while_armed(out);
      return out;
  }
  return out;
}

WakeActions WakePolicy::drain(Time now, bool got_rows) {
  WakeActions out;
  double rate = commit_rate_.per_second(now);
  const double max_rate = max_notify_rate(now);
  bool burst_over = false;
  if (burst_unconfirmed_ && read_sent_ - spell_started_ >= cfg_.busy_poll_interval) {
    // The first read since a burst began the spell that spans a busy-poll interval: the commits
    // it found since then are the rate now. Over means under the limit itself, not half of it:
    // the spell was the burst's, not the rate's. (Some of the burst's commits may be in this
    // count, so a burst over reads high, never low.)
    const double span = std::chrono::duration<double>(read_sent_ - spell_started_).count();
    const double measured = spell_commits_ / span;
    burst_unconfirmed_ = false;
    spdlog::debug("a burst's spell, first read a busy-poll interval on: {:.0f} commits in {:.0f} ms, "
                  "{:.0f}/s ({})", spell_commits_, span * 1000, measured,
                  measured < max_rate ? "over, waiting for wake-ups again" : "a stream, polling on");
    if (measured < max_rate) {
      rate = measured;
      commit_rate_.set(now, measured);
      burst_over = true;
    }
  }
  // A spell the lock's queue began lasts until the commits queued then have had their turns:
  // they notify whatever the triggers now do, and re-arming before then queues new commits
  // behind them.
  if (now < queue_drains_at_) {
    out.add(WakeAction::read_after, got_rows || stream_lasts(now) ? read_gap() : cfg_.busy_poll_interval);
    return out;
  }
  // Poll on while commits come faster than half the limit (hysteresis, so that a rate near it
  // does not flip the mode at every read); a burst found over re-arms under the limit itself.
  // Not on the first empty read: under a fast stream that is a stall (an fsync, a checkpoint).
  // With a limit of 0, re-arm on the first empty read. Nor before a burst's spell has had its
  // first read a busy-poll interval on.
  if (burst_unconfirmed_ || (max_rate > 0 ? rate >= (burst_over ? max_rate : max_rate / 2) : got_rows)) {
    // Commits come faster than waking allows: read continuously while reads return rows, the
    // next after the read gap, so that a change waits about one read, not a busy-poll
    // interval, and each read takes what came during the one before (batches grow with the
    // rate). A read that found nothing within a busy-poll interval of one that found rows is
    // a gap in the stream, and is followed the same way; after that, the busy-poll interval,
    // or, once commits are well under the limit since some read (QuietStretch: a load over, or
    // paused, while the estimate still reads it), a millisecond.
    std::chrono::milliseconds next = cfg_.busy_poll_interval;
    if (got_rows || stream_lasts(now)) next = read_gap();
    else if (quiet_stretch_.holds()) next = quiet_poll_every();
    out.add(WakeAction::read_after, next);
    return out;
  }
  spdlog::debug("waiting for wake-ups again after {:.0f} ms of polling ({:.0f} commits/s lately, limit {:.0f})",
                ms_between(spell_started_, now), rate, max_rate);
  if (!standing_down_) out.add(WakeAction::arm);
  start_settling(now);
  out.add(WakeAction::read_now);  // queued after the arm: its snapshot sees the arm committed
  return out;
}

void WakePolicy::settle(const PgSnapshot& seen, WakeActions& out) {
  if (!armed_at_) {
    armed_at_ = seen;
    // Transaction ids are cluster-wide: only this database's open transactions can have logged
    // a change. Asked once per arm; the answer comes before the next read (queries run in order).
    if (!armed_at_->xip.empty() && ask_works_) out.add(WakeAction{WakeAction::ask_other_databases, {}, arms_, armed_at_->xip});
  }
  const bool settled = std::none_of(armed_at_->xip.begin(), armed_at_->xip.end(), [&seen](uint64_t x) {
    return std::binary_search(seen.xip.begin(), seen.xip.end(), x);
  });
  if (settled) {
    state_ = State::armed;
    return poll_while_armed(out);
  }
  settle_delay_ = std::min(settle_delay_ * 2, cfg_.poll_interval);
  out.add(WakeAction::read_after, settle_delay_);
}

void WakePolicy::other_databases(uint64_t arm_id, const std::vector<uint64_t>& xids) {
  if (arm_id != arms_ || !armed_at_) return;  // re-armed since: its own list is asked for
  auto& xip = armed_at_->xip;
  for (uint64_t x : xids) xip.erase(std::remove(xip.begin(), xip.end(), x), xip.end());
}

void WakePolicy::poll_while_armed(WakeActions& out) const {
  // The triggers stop notifying once the notification queue is half full (a session that
  // LISTENs and never reads holds it there, whoever it is): read every busy-poll interval then.
  out.add(WakeAction::read_after, queue_usage_ >= 0.25 ? cfg_.busy_poll_interval : cfg_.poll_interval);
}

// The rate limit is a guess at where a NOTIFY per commit starts to cost the application; the
// lock's queue says so for sure (on a slow disk, notifying commits go one at a time well under
// the limit). Settling too: the triggers notify from the arm on.
void WakePolicy::look_at_queue(Time now, WakeActions& out) {
  if (cfg_.mode != WakeMode::adaptive || state_ == State::draining || !look_works_ || look_out_) return;
  if (now - looked_ < (queue_seen_in_a_row_ > 0 ? kConfirmEvery : kLookEvery)) return;
  if (commit_rate_.per_second(now) < kLookMinRate) return;
  looked_ = now;
  look_out_ = true;
  out.add(WakeAction::look_at_queue);
}

WakeActions WakePolicy::queue_seen(Time now, std::optional<int> waiters, bool reading) {
  WakeActions out;
  look_out_ = false;
  if (!waiters) return out;
  queue_seen_in_a_row_ = *waiters >= 2 ? queue_seen_in_a_row_ + 1 : 0;
  if (queue_seen_in_a_row_ < kLooks || state_ == State::draining) return out;
  queue_seen_in_a_row_ = 0;
  const double rate = CommitBurst::contended_rate(commit_rate_.per_second(now), commit_burst_.rate(now));
  contended_.seen(now, rate, woken_since_);
  // The estimate may lag that rate: read against it, the reader would re-arm at once.
  commit_rate_.raise_to(now, rate);
  ++notify_contention_;
  spdlog::info("commits queue on the NOTIFY lock ({} waiting) at {:.0f} commits/s: polling from that "
               "rate on, the limit doubling every {} ms", *waiters, rate, contended_.relax_after().count());
  start_polling(now, "commits queueing on the NOTIFY lock", false, out);
  queue_drains_at_ = now + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>((*waiters + 1) / std::max(rate, 1.0)));
  if (!reading) out.add(WakeAction::read_after, cfg_.busy_poll_interval);
  return out;
}

void WakePolicy::start_polling(Time now, const char* why, bool by_burst, WakeActions& out) {
  out.add(WakeAction::disarm);
  state_ = State::draining;
  spell_started_ = now;
  spell_commits_ = 0;
  burst_unconfirmed_ = by_burst;
  quiet_stretch_.reset();
  queue_drains_at_ = {};
  spdlog::debug("polling instead of being woken: {} ({:.0f} commits/s lately)", why, commit_rate_.per_second(now));
  queue_seen_in_a_row_ = 0;
  ++polling_spells_;
}

double WakePolicy::max_notify_rate(Time now) const {
  const double limit = cfg_.adaptive_notify_max_rate;
  const double contended = contended_.at(now, limit);
  return contended > 0 ? std::min(limit, contended) : limit;
}

double WakePolicy::burst_limit(Time now) const {
  const double limit = max_notify_rate(now);
  const double seen = contended_.burst_limit();
  return seen > 0 ? std::min(limit, seen) : limit;
}

bool WakePolicy::stream_lasts(Time now) const {
  const double per_interval = commit_rate_.per_second(now) * std::chrono::duration<double>(cfg_.busy_poll_interval).count();
  return rows_returned_at_ && now - *rows_returned_at_ < cfg_.busy_poll_interval && per_interval >= kStreamCommits;
}

std::chrono::milliseconds WakePolicy::read_gap() const {
  return std::min(kReadGap, cfg_.busy_poll_interval);
}

std::chrono::milliseconds WakePolicy::quiet_poll_every() const {
  return std::min(kQuietPollEvery, cfg_.busy_poll_interval);
}

}  // namespace mn
