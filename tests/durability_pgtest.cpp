// Only what the database cannot forget is delivered: a commit made with synchronous_commit = off
// goes out only once its WAL is flushed, so a crash cannot take back what a client was told; a
// failover to an asynchronous standby that lacks delivered changes is noticed, every client is
// resynchronised, and no id names two changes; with --durable-standbys nothing goes out before
// the named standbys have it. These tests run their own clusters: they crash and promote them.
#include "support/notifier_fixture.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

using namespace mn::test;
using namespace std::chrono_literals;
using Events = std::vector<std::string>;


// The test clusters commit with synchronous_commit = off (PgCluster); here the WAL writer
// flushes only every 10 s, so a commit stays in memory, visible but not durable, until
// something flushes it.
class CrashWithAsyncCommits : public NotifierFixture {
 protected:
  void SetUp() override {
    NotifierFixture::SetUp();
    install_app(db_);
    database_url_override_ = db_.conninfo("app");
  }
  PgCluster db_{PgCluster::Options{false, false, {"wal_writer_delay=10000ms", "wal_writer_flush_after=0"}}};
};

TEST_F(CrashWithAsyncCommits, ADeliveredChangeSurvivesACrashAndItsIdIsNeverHandedToAnother) {
  start_sidecar({"--reconnect-max", "200ms"});
  auto c = connect("u1");
  db_.exec("INSERT INTO channel_members VALUES ('c1', 'u1')", "app");
  auto first = next_event(*c);
  ASSERT_EQ(first["data"]["channelId"], "c1") << first.dump();
  EXPECT_GE(metric(metrics(), "membership_notifier_durable_waits_total"), 1);

  const std::size_t before = sidecar().log().size();
  db_.restart_immediate();  // shared memory, and the WAL buffers in it, are gone
  EXPECT_EQ(db_.query("SELECT count(*) FROM membership_notifier.event_log WHERE channel_id = 'c1'", "app")[0][0]
                .as<int>(),
            1)
      << "a client was told of c1: the database must still have it";
  EXPECT_EQ(db_.query("SELECT count(*) FROM channel_members WHERE channel_id = 'c1'", "app")[0][0].as<int>(), 1);

  ASSERT_TRUE(sidecar().wait_for_log("caught up at snapshot", 20s, before)) << sidecar().log();
  db_.exec("INSERT INTO channel_members VALUES ('c2', 'u1')", "app");
  auto second = next_event(*c);
  ASSERT_EQ(second["data"]["channelId"], "c2") << second.dump();
  EXPECT_NE(second["id"], first["id"]) << "two changes under one id";
}

// A commit that is flushed already (the application commits durably) goes out without a wait.
TEST_F(CrashWithAsyncCommits, ADurableCommitGoesOutWithoutWaitingForAFlush) {
  start_sidecar();
  auto c = connect("u1");
  db_.exec("SET synchronous_commit = on; INSERT INTO channel_members VALUES ('c1', 'u1')", "app");
  EXPECT_EQ(events(*c, 500ms), (Events{"joined c1 u1"}));
  EXPECT_EQ(metric(metrics(), "membership_notifier_durable_waits_total"), 0);
}

// A primary and an asynchronous standby; the standby is stopped, so that commits made after that
// reach only the primary, which then dies, and the standby is promoted without them.
class AsyncStandbyFailover : public NotifierFixture {
 protected:
  void SetUp() override {
    NotifierFixture::SetUp();
    install_app(primary_);
    if (HasFatalFailure()) return;
    standby_.start_standby_of(primary_);
    database_url_override_ = "host=" + primary_.dir() + "," + standby_.dir() + " port=" +
                             std::to_string(primary_.port()) + "," + std::to_string(standby_.port()) +
                             " user=postgres dbname=app target_session_attrs=read-write";
  }

