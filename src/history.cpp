#include "history.h"

#include "event_log_reader.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <set>

namespace mn {
namespace {

constexpr size_t kMaxUsersPerSnapshotQuery = 1000;

// Builds, on the server, the snapshot query for the configured mapping: column names are
// quoted by format(%I) there, never pasted together here.
constexpr const char* kSnapshotSqlBuilder =
    "SELECT s.log_id::text, a.atttypid::regtype::text, format("
    "  'SELECT s.snap::text, m.u, m.c, m.x FROM (SELECT pg_current_snapshot() AS snap) s "
    "   LEFT JOIN LATERAL (SELECT r.%2$I::text AS u, r.%3$I::text AS c, %4$s AS x FROM %1$s r "
    "   WHERE r.%2$I = ANY($1::%5$s[])) m ON true',"
    "  s.member_table::regclass, s.user_column, s.channel_column,"
    "  membership_notifier.xtype_expr('r', s.channel_column, s.xtype_column,"
    "                                 s.channels_table::regclass, s.channels_key),"
    "  format_type(a.atttypid, NULL))"
    " FROM membership_notifier.settings s"
    " JOIN pg_attribute a ON a.attrelid = s.member_table::regclass AND a.attname = s.user_column";

// Rows of one user that a position has not seen, up to now; plus what decides whether the
// position can be honoured at all: how far pruning has gone, and which log this is.
// Times: the rule of make_times_distinct() (event.h) over every row of each transaction, not
// only this user's, so that a replayed event carries the very time the live one did:
// t = rank + max(stored - rank) over the transaction's rows so far, in id order.
constexpr const char* kReplaySql =
    "SELECT s.snap::text, e.id, e.xid::text, e.op::text, e.channel_id, e.user_id, e.xtype,"
    "       e.t_us, st.pruned_through::text, st.log_id::text"
    "  FROM (SELECT pg_current_snapshot() AS snap) s"
    "  CROSS JOIN membership_notifier.settings st"
    "  LEFT JOIN LATERAL ("
    "    SELECT * FROM ("
    "      SELECT w.*, w.rn + max(w.us - w.rn) OVER (PARTITION BY w.xid ORDER BY w.id) AS t_us FROM ("
    "        SELECT l.*, (extract(epoch FROM l.occurred_at) * 1000000)::bigint AS us,"
    "               row_number() OVER (PARTITION BY l.xid ORDER BY l.id) AS rn"
    "          FROM membership_notifier.event_log l"
    "         WHERE l.xid IN (SELECT c.xid FROM ("
    "           SELECT l.xid, l.user_id, l.op FROM membership_notifier.event_log l"
    "            WHERE l.xid >= pg_snapshot_xmax($1::pg_snapshot)"
    "           UNION ALL"
    "           SELECT l.xid, l.user_id, l.op FROM membership_notifier.event_log l"
    "            WHERE l.xid >= pg_snapshot_xmin($1::pg_snapshot) AND l.xid < pg_snapshot_xmax($1::pg_snapshot)"
    "              AND l.xid = ANY (ARRAY(SELECT pg_snapshot_xip($1::pg_snapshot)))) c"
    "           WHERE c.user_id = $3 OR c.op = 't')) w) x"
    "     WHERE (x.user_id = $3 OR x.op = 't')"
    "       AND NOT (pg_visible_in_snapshot(x.xid, $2::pg_snapshot) AND x.id <= $4::bigint)) e ON true"
    " ORDER BY e.id";

std::string postgres_array(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

}  // namespace

History::History(asio::io_context& io, const Config& cfg) : io_(io), cfg_(cfg) {}

History::~History() { stop(); }

void History::stop() {
  if (conn_) conn_->close();
  conn_.reset();
  ready_ = false;
  waiting_.clear();
  snapshots_.clear();
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
  auto work = std::move(waiting_);
  waiting_.clear();
  auto snaps = std::move(snapshots_);
  snapshots_.clear();
  // Queued work learns of the failure through its own handler (with ready_ false it reports
  // the error instead of querying).
  for (auto& w : work) w();
  for (auto& s : snaps) {
    SnapshotResult res;
    res.error = "database unavailable: " + reason;
    s.done(std::move(res));
  }
}

void History::replay(const std::string& user_id, const Offset& from, ReplayHandler done) {
  ensure_connected();
  if (ready_) return run_replay(user_id, from, std::move(done));
  waiting_.push_back([this, user_id, from, done = std::move(done)]() mutable {
    if (!ready_) {
      ReplayResult res;
      res.error = "database unavailable";
      return done(std::move(res));
    }
    run_replay(user_id, from, std::move(done));
  });
}

void History::run_replay(const std::string& user_id, const Offset& from, ReplayHandler done) {
  auto conn = conn_;
  conn->query(
      kReplaySql,
      {from.pos.base.to_string(), from.pos.upto.to_string(), user_id, std::to_string(from.pos.last_id)},
      [from, done = std::move(done)](PgResult r) {
        ReplayResult res;
        if (!r.ok() || r.rows() < 1) {
          res.error = r.ok() ? "no snapshot returned" : r.error();
          return done(std::move(res));
        }
        auto now = PgSnapshot::parse(r.get(0, 0));
        uint64_t pruned = 0;
        auto pt = r.get(0, 8);
        std::from_chars(pt.data(), pt.data() + pt.size(), pruned);
        res.log_id = std::string(r.get(0, 9));
        if (!now) {
          res.error = "unparseable snapshot";
          return done(std::move(res));
        }
        res.now = *now;
        if (res.log_id != from.log_id) {
          res.why_not = "offset is from another event log";
        } else if (from.pos.upto.xmax > now->xmax) {
          res.why_not = "offset is ahead of this database";
        } else if (pruned >= from.pos.base.xmin) {
          // Rows up to `pruned` are gone; the position may not have seen all of them.
          res.why_not = "offset is older than the retained log";
        }
        for (int i = 0; i < r.rows() && res.why_not.empty(); ++i) {
          if (r.is_null(i, 1)) continue;
          auto row = EventLogReader::parse_row(r, i);
          if (!row) continue;
          if (row->op == "t") res.why_not = "the membership table was truncated since the offset";
          else res.rows.push_back(std::move(*row));
        }
        res.resumable = res.why_not.empty();
        if (!res.resumable) res.rows.clear();
        done(std::move(res));
      },
      cfg_.db_timeout);
}

void History::snapshot(const std::string& user_id, SnapshotHandler done) {
  snapshots_.push_back({user_id, std::move(done)});
  ensure_connected();
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  // Let every connect of this loop turn join the same query.
  asio::post(io_, [this] {
    flush_scheduled_ = false;
    if (ready_) return flush_snapshots();
    waiting_.push_back([this] {
      if (ready_) flush_snapshots();
    });
  });
}

void History::flush_snapshots() {
  while (!snapshots_.empty()) {
    std::vector<PendingSnapshot> batch;
    size_t n = std::min(snapshots_.size(), kMaxUsersPerSnapshotQuery);
    batch.assign(std::make_move_iterator(snapshots_.begin()), std::make_move_iterator(snapshots_.begin() + n));
    snapshots_.erase(snapshots_.begin(), snapshots_.begin() + n);
    std::set<std::string> users;
    for (const auto& p : batch)
      if (fits_column_type(user_type_, p.user_id)) users.insert(p.user_id);
    auto shared = std::make_shared<std::vector<PendingSnapshot>>(std::move(batch));
    std::string log_id = log_id_;
    conn_->query(snapshot_sql_, {postgres_array({users.begin(), users.end()})},
                 [shared, log_id](PgResult r) {
                   SnapshotResult res;
                   res.log_id = log_id;
                   if (!r.ok() || r.rows() < 1) res.error = r.ok() ? "no snapshot returned" : r.error();
                   auto now = r.ok() && r.rows() > 0 ? PgSnapshot::parse(r.get(0, 0)) : std::nullopt;
                   if (res.error.empty() && !now) res.error = "unparseable snapshot";
                   if (now) res.now = *now;
                   for (int i = 0; res.error.empty() && i < r.rows(); ++i) {
                     if (r.is_null(i, 1) || r.is_null(i, 2)) continue;
                     res.by_user[std::string(r.get(i, 1))].push_back(
                         Membership{std::string(r.get(i, 2)), r.get_opt(i, 3)});
                   }
                   for (auto& p : *shared) p.done(res);
                 },
                 cfg_.db_timeout);
  }
}

}  // namespace mn
