// The database under the sidecar failing: a standby is refused; a multi-host URL with
// target_session_attrs=read-write reaches the primary whatever the order; after a failover to
// the promoted standby, connected clients keep receiving and resuming clients lose nothing; a
// connection that goes silent (half-open) is noticed within seconds and nothing is lost; on a
// disk slow to flush, commits queueing on the NOTIFY lock make adaptive mode poll.
// These tests run their own clusters, not the shared one: they kill them.
#include "support/notifier_fixture.h"
#include "support/tcp_proxy.h"

#include <atomic>
#include <thread>

using namespace mn::test;
using namespace std::chrono_literals;
using Events = std::vector<std::string>;

// Each test's own cluster, with the application's table in database "app", migrated
// (NotifierFixture::install_app).
class OwnClusterFixture : public NotifierFixture {};

class Failover : public OwnClusterFixture {
 protected:
  void SetUp() override {
    NotifierFixture::SetUp();
    install_app(primary_);
    if (HasFatalFailure()) return;
    standby_.start_standby_of(primary_);
  }

  static std::string url(const PgCluster& first, const PgCluster& second) {
    return "host=" + first.dir() + "," + second.dir() + " port=" + std::to_string(first.port()) + "," +
           std::to_string(second.port()) + " user=postgres dbname=app target_session_attrs=read-write";
  }

  // Until the standby has replayed everything the primary has written.
  void wait_standby_caught_up() {
    const std::string lsn = primary_.query("SELECT pg_current_wal_lsn()::text")[0][0].as<std::string>();
    for (int i = 0; i < 500; ++i) {
      if (standby_.query("SELECT pg_last_wal_replay_lsn() >= '" + lsn + "'::pg_lsn")[0][0].as<bool>()) return;
      std::this_thread::sleep_for(20ms);
    }
    FAIL() << "the standby did not catch up";
  }

  PgCluster primary_;
  PgCluster standby_;
};

TEST_F(Failover, AStandbyAloneIsRefusedAndAMultiHostUrlReachesThePrimaryWhateverTheOrder) {
  Sidecar lone;
  lone.start({"serve", "--database-url", standby_.conninfo("app"), "--jwt-secret-file", secret_file(),
              "--listen", "127.0.0.1:0", "--reconnect-max", "200ms"});
  lone.port();
  EXPECT_TRUE(lone.wait_for_log("server is a standby (in recovery)")) << lone.log();
  EXPECT_FALSE(lone.wait_ready(1s)) << "a standby cannot wake it: never ready";

  database_url_override_ = url(standby_, primary_);
  start_sidecar();
  auto c = connect("u1");
  primary_.exec("INSERT INTO channel_members VALUES ('c1', 'u1')", "app");
  EXPECT_EQ(events(*c, 500ms), (Events{"joined c1 u1"}));
}

TEST_F(Failover, AfterFailoverToThePromotedStandbyConnectedAndResumingClientsLoseNothing) {
  database_url_override_ = url(primary_, standby_);
  start_sidecar({"--reconnect-max", "200ms", "--db-timeout", "2s"});
  auto live = connect("u1");
  auto away = connect("u1");
  primary_.exec("INSERT INTO channel_members VALUES ('c1', 'u1')", "app");
  std::string offset;
  EXPECT_EQ(events(*away, 500ms, &offset), (Events{"joined c1 u1"}));
  EXPECT_EQ(events(*live, 500ms), (Events{"joined c1 u1"}));
  away->close();
  primary_.exec("INSERT INTO channel_members VALUES ('c2', 'u1')", "app");
  EXPECT_EQ(events(*live, 500ms), (Events{"joined c2 u1"}));

  wait_standby_caught_up();
  const std::size_t before = sidecar().log().size();
  primary_.kill_immediate();
  standby_.exec("SELECT pg_promote()");
  ASSERT_TRUE(sidecar().wait_for_log("caught up at snapshot", 20s, before)) << sidecar().log();
  standby_.exec("INSERT INTO channel_members VALUES ('c3', 'u1')", "app");
  EXPECT_EQ(events(*live, 1s), (Events{"joined c3 u1"})) << "the connected client stays and follows";

  nlohmann::json session;
  auto again = connect("u1", "&offset=" + offset, 0, &session);
  EXPECT_EQ(session["data"]["recovered"], true) << session.dump();
  EXPECT_EQ(events(*again, 500ms), (Events{"joined c2 u1", "joined c3 u1"})) << "what it missed, from the promoted standby's log";
}

