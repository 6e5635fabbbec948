// What a client receives for each kind of change to channel_members, end to end: real SQL,
// the real sidecar, a real WebSocket client. Run in every wake mode (notify, adaptive, poll),
// since each reaches the log by a different path and all must deliver the same.
#include "support/notifier_fixture.h"

#include <atomic>
#include <csignal>
#include <thread>

using namespace mn::test;
using namespace std::chrono_literals;
using Events = std::vector<std::string>;

class Delivery : public EveryWakeModeFixture {};
MN_EVERY_WAKE_MODE(Delivery);

TEST_P(Delivery, AnInsertIsChannelJoinedForThatUserOnly) {
  auto u1 = connect("u1");
  auto u2 = connect("u2");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  auto ev = next_event(*u1);
  EXPECT_EQ(ev["event"], "channel.joined");
  EXPECT_EQ(ev["data"], nlohmann::json::parse(ev["data"].dump()));
  EXPECT_EQ(ev["data"]["channelId"], "c1");
  EXPECT_EQ(ev["data"]["userId"], "u1");
  EXPECT_TRUE(ev["data"]["xType"].is_null());
  EXPECT_TRUE(ev.contains("offset"));
  EXPECT_TRUE(ev["id"].is_string() && !ev["id"].get<std::string>().empty());
  EXPECT_EQ(ev["data"].size(), 4u);
  EXPECT_EQ(events(*u2), Events{});
}

TEST_P(Delivery, OnConflictDoNothingThatSkipsIsNothingAndADeleteIsChannelLeft) {
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  auto u1 = connect("u1");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1') ON CONFLICT DO NOTHING");
  sql("DELETE FROM channel_members WHERE channel_id = 'nope'");
  sql("DELETE FROM channel_members WHERE channel_id = 'c1'");
  EXPECT_EQ(events(*u1), (Events{"left c1 u1"}));
}

TEST_P(Delivery, RolledBackWorkIsNothing) {
  auto u1 = connect("u1");
  sql("BEGIN; INSERT INTO channel_members VALUES ('rb', 'u1'); ROLLBACK;");
  sql("BEGIN; INSERT INTO channel_members VALUES ('kept', 'u1'); SAVEPOINT s;"
      " INSERT INTO channel_members VALUES ('undone', 'u1'); ROLLBACK TO SAVEPOINT s; COMMIT;");
  EXPECT_EQ(events(*u1), (Events{"joined kept u1"}));
}

TEST_P(Delivery, JoinLeaveJoinInOneTransactionIsThreeEventsWithDistinctTimes) {
  auto u1 = connect("u1");
  sql("BEGIN; INSERT INTO channel_members VALUES ('c1', 'u1'); DELETE FROM channel_members WHERE channel_id = 'c1';"
      " INSERT INTO channel_members VALUES ('c1', 'u1'); COMMIT;");
  std::vector<nlohmann::json> got;
  for (int i = 0; i < 3; ++i) got.push_back(next_event(*u1));
  EXPECT_EQ(describe(got[0]), "joined c1 u1");
  EXPECT_EQ(describe(got[1]), "left c1 u1");
  EXPECT_EQ(describe(got[2]), "joined c1 u1");
  // now() is the same for all three; occurredAt must not be (ISO 8601 strings sort by time).
  EXPECT_LT(got[0]["data"]["occurredAt"], got[1]["data"]["occurredAt"]);
  EXPECT_LT(got[1]["data"]["occurredAt"], got[2]["data"]["occurredAt"]);
  EXPECT_EQ(events(*u1), Events{});
}

TEST_P(Delivery, AnUpdateThatMovesARowIsLeftForTheOldPairAndJoinedForTheNew) {
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  auto u1 = connect("u1");
  auto u2 = connect("u2");
  sql("UPDATE channel_members SET user_id = 'u2' WHERE channel_id = 'c1'");
  sql("UPDATE channel_members SET channel_id = channel_id");  // changes nothing
  EXPECT_EQ(events(*u1), (Events{"left c1 u1"}));
  EXPECT_EQ(events(*u2), (Events{"joined c1 u2"}));
}

