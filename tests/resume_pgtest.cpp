// Losing nothing: clients resume from their last offset across dropped sockets, sidecar
// crashes, PostgreSQL restarts and other instances, or are told plainly that they could not
// and handed the current state.
#include "offset.h"
#include "support/notifier_fixture.h"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <thread>

using namespace mn::test;
using namespace std::chrono_literals;
using Events = std::vector<std::string>;

class ResumeFixture : public EveryWakeModeFixture {
 protected:
  explicit ResumeFixture(bool start = true) : EveryWakeModeFixture(start) {}
  // Commits `open` (a transaction that logged u1's 'slow' while u1's client was away), adds
  // u1's 'later', and resumes u1 from `offset`: both must arrive.
  void expect_slow_then_later(pqxx::work& open, std::string& offset) {
    open.commit();
    sql("INSERT INTO channel_members VALUES ('later', 'u1')");
    nlohmann::json session;
    auto again = connect("u1", "&offset=" + offset, 0, &session);
    EXPECT_EQ(session["data"]["recovered"], true);
    EXPECT_EQ(events(*again, 500ms, &offset), (Events{"joined slow u1", "joined later u1"}));
  }
};

class Resume : public ResumeFixture {};
MN_EVERY_WAKE_MODE(Resume);

TEST_P(Resume, AClientThatDroppedGetsExactlyWhatItMissedInOrderThenLiveEvents) {
  auto c = connect("u1");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  std::string offset;
  EXPECT_EQ(events(*c, 500ms, &offset), (Events{"joined c1 u1"}));
  c->close();
  sql("INSERT INTO channel_members VALUES ('c2', 'u1'), ('x', 'u2')");
  sql("DELETE FROM channel_members WHERE channel_id = 'c1'");
  nlohmann::json session;
  auto again = connect("u1", "&offset=" + offset, 0, &session);
  EXPECT_EQ(session["data"]["recovered"], true);
  EXPECT_EQ(events(*again, 500ms, &offset), (Events{"joined c2 u1", "left c1 u1"}));
  sql("INSERT INTO channel_members VALUES ('c3', 'u1')");
  EXPECT_EQ(events(*again, 500ms, &offset), (Events{"joined c3 u1"}));
}

// The log keeps each row's own clock time; a transaction's rows that share a microsecond are
// made distinct when read, over all its rows (other users' too). A replay of one user's rows
// must give them the very times the live read gave.
TEST_P(Resume, AReplayedEventCarriesTheVeryTimeTheLiveOneDidEvenWhenRowsSharedAMicrosecond) {
  // Rows are made to share a microsecond by rewriting their logged times, which the live
  // read sees; a wake-up's payload carries the time as the trigger logged it, before the
  // rewrite. So: poll mode, where live events come from reads only.
  if (GetParam() != "poll") GTEST_SKIP() << "the fast path carries the times before the test rewrites them";
  auto live = connect("u1");
  auto away = connect("u1");
  sql("INSERT INTO channel_members VALUES ('c0', 'u1')");
  std::string offset, ignored;
  EXPECT_EQ(events(*away, 500ms, &offset), (Events{"joined c0 u1"}));
  EXPECT_EQ(events(*live, 500ms, &ignored), (Events{"joined c0 u1"}));
  away->close();
  // Every row of the transaction at one microsecond, u1's rows between u2's.
  sql("BEGIN; INSERT INTO channel_members SELECT 'c' || i, CASE WHEN i % 3 = 0 THEN 'u1' ELSE 'u2' END"
      "  FROM generate_series(1, 300) i;"
      " UPDATE membership_notifier.event_log SET occurred_at = '2026-11-26 16:00:00.5+00'"
      "  WHERE xid = pg_current_xact_id(); COMMIT");
  auto times = [](WsClient& c, std::string& off) {
    std::vector<std::string> out;
    while (auto j = c.next_json(500ms)) {
      if (j->contains("offset")) off = (*j)["offset"];
      if ((*j)["event"] == "channel.joined") out.push_back((*j)["data"]["occurredAt"]);
    }
    return out;
  };
  auto live_times = times(*live, ignored);
  ASSERT_EQ(live_times.size(), 100u);
  EXPECT_EQ(live_times.front(), "2026-11-26T16:00:00.500002Z") << "u1's first row is the third of the transaction";
  EXPECT_TRUE(std::is_sorted(live_times.begin(), live_times.end()) &&
              std::adjacent_find(live_times.begin(), live_times.end()) == live_times.end());
  nlohmann::json session;
  auto again = connect("u1", "&offset=" + offset, 0, &session);
  EXPECT_EQ(session["data"]["recovered"], true);
  EXPECT_EQ(times(*again, offset), live_times);
}