class HalfOpenConnection : public OwnClusterFixture {
 protected:
  void SetUp() override {
    NotifierFixture::SetUp();
    install_app(db_);
  }
  PgCluster db_{PgCluster::Options{true, false, {}}};
};

TEST_F(HalfOpenConnection, ASilentDatabaseConnectionIsNoticedWithinSecondsAndNothingIsLost) {
  TcpProxy proxy(db_.tcp_port());
  database_url_override_ = "host=127.0.0.1 port=" + std::to_string(proxy.port()) + " user=postgres dbname=app";
  start_sidecar({"--poll-interval", "300ms", "--db-timeout", "1s", "--reconnect-max", "200ms"});
  auto c = connect("u1");
  db_.exec("INSERT INTO channel_members VALUES ('c1', 'u1')", "app");
  EXPECT_EQ(events(*c, 500ms), (Events{"joined c1 u1"}));

  const std::size_t before = sidecar().log().size();
  const auto t0 = std::chrono::steady_clock::now();
  proxy.freeze();  // every connection through it goes silent, no FIN, no RST
  db_.exec("INSERT INTO channel_members VALUES ('c2', 'u1')", "app");
  proxy.thaw();    // a new connection gets through
  ASSERT_TRUE(sidecar().wait_for_log("caught up at snapshot", 15s, before)) << sidecar().log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << "noticed within the poll interval and the query deadline";
  EXPECT_NE(sidecar().log().find("reconnecting", before), std::string::npos);
  EXPECT_EQ(events(*c, 1s), (Events{"joined c2 u1"})) << "the change made meanwhile arrives";
}

// A slow disk: every commit takes `commit_delay` to flush, so notifying commits, which hold the
// NOTIFY lock through the flush, go one at a time, far below the adaptive rate limit. The
// sidecar must see the queue on the lock and stop the NOTIFYs, or it serialises the
// application's every commit for as long as it writes.
class CommitsFlushSlowly : public OwnClusterFixture {
 protected:
  explicit CommitsFlushSlowly(std::chrono::microseconds commit_delay)
      : db_{PgCluster::Options{false, true, {"commit_delay=" + std::to_string(commit_delay.count()), "commit_siblings=0"}}} {}
  void SetUp() override {
    NotifierFixture::SetUp();
    install_app(db_);
  }
  // `n` writers, each inserting one row per transaction for `secs`; returns how many they wrote.
  int write(int n = 8, std::chrono::seconds secs = 3s, const std::string& tag = "w") {
    std::vector<std::thread> writers;
    std::atomic<int> written{0};
    const auto until = std::chrono::steady_clock::now() + secs;
    for (int w = 0; w < n; ++w) {
      writers.emplace_back([&, w] {
        pqxx::connection conn{db_.conninfo("app")};
        for (int i = 0; std::chrono::steady_clock::now() < until; ++i) {
          pqxx::nontransaction tx{conn};
          tx.exec("INSERT INTO channel_members VALUES ('" + tag + std::to_string(w) + "-" + std::to_string(i) + "', 'u1')");
          ++written;
        }
      });
    }
    for (auto& t : writers) t.join();
    return written.load();
  }
  int write_for_three_seconds() { return write(); }
  // What the sidecar must have done: seen the queue, polled, delivered everything.
  void expect_the_notifies_stopped(WsClient& c, int written) {
    EXPECT_EQ(events(c, 1s).size(), static_cast<size_t>(written)) << "every change delivered";
    const std::string m = metrics();
    EXPECT_GE(metric(m, "membership_notifier_notify_contention_total"), 1) << m;
    EXPECT_GE(metric(m, "membership_notifier_polling_spells_total"), 1) << m;
    EXPECT_NE(sidecar().log().find("commits queue on the NOTIFY lock"), std::string::npos) << sidecar().log();
    // Polling from then on: most of the writes went out without a NOTIFY each.
    EXPECT_LT(metric(m, "membership_notifier_db_notifications_total"), written / 2)
        << "written " << written << "\n" << m;
  }
  PgCluster db_;
};

