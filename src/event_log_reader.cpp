#include "event_log_reader.h"

#include "durable_gate.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <utility>

namespace mn {
namespace {

constexpr const char* kReadStatement = "membership_notifier_read";
// How often, at most, to mark how far this timeline is delivered (mark_delivered()) while rows
// are being delivered: after a failover, what was delivered since the last mark that reached
// the new primary counts as lost, and its clients get a snapshot.
constexpr std::chrono::milliseconds kMarkEvery{200};
// Transactions counted at their wake-up and not yet read; past this, reads count them again.
constexpr size_t kMaxWokenUnread = 100000;
// A forged wake-up is logged at most this often (each is counted).
constexpr std::chrono::seconds kForgedLogEvery{10};
// While woken by every commit, how often to look for commits queueing on the NOTIFY lock, and
// from what commit rate on. Once a look finds a queue, the next ones come sooner: every look in
// between is another round of commits taken one at a time (on a disk whose flush took 3 ms, 16
// writers lost 5% of a 3 s run while three looks 50 ms apart confirmed the queue). The rate
// only stops the looks once commits have stopped: each wake-up lifts the estimate to 10/s or
// more (CommitRate's tau, 100 ms). Commits taking turns on the lock come at one per flush, so the
// slower the disk, the lower their rate and the more the turns cost: at 20/s, this threshold's
// first value, a disk that flushed in 100 ms let commits go alone at about 12/s, and the queue
// was seen late or not at all (test SlowerDisk). A look reads the backends' status array.
constexpr std::chrono::milliseconds kContentionCheckEvery{50};
constexpr std::chrono::milliseconds kContentionConfirmEvery{10};
constexpr double kContentionMinRate = 2;
constexpr int kContentionChecks = 3;
// Draining, once commits have fallen well below the limit (QuietStretch): how often to read. A
// read of a few rows is a round trip of about 0.05 ms here (pgbench, the read's plan, at idle):
// 5% of a core, for as long as the stretch lasts, that is until the estimate lets the reader be
// woken (200-600 ms after bench part B's load of 11,000/s) or the load comes back.
constexpr std::chrono::milliseconds kQuietPollEvery{1};
template <typename T>
bool parse_int(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}


std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

}  // namespace

const char* EventLogReader::read_sql() {
  // One statement, one snapshot: the first row carries pg_current_snapshot(), the snapshot
  // every other row was read in. Rows are those of transactions from the previous snapshot's
  // xmax on ($1) and of those it saw in progress ($2): exactly what it could not see. Kept
  // simple on purpose: it runs on every wake-up, and planning a LATERAL/OR form cost more
  // than running it (0.8 ms against 0.2 ms here); the OR form also scanned the whole log.
  // The caller sorts by id.
  // Each arm is bounded on both sides, which filters nothing (a later transaction is invisible
  // to this snapshot; the in-progress ones lie between the previous xmin and xmax): it is there
  // for the planner. The reader runs one generic plan (see session_sql()), which estimates
  // `xid >= $1` alone at a third of the log, and `xid = ANY ($2)` at all of it when the
  // statistics saw few transactions (a backfill): past a few thousand rows either was a
  // sequential scan of the whole log on every read (4 ms at 60k rows, growing with
  // retention). A range bounded on both sides is estimated small: an index range scan.
  // The snapshot row also says how full the notification queue is, and whether the WAL was
  // flushed past what the read saw (durable_gate.h).
  // Times as microseconds through date_part's float8, not extract's numeric: numeric division
  // and multiplication were half the server's cost of a row read (1.1 against 0.6 us here).
  // Exact until 2106-02-07 (2^32 s): the division and the multiplication each round once, by
  // at most 0.24 and 0.25 us, and the cast to bigint rounds to the nearest, the stored value
  // (TheReaderReadsEveryTimeToTheMicrosecondAsAReplayDoes checks it against extract's).
  static const std::string sql =
      std::string("SELECT pg_current_snapshot()::text, NULL::bigint, NULL::text, NULL::text, NULL::text,"
                  "       NULL::text, NULL::text, NULL::bigint, pg_notification_queue_usage(), ") +
      kFlushedSql + ", " + kInsertLsnSql +
      " UNION ALL"
      " SELECT NULL, l.id, l.xid::text, l.op::text, l.channel_id, l.user_id, l.xtype,"
      "        (date_part('epoch', l.occurred_at) * 1000000)::bigint, NULL, NULL, NULL"
      "   FROM membership_notifier.event_log l"
      "  WHERE l.xid >= $1::xid8 AND l.xid < pg_snapshot_xmax(pg_current_snapshot())"
      " UNION ALL"
      " SELECT NULL, l.id, l.xid::text, l.op::text, l.channel_id, l.user_id, l.xtype,"
      "        (date_part('epoch', l.occurred_at) * 1000000)::bigint, NULL, NULL, NULL"
      "   FROM membership_notifier.event_log l"
      "  WHERE l.xid = ANY ($2::xid8[]) AND l.xid >= $3::xid8 AND l.xid < $1::xid8";
  return sql.c_str();
}

const char* EventLogReader::session_sql() {
  // The read runs hundreds of times a second under load. Left to choose, PostgreSQL plans it
  // afresh each time (a custom plan looks cheaper than the generic one), and the planning
  // cost more than the run: 0.3 ms of server CPU a read here. The generic plan, an index
  // range scan of the key (read_sql() says why it is one), suits a few rows and a catch-up.
  // No JIT: that plan's cost grows with the log (an estimated 0.5% of it), and past about 13
  // million rows it passes jit_above_cost, when every read would be compiled: 7 ms a read
  // against 0.1 here (3.9 million rows, jit_above_cost lowered to match).
  return "SELECT set_config('plan_cache_mode', 'force_generic_plan', false), set_config('jit', 'off', false)";
}

PgConnection::Params EventLogReader::read_params(const PgSnapshot& since) {
  return {std::to_string(since.xmax), xid8_array(since.xip), std::to_string(since.xmin)};
}

std::optional<LogRow> EventLogReader::parse_row(const PgResult& r, int i) {
  LogRow row;
  if (r.is_null(i, 1) || r.is_null(i, 2) || r.is_null(i, 3) || r.is_null(i, 7)) return std::nullopt;
  if (!parse_int(r.get(i, 1), row.id) || !parse_int(r.get(i, 2), row.xid) ||
      !parse_int(r.get(i, 7), row.occurred_at_us))
    return std::nullopt;
  row.op = std::string(r.get(i, 3));
  row.channel_id = r.get_opt(i, 4);
  row.user_id = r.get_opt(i, 5);
  row.xtype = r.get_opt(i, 6);
  return row;
}

EventLogReader::EventLogReader(asio::io_context& io, const Config& cfg, BatchHandler on_batch)
    : io_(io), cfg_(cfg), on_batch_(std::move(on_batch)), reconnect_timer_(io), poll_timer_(io),
      rng_(std::random_device{}()) {}

EventLogReader::~EventLogReader() { stop(); }

void EventLogReader::start() {
  stopped_ = false;
  connect();
}

void EventLogReader::stop() {
  stopped_ = true;
  ready_ = false;
  reconnect_timer_.cancel();
  poll_timer_.cancel();
  if (conn_) conn_->close();
  conn_.reset();
  if (mark_conn_) mark_conn_->close();
  mark_conn_.reset();
  marking_ = false;
}

void EventLogReader::stand_down(std::chrono::milliseconds timeout, std::function<void()> done) {
  standing_down_ = true;
  if (cfg_.wake_mode == WakeMode::poll || !conn_) return done();
  auto finished = std::make_shared<bool>(false);
  auto timer = std::make_shared<asio::steady_timer>(io_, timeout);
  auto finish = [finished, timer, done = std::move(done)] {
    if (std::exchange(*finished, true)) return;
    timer->cancel();
    done();
  };
  timer->async_wait([finish](const asio::error_code& ec) {
    if (!ec) finish();
  });
  conn_->query("SELECT membership_notifier.set_waiting(false)", {}, [finish](PgResult r) {
    if (!r.ok()) spdlog::warn("could not clear the wake-up mark on stopping: {}", r.error());
    finish();
  });
}

void EventLogReader::connect() {
  if (stopped_) return;
  conn_ = PgConnection::create(io_);
  auto conn = conn_;
  conn->connect(cfg_.database_url, "membership-notifier listener", cfg_.db_timeout,
                [this, conn](const std::string& err) {
                  if (conn != conn_) return;
                  if (!err.empty()) return schedule_reconnect("connect failed: " + err);
                  on_connected();
                });
}

void EventLogReader::on_connected() {
  auto conn = conn_;
  conn->on_failure([this, conn](const std::string& reason) {
    if (conn == conn_) lost(reason);
  });
  conn->on_notification([this](const std::string&, const std::string& payload) { on_notification(payload); });
  // A standby cannot take our LISTEN's wake-ups (no NOTIFY there) and lags: refuse it, so a
  // multi-host URL with target_session_attrs=read-write moves on to the new primary.
  // (pg_walfile_name() fails on a standby: the CASE keeps it for a primary.)
  conn->query(
      "SELECT pg_is_in_recovery(), (SELECT log_id::text FROM membership_notifier.settings),"
      "       pg_current_snapshot()::text,"
      "       CASE WHEN NOT pg_is_in_recovery() THEN"
      "         ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::integer END,"
      "       (SELECT encode(key, 'hex') FROM membership_notifier.wake_key),"
      "       (SELECT string_agg(timeline || ':' || through, ',') FROM membership_notifier.delivered)",
      {},
      [this, conn](PgResult r) {
        if (conn != conn_) return;
        if (!r.ok()) {
          if (r.error().find("permission denied") != std::string::npos)
            return lost(r.error() + ": after `migrate up`, run SELECT membership_notifier.grant_sidecar('<this role>')");
          bool missing = r.error().find("membership_notifier") != std::string::npos;
          return lost(missing ? "schema membership_notifier not found or too old: run `membership-notifier migrate up`"
                              : r.error());
        }
        take_server_state(r);
      });
}

void EventLogReader::take_server_state(const PgResult& r) {
  if (r.get(0, 0) == "t") return lost("server is a standby (in recovery)");
  if (r.is_null(0, 1)) return lost("membership_notifier.settings is empty: run `migrate up`");
  auto key = r.is_null(0, 4) ? std::nullopt : parse_wake_key(r.get(0, 4));
  if (!key) return lost("membership_notifier.wake_key is missing: run `membership-notifier migrate up`");
  uint32_t timeline = 0;
  if (r.is_null(0, 3) || !parse_int(r.get(0, 3), timeline)) return lost("cannot read the server's timeline");
  auto now = PgSnapshot::parse(r.get(0, 2));
  if (!now) return lost("unparseable snapshot from server");
  wake_key_ = std::move(*key);
  std::string id(r.get(0, 1));
  const uint32_t old_timeline = timeline_;
  auto proceed = [this, timeline, id, now = *now](bool lost_history) {
    if (lost_history) {
      ++stats_.history_lost;
      cursor_.reset();
      pending_reset_ = true;
    }
    if (timeline != timeline_) delivered_.clear();
    timeline_ = timeline;
    log_id_ = id;
    // First start: begin at the present. Clients that were away resume by their own
    // offsets; the process itself has nothing to catch up on.
    if (!cursor_) cursor_ = now;
    subscribe();
  };
  if (!log_id_.empty() && id != log_id_) {
    spdlog::warn("event log changed ({} -> {}): a restored or different database; "
                 "clients will resynchronise", log_id_, id);
    return proceed(true);
  }
  if (old_timeline == 0 || timeline == old_timeline || delivered_.empty()) return proceed(false);
  // A failover or a recovery onto a new timeline: is what was delivered on the old one here?
  uint64_t through = 0;
  const std::string marks = r.is_null(0, 5) ? "" : std::string(r.get(0, 5));
  const std::string prefix = std::to_string(old_timeline) + ":";
  for (size_t at = 0; at < marks.size();) {
    auto end = std::min(marks.find(',', at), marks.size());
    auto item = std::string_view(marks).substr(at, end - at);
    if (item.substr(0, prefix.size()) == prefix) parse_int(item.substr(prefix.size()), through);
    at = end + 1;
  }
  auto judged = [this, timeline, old_timeline, proceed](bool kept, const std::string& how) {
    if (kept) spdlog::info("the database is on timeline {} now; everything delivered on timeline {} is there ({})",
                           timeline, old_timeline, how);
    else spdlog::warn("the database is on timeline {} now, and changes delivered on timeline {} are not all there "
                      "({}): every client gets a fresh snapshot", timeline, old_timeline, how);
    proceed(!kept);
  };
  std::vector<LogRow> verify;
  switch (delivered_.judge(through, &verify)) {
    case DeliveryRecord::Verdict::kept:
      return judged(true, "its mark covers them");
    case DeliveryRecord::Verdict::unknown:
      return judged(false, "delivered past its mark longer ago than is remembered");
    case DeliveryRecord::Verdict::verify:
      break;
  }
  // Rows past the mark, looked up by key and content: a new primary hands the lost ids and
  // transaction ids out again, to other changes.
  std::vector<uint64_t> xids;
  std::vector<std::string> ids, ops, channels, users;
  for (const auto& row : verify) {
    xids.push_back(row.xid);
    ids.push_back(std::to_string(row.id));
    ops.push_back(row.op);
    channels.push_back(row.channel_id.value_or(""));
    users.push_back(row.user_id.value_or(""));
  }
  auto conn = conn_;
  conn->query(
      "SELECT count(*) FROM unnest($1::xid8[], $2::bigint[], $3::text[], $4::text[], $5::text[]) d(xid, id, op, c, u)"
      " WHERE EXISTS (SELECT FROM membership_notifier.event_log l WHERE l.xid = d.xid AND l.id = d.id"
      "               AND l.op::text = d.op AND coalesce(l.channel_id, '') = d.c AND coalesce(l.user_id, '') = d.u)",
      {xid8_array(xids), "{" + join(ids) + "}", text_array(ops), text_array(channels), text_array(users)},
      [this, conn, judged, n = verify.size()](PgResult v) {
        if (conn != conn_) return;
        if (!v.ok()) return lost("looking up delivered changes after a failover failed: " + v.error());
        judged(v.rows() == 1 && v.get(0, 0) == std::to_string(n),
               std::to_string(n) + " delivered past its mark, looked up one by one");
      },
      cfg_.db_timeout);
}

void EventLogReader::subscribe() {
  auto conn = conn_;
  if (cfg_.wake_mode != WakeMode::poll) {
    conn->query("LISTEN membership_notifier", {}, [this, conn](PgResult r) {
      if (conn == conn_ && !r.ok()) lost("LISTEN failed: " + r.error());
    });
    // The triggers notify only while some sidecar says it is waiting. set_waiting() also
    // drops sidecars that died, so a crashed instance does not keep the triggers notifying.
    set_waiting(true);
  }
  conn->query(session_sql(), {}, [this, conn](PgResult r) {
    if (conn == conn_ && !r.ok()) lost("setting plan_cache_mode and jit failed: " + r.error());
  });
  conn->prepare(kReadStatement, read_sql(), [this, conn](PgResult r) {
    if (conn == conn_ && !r.ok()) lost("preparing the event log read failed: " + r.error());
  });
  // Queued after LISTEN: whatever commits from here on either is in this read or wakes us.
  // (Registered as waiting: in adaptive mode that is an arm, so settle like after one.)
  start_settling();
  // A look at the NOTIFY lock sent on the lost connection never answers; after `migrate up`
  // and a reconnect the function may be there now.
  contention_check_out_ = false;
  contention_seen_ = 0;
  contention_check_works_ = true;
  other_databases_check_works_ = true;
  woken_.clear();
  read();
}

void EventLogReader::lost(const std::string& reason) {
  if (ready_) ++stats_.disconnects;
  schedule_reconnect(reason);
}

void EventLogReader::schedule_reconnect(const std::string& reason) {
  ready_ = false;
  reading_ = false;
  dirty_ = false;
  poll_timer_.cancel();
  if (conn_) conn_->close();
  conn_.reset();
  if (stopped_) return;
  // Capped exponential backoff with jitter, so a fleet of sidecars does not reconnect in step.
  auto cap = std::max<int64_t>(cfg_.reconnect_max.count(), 100);
  int64_t base = std::min<int64_t>(cap, int64_t{100} << std::min(attempt_, 16));
  ++attempt_;
  auto delay = std::uniform_int_distribution<int64_t>(base / 2, base)(rng_);
  spdlog::warn("database: {}; reconnecting in {} ms", reason, delay);
  reconnect_timer_.expires_after(std::chrono::milliseconds(delay));
  reconnect_timer_.async_wait([this](const asio::error_code& ec) {
    if (!ec) connect();
  });
}

void EventLogReader::on_notification(const std::string& payload) {
  auto woken = verify_wake_payload(payload, wake_key_);
  if (!woken) {
    ++stats_.forged_wakeups;
    const auto now = std::chrono::steady_clock::now();
    if (now - forged_logged_ >= kForgedLogEvery) {
      forged_logged_ = now;
      spdlog::warn("a NOTIFY on membership_notifier that the triggers did not send was ignored ({} so far; "
                   "another role of the database sends on the sidecar's channel)", stats_.forged_wakeups);
    }
    return;
  }
  ++stats_.notifications;
  // The wake-ups of one transaction's rows come together at its commit: a new xid is a commit.
  const auto now = CommitBurst::Clock::now();
  double burst = 0;
  if (woken->xid != last_woken_xid_) {
    burst = commit_burst_.add(now, commit_rate_.per_second(now));
    last_woken_xid_ = woken->xid;
  }
  // Already read (a read raced its wake-up, or the payload is an old one sent again): nothing
  // to read for it, nor to count.
  if (cursor_ && cursor_->sees(woken->xid)) return;
  // A commit counts in the rate when it wakes the reader, not a read later: at a burst's start
  // the reads lag the wake-ups, and the spell the burst begins must not count the burst itself.
  if (woken_.size() < kMaxWokenUnread && woken_.insert(woken->xid).second) commit_rate_.add(now);
  wake();
  if (cfg_.wake_mode == WakeMode::adaptive && wake_ != Wake::draining &&
      commit_rate_.per_second(now) >= max_notify_rate()) {
    // Commits come too fast to be worth a NOTIFY each: stop being woken, poll instead.
    return start_polling("the rate limit");
  }
  if (cfg_.wake_mode == WakeMode::adaptive && wake_ != Wake::draining &&
      CommitBurst::starts(burst, commit_burst_.estimate_before(), burst_limit())) {
    // The start of a burst: every commit from here on would take the NOTIFY lock in turn until
    // the estimate caught up (CommitBurst says why). The estimate takes the burst's rate, so
    // the polling this starts lasts as long as the burst does, or until the first read that
    // spans a busy-poll interval finds it over (adapt()).
    commit_rate_.raise_to(now, burst);
    start_polling("a burst", true);
  }
}

std::chrono::milliseconds EventLogReader::quiet_poll_every() const {
  return std::min(kQuietPollEvery, cfg_.busy_poll_interval);
}

void EventLogReader::wake() {
  if (reading_) {
    dirty_ = true;
    return;
  }
  read();
}

void EventLogReader::read() {
  if (!conn_ || stopped_ || !cursor_) return;
  if (reading_) {
    dirty_ = true;
    return;
  }
  reading_ = true;
  read_sent_ = std::chrono::steady_clock::now();
  auto conn = conn_;
  // The cursor is set by the first query on this connection, queued ahead of this one.
  conn->query_prepared(kReadStatement, read_params(*cursor_), [this, conn](PgResult r) {
    if (conn == conn_) on_read(std::move(r));
  }, cfg_.db_timeout);
}

void EventLogReader::on_read(PgResult r) {
  if (!r.ok()) return lost("reading the event log failed: " + r.error());
  if (r.rows() < 1) return lost("reading the event log returned no snapshot");
  std::optional<PgSnapshot> to;
  bool flushed = false;
  std::string insert_lsn;
  for (int i = 0; i < r.rows() && !to; ++i) {
    if (r.is_null(i, 0)) continue;
    to = PgSnapshot::parse(r.get(i, 0));
    queue_usage_ = r.is_null(i, 8) ? 1 : std::strtod(std::string(r.get(i, 8)).c_str(), nullptr);
    flushed = r.get(i, 9) == "t";
    insert_lsn = std::string(r.get(i, 10));
  }
  if (!to) return lost("no snapshot in the server's answer");
  Batch batch;
  batch.from = cursor_ ? *cursor_ : *to;
  batch.to = *to;
  batch.log_id = log_id_;
  batch.timeline = timeline_;
  batch.rows.reserve(static_cast<size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) {
    if (r.is_null(i, 1)) continue;  // the snapshot row
    if (auto row = parse_row(r, i)) batch.rows.push_back(std::move(*row));
    else spdlog::error("event log row {} cannot be parsed; skipped", i);
  }
  const auto by_id = [](const LogRow& a, const LogRow& b) { return a.id < b.id; };
  if (!std::is_sorted(batch.rows.begin(), batch.rows.end(), by_id)) std::sort(batch.rows.begin(), batch.rows.end(), by_id);
  make_times_distinct(batch.rows);
  const bool got_rows = !batch.rows.empty();
  // Transactions that committed between the previous read's snapshot and this one's, less those
  // counted at their wake-up.
  const auto window_from = counted_since_.value_or(read_sent_);
  const auto commits =
      static_cast<double>(count_transactions(batch.rows, [this](uint64_t xid) { return woken_.count(xid) > 0; }));
  const auto all = static_cast<double>(count_transactions(batch.rows, [](uint64_t) { return false; }));
  for (auto it = woken_.begin(); it != woken_.end();) it = to->sees(*it) ? woken_.erase(it) : std::next(it);
  if (commits > 0) {
    commit_rate_.add(CommitRate::Clock::now(), commits, window_from);
    spell_commits_ += commits;
  }
  counted_since_ = read_sent_;
  // Every read while draining, also one that a wake-up made read again before adapt() ran: all
  // the transactions it found, woken for or not, came in its window. The window starts no earlier than the spell: the first read of a spell that a burst began after a
  // pause spans the pause, and began a stretch there (few commits over a long window) that then
  // held against the burst until its commits made up for the pause.
  if (wake_ == Wake::draining) {
    const double quiet_rate = max_notify_rate() / 4;
    const bool was_quiet = quiet_stretch_.holds();
    const auto from = std::max(window_from, spell_started_);
    if (quiet_stretch_.add(from, read_sent_, all, quiet_rate, cfg_.busy_poll_interval) && !was_quiet)
      spdlog::debug("commits fell under {:.0f}/s while polling: reading every {} ms until woken again", quiet_rate,
                    quiet_poll_every().count());
  }
  ++stats_.reads;
  {
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - read_sent_).count();
    stats_.read_seconds += took;
    for (size_t i = 0; i < ReaderStats::kReadBuckets.size(); ++i)
      if (took <= ReaderStats::kReadBuckets[i]) ++stats_.reads_within[i];
  }
  // Nothing to make durable in a read that found no rows and moves no client past one.
  if (!got_rows || (flushed && cfg_.durable_standbys.empty())) return deliver(std::move(batch), got_rows, *to);
  ++stats_.durable_waits;
  auto conn = conn_;
  const PgSnapshot seen = *to;
  await_durable(io_, cfg_, conn, flushed, insert_lsn,
                [this, conn, got_rows, seen, batch = std::move(batch)](const std::string& error) mutable {
                  if (conn != conn_) return;
                  if (!error.empty()) return lost(error);
                  marked_ = std::chrono::steady_clock::now();
                  deliver(std::move(batch), got_rows, seen);
                });
}