TEST_P(Resume, ATransactionStillRunningAtTheLastOffsetArrivesAfterResume) {
  auto c = connect("u1");
  pqxx::connection a(conninfo());
  pqxx::work ta(a);
  ta.exec("INSERT INTO channel_members VALUES ('slow', 'u1')");  // lower log id, commits last
  sql("INSERT INTO channel_members VALUES ('fast', 'u1')");
  std::string offset;
  EXPECT_EQ(events(*c, 500ms, &offset), (Events{"joined fast u1"}));
  c->close();
  expect_slow_then_later(ta, offset);
}

TEST_P(Resume, TwoTransactionsCommittingOutOfLogIdOrderWhileAwayBothArrive) {
  auto c = connect("u1");
  sql("INSERT INTO channel_members VALUES ('c0', 'u1')");
  std::string offset;
  events(*c, 500ms, &offset);
  c->close();
  pqxx::connection a(conninfo()), b(conninfo());
  pqxx::work ta(a), tb(b);
  ta.exec("INSERT INTO channel_members VALUES ('a', 'u1')");
  tb.exec("INSERT INTO channel_members VALUES ('b', 'u1')");
  tb.commit();
  ta.commit();
  auto again = connect("u1", "&offset=" + offset);
  EXPECT_EQ(events(*again, 500ms, &offset), (Events{"joined a u1", "joined b u1"}));
}

TEST_P(Resume, AnOffsetPastRetentionOrGarbageGetsRecoveredFalseAndACorrectSnapshot) {
  auto c = connect("u1");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1'), ('c2', 'u1')");
  std::string offset;
  events(*c, 500ms, &offset);
  c->close();
  sql("DELETE FROM channel_members WHERE channel_id = 'c1'");
  sql("INSERT INTO channel_members VALUES ('c3', 'u1')");
  query("SELECT membership_notifier.prune('0 seconds'::interval)");
  for (std::string bad : {offset, std::string("garbage"), std::string("1.00000000-0000-0000-0000-000000000000.5-5-.5-5-.0")}) {
    nlohmann::json session, snapshot;
    auto again = connect("u1", "&offset=" + bad, 0, &session, &snapshot);
    EXPECT_EQ(session["data"]["recovered"], false) << bad;
    auto channels = snapshot["data"]["channels"];
    std::set<std::string> ids;
    for (auto& ch : channels) ids.insert(ch["channelId"]);
    EXPECT_EQ(ids, (std::set<std::string>{"c2", "c3"})) << bad;
    EXPECT_EQ(events(*again, 500ms, &offset), Events{}) << bad;
  }
}