// 20 ms a flush: notifying commits at under 50/s.
class SlowDisk : public CommitsFlushSlowly {
 protected:
  SlowDisk() : CommitsFlushSlowly(20ms) {}
};

// 100 ms a flush: notifying commits at 10/s or less. The sidecar must look for a queue on the
// NOTIFY lock at such a rate too, or 8 writers keep taking turns, one commit a flush, where the
// disk takes all 8 in one.
class SlowerDisk : public CommitsFlushSlowly {
 protected:
  SlowerDisk() : CommitsFlushSlowly(100ms) {}
};

TEST_F(SlowDisk, CommitsQueueingOnTheNotifyLockStopTheNotifiesWhateverTheRateLimit) {
  database_url_override_ = db_.conninfo("app");
  start_sidecar({"--wake-mode", "adaptive"});  // the default limit: 2000 commits/s
  auto c = connect("u1");
  const int written = write_for_three_seconds();
  expect_the_notifies_stopped(*c, written);
}

TEST_F(SlowerDisk, CommitsTakingTurnsAtTenASecondStillStopTheNotifies) {
  database_url_override_ = db_.conninfo("app");
  start_sidecar({"--wake-mode", "adaptive"});
  auto c = connect("u1");
  const int written = write_for_three_seconds();
  expect_the_notifies_stopped(*c, written);
  // One at a time, 3 s of 100 ms flushes is 30 commits; the 8 writers sharing each flush, 240.
  // Over half that only if the reader looked at the queue in time and did not re-arm while it
  // was still draining.
  EXPECT_GT(written, 120) << sidecar().log();
}

// The limit the queue sets is the rate commits went at under that load. Kept as it was, one
// writer after the load (one commit at a time, so never queueing on the lock) would stay over
// half of it and be polled, not woken, for as long as it wrote, each change waiting up to a
// busy-poll interval. The limit relaxes, a doubling a second, so that writer is soon woken for
// again.
TEST_F(SlowDisk, OneWriterAfterTheQueueIsWokenForAgainWithinSeconds) {
  database_url_override_ = db_.conninfo("app");
  start_sidecar({"--wake-mode", "adaptive"});
  auto c = connect("u1");
  int written = write_for_three_seconds();
  ASSERT_NE(sidecar().log().find("commits queue on the NOTIFY lock"), std::string::npos) << sidecar().log();
  // The limit relaxes meanwhile: from about 45/s, a doubling every second, or every two if a
  // try at being woken among the 8 writers queued again.
  written += write(1, 6s, "a");
  const double woken_before = metric(metrics(), "membership_notifier_db_notifications_total");
  const int last = write(1, 2s, "b");
  written += last;
  const std::string m = metrics();
  EXPECT_GE(metric(m, "membership_notifier_db_notifications_total") - woken_before, last * 0.9)
      << "one wake-up a commit in the last two seconds, of " << last << "\n" << m << sidecar().log();
  EXPECT_EQ(events(*c, 1s).size(), static_cast<size_t>(written)) << "every change delivered";
}

// A transaction with an id, open in this database when the sidecar arms, keeps it settling
// (the fast path waits until every transaction that may have looked before the arm is over).
// The triggers notify all the same, so the queue on the lock must be looked for then too, or
// the writers keep queueing on it for as long as that transaction stays open.
TEST_F(SlowDisk, ATransactionLeftOpenElsewhereDoesNotHideTheQueueOnTheNotifyLock) {
  pqxx::connection other{db_.conninfo("app")};
  pqxx::work open{other};
  open.exec("SELECT pg_current_xact_id()");
  database_url_override_ = db_.conninfo("app");
  start_sidecar({"--wake-mode", "adaptive"});
  auto c = connect("u1");
  const int written = write_for_three_seconds();
  expect_the_notifies_stopped(*c, written);
}