void EventLogReader::deliver(Batch batch, bool got_rows, const PgSnapshot& seen) {
  reading_ = false;
  batch.reset = std::exchange(pending_reset_, false);
  cursor_ = batch.to;
  if (got_rows) delivered_.add(batch.to.xmax, std::chrono::steady_clock::now(), batch.rows);
  stats_.rows += batch.rows.size();
  batch.read = true;
  on_batch_(batch);
  if (!ready_) {
    ready_ = true;
    attempt_ = 0;
    ++stats_.connects;
    spdlog::info("database: listening on {} (pid {}, timeline {}), caught up at snapshot {}",
                 conn_ ? conn_->server_address() : "?", conn_ ? conn_->backend_pid() : 0, timeline_,
                 cursor_->to_string());
    if (on_ready_) on_ready_();
  }
  if (got_rows) mark_delivered();
  if (std::exchange(dirty_, false)) return read();
  adapt(got_rows, seen);
}

// Marks how far this timeline is delivered, at most every kMarkEvery, for a failover to tell
// what of this reader's deliveries survived (take_server_state(), and offsets on resume). On a
// connection of its own: the mark is durable, and its flush must not hold up the reads. (A mark
// committed without a flush would make the next read wait for one: its WAL is then the
// unflushed tail the read sees.)
void EventLogReader::mark_delivered() {
  const auto now = std::chrono::steady_clock::now();
  if (now - marked_ < kMarkEvery || marking_) return;
  marked_ = now;
  marking_ = true;
  auto send = [this](const std::shared_ptr<PgConnection>& c) {
    c->query("SELECT membership_notifier.mark_delivered(true)", {}, [this, c](PgResult r) {
      if (c != mark_conn_) return;
      marking_ = false;
      if (!r.ok()) spdlog::warn("marking how far the log is delivered failed: {}", r.error());
    }, cfg_.db_timeout);
  };
  if (mark_conn_ && mark_conn_->connected()) return send(mark_conn_);
  mark_conn_ = PgConnection::create(io_);
  auto c = mark_conn_;
  c->connect(cfg_.database_url, "membership-notifier marks", cfg_.db_timeout, [this, c, send](const std::string& err) {
    if (c != mark_conn_) return;
    if (!err.empty()) {
      marking_ = false;
      mark_conn_.reset();
      return spdlog::warn("marking how far the log is delivered: connect failed: {}", err);
    }
    c->on_failure([this, c](const std::string&) {
      if (c != mark_conn_) return;
      marking_ = false;
      mark_conn_.reset();  // made again at the next mark
    });
    send(c);
  });
}