// A reconnect wave: clients at different positions resume at once. Their replays share one
// read of the log (replay_batch.h), and each gets exactly what its own position missed.
TEST_P(Resume, ClientsResumingAtOnceShareOneReadOfTheLogAndEachGetsExactlyWhatItMissed) {
  constexpr int kUsers = 10;
  auto user = [](int i) { return "u" + std::to_string(i); };
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < kUsers; ++i) clients.push_back(connect(user(i)));
  std::vector<std::string> offsets(kUsers);
  sql("INSERT INTO channel_members SELECT 'a', 'u' || i FROM generate_series(0, 9) i");
  // One event each, no quiet period to wait out: the final check waits for stragglers.
  auto one = [](WsClient& c, std::string& offset) {
    auto e = next_event(c);
    if (e.contains("offset")) offset = e["offset"];
    return describe(e);
  };
  for (int i = 0; i < kUsers; ++i) EXPECT_EQ(one(*clients[i], offsets[i]), "joined a " + user(i));
  for (int i = 0; i < kUsers; i += 2) clients[i]->close();  // the even ones leave here
  sql("INSERT INTO channel_members SELECT 'b', 'u' || i FROM generate_series(0, 9) i");
  for (int i = 1; i < kUsers; i += 2) EXPECT_EQ(one(*clients[i], offsets[i]), "joined b " + user(i));
  for (int i = 1; i < kUsers; i += 2) clients[i]->close();  // the odd ones here
  sql("INSERT INTO channel_members SELECT 'c', 'u' || i FROM generate_series(0, 9) i");
  sql("DELETE FROM channel_members WHERE channel_id = 'a'");

  // The log held, so that every resume is asked for while the first query waits.
  double queries_before = metric(metrics(), "membership_notifier_replay_queries_total");
  pqxx::connection holder(conninfo());
  pqxx::work hold(holder);
  hold.exec("LOCK TABLE membership_notifier.event_log IN ACCESS EXCLUSIVE MODE");
  for (int i = 0; i < kUsers; ++i) {
    clients[i] = WsClient::connect(port(), "/ws?access_token=" + token(user(i)) + "&offset=" + offsets[i]);
    ASSERT_TRUE(clients[i]->is_open()) << i;
  }
  std::this_thread::sleep_for(200ms);
  hold.commit();

  for (int i = 0; i < kUsers; ++i) {
    auto session = clients[i]->next_json();
    ASSERT_TRUE(session && (*session)["event"] == "session") << i;
    EXPECT_EQ((*session)["data"]["recovered"], true) << i;
    Events missed = i % 2 == 0 ? Events{"joined b " + user(i), "joined c " + user(i), "left a " + user(i)}
                               : Events{"joined c " + user(i), "left a " + user(i)};
    // By the first quiet period every replay has arrived; a short one will do for the rest.
    EXPECT_EQ(events(*clients[i], i == 0 ? 500ms : 100ms, &offsets[i]), missed) << i;
  }
  // One query may have gone out before the others asked; the rest share the next.
  double queries = metric(metrics(), "membership_notifier_replay_queries_total") - queries_before;
  EXPECT_GE(queries, 1);
  EXPECT_LE(queries, 2) << "ten resumes asked for while one query waited";
  sql("INSERT INTO channel_members VALUES ('d', 'u3')");
  EXPECT_EQ(events(*clients[3], 500ms, &offsets[3]), (Events{"joined d u3"}));
}

TEST_P(Resume, ASidecarKilledAndRestartedWhileChangesAreMadeLosesNothingForResumingClients) {
  uint16_t fixed = free_port();
  sidecar().signal(SIGTERM);
  sidecar().wait_exit();
  start_sidecar({"--listen", "127.0.0.1:" + std::to_string(fixed)});
  auto c = connect("u1");
  std::string offset;
  std::atomic<int> written{0};
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    pqxx::connection conn(conninfo());
    while (!stop && written < 300) {
      pqxx::nontransaction(conn).exec("INSERT INTO channel_members VALUES ('w" + std::to_string(written) + "', 'u1')");
      ++written;
      std::this_thread::sleep_for(3ms);
    }
  });
  std::set<std::string> seen;
  std::this_thread::sleep_for(200ms);
  for (auto& e : events(*c, 50ms, &offset)) seen.insert(e);
  sidecar().kill9();
  for (auto& e : events(*c, 100ms, &offset)) seen.insert(e);  // whatever was still in flight
  EXPECT_TRUE(c->wait_closed(2s));
  start_sidecar({"--listen", "127.0.0.1:" + std::to_string(fixed)});
  nlohmann::json session;
  auto again = connect("u1", "&offset=" + offset, fixed, &session);
  EXPECT_EQ(session["data"]["recovered"], true);
  writer.join();
  for (auto& e : events(*again, 500ms, &offset)) seen.insert(e);
  EXPECT_EQ(static_cast<int>(seen.size()), written.load());
  EXPECT_EQ(written.load(), 300);
}