TEST_P(Delivery, RowsChangedByCascadesAndByCopyCountLikeAnyOther) {
  sql("CREATE TABLE channels (id text PRIMARY KEY)");
  sql("INSERT INTO channels VALUES ('c1'), ('c2')");
  sql("ALTER TABLE channel_members ADD FOREIGN KEY (channel_id) REFERENCES channels ON DELETE CASCADE");
  auto u1 = connect("u1");
  sql("COPY channel_members FROM PROGRAM 'printf \"c1\\tu1\\nc2\\tu1\\n\"'");
  sql("DELETE FROM channels WHERE id = 'c1'");
  EXPECT_EQ(events(*u1), (Events{"joined c1 u1", "joined c2 u1", "left c1 u1"}));
}

TEST_P(Delivery, EverySocketOfAUserReceivesEveryEvent) {
  auto a = connect("u1");
  auto b = connect("u1");
  auto c = connect("u1");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1'), ('c2', 'u1')");
  for (auto* client : {a.get(), b.get(), c.get()}) EXPECT_EQ(events(*client), (Events{"joined c1 u1", "joined c2 u1"}));
}

TEST_P(Delivery, AChangeTooBigForOneNotifyPayloadArrivesWhole) {
  // 300 rows with 900-byte channel ids: ~270 kB in one statement, far past NOTIFY's 8000 bytes.
  auto u1 = connect("u1");
  sql("INSERT INTO channel_members SELECT repeat('x', 896) || lpad(g::text, 4, '0'), 'u1' FROM generate_series(1, 300) g");
  auto got = events(*u1, 1s);
  ASSERT_EQ(got.size(), 300u);
  EXPECT_EQ(got.front(), "joined " + std::string(896, 'x') + "0001 u1");
  EXPECT_EQ(got.back(), "joined " + std::string(896, 'x') + "0300 u1");
}

// At idle, in adaptive and notify mode, a change's wake-up makes the sidecar read the log at
// once (poll mode has no wake-ups). Its offset must resume exactly like any other.
TEST_P(Delivery, AChangeAtIdleGoesOutOnItsWakeUpWithAnOffsetThatResumesExactly) {
  auto c = connect("u1");
  std::this_thread::sleep_for(300ms);  // settled: waiting for a wake-up
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  auto ev = next_event(*c);
  EXPECT_EQ(ev["data"]["channelId"], "c1");
  EXPECT_EQ(metric(metrics(), "membership_notifier_db_notifications_total"), GetParam() == "poll" ? 0 : 1);
  const std::string offset = ev["offset"];
  c->close();
  sql("INSERT INTO channel_members VALUES ('c2', 'u1')");
  sql("DELETE FROM channel_members WHERE channel_id = 'c1'");
  nlohmann::json session;
  auto again = connect("u1", "&offset=" + offset, 0, &session);
  EXPECT_EQ(session["data"]["recovered"], true);
  EXPECT_EQ(events(*again), (Events{"joined c2 u1", "left c1 u1"}));
}

TEST_P(Delivery, ATruncateSendsEveryConnectedClientAFreshSnapshot) {
  sql("INSERT INTO channel_members VALUES ('c1', 'u1'), ('c2', 'u2')");
  auto u1 = connect("u1");
  auto u2 = connect("u2");
  sql("BEGIN; TRUNCATE channel_members; INSERT INTO channel_members VALUES ('c9', 'u2'); COMMIT;");
  auto s1 = next_event(*u1);
  auto s2 = next_event(*u2);
  EXPECT_EQ(s1["event"], "channel.snapshot");
  EXPECT_EQ(s1["data"]["channels"], nlohmann::json::array());
  EXPECT_EQ(s2["event"], "channel.snapshot");
  EXPECT_EQ(s2["data"]["channels"], nlohmann::json::parse(R"([{"channelId":"c9","xType":null}])"));
  // Nothing of the truncated transaction arrives again after the snapshot that holds it.
  EXPECT_EQ(events(*u2), Events{});
}