// Adaptive wake-up. Every notifying commit in the cluster takes one lock held through its WAL
// flush, so the triggers only NOTIFY while a sidecar says it is waiting (set_waiting()):
//  - armed: woken by every commit (each wake-up answered by a read), polling
//    at poll_interval as a safety net, for as long as commits come slower than
//    adaptive_notify_max_rate per second;
//  - draining: no longer waiting, reading every busy_poll_interval while commits come faster
//    than half that (a spell begun by a burst: until a read finds the burst over, that is,
//    commits since then under the limit);
//  - settling: waiting again. A transaction whose trigger looked before the arm committed
//    notifies no one, but it already had its xid then, so it is in the in-progress list of
//    the first read after arming (`armed_at`) or visible to it. Reading on, with backoff,
//    until none of those is still running closes that gap. Any open transaction with an xid in
//    this database keeps it here (other databases' are left out: leave_out_other_databases()),
//    so whatever stops the NOTIFYs while armed must work here too.
bool EventLogReader::settled(const PgSnapshot& seen) {
  if (!armed_at_) {
    armed_at_ = seen;
    leave_out_other_databases();
  }
  return std::none_of(armed_at_->xip.begin(), armed_at_->xip.end(), [&seen](uint64_t x) {
    return std::binary_search(seen.xip.begin(), seen.xip.end(), x);
  });
}