TEST_P(Resume, APostgresImmediateRestartDropsNoEventForConnectedClients) {
  auto c = connect("u1");
  sql("INSERT INTO channel_members VALUES ('before', 'u1')");
  std::string offset;
  EXPECT_EQ(events(*c, 500ms, &offset), (Events{"joined before u1"}));
  pg().restart_immediate();
  // The listener finds the server gone and comes back; changes made meanwhile come from the log.
  sql("INSERT INTO channel_members VALUES ('after', 'u1')");
  EXPECT_EQ(events(*c, 3s, &offset), (Events{"joined after u1"}));
  EXPECT_TRUE(c->is_open());
  EXPECT_TRUE(sidecar().wait_for_log("reconnecting in"));
}

TEST_P(Resume, TwoInstancesOnOneDatabaseBothDeliverAndKillingOneLeavesTheOtherAlone) {
  Sidecar second;
  start_sidecar({}, &second);
  auto on_first = connect("u1");
  auto on_second = connect("u1", "", second.port());
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  std::string o1, o2;
  EXPECT_EQ(events(*on_first, 500ms, &o1), (Events{"joined c1 u1"}));
  EXPECT_EQ(events(*on_second, 500ms, &o2), (Events{"joined c1 u1"}));
  // Each instance words its offsets from its own reads, but both name the same log and row.
  auto d1 = mn::decode_offset(o1), d2 = mn::decode_offset(o2);
  ASSERT_TRUE(d1 && d2);
  EXPECT_EQ(d1->log_id, d2->log_id);
  EXPECT_EQ(d1->pos.last_id, d2->pos.last_id);
  second.kill9();
  sql("INSERT INTO channel_members VALUES ('c2', 'u1')");
  EXPECT_EQ(events(*on_first, 500ms, &o1), (Events{"joined c2 u1"}));
  // The second instance's client resumes on the first instance.
  nlohmann::json session;
  auto moved = connect("u1", "&offset=" + o2, 0, &session);
  EXPECT_EQ(session["data"]["recovered"], true);
  EXPECT_EQ(events(*moved, 500ms, &o2), (Events{"joined c2 u1"}));
}

