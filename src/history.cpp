#include "history.h"

#include "durable_gate.h"
#include "event.h"
#include "history_sql.h"
#include "replay_batch.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <set>

namespace mn {
namespace {

constexpr size_t kMaxUsersPerQuery = 1000;  // a snapshot's or a replay's

// A replay reads the log from the batch's oldest position on, for up to a thousand users: it
// can rightly take far longer than db_timeout, and timing it out would only fail every client
// of the batch, who would reconnect and ask again. A dead server is still noticed within
// seconds (the connection's keepalives and tcp_user_timeout).
constexpr std::chrono::milliseconds kReplayDeadline = std::chrono::seconds(60);


}  // namespace

History::History(asio::io_context& io, const Config& cfg) : io_(io), cfg_(cfg) {}

History::~History() { stop(); }

void History::stop() {
  if (conn_) conn_->close();
  conn_.reset();
  ready_ = false;
  replay_running_ = false;
  waiting_.clear();
  snapshots_.clear();
  replays_.clear();
  in_flight_.clear();
}

bool History::fits_column_type(const std::string& type, const std::string& id) {
  if (id.empty() || id.size() > 1024) return false;
  if (type == "uuid") {
    if (id.size() != 36) return false;
    for (size_t i = 0; i < id.size(); ++i) {
      char c = id[i];
      bool dash = i == 8 || i == 13 || i == 18 || i == 23;
      if (dash ? c != '-' : !std::isxdigit(static_cast<unsigned char>(c))) return false;
    }
    return true;
  }
  if (type == "bigint" || type == "integer" || type == "smallint") {
    long long v = 0;
    auto [p, ec] = std::from_chars(id.data(), id.data() + id.size(), v);
    if (ec != std::errc() || p != id.data() + id.size()) return false;
    if (type == "integer") return v >= INT32_MIN && v <= INT32_MAX;
    if (type == "smallint") return v >= INT16_MIN && v <= INT16_MAX;
    return true;
  }
  return true;  // text-like: anything can be compared
}

void History::ensure_connected() {
  if (conn_) return;
  conn_ = PgConnection::create(io_);
  auto conn = conn_;
  conn->connect(cfg_.database_url, "membership-notifier history", cfg_.db_timeout,
                [this, conn](const std::string& err) {
                  if (conn != conn_) return;
                  if (!err.empty()) return fail_all("connect failed: " + err);
                  conn->on_failure([this, conn](const std::string& reason) {
                    if (conn == conn_) fail_all(reason);
                  });
                  on_connected();
                });
}

void History::on_connected() {
  auto conn = conn_;
  // No JIT for these queries. A replay's plan is costed for a read from its oldest position on;
  // where the log's statistics lag (a log filled since autovacuum last analyzed it), that
  // costs it past jit_above_cost even when the read finds nothing, and compiling it took
  // 300-570 ms here against 0.1-0.4 ms without. Queued first: queries run in order.
  conn->query("SET jit = off", {}, [this, conn](PgResult r) {
    if (conn == conn_ && !r.ok()) spdlog::warn("history connection: SET jit = off failed: {}", r.error());
  });
  conn->query(kSnapshotSqlBuilder, {}, [this, conn](PgResult r) {
    if (conn != conn_) return;
    if (!r.ok() || r.rows() != 1) {
      return fail_all(r.ok() ? "membership_notifier.settings is empty or the member table is gone"
                             : r.error());
    }
    log_id_ = std::string(r.get(0, 0));
    user_type_ = std::string(r.get(0, 1));
    snapshot_sql_ = std::string(r.get(0, 2));
    ready_ = true;
    auto work = std::move(waiting_);
    waiting_.clear();
    for (auto& w : work) w();
  });
}

void History::fail_all(const std::string& reason) {
  spdlog::warn("history connection: {}", reason);
  if (conn_) conn_->close();
  conn_.reset();
  ready_ = false;
  replay_running_ = false;
  auto work = std::move(waiting_);
  waiting_.clear();
  auto snaps = std::move(snapshots_);
  snapshots_.clear();
  auto replays = std::move(replays_);
  replays_.clear();
  auto in_flight = std::move(in_flight_);
  in_flight_.clear();
  // Queued work learns of the failure through its own handler (with ready_ false it reports
  // the error instead of querying).
  for (auto& w : work) w();
  for (auto& [id, on_lost] : in_flight) on_lost(reason);
  answer_error(snaps, "database unavailable: " + reason);
  answer_error(replays, "database unavailable: " + reason);
}

void History::answer_error(std::vector<PendingReplay>& replays, const std::string& error) {
  for (auto& p : replays) {
    ReplayResult res;
    res.error = error;
    p.done(std::move(res));
  }
}

void History::answer_error(std::vector<PendingSnapshot>& snapshots, const std::string& error) {
  SnapshotResult res;
  res.error = error;
  for (auto& s : snapshots) s.done(res);
}

uint64_t History::track_in_flight(std::function<void(const std::string&)> on_lost) {
  uint64_t id = ++next_in_flight_;
  in_flight_.emplace(id, std::move(on_lost));
  return id;
}

void History::replay(const std::string& user_id, const Offset& from, ReplayHandler done) {
  replays_.push_back({user_id, from, std::move(done)});
  ensure_connected();
  schedule_replays();
}

void History::flush_later(bool& scheduled, void (History::*flush)()) {
  if (scheduled) return;
  scheduled = true;
  asio::post(io_, [this, &scheduled, flush] {
    scheduled = false;
    if (ready_) return (this->*flush)();
    waiting_.push_back([this, flush] {
      if (ready_) (this->*flush)();
    });
  });
}

void History::schedule_replays() {
  // Resumes that come while a replay query runs join the next one.
  if (replay_running_ || replays_.empty()) return;
  flush_later(replay_flush_scheduled_, &History::flush_replays);
}

void History::flush_replays() {
  if (replay_running_ || replays_.empty() || !ready_) return;
  // Newest positions first: a client away for a moment neither waits for nor shares the long
  // read of one away for hours.
  std::stable_sort(replays_.begin(), replays_.end(), [](const PendingReplay& a, const PendingReplay& b) {
    return a.from.pos.base.xmax > b.from.pos.base.xmax;
  });
  size_t n = std::min(replays_.size(), kMaxUsersPerQuery);
  auto batch = std::make_shared<std::vector<PendingReplay>>(std::make_move_iterator(replays_.begin()),
                                                            std::make_move_iterator(replays_.begin() + n));
  replays_.erase(replays_.begin(), replays_.begin() + n);
  replay_running_ = true;
  // One registration for the batch's queries; the ones answered early leave `batch`.
  uint64_t id = track_in_flight([batch](const std::string& why) {
    answer_error(*batch, "database unavailable: " + why);
  });
  if (cfg_.max_replay_rows == 0) return read_replays(batch, id);
  std::vector<uint64_t> xmaxes;
  for (const auto& p : *batch) xmaxes.push_back(p.from.pos.base.xmax);
  std::sort(xmaxes.begin(), xmaxes.end());
  xmaxes.erase(std::unique(xmaxes.begin(), xmaxes.end()), xmaxes.end());
  conn_->query(kBehindSql, {xid8_array(xmaxes)}, [this, batch, id](PgResult r) {
    if (!r.ok()) {
      done_in_flight(id);
      replay_running_ = false;
      answer_replays(*batch, r);
      return schedule_replays();
    }
    std::unordered_map<uint64_t, int64_t> behind;
    for (int i = 0; i < r.rows(); ++i) {
      uint64_t x = 0;
      int64_t rows = 0;
      auto xs = r.get(i, 0);
      std::from_chars(xs.data(), xs.data() + xs.size(), x);
      if (!r.is_null(i, 1)) {
        auto rs = r.get(i, 1);
        std::from_chars(rs.data(), rs.data() + rs.size(), rows);
      }
      behind[x] = rows;
    }
    // Too far behind: a snapshot, which reads only the user's memberships.
    std::vector<PendingReplay> far;
    auto keep = std::stable_partition(batch->begin(), batch->end(), [&](const PendingReplay& p) {
      return behind[p.from.pos.base.xmax] <= static_cast<int64_t>(cfg_.max_replay_rows);
    });
    far.assign(std::make_move_iterator(keep), std::make_move_iterator(batch->end()));
    batch->erase(keep, batch->end());
    for (auto& p : far) {
      ReplayResult res;
      res.why_not = "offset is about " + std::to_string(behind[p.from.pos.base.xmax]) +
                    " log rows behind, more than --max-replay-rows";
      p.done(std::move(res));
    }
    if (!batch->empty()) return read_replays(batch, id);
    done_in_flight(id);
    replay_running_ = false;
    schedule_replays();
  }, cfg_.db_timeout);
}

void History::read_replays(std::shared_ptr<std::vector<PendingReplay>> batch, uint64_t id) {
  std::vector<StreamPosition> positions;
  std::set<std::string> users;
  for (const auto& p : *batch) {
    positions.push_back(p.from.pos);
    users.insert(p.user_id);
  }
  ReplayScan scan = plan_replay_scan(positions);
  ++stats_.replay_queries;
  stats_.replay_resumes += batch->size();
  auto started = std::chrono::steady_clock::now();
  conn_->query(
      kReplaySql,
      {std::to_string(scan.from_xid), xid8_array(scan.below),
       std::to_string(scan.below.empty() ? scan.from_xid : scan.below.front()),
       text_array({users.begin(), users.end()})},
      [this, batch, id, started](PgResult r) {
        stats_.replay_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        auto results = std::make_shared<std::vector<ReplayResult>>(judge_replays(*batch, r));
        const bool rows = std::any_of(results->begin(), results->end(), [](const ReplayResult& res) {
          return !res.rows.empty();
        });
        const bool flushed = !r.ok() || r.rows() < 1 || r.get(0, 10) == "t";
        const std::string lsn = r.ok() && r.rows() > 0 ? std::string(r.get(0, 11)) : "";
        // Replayed rows go out once durable (durable_gate.h); the in-flight registration stays
        // until then, so that a connection lost meanwhile answers with an error.
        await_durable(io_, cfg_, conn_, flushed || !rows, rows ? lsn : "",
                      [this, batch, id, results](const std::string& error) {
                        done_in_flight(id);
                        replay_running_ = false;
                        if (!error.empty()) {
                          answer_error(*batch, error);
                        } else {
                          for (size_t i = 0; i < batch->size(); ++i) (*batch)[i].done(std::move((*results)[i]));
                        }
                        schedule_replays();
                      });
      },
      std::max(cfg_.db_timeout, kReplayDeadline));
}

void History::answer_replays(std::vector<PendingReplay>& batch, const PgResult& r) {
  auto results = judge_replays(batch, r);
  for (size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
}

std::vector<ReplayResult> History::judge_replays(const std::vector<PendingReplay>& batch, const PgResult& r) {
  std::vector<ReplayResult> results(batch.size());
  std::string error;
  std::optional<PgSnapshot> now;
  if (!r.ok() || r.rows() < 1) error = r.ok() ? "no snapshot returned" : r.error();
  else if (!(now = PgSnapshot::parse(r.get(0, 0)))) error = "unparseable snapshot";
  if (!error.empty()) {
    for (auto& res : results) res.error = error;
    return results;
  }
  uint64_t pruned = 0;
  auto pt = r.get(0, 8);
  std::from_chars(pt.data(), pt.data() + pt.size(), pruned);
  std::string log_id(r.get(0, 9));
  uint32_t timeline = 0;
  {
    auto t = r.get(0, 12);
    std::from_chars(t.data(), t.data() + t.size(), timeline);
  }
  // How far each earlier timeline's history is known to reach on this server.
  std::map<uint32_t, uint64_t> reaches;
  if (!r.is_null(0, 13)) {
    std::string_view marks = r.get(0, 13);
    for (size_t at = 0; at < marks.size();) {
      size_t end = std::min(marks.find(',', at), marks.size());
      auto item = marks.substr(at, end - at);
      auto colon = item.find(':');
      uint32_t tl = 0;
      uint64_t through = 0;
      if (colon != std::string_view::npos) {
        std::from_chars(item.data(), item.data() + colon, tl);
        std::from_chars(item.data() + colon + 1, item.data() + item.size(), through);
        reaches[tl] = through;
      }
      at = end + 1;
    }
  }
  std::vector<LogRow> parsed;
  parsed.reserve(static_cast<size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) {
    if (r.is_null(i, 1)) continue;
    if (auto row = parse_row(r, i)) parsed.push_back(std::move(*row));
  }
  const ReplayRows rows(std::move(parsed));
  for (size_t i = 0; i < batch.size(); ++i) {
    const PendingReplay& p = batch[i];
    ReplayResult& res = results[i];
    res.now = *now;
    res.log_id = log_id;
    if (log_id != p.from.log_id) {
      res.why_not = "offset is from another event log";
    } else if (p.from.timeline != 0 && p.from.timeline != timeline &&
               !(reaches.count(p.from.timeline) && reaches[p.from.timeline] >= p.from.pos.upto.xmax)) {
      res.why_not = "offset is from timeline " + std::to_string(p.from.timeline) +
                    ", and this server's history may lack what it had seen (a failover)";
    } else if (p.from.pos.upto.xmax > now->xmax) {
      res.why_not = "offset is ahead of this database";
    } else if (pruned >= p.from.pos.base.xmin) {
      // Rows up to `pruned` are gone; the position may not have seen all of them.
      res.why_not = "offset is older than the retained log";
    } else {
      Unseen unseen = rows.unseen_by(p.user_id, p.from.pos);
      if (unseen.truncated) res.why_not = "the membership table was truncated since the offset";
      else res.rows = std::move(unseen.rows);
    }
    res.resumable = res.why_not.empty();
  }
  return results;
}

void History::snapshot(const std::string& user_id, SnapshotHandler done) {
  snapshots_.push_back({user_id, std::move(done)});
  ensure_connected();
  flush_later(flush_scheduled_, &History::flush_snapshots);
}

void History::flush_snapshots() {
  while (!snapshots_.empty()) {
    std::vector<PendingSnapshot> batch;
    size_t n = std::min(snapshots_.size(), kMaxUsersPerQuery);
    batch.assign(std::make_move_iterator(snapshots_.begin()), std::make_move_iterator(snapshots_.begin() + n));
    snapshots_.erase(snapshots_.begin(), snapshots_.begin() + n);
    std::set<std::string> users;
    for (const auto& p : batch)
      if (fits_column_type(user_type_, p.user_id)) users.insert(p.user_id);
    auto shared = std::make_shared<std::vector<PendingSnapshot>>(std::move(batch));
    std::string log_id = log_id_;
    uint64_t id = track_in_flight([shared](const std::string& why) {
      answer_error(*shared, "database unavailable: " + why);
    });
    conn_->query(snapshot_sql_, {text_array({users.begin(), users.end()})},
                 [this, shared, log_id, id](PgResult r) {
                   const bool flushed = !r.ok() || r.rows() < 1 || r.get(0, 4) == "t";
                   const std::string lsn = r.ok() && r.rows() > 0 ? std::string(r.get(0, 5)) : "";
                   await_durable(io_, cfg_, conn_, flushed, lsn, [this, shared, log_id, id, r](const std::string& error) {
                     answer_snapshots(*shared, log_id, id, error.empty() ? r : PgResult(), error);
                   });
                 },
                 cfg_.db_timeout);
  }
}

void History::answer_snapshots(std::vector<PendingSnapshot>& batch, const std::string& log_id, uint64_t id,
                               const PgResult& r, const std::string& durable_error) {
                   done_in_flight(id);
                   SnapshotResult res;
                   res.log_id = log_id;
                   if (!durable_error.empty()) res.error = durable_error;
                   else if (!r.ok() || r.rows() < 1) res.error = r.ok() ? "no snapshot returned" : r.error();
                   auto now = r.ok() && r.rows() > 0 ? PgSnapshot::parse(r.get(0, 0)) : std::nullopt;
                   if (res.error.empty() && !now) res.error = "unparseable snapshot";
                   if (now) res.now = *now;
                   for (int i = 0; res.error.empty() && i < r.rows(); ++i) {
                     if (r.is_null(i, 1) || r.is_null(i, 2)) continue;
                     res.by_user[std::string(r.get(i, 1))].push_back(
                         Membership{std::string(r.get(i, 2)), r.get_opt(i, 3)});
                   }
                   for (auto& p : batch) p.done(res);
}

}  // namespace mn