// Transaction ids are cluster-wide, so the arm's list holds transactions of every database,
// and one left open anywhere would keep the reader settling (polling) for as long as it stayed
// open. Only this database's can have logged a change, so the others are dropped from the
// list. Asked once per arm, after its first read; the answer comes before the next read
// (queries run in order), so that read settles without them.
void EventLogReader::leave_out_other_databases() {
  if (armed_at_->xip.empty() || !other_databases_check_works_ || !conn_) return;
  auto conn = conn_;
  conn->query("SELECT unnest(membership_notifier.other_databases_xids($1::xid8[]))::text", {xid8_array(armed_at_->xip)},
              [this, conn, arm = arms_](PgResult r) {
                if (conn != conn_) return;
                if (!r.ok()) {
                  // A schema from before the function: wait for every database's, as then.
                  other_databases_check_works_ = false;
                  spdlog::warn("cannot tell this database's running transactions from other databases' ({}); "
                               "run `migrate up`", r.error());
                  return;
                }
                if (arm != arms_ || !armed_at_) return;  // re-armed since: its own list is asked for
                auto& xip = armed_at_->xip;
                for (int i = 0; i < r.rows(); ++i) {
                  uint64_t x = 0;
                  if (r.is_null(i, 0) || !parse_int(r.get(i, 0), x)) continue;
                  xip.erase(std::remove(xip.begin(), xip.end(), x), xip.end());
                }
              });
}