TEST_P(Resume, ASidecarRoleWithOnlyTheGrantsItNeedsServesSnapshotsResumesAndPruning) {
  sql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'notifier_ro') THEN "
      "CREATE ROLE notifier_ro LOGIN; END IF; END $$");
  sql("SELECT membership_notifier.grant_sidecar('notifier_ro')");
  // Only SELECT on the membership table: the sidecar can never change the application's data.
  auto privileges = query("SELECT privilege_type FROM information_schema.role_table_grants "
                          "WHERE grantee = 'notifier_ro' AND table_name = 'channel_members'");
  ASSERT_EQ(privileges.size(), 1u);
  EXPECT_EQ(privileges[0][0].as<std::string>(), "SELECT");
  {
    // Adaptive mode's look at the NOTIFY lock's queue (it runs only under load, so say it here),
    // and the question it asks after an arm while transactions run (other databases' ids).
    pqxx::connection ro{conninfo() + " user=notifier_ro"};
    pqxx::nontransaction tx{ro};
    int waiters = -1;
    EXPECT_NO_THROW(waiters = tx.exec("SELECT membership_notifier.notify_lock_waiters()")[0][0].as<int>());
    EXPECT_GE(waiters, 0);
    pqxx::connection other{pg().conninfo("postgres")};
    pqxx::work open{other};
    const auto elsewhere = open.exec("SELECT pg_current_xact_id()::text")[0][0].as<std::string>();
    std::string answer;
    EXPECT_NO_THROW(answer = tx.exec("SELECT membership_notifier.other_databases_xids("
                                     "ARRAY[pg_current_xact_id(), '" + elsewhere + "'::xid8])::text")[0][0]
                                 .as<std::string>());
    EXPECT_EQ(answer, "{" + elsewhere + "}") << "this database's own transaction is not another database's";
  }
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  sidecar().signal(SIGTERM);
  sidecar().wait_exit();
  Sidecar restricted;
  std::vector<std::string> args = {"serve", "--database-url", conninfo() + " user=notifier_ro", "--listen",
                                   "127.0.0.1:0", "--prune-interval", "200ms", "--retention", "1h"};
  args.insert(args.end(), sidecar_defaults_.begin(), sidecar_defaults_.end());
  restricted.start(args, {{"MEMBERSHIP_NOTIFIER_JWT_SECRET", kTestSecret}});
  ASSERT_TRUE(restricted.wait_ready()) << restricted.log();
  nlohmann::json snapshot;
  auto c = connect("u1", "", restricted.port(), nullptr, &snapshot);
  EXPECT_EQ(snapshot["data"]["channels"], nlohmann::json::parse(R"([{"channelId":"c1","xType":null}])"));
  sql("INSERT INTO channel_members VALUES ('c2', 'u1')");
  std::string offset;
  EXPECT_EQ(events(*c, 500ms, &offset), (Events{"joined c2 u1"}));
  c->close();
  sql("DELETE FROM channel_members WHERE channel_id = 'c2'");
  nlohmann::json session;
  auto again = connect("u1", "&offset=" + offset, restricted.port(), &session);
  EXPECT_EQ(session["data"]["recovered"], true);
  EXPECT_EQ(events(*again, 500ms, &offset), (Events{"left c2 u1"}));
  EXPECT_EQ(restricted.log().find("permission denied"), std::string::npos) << restricted.log();
}

// A client whose user has no changes keeps the offset of its snapshot; resuming from it would
// read the whole log since. With each ping it is given the reader's newer position instead,
// which must lose nothing: here a change of its user still uncommitted when it was given.
class QuietResume : public ResumeFixture {
 protected:
  QuietResume() : ResumeFixture(false) {}
};
MN_EVERY_WAKE_MODE(QuietResume);

TEST_P(QuietResume, AQuietClientIsGivenANewerOffsetWithItsPingsAndResumingFromItLosesNothing) {
  start_sidecar({"--ping-interval", "200ms"});
  nlohmann::json snapshot;
  auto c = connect("u1", "", 0, nullptr, &snapshot);
  auto first = mn::decode_offset(snapshot["offset"].get<std::string>());
  ASSERT_TRUE(first);
  pqxx::connection a(conninfo());
  pqxx::work ta(a);
  ta.exec("INSERT INTO channel_members VALUES ('slow', 'u1')");
  uint64_t slow = std::stoull(ta.exec("SELECT pg_current_xact_id()::text")[0][0].c_str());
  sql("INSERT INTO channel_members VALUES ('x', 'u2')");  // the log moves on, for others
  std::optional<nlohmann::json> frame;
  for (int i = 0; i < 20 && !(frame && (*frame)["event"] == "position"); ++i) frame = c->next_json(500ms);
  ASSERT_TRUE(frame && (*frame)["event"] == "position") << "no position frame";
  ASSERT_EQ(frame->size(), 2u) << frame->dump();
  std::string offset = (*frame)["offset"];
  auto given = mn::decode_offset(offset);
  ASSERT_TRUE(given);
  EXPECT_GT(given->pos.base.xmax, first->pos.base.xmax);
  EXPECT_GT(given->pos.base.xmax, slow);
  EXPECT_FALSE(given->pos.has_seen(slow, INT64_MAX)) << "the position claims a change it never sent";
  c->close();
  expect_slow_then_later(ta, offset);
}

