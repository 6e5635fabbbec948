#include "durable_gate.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace mn {
namespace {

constexpr std::chrono::milliseconds kStandbyPollEvery{1};
// While the standbys hold deliveries back, say so this often.
constexpr std::chrono::seconds kStandbyWarnEvery{10};


// Polls pg_stat_replication until every named standby has flushed past `lsn`.
struct StandbyWait : std::enable_shared_from_this<StandbyWait> {
  StandbyWait(asio::io_context& io, const Config& config, std::shared_ptr<PgConnection> c, std::string l,
              std::function<void(const std::string&)> t)
      : timer(io), cfg(config), conn(std::move(c)), lsn(std::move(l)), then(std::move(t)),
        started(std::chrono::steady_clock::now()), warned(started) {}

  void ask() {
    if (!conn->connected()) return;
    conn->query(
        "SELECT count(DISTINCT application_name) FILTER (WHERE flush_lsn >= $2::pg_lsn),"
        "       count(*) FILTER (WHERE flush_lsn IS NULL)"
        "  FROM pg_stat_replication WHERE application_name = ANY ($1::text[])",
        {text_array(cfg.durable_standbys), lsn}, [self = shared_from_this()](PgResult r) { self->answered(r); },
        cfg.db_timeout);
  }

  void answered(const PgResult& r) {
    if (!r.ok()) return then("reading pg_stat_replication failed: " + r.error());
    if (r.rows() == 1 && r.get(0, 0) == std::to_string(cfg.durable_standbys.size())) return then("");
    const auto now = std::chrono::steady_clock::now();
    if (now - warned >= kStandbyWarnEvery) {
      warned = now;
      const bool hidden = r.rows() == 1 && r.get(0, 1) != "0";
      spdlog::warn("deliveries wait for standbys {} to flush past {} ({} s so far){}", cfg.durable_standbys_list, lsn,
                   std::chrono::duration_cast<std::chrono::seconds>(now - started).count(),
                   hidden ? "; their positions are hidden from this role: grant it pg_read_all_stats" : "");
    }
    timer.expires_after(kStandbyPollEvery);
    timer.async_wait([self = shared_from_this()](const asio::error_code& ec) {
      if (!ec) self->ask();
    });
  }

  asio::steady_timer timer;
  const Config& cfg;
  std::shared_ptr<PgConnection> conn;
  std::string lsn;
  std::function<void(const std::string&)> then;
  std::chrono::steady_clock::time_point started;
  std::chrono::steady_clock::time_point warned;
};

}  // namespace

void await_durable(asio::io_context& io, const Config& cfg, std::shared_ptr<PgConnection> conn, bool flushed,
                   const std::string& insert_lsn, std::function<void(const std::string& error)> then) {
  auto standbys = [&io, &cfg, conn, insert_lsn, then = std::move(then)](const std::string& error) mutable {
    if (!error.empty() || cfg.durable_standbys.empty() || insert_lsn.empty()) return then(error);
    std::make_shared<StandbyWait>(io, cfg, conn, insert_lsn, std::move(then))->ask();
  };
  if (flushed) return standbys("");
  conn->query("SELECT membership_notifier.mark_delivered(true)", {},
              [standbys = std::move(standbys)](PgResult r) mutable {
                standbys(r.ok() ? "" : "making the log durable failed: " + r.error());
              },
              cfg.db_timeout);
}

}  // namespace mn
