#include "event_log_reader.h"

#include "durable_gate.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <utility>

namespace mn {
namespace {

constexpr const char* kReadStatement = "membership_notifier_read";
// A forged wake-up is logged at most this often (each is counted).
constexpr std::chrono::seconds kForgedLogEvery{10};

}  // namespace

EventLogReader::EventLogReader(asio::io_context& io, const Config& cfg, BatchHandler on_batch)
    : io_(io), cfg_(cfg), on_batch_(std::move(on_batch)), reconnect_timer_(io), poll_timer_(io),
      rng_(std::random_device{}()), policy_(WakePolicyConfig::from(cfg)) {}

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
  policy_.standing_down();
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

void EventLogReader::subscribe() {
  auto conn = conn_;
  if (cfg_.wake_mode != WakeMode::poll) {
    conn->query("LISTEN membership_notifier", {}, [this, conn](PgResult r) {
      if (conn == conn_ && !r.ok()) lost("LISTEN failed: " + r.error());
    });
  }
  // The triggers notify only while some sidecar says it is waiting (the policy arms unless in
  // poll mode). set_waiting() also drops sidecars that died, so a crashed instance does not
  // keep the triggers notifying.
  execute(policy_.connected(std::chrono::steady_clock::now()));
  conn->query(session_sql(), {}, [this, conn](PgResult r) {
    if (conn == conn_ && !r.ok()) lost("setting plan_cache_mode and jit failed: " + r.error());
  });
  conn->prepare(kReadStatement, read_sql(), [this, conn](PgResult r) {
    if (conn == conn_ && !r.ok()) lost("preparing the event log read failed: " + r.error());
  });
  // Queued after LISTEN: whatever commits from here on either is in this read or wakes us.
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
  execute(policy_.woken(std::chrono::steady_clock::now(), woken->xid, cursor_ && cursor_->sees(woken->xid)));
}

void EventLogReader::read() {
  if (!conn_ || stopped_ || !cursor_) return;
  if (reading_) {
    dirty_ = true;
    return;
  }
  reading_ = true;
  read_sent_ = std::chrono::steady_clock::now();
  policy_.read_sent(read_sent_);
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
  double queue_usage = 1;
  bool flushed_by_read = false;
  std::string insert_lsn;
  for (int i = 0; i < r.rows() && !to; ++i) {
    if (r.is_null(i, 0)) continue;
    to = PgSnapshot::parse(r.get(i, 0));
    queue_usage = r.is_null(i, 8) ? 1 : std::strtod(std::string(r.get(i, 8)).c_str(), nullptr);
    flushed_by_read = r.get(i, 9) == "t";
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
  policy_.read_returned(std::chrono::steady_clock::now(), batch.rows, *to, queue_usage);
  ++stats_.reads;
  {
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - read_sent_).count();
    stats_.read_seconds += took;
    for (size_t i = 0; i < ReaderStats::kReadBuckets.size(); ++i)
      if (took <= ReaderStats::kReadBuckets[i]) ++stats_.reads_within[i];
  }
  // The read's own commit flushed the WAL past what it saw (kFlushesAtCommitSql), and the answer
  // comes after the commit: its rows are durable on this server now. Only the named standbys
  // may still lack them.
  if (got_rows && (flushed_by_read || !cfg_.durable_standbys.empty())) ++stats_.durable_waits;
  if (!got_rows || cfg_.durable_standbys.empty()) return deliver(std::move(batch), got_rows, *to);
  auto conn = conn_;
  const PgSnapshot seen = *to;
  await_durable(io_, cfg_, conn, true, insert_lsn,
                [this, conn, got_rows, seen, batch = std::move(batch)](const std::string& error) mutable {
                  if (conn != conn_) return;
                  if (!error.empty()) return lost(error);
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
  execute(policy_.read_delivered(std::chrono::steady_clock::now(), got_rows, seen));
}

void EventLogReader::set_waiting(bool waiting) {
  if (waiting && standing_down_) return;
  auto conn = conn_;
  conn->query("SELECT membership_notifier.set_waiting($1)",
              {waiting ? "true" : "false"}, [this, conn](PgResult r) {
                if (conn == conn_ && !r.ok()) lost("updating the wake-up mark failed: " + r.error());
              });
}

void EventLogReader::execute(const WakeActions& actions) {
  for (const auto& a : actions) {
    switch (a.kind) {
      case WakeAction::arm:
        set_waiting(true);
        break;
      case WakeAction::disarm:
        set_waiting(false);
        break;
      case WakeAction::read_now:
        read();
        break;
      case WakeAction::read_after:
        schedule_poll(a.after);
        break;
      case WakeAction::look_at_queue:
        look_at_queue();
        break;
      case WakeAction::ask_other_databases:
        ask_other_databases(a.arm_id, a.xids);
        break;
    }
  }
  stats_.polling_spells = policy_.polling_spells();
  stats_.notify_contention = policy_.notify_contention();
}

// How many sessions queue for the NOTIFY lock (the policy's look, wake_policy.h).
void EventLogReader::look_at_queue() {
  if (!conn_) return;
  auto conn = conn_;
  conn->query("SELECT membership_notifier.notify_lock_waiters()", {}, [this, conn](PgResult r) {
    if (conn != conn_) return;
    if (!r.ok()) {
      // A schema from before the function: the rate limit alone decides, as it did then.
      policy_.queue_unseeable();
      spdlog::warn("cannot see whether commits queue on the NOTIFY lock ({}); run `migrate up`", r.error());
      return;
    }
    int waiters = 0;
    std::optional<int> seen;
    if (r.rows() >= 1 && !r.is_null(0, 0) && parse_int(r.get(0, 0), waiters)) seen = waiters;
    execute(policy_.queue_seen(std::chrono::steady_clock::now(), seen, reading_));
  });
}

// Which of the arm's in-progress transactions are other databases' (the policy leaves them out:
// they cannot have logged a change here). The answer comes before the next read.
void EventLogReader::ask_other_databases(uint64_t arm_id, const std::vector<uint64_t>& xids) {
  if (!conn_) return;
  auto conn = conn_;
  conn->query("SELECT unnest(membership_notifier.other_databases_xids($1::xid8[]))::text", {xid8_array(xids)},
              [this, conn, arm_id](PgResult r) {
                if (conn != conn_) return;
                if (!r.ok()) {
                  // A schema from before the function: wait for every database's, as then.
                  policy_.other_databases_unknowable();
                  spdlog::warn("cannot tell this database's running transactions from other databases' ({}); "
                               "run `migrate up`", r.error());
                  return;
                }
                std::vector<uint64_t> others;
                for (int i = 0; i < r.rows(); ++i) {
                  uint64_t x = 0;
                  if (!r.is_null(i, 0) && parse_int(r.get(i, 0), x)) others.push_back(x);
                }
                policy_.other_databases(arm_id, others);
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