// The first read after a client's catch-up (snapshot or replay) can bring rows that the
// catch-up already had: they committed after the reader's previous read and before the
// catch-up's query. The hub drops those for the client. The offsets of the read's other events
// must still say that the client has them; else resuming from such an offset sends them again,
// and after a snapshot the client has no id to drop them by.
//
// Poll mode, reading every 2 s, so that every step falls between two reads: right after a read,
// u1's 'after' is logged (the lower log id) in a transaction left open, u1's 'before' commits,
// the client catches up, and 'after' commits. The next read brings both.
class ReadAcrossACatchUp : public NotifierFixture {
 protected:
  void SetUp() override {
    NotifierFixture::SetUp();
    start_sidecar({"--wake-mode", "poll", "--poll-interval", "2s"});
  }

  double reads() { return metric(metrics(), "membership_notifier_db_reads_total"); }

  // Runs the steps above with `catch_up` connecting the client; returns the offset of the one
  // event that must follow ('after').
  template <typename CatchUp>
  std::string straddle(CatchUp catch_up) {
    const double before = reads();
    for (int i = 0; i < 60 && reads() == before; ++i) std::this_thread::sleep_for(50ms);
    const double read_at = reads();
    EXPECT_GT(read_at, before) << "no read of the log in 3 s";
    pqxx::connection a(conninfo());
    pqxx::work ta(a);
    ta.exec("INSERT INTO channel_members VALUES ('after', 'u1')");
    sql("INSERT INTO channel_members VALUES ('before', 'u1')");
    WsClient& c = catch_up();
    ta.commit();
    EXPECT_EQ(reads(), read_at) << "the log was read during the steps; they must fall between two reads";
    auto e = next_event(c, 5s);
    EXPECT_EQ(describe(e), "joined after u1");
    std::string offset = e.value("offset", "");
    EXPECT_EQ(events(c, 500ms, &offset), Events{}) << "'before' was in the catch-up";
    c.close();
    return offset;
  }

  // Resuming from `offset` must bring nothing.
  void expect_nothing_new_from(std::string offset) {
    nlohmann::json session;
    auto again = connect("u1", "&offset=" + offset, 0, &session);
    EXPECT_EQ(session["data"]["recovered"], true);
    EXPECT_EQ(events(*again, 500ms, &offset), Events{});
  }
};

TEST_F(ReadAcrossACatchUp, AChangeTheSnapshotHadIsNotSentAgainToAClientResumingFromTheNextEvent) {
  std::unique_ptr<WsClient> c;
  nlohmann::json snapshot;
  expect_nothing_new_from(straddle([&]() -> WsClient& {
    c = connect("u1", "", 0, nullptr, &snapshot);
    return *c;
  }));
  EXPECT_EQ(snapshot["data"]["channels"].size(), 1u) << snapshot.dump();
  EXPECT_EQ(snapshot["data"]["channels"][0].value("channelId", ""), "before") << snapshot.dump();
}

TEST_F(ReadAcrossACatchUp, AChangeTheReplayHadIsNotSentAgainToAClientResumingFromTheNextEvent) {
  nlohmann::json snapshot;
  connect("u1", "", 0, nullptr, &snapshot)->close();
  std::string offset = snapshot["offset"];
  std::unique_ptr<WsClient> c;
  expect_nothing_new_from(straddle([&]() -> WsClient& {
    nlohmann::json session;
    c = connect("u1", "&offset=" + offset, 0, &session);
    EXPECT_EQ(session["data"]["recovered"], true);
    EXPECT_EQ(describe(next_event(*c, 5s)), "joined before u1");
    return *c;
  }));
}

// A replay reads every log row since the client's position, whoever's: past --max-replay-rows
// a snapshot is cheaper, and the client is told plainly (recovered: false) and handed one.
class ReplayLimit : public NotifierFixture {
 protected:
  void SetUp() override {
    NotifierFixture::SetUp();
    start_sidecar({"--max-replay-rows", "50"});
  }
};