void EventLogReader::start_settling() {
  wake_ = Wake::settling;
  woken_since_ = std::chrono::steady_clock::now();
  armed_at_.reset();  // taken from the next read
  ++arms_;
  settle_delay_ = cfg_.busy_poll_interval;
}

bool EventLogReader::settle(const PgSnapshot& seen) {
  if (settled(seen)) {
    wake_ = Wake::armed;
    return true;
  }
  settle_delay_ = std::min(settle_delay_ * 2, cfg_.poll_interval);
  schedule_poll(settle_delay_);
  return false;
}

void EventLogReader::poll_while_armed() {
  // The triggers stop notifying once the notification queue is half full (a session that
  // LISTENs and never reads holds it there, whoever it is): read every busy-poll interval then.
  schedule_poll(queue_usage_ >= 0.25 ? cfg_.busy_poll_interval : cfg_.poll_interval);
}

void EventLogReader::adapt(bool got_rows, const PgSnapshot& seen) {
  if (cfg_.wake_mode == WakeMode::poll) return schedule_poll(cfg_.poll_interval);
  if (cfg_.wake_mode == WakeMode::notify) {
    // Waiting from the first read on; every commit notifies.
    (void)seen;
    return poll_while_armed();
  }
  double rate = commit_rate_.per_second(CommitRate::Clock::now());
  const double max_rate = max_notify_rate();
  if (got_rows && wake_ != Wake::draining && rate >= max_rate) start_polling("the rate limit");
  switch (wake_) {
    case Wake::draining: {
      bool burst_over = false;
      if (burst_unconfirmed_ && read_sent_ - spell_started_ >= cfg_.busy_poll_interval) {
        // The first read since a burst began the spell that spans a busy-poll interval: the
        // commits it found since then are the rate now. A burst that is over (a writer caught
        // up) leaves the estimate at that rate, so the NOTIFYs are back within a read; a
        // stream goes on as measured. (Some of the burst's commits may be in this count, so a
        // burst over reads high, never low.) Over means under the limit, not half of it: the
        // spell was the burst's, not the rate's, and a stream under the limit is worth a NOTIFY
        // a commit by the limit's own measure. Against half, a steady stream at half the limit
        // (the bench's 1,000/s against 2,000) stayed polling until the estimate happened to
        // dip under it: 510 ms in one run, 193 deliveries over 20 ms.
        const double span = std::chrono::duration<double>(read_sent_ - spell_started_).count();
        const double measured = spell_commits_ / span;
        burst_unconfirmed_ = false;
        spdlog::debug("a burst's spell, first read a busy-poll interval on: {:.0f} commits in {:.0f} ms, "
                      "{:.0f}/s ({})", spell_commits_, span * 1000, measured,
                      measured < max_rate ? "over, waiting for wake-ups again" : "a stream, polling on");
        if (measured < max_rate) {
          rate = measured;
          commit_rate_.set(CommitRate::Clock::now(), measured);
          burst_over = true;
        }
      }
      // A spell the queue on the NOTIFY lock began lasts until the commits queued then have had
      // their turns: they notify whatever the triggers now do, so reads find them at the queue's
      // rate, under half of the limit it set. On a disk flushing in 100 ms (test SlowerDisk) the
      // reader re-armed 150 ms into each spell, before the queue of 7 had drained, and new
      // commits queued behind it: the writers kept 15-18 commits/s of the 80 the disk allows.
      // Polled at the busy-poll interval meanwhile: the load is not over.
      if (std::chrono::steady_clock::now() < queue_drains_at_) return schedule_poll(cfg_.busy_poll_interval);
      // Poll on while commits come faster than half the limit (hysteresis, so a rate near it
      // does not flip the mode at every read); else be woken again. Not on the first read that
      // comes back empty: under a fast stream that is a stall (an fsync, a checkpoint), and
      // re-arming then made every commit NOTIFY until the rate was measured again (the
      // estimate decays from a high rate below half the limit within a few tau anyway).
      // (A limit of 0: re-arm on the first empty read.) A burst found over re-arms under the
      // limit itself: the hysteresis is for spells the rate began.
      // Nor before a burst's spell has had its first read a busy-poll interval on: the burst
      // is judged against a lower limit than the rate (burst_limit()), so its rate may read
      // under half of max_rate, and a read sent before the spell re-armed 2 ms into it.
      // Commits well under the limit since some read (QuietStretch): a load is over, or paused,
      // while the estimate still reads it. Read again within a millisecond, so that changes wait
      // that long, not a busy-poll interval until the estimate lets the reader be woken.
      if (burst_unconfirmed_ || (max_rate > 0 ? rate >= (burst_over ? max_rate : max_rate / 2) : got_rows))
        return schedule_poll(quiet_stretch_.holds() ? quiet_poll_every() : cfg_.busy_poll_interval);
      spdlog::debug("waiting for wake-ups again after {} ms of polling ({:.0f} commits/s lately, limit {:.0f})",
                    std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - spell_started_).count(),
                    rate, max_rate);
      set_waiting(true);
      start_settling();
      return read();  // queued after the UPDATE: its snapshot sees the arm committed
    }
    case Wake::settling:
      check_notify_contention();
      if (!settle(seen)) return;
      return poll_while_armed();
    case Wake::armed:
      check_notify_contention();
      return poll_while_armed();
  }
}