TEST_P(Delivery, TransactionsCommittingOutOfLogIdOrderAreBothDelivered) {
  auto u1 = connect("u1");
  pqxx::connection a(conninfo()), b(conninfo());
  pqxx::work ta(a), tb(b);
  ta.exec("INSERT INTO channel_members VALUES ('first-id', 'u1')");   // takes the lower log id
  tb.exec("INSERT INTO channel_members VALUES ('second-id', 'u1')");  // the higher one
  tb.commit();
  EXPECT_EQ(events(*u1), (Events{"joined second-id u1"}));
  ta.commit();  // a cursor of "id > last seen" would skip this one forever
  EXPECT_EQ(events(*u1), (Events{"joined first-id u1"}));
}

TEST_P(Delivery, KillingTheListenerConnectionMidStreamLosesNothing) {
  auto u1 = connect("u1");
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    pqxx::connection c(conninfo());
    for (int i = 0; i < 400 && !stop; ++i) {
      pqxx::nontransaction(c).exec("INSERT INTO channel_members VALUES ('k" + std::to_string(i) + "', 'u1')");
      ++written;
      std::this_thread::sleep_for(2ms);
    }
  });
  std::this_thread::sleep_for(150ms);
  // Notifications sent while no one listens are gone for good: only the log can fill the gap.
  auto killed = query("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE application_name = 'membership-notifier listener' AND datname = current_database()) t");
  EXPECT_EQ(killed[0][0].as<int>(), 1);
  writer.join();
  std::set<std::string> seen;
  for (auto& e : events(*u1, 2s)) seen.insert(e);
  EXPECT_EQ(static_cast<int>(seen.size()), written.load());
  EXPECT_TRUE(seen.count("joined k0 u1") && seen.count("joined k" + std::to_string(written - 1) + " u1"));
  EXPECT_TRUE(sidecar().wait_for_log("reconnecting in"));
}

// A wake-up only a read can answer (its row is too big for a payload: ids and xType up to
// 1 KiB each, control characters escaped six bytes each in JSON) holds the fast path back:
// a small change committed after it must not overtake it.
class DeliveryWithXType : public EveryWakeModeFixture {
 public:
  DeliveryWithXType() {
    table_ddl_ = "CREATE TABLE public.channel_members (channel_id text NOT NULL, user_id text NOT NULL,"
                 " kind text, PRIMARY KEY (channel_id, user_id))";
    migrate_args_ = {"--xtype-column", "kind"};
  }
};
MN_EVERY_WAKE_MODE(DeliveryWithXType);

TEST_P(DeliveryWithXType, AChangeTooBigForAPayloadIsNotOvertakenByASmallOneCommittedAfterIt) {
  auto c = connect("u1");
  const std::string big(1000, '\x01');
  Events want;
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(50ms);  // idle again: adaptive mode waits for a wake-up
    const std::string n = std::to_string(i);
    // Two transactions in one round trip: their wake-ups reach the sidecar together.
    sql("BEGIN; INSERT INTO channel_members VALUES (repeat(chr(1), 1000) || '" + n + "', 'u1', repeat(chr(1), 1000));"
        " COMMIT; BEGIN; INSERT INTO channel_members VALUES ('small" + n + "', 'u1', 'dm'); COMMIT");
    want.push_back("joined " + big + n + " u1");
    want.push_back("joined small" + n + " u1");
  }
  auto got = events(*c, 1s);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(got[i] == want[i]) << "event " << i << " out of order";
}

// Adaptive mode end to end: woken by every commit while commits come slower than
// --adaptive-notify-max-rate, polling instead above it. The policy's rules, scenario by
// scenario (bursts, streams, pauses, the end of a load, settling), are unit-tested with a fake
// clock in wake_policy_test.cpp; the NOTIFY lock's queue on slow disks end to end in
// database_faults_pgtest.cpp.
class AdaptiveWakeUp : public NotifierFixture {};