TEST_F(ReplayLimit, AClientFurtherBehindThanTheLimitGetsASnapshotAndANearerOneStillResumes) {
  auto far = connect("u1");
  auto near = connect("u2");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1'), ('c1', 'u2')");
  std::string far_offset, near_offset;
  EXPECT_EQ(events(*far, 500ms, &far_offset), (Events{"joined c1 u1"}));
  far->close();
  sql("INSERT INTO channel_members SELECT 'x' || i, 'u3' FROM generate_series(1, 100) i");
  sql("INSERT INTO channel_members VALUES ('c2', 'u2')");
  EXPECT_EQ(events(*near, 500ms, &near_offset), (Events{"joined c1 u2", "joined c2 u2"}));
  near->close();
  sql("INSERT INTO channel_members VALUES ('c3', 'u1'), ('c3', 'u2')");

  nlohmann::json session, snapshot;
  auto far_again = connect("u1", "&offset=" + far_offset, 0, &session, &snapshot);
  EXPECT_EQ(session["data"]["recovered"], false) << "about 100 rows behind, the limit is 50";
  std::set<std::string> channels;
  for (auto& ch : snapshot["data"]["channels"]) channels.insert(ch["channelId"]);
  EXPECT_EQ(channels, (std::set<std::string>{"c1", "c3"}));
  EXPECT_TRUE(sidecar().wait_for_log("log rows behind, more than --max-replay-rows"));

  auto near_again = connect("u2", "&offset=" + near_offset, 0, &session);
  EXPECT_EQ(session["data"]["recovered"], true) << "a few rows behind";
  EXPECT_EQ(events(*near_again, 500ms, &near_offset), (Events{"joined c3 u2"}));
  sql("INSERT INTO channel_members VALUES ('c4', 'u1')");
  EXPECT_EQ(events(*far_again, 500ms, &far_offset), (Events{"joined c4 u1"}));
}

// The history connection (replays and snapshots) lost while a client's query is under way:
// the client is told to come back (1013), not left waiting for an answer that cannot come.
class HistoryConnectionLost : public NotifierFixture {
 protected:
  void SetUp() override {
    NotifierFixture::SetUp();
    start_sidecar();
  }
  // Holds `table`, connects with `query`, and once the sidecar's history query for this client
  // waits for the table, cuts that connection. Returns the client.
  std::unique_ptr<WsClient> connect_and_cut_history(const std::string& table, const std::string& query_string) {
    pqxx::connection holder(conninfo());
    pqxx::work hold(holder);
    hold.exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE");
    auto c = WsClient::connect(port(), "/ws?access_token=" + token("u1") + query_string);
    EXPECT_TRUE(c->is_open());
    bool waiting = false;
    for (int i = 0; i < 100 && !waiting; ++i) {
      waiting = query("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'membership-notifier history'"
                      " AND wait_event_type = 'Lock' AND datname = current_database()")[0][0].as<int>() == 1;
      if (!waiting) std::this_thread::sleep_for(50ms);
    }
    EXPECT_TRUE(waiting) << "the history query never waited for the lock";
    EXPECT_EQ(query("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'membership-notifier history' AND datname = current_database()) t")[0][0]
                  .as<int>(),
              1);
    EXPECT_TRUE(c->wait_closed(5s)) << "left waiting";
    hold.commit();
    return c;
  }
};

TEST_F(HistoryConnectionLost, AResumeUnderWayIsClosedWith1013AndResumesOnceItComesBack) {
  auto c = connect("u1");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  std::string offset;
  EXPECT_EQ(events(*c, 500ms, &offset), (Events{"joined c1 u1"}));
  c->close();
  sql("INSERT INTO channel_members VALUES ('c2', 'u1')");
  auto again = connect_and_cut_history("membership_notifier.event_log", "&offset=" + offset);
  EXPECT_EQ(again->close_code(), 1013);
  nlohmann::json session;
  auto third = connect("u1", "&offset=" + offset, 0, &session);
  EXPECT_EQ(session["data"]["recovered"], true);
  EXPECT_EQ(events(*third, 500ms, &offset), (Events{"joined c2 u1"}));
}