  std::string standby_name() {
    for (int i = 0; i < 250; ++i) {
      auto r = primary_.query("SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'");
      if (!r.empty()) return r[0][0].as<std::string>();
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "the standby never streamed";
    return "";
  }

  void wait_standby_caught_up() {
    const std::string lsn = primary_.query("SELECT pg_current_wal_insert_lsn()::text")[0][0].as<std::string>();
    for (int i = 0; i < 500; ++i) {
      if (standby_.query("SELECT pg_last_wal_replay_lsn() >= '" + lsn + "'::pg_lsn")[0][0].as<bool>()) return;
      std::this_thread::sleep_for(20ms);
    }
    FAIL() << "the standby did not catch up";
  }

  // The primary dies; the standby, which missed what came after stop_standby, is promoted.
  void fail_over() {
    primary_.kill_immediate();
    standby_.start_again();
    standby_.exec("SELECT pg_promote()");
  }

  PgCluster primary_;
  PgCluster standby_;
};

TEST_F(AsyncStandbyFailover, ClientsThatSawACommitTheNewPrimaryLacksGetAFreshSnapshotAndNoIdNamesTwoChanges) {
  start_sidecar({"--reconnect-max", "200ms", "--db-timeout", "2s"});
  auto live = connect("u1");
  primary_.exec("INSERT INTO channel_members VALUES ('c1', 'u1')", "app");
  EXPECT_EQ(events(*live, 500ms), (Events{"joined c1 u1"}));
  wait_standby_caught_up();
  standby_.stop();
  primary_.exec("INSERT INTO channel_members VALUES ('c2', 'u1')", "app");
  auto lost = next_event(*live);
  ASSERT_EQ(lost["data"]["channelId"], "c2") << "without --durable-standbys the primary's flush is enough";
  const std::string lost_offset = lost["offset"];

  const std::size_t before = sidecar().log().size();
  fail_over();
  ASSERT_TRUE(sidecar().wait_for_log("are not all there", 30s, before)) << sidecar().log();
  auto snapshot = next_event(*live, 10s);
  ASSERT_EQ(snapshot["event"], "channel.snapshot") << snapshot.dump();
  ASSERT_EQ(snapshot["data"]["channels"].size(), 1u) << snapshot.dump();
  EXPECT_EQ(snapshot["data"]["channels"][0]["channelId"], "c1") << "c2 is gone; the client is told the state";

  nlohmann::json session, resumed_snapshot;
  auto resumed = connect("u1", "&offset=" + lost_offset, 0, &session, &resumed_snapshot);
  EXPECT_EQ(session["data"]["recovered"], false) << "its offset saw c2, which this history never had";
  EXPECT_EQ(resumed_snapshot["data"]["channels"].size(), 1u) << resumed_snapshot.dump();

  standby_.exec("INSERT INTO channel_members VALUES ('c3', 'u1')", "app");
  auto next = next_event(*live);
  ASSERT_EQ(next["data"]["channelId"], "c3") << next.dump();
  EXPECT_NE(next["id"], lost["id"]) << "the new primary may give c3 the log id c2 had";
  EXPECT_EQ(next["id"].get<std::string>().rfind("2.", 0), 0u) << next.dump();
  EXPECT_EQ(metric(metrics(), "membership_notifier_history_lost_total"), 1);
}

TEST_F(AsyncStandbyFailover, WithDurableStandbysNothingGoesOutBeforeTheStandbyHasItAndAFailoverLosesNothing) {
  const std::string name = standby_name();
  ASSERT_FALSE(name.empty());
  start_sidecar({"--reconnect-max", "200ms", "--db-timeout", "2s", "--durable-standbys", name});
  auto live = connect("u1");
  primary_.exec("INSERT INTO channel_members VALUES ('c1', 'u1')", "app");
  std::string offset;
  EXPECT_EQ(events(*live, 500ms, &offset), (Events{"joined c1 u1"}));
  standby_.stop();
  primary_.exec("INSERT INTO channel_members VALUES ('c2', 'u1')", "app");
  EXPECT_EQ(events(*live, 1s), Events{}) << "held until the standby flushes it, which it never does";

  const std::size_t before = sidecar().log().size();
  fail_over();
  ASSERT_TRUE(sidecar().wait_for_log("everything delivered on timeline 1 is there", 30s, before)) << sidecar().log();
  EXPECT_EQ(events(*live, 1s), Events{}) << "no snapshot: nothing it was told is gone";

  nlohmann::json session;
  auto resumed = connect("u1", "&offset=" + offset, 0, &session);
  EXPECT_EQ(session["data"]["recovered"], true) << session.dump();
  EXPECT_EQ(events(*resumed, 500ms), Events{}) << "c2 never happened in this history, and no client heard of it";
  EXPECT_EQ(metric(metrics(), "membership_notifier_history_lost_total"), 0);
}