TEST_F(AdaptiveWakeUp, EveryCommitWakesTheSidecarBelowTheRateLimitAndItPollsAboveIt) {
  start_sidecar({"--wake-mode", "adaptive", "--adaptive-notify-max-rate", "50"});
  auto c = connect("u1");
  std::this_thread::sleep_for(300ms);
  for (int i = 0; i < 10; ++i) {  // 10 per second
    std::this_thread::sleep_for(100ms);
    sql("INSERT INTO channel_members VALUES ('slow" + std::to_string(i) + "', 'u1')");
  }
  EXPECT_EQ(events(*c).size(), 10u);
  const std::string m = metrics();
  EXPECT_EQ(metric(m, "membership_notifier_db_notifications_total"), 10) << m;
  const double woken = metric(m, "membership_notifier_db_notifications_total");
  // 400 commits back to back, far above 50 per second.
  sql("DO $$ BEGIN FOR i IN 1..400 LOOP INSERT INTO channel_members VALUES ('fast' || i, 'u1'); COMMIT;"
      " END LOOP; END $$");
  EXPECT_EQ(events(*c, 1s).size(), 400u);
  EXPECT_LT(metric(metrics(), "membership_notifier_db_notifications_total") - woken, 200)
      << "polled, not woken by each commit";
}

// A transaction whose trigger looked before the arm, in this database, logged its change without
// a NOTIFY: a change committed after it must not go out ahead of it.
TEST_F(AdaptiveWakeUp, AChangeLoggedBeforeTheArmIsNotOvertakenByOneWokenForAfterIt) {
  pqxx::connection early_conn{conninfo()};
  pqxx::work early{early_conn};
  early.exec("INSERT INTO channel_members VALUES ('before-arm', 'u1')");  // no sidecar waits: no NOTIFY
  start_sidecar({"--wake-mode", "adaptive"});
  auto c = connect("u1");
  std::this_thread::sleep_for(300ms);  // armed, settling behind `early`
  early.commit();
  sql("INSERT INTO channel_members VALUES ('after-arm', 'u1')");
  EXPECT_EQ(events(*c), (Events{"joined before-arm u1", "joined after-arm u1"}));
}

// A schema from before other_databases_xids(): the sidecar waits for every database's
// transactions, as it did then, delivers all the same, and says what to run.
TEST_F(AdaptiveWakeUp, ASchemaWithoutTheOtherDatabasesCheckStillDeliversAndSaysToMigrate) {
  sql("DROP FUNCTION membership_notifier.other_databases_xids(xid8[])");
  pqxx::connection other{pg().conninfo("postgres")};
  pqxx::work open{other};
  open.exec("SELECT pg_current_xact_id()");
  start_sidecar({"--wake-mode", "adaptive"});
  auto c = connect("u1");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  EXPECT_EQ(events(*c), (Events{"joined c1 u1"}));
  EXPECT_TRUE(sidecar().wait_for_log("run `migrate up`")) << sidecar().log();
  EXPECT_EQ(metric(metrics(), "membership_notifier_db_notifications_total"), 1) << "woken all the same";
}

// A stopped sidecar must not leave the triggers trying to wake it: SIGTERM clears its mark.
TEST_F(AdaptiveWakeUp, ASidecarStoppedWhileWaitingLeavesTheTriggersNotWaking) {
  start_sidecar({"--wake-mode", "adaptive"});
  auto c = connect("u1");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  ASSERT_EQ(events(*c).size(), 1u);
  ASSERT_EQ(metric(metrics(), "membership_notifier_db_notifications_total"), 1) << "it was waiting";
  ASSERT_EQ(query("SELECT membership_notifier.waiting()::text")[0][0].as<std::string>(), "true");
  sidecar().signal(SIGTERM);
  EXPECT_EQ(sidecar().wait_exit(5s), 0);
  EXPECT_EQ(query("SELECT membership_notifier.waiting()::text")[0][0].as<std::string>(), "false");
}