double EventLogReader::burst_limit() const {
  const double limit = max_notify_rate();
  const double seen = contended_.burst_limit();
  return seen > 0 ? std::min(limit, seen) : limit;
}

double EventLogReader::max_notify_rate() const {
  const double limit = cfg_.adaptive_notify_max_rate;
  const double contended = contended_.at(std::chrono::steady_clock::now(), limit);
  return contended > 0 ? std::min(limit, contended) : limit;
}

// The rate limit is a guess at where a NOTIFY per commit starts to cost the application; the
// lock's queue says so for sure. On a disk whose flush takes 2 ms, notifying commits go one at a
// time at 500/s, below the default limit: without this check adaptive mode would keep
// serialising every commit of a busy application.
void EventLogReader::check_notify_contention() {
  // Settling too: the triggers notify from the arm on, and settling can last as long as any
  // transaction that was open at the arm (in this database) stays open.
  if (cfg_.wake_mode != WakeMode::adaptive || wake_ == Wake::draining || !contention_check_works_ ||
      contention_check_out_ || !conn_)
    return;
  const auto now = std::chrono::steady_clock::now();
  if (now - contention_checked_ < (contention_seen_ > 0 ? kContentionConfirmEvery : kContentionCheckEvery)) return;
  if (commit_rate_.per_second(now) < kContentionMinRate) return;
  contention_checked_ = now;
  contention_check_out_ = true;
  auto conn = conn_;
  conn->query("SELECT membership_notifier.notify_lock_waiters()", {}, [this, conn](PgResult r) {
    if (conn != conn_) return;
    contention_check_out_ = false;
    if (!r.ok()) {
      // A schema from before the function: the rate limit alone decides, as it did then.
      contention_check_works_ = false;
      spdlog::warn("cannot see whether commits queue on the NOTIFY lock ({}); run `migrate up`", r.error());
      return;
    }
    int waiters = 0;
    if (r.rows() < 1 || r.is_null(0, 0) || !parse_int(r.get(0, 0), waiters)) return;
    // A queue now and then is a chance meeting; one at every look, for kContentionChecks
    // looks in a row, is commits taking turns.
    contention_seen_ = waiters >= 2 ? contention_seen_ + 1 : 0;
    if (contention_seen_ < kContentionChecks || wake_ == Wake::draining) return;
    contention_seen_ = 0;
    const auto seen_at = std::chrono::steady_clock::now();
    const double rate = CommitBurst::contended_rate(commit_rate_.per_second(seen_at), commit_burst_.rate(seen_at));
    contended_.seen(seen_at, rate, woken_since_);
    // The estimate may lag that rate (CommitBurst::contended_rate() says why): read against it,
    // it re-armed at once, and the commits queued again.
    commit_rate_.raise_to(seen_at, rate);
    ++stats_.notify_contention;
    spdlog::info("commits queue on the NOTIFY lock ({} waiting) at {:.0f} commits/s: polling from that "
                 "rate on, the limit doubling every {} ms", waiters, rate, contended_.relax_after().count());
    start_polling("commits queueing on the NOTIFY lock");
    queue_drains_at_ = seen_at + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                     std::chrono::duration<double>((waiters + 1) / std::max(rate, 1.0)));
    if (!reading_) schedule_poll(cfg_.busy_poll_interval);
  });
}