TEST_F(HistoryConnectionLost, ASnapshotUnderWayIsClosedWith1013AndIsAnsweredOnceItComesBack) {
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  auto c = connect_and_cut_history("public.channel_members", "");
  EXPECT_EQ(c->close_code(), 1013);
  nlohmann::json snapshot;
  auto again = connect("u1", "", 0, nullptr, &snapshot);
  ASSERT_EQ(snapshot["data"]["channels"].size(), 1u);
  EXPECT_EQ(snapshot["data"]["channels"][0]["channelId"], "c1");
}

// The sidecar's queries are never JIT-compiled. A replay is costed for a read from its oldest
// position on, and where the log's statistics lag behind its writes that passes
// jit_above_cost even when the read finds nothing, and compiling costs far more than such a
// read. The listener's generic plan passes it once the log holds millions of rows.
// Here every query of the cluster passes it (jit_above_cost=0), and pg_stat_statements says
// which were compiled.
class WithoutJit : public NotifierFixture {
 protected:
  void SetUp() override {
    NotifierFixture::SetUp();
    install_app(db_);
    if (HasFatalFailure()) return;
    db_.exec("CREATE EXTENSION pg_stat_statements", "app");
    database_url_override_ = db_.conninfo("app");
    start_sidecar();
  }
  // JIT-compiled functions and calls of the statements whose text has `marker` (no quotes).
  std::pair<long, long> jit_functions_and_calls(const std::string& marker) {
    auto r = db_.query("SELECT coalesce(sum(jit_functions), 0)::bigint, coalesce(sum(calls), 0)::bigint"
                       " FROM pg_stat_statements WHERE query LIKE '%" + marker + "%' AND query NOT LIKE '%pg_stat_statements%'",
                       "app");
    return {r[0][0].as<long>(), r[0][1].as<long>()};
  }
  PgCluster db_{PgCluster::Options{false, false,
                                   {"shared_preload_libraries=pg_stat_statements", "jit=on", "jit_above_cost=0",
                                    "jit_inline_above_cost=-1", "jit_optimize_above_cost=-1"}}};
};

TEST_F(WithoutJit, ReadsReplaysAndSnapshotsAreNotCompiledWhereEverythingElseIs) {
  auto c = connect("u1");  // a snapshot
  db_.exec("INSERT INTO channel_members VALUES ('c1', 'u1')", "app");
  std::string offset;
  EXPECT_EQ(events(*c, 500ms, &offset), (Events{"joined c1 u1"}));
  c->close();
  db_.exec("INSERT INTO channel_members VALUES ('c2', 'u1')", "app");
  nlohmann::json session;
  auto again = connect("u1", "&offset=" + offset, 0, &session);  // a replay
  EXPECT_EQ(session["data"]["recovered"], true);
  EXPECT_EQ(events(*again, 500ms, &offset), (Events{"joined c2 u1"}));

  auto [replay_jit, replays] = jit_functions_and_calls("pruned_through::text, st.log_id");
  EXPECT_GE(replays, 1);
  EXPECT_EQ(replay_jit, 0) << "a replay was JIT-compiled";
  auto [snapshot_jit, snapshots] = jit_functions_and_calls("LEFT JOIN LATERAL (SELECT r.");
  EXPECT_GE(snapshots, 1);
  EXPECT_EQ(snapshot_jit, 0) << "a snapshot was JIT-compiled";
  auto [read_jit, reads] = jit_functions_and_calls("pg_notification_queue_usage()");
  EXPECT_GE(reads, 1);
  EXPECT_EQ(read_jit, 0) << "a read of the log was JIT-compiled";
  // The same cluster does compile other sessions' queries: the check above can fail.
  db_.query("SELECT count(*) AS jit_marker FROM membership_notifier.event_log WHERE user_id = 'u1'", "app");
  auto [other_jit, others] = jit_functions_and_calls("AS jit_marker");
  EXPECT_GE(others, 1);
  EXPECT_GT(other_jit, 0) << "JIT is not available here, so this test shows nothing";
}