void EventLogReader::start_polling(const char* why, bool by_burst) {
  set_waiting(false);
  wake_ = Wake::draining;
  spell_started_ = std::chrono::steady_clock::now();
  spell_commits_ = 0;
  burst_unconfirmed_ = by_burst;
  quiet_stretch_.reset();
  queue_drains_at_ = {};
  spdlog::debug("polling instead of being woken: {} ({:.0f} commits/s lately)", why,
                commit_rate_.per_second(spell_started_));
  contention_seen_ = 0;
  ++stats_.polling_spells;
}

void EventLogReader::set_waiting(bool waiting) {
  if (waiting && standing_down_) return;
  auto conn = conn_;
  conn->query("SELECT membership_notifier.set_waiting($1)",
              {waiting ? "true" : "false"}, [this, conn](PgResult r) {
                if (conn == conn_ && !r.ok()) lost("updating the wake-up mark failed: " + r.error());
              });
}

void EventLogReader::schedule_poll(std::chrono::milliseconds after) {
  // Also the round-trip probe: a read that goes unanswered for db_timeout breaks the
  // connection, so a half-open one is noticed within poll_interval + db_timeout.
  poll_timer_.expires_after(after);
  poll_timer_.async_wait([this](const asio::error_code& ec) {
    if (!ec && !reading_) read();
  });
}

}  // namespace mn
