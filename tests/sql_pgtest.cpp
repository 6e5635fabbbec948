// The database side (sql/up.sql, sql/down.sql) against a real PostgreSQL, with no sidecar and no
// WebSocket: what the triggers write to membership_notifier.event_log for each kind of change,
// when they wake a listener, what they must never do to the application's writes, the mapping
// onto other schemas, the migration itself (through the binary and through psql), retention,
// and the commit-order trap the read cursor exists for.
//
// Each test has a database of its own in the shared cluster. Writes go through fresh
// connections unless a test needs sessions that overlap.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "event_log_reader.h"
#include "wake_payload.h"
#include "support/database_test.h"
#include "support/pg_cluster.h"
#include "support/sidecar.h"

namespace mn::test {
namespace {

using namespace std::chrono_literals;

const std::string kUpSql = std::string(MN_SOURCE_DIR) + "/sql/up.sql";
const std::string kDownSql = std::string(MN_SOURCE_DIR) + "/sql/down.sql";

// What the migration owns in the catalog, one sorted line per object. With identities, it also
// holds what a re-run must keep but another database cannot share: OIDs, the log id, and the
// settings row version.
const char* kFingerprintSql = R"(
SELECT coalesce(string_agg(line, E'\n' ORDER BY line), '') FROM (
  SELECT 'function ' || p.oid::regprocedure::text || ' ' || md5(pg_get_functiondef(p.oid))
         || ' definer=' || p.prosecdef || ' acl=' || coalesce(p.proacl::text, '')
         || CASE WHEN $1 THEN ' oid=' || p.oid ELSE '' END AS line
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname = 'membership_notifier'
  UNION ALL
  SELECT 'relation ' || c.relname || ' ' || c.relkind::text || c.relpersistence::text
         || CASE WHEN $1 THEN ' oid=' || c.oid ELSE '' END
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'membership_notifier'
  UNION ALL
  SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || ' notnull=' || a.attnotnull
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'membership_notifier' AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
         || CASE WHEN $1 THEN ' oid=' || t.oid ELSE '' END
    FROM pg_trigger t WHERE t.tgname LIKE 'membership\_notifier\_%'
  UNION ALL
  SELECT 'schema acl=' || coalesce(n.nspacl::text, '') FROM pg_namespace n
   WHERE n.nspname = 'membership_notifier'
) f)";

const char* kSettingsSql =
    "SELECT 'settings ' || row(schema_version, member_table, channel_column, user_column,"
    "       xtype_column, channels_table, channels_key)::text"
    "       || CASE WHEN $1 THEN ' log=' || log_id || ' xmin=' || xmin ELSE '' END"
    "  FROM membership_notifier.settings";

class SqlTest : public DatabaseTest {
 protected:
  SqlTest() : DatabaseTest("sql_") {}

  // psql on this database with ON_ERROR_STOP; `args` are shell words. The exit status.
  int psql(const std::string& args, std::string* out = nullptr) {
    const std::string cmd = "/usr/bin/psql -X -q -v ON_ERROR_STOP=1 -d '" + conninfo() + "' " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return -1;
    std::string captured;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) captured.append(buf, n);
    const int status = pclose(p);
    if (out) *out = captured;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string fingerprint(bool identities) {
    pqxx::connection c{conninfo()};
    pqxx::nontransaction tx{c};
    std::string f = tx.exec_params(kFingerprintSql, identities).at(0).at(0).as<std::string>();
    if (tx.exec("SELECT to_regclass('membership_notifier.settings') IS NOT NULL").at(0).at(0).as<bool>()) {
      for (const auto& row : tx.exec_params(kSettingsSql, identities)) f += "\n" + row[0].as<std::string>();
    }
    return f;
  }

  // The log in id order: "j c1 u1", "l c1 u1", "t"; with_xtype appends the xType or "-".
  std::vector<std::string> log(bool with_xtype = false) {
    std::vector<std::string> out;
    const std::string sql = std::string("SELECT op::text || coalesce(' ' || channel_id, '')") +
                            " || coalesce(' ' || user_id, '')" + (with_xtype ? " || ' ' || coalesce(xtype, '-')" : "") +
                            " FROM membership_notifier.event_log ORDER BY id";
    for (const auto& row : query(sql)) {
      out.push_back(row[0].as<std::string>());
    }
    return out;
  }

  // Triggers of the migration per table: "public.channel_members 4".
  std::vector<std::string> triggers() {
    std::vector<std::string> out;
    for (const auto& row : query("SELECT tgrelid::regclass::text || ' ' || count(*) FROM pg_trigger"
                                 " WHERE tgname LIKE 'membership\\_notifier\\_%' GROUP BY tgrelid ORDER BY 1")) {
      out.push_back(row[0].as<std::string>());
    }
    return out;
  }

  bool schema_exists() { return one("SELECT to_regnamespace('membership_notifier') IS NOT NULL") == "t"; }
};

// The default table (plus a column that is neither channel nor user) with the migration applied.
class LoggedTable : public SqlTest {
 protected:
  void SetUp() override {
    SqlTest::SetUp();
    sql("CREATE TABLE public.channel_members (channel_id text NOT NULL, user_id text NOT NULL,"
        " role text, PRIMARY KEY (channel_id, user_id))");
    ASSERT_EQ(migrate("up"), 0);
  }
};

using Inserting = LoggedTable;
using Deleting = LoggedTable;
using Updating = LoggedTable;
using OtherWrites = LoggedTable;
using TimeOfChange = LoggedTable;
using WakeUp = LoggedTable;
using NoNewFailureMode = LoggedTable;
using Retention = LoggedTable;
using CommitSafeCursor = LoggedTable;
using Mapping = SqlTest;
using Migration = SqlTest;

// --- what is logged -------------------------------------------------------------------------

TEST_F(Inserting, AnInsertLogsOneJoinInTheInsertingTransaction) {
  pqxx::connection c{conninfo()};
  pqxx::work tx{c};
  const std::string xid = tx.exec("SELECT pg_current_xact_id()::text").at(0).at(0).as<std::string>();
  tx.exec("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1')");
  tx.commit();
  EXPECT_EQ(log(true), (std::vector<std::string>{"j c1 u1 -"}));
  EXPECT_EQ(one("SELECT xid::text FROM membership_notifier.event_log"), xid);
}

TEST_F(Inserting, AMultiRowInsertLogsAJoinForEachRowInOrder) {
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1'), ('c1', 'u2'), ('c2', 'u1')");
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1", "j c1 u2", "j c2 u1"}));
}

TEST_F(Inserting, RowsSkippedByOnConflictDoNothingAreNotLogged) {
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1')");
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1'), ('c1', 'u2') ON CONFLICT DO NOTHING");
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u2') ON CONFLICT DO NOTHING");
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1", "j c1 u2"}));
}

TEST_F(Inserting, AnOnConflictDoUpdateThatLeavesThePairAloneLogsNothing) {
  sql("INSERT INTO channel_members VALUES ('c1', 'u1', 'member')");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1', 'admin') ON CONFLICT (channel_id, user_id)"
      " DO UPDATE SET role = excluded.role, user_id = excluded.user_id");
  EXPECT_EQ(one("SELECT role FROM channel_members"), "admin");  // the update did happen
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1"}));
}

TEST_F(Deleting, ADeleteLogsOneLeaveForEachDeletedRow) {
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1'), ('c1', 'u2'), ('c2', 'u1')");
  sql("DELETE FROM channel_members WHERE channel_id = 'c1'");
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1", "j c1 u2", "j c2 u1", "l c1 u1", "l c1 u2"}));
}

TEST_F(Deleting, DeletingARowThatIsNotThereLogsNothing) {
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1')");
  sql("DELETE FROM channel_members WHERE channel_id = 'c1' AND user_id = 'nobody'");
  sql("DELETE FROM channel_members WHERE channel_id = 'c9'");
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1"}));
}

TEST_F(Deleting, WorkThatIsRolledBackLogsNothing) {
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1')");
  sql("BEGIN; INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u2');"
      " DELETE FROM channel_members WHERE user_id = 'u1'; UPDATE channel_members SET user_id = 'u3'; ROLLBACK");
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1"}));
  EXPECT_EQ(one("SELECT count(*) FROM membership_notifier.event_log"), "1");
}

TEST_F(Deleting, WorkRolledBackToASavepointOfACommittedTransactionLogsNothing) {
  sql("BEGIN; INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1');"
      " SAVEPOINT s; INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u2');"
      " DELETE FROM channel_members WHERE user_id = 'u1'; ROLLBACK TO SAVEPOINT s;"
      " INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u3'); COMMIT");
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1", "j c1 u3"}));
}

TEST_F(Updating, ChangingTheUserLogsLeaveForTheOldPairThenJoinForTheNewOneRowAtATime) {
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1'), ('c1', 'u2')");
  sql("UPDATE channel_members SET user_id = user_id || 'x'");
  auto rows = query("SELECT op::text, user_id, id, occurred_at FROM membership_notifier.event_log"
                    " WHERE id > 2 ORDER BY id");
  ASSERT_EQ(rows.size(), 4u);
  for (int i = 0; i < 4; i += 2) {
    EXPECT_EQ(rows[i][0].as<std::string>(), "l");
    EXPECT_EQ(rows[i + 1][0].as<std::string>(), "j");
    EXPECT_EQ(rows[i][1].as<std::string>() + "x", rows[i + 1][1].as<std::string>());
  }
  EXPECT_EQ(one("SELECT bool_and(id > prev_id AND occurred_at >= prev_at) FROM (SELECT id, occurred_at,"
                " lag(id) OVER w prev_id, lag(occurred_at) OVER w prev_at FROM membership_notifier.event_log"
                " WINDOW w AS (ORDER BY id)) s WHERE prev_id IS NOT NULL"),
            "t");
}

TEST_F(Updating, ChangingTheChannelLogsLeaveForTheOldPairThenJoinForTheNew) {
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1')");
  sql("UPDATE channel_members SET channel_id = 'c2' WHERE user_id = 'u1'");
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1", "l c1 u1", "j c2 u1"}));
}

TEST_F(Updating, AnUpdateThatChangesNeitherChannelNorUserLogsNothing) {
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1')");
  sql("UPDATE channel_members SET role = 'admin'");
  sql("UPDATE channel_members SET user_id = user_id, channel_id = channel_id");
  EXPECT_EQ(one("SELECT role FROM channel_members"), "admin");
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1"}));
}

TEST_F(OtherWrites, DeletingAChannelLogsALeaveForEachMemberRemovedByTheCascade) {
  sql("CREATE TABLE channels (id text PRIMARY KEY);"
      " ALTER TABLE channel_members ADD FOREIGN KEY (channel_id) REFERENCES channels ON DELETE CASCADE;"
      " INSERT INTO channels VALUES ('c1'), ('c2')");
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1'), ('c1', 'u2'), ('c2', 'u3')");
  sql("DELETE FROM channels WHERE id = 'c1'");
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1", "j c1 u2", "j c2 u3", "l c1 u1", "l c1 u2"}));
}

TEST_F(OtherWrites, CopyFromLogsAJoinForEachCopiedRow) {
  sql(R"(COPY channel_members (channel_id, user_id) FROM PROGRAM 'printf ''c1\tu1\nc1\tu2\nc2\tu3\n''')");
  EXPECT_EQ(one("SELECT count(*) FROM channel_members"), "3");
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1", "j c1 u2", "j c2 u3"}));
}

TEST_F(OtherWrites, ATruncateLogsOneRowThatTellsEveryoneToResynchronise) {
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1'), ('c1', 'u2')");
  sql("TRUNCATE channel_members");
  EXPECT_EQ(log(true), (std::vector<std::string>{"j c1 u1 -", "j c1 u2 -", "t -"}));
}

// --- the time of a change -------------------------------------------------------------------

// The sidecar's read of the log since `snapshot`: its SQL with its parameters.
pqxx::result run_read(pqxx::transaction_base& tx, const std::string& snapshot) {
  auto params = EventLogReader::read_params(*mn::PgSnapshot::parse(snapshot));
  return tx.exec_params(EventLogReader::read_sql(), *params[0], *params[1], *params[2]);
}

// The times a client gets: the rows as the sidecar reads them (its read SQL), made distinct
// by its rule. The log itself keeps each row's clock_timestamp(), which may repeat.
std::vector<int64_t> times_read_since(pqxx::connection& c, const std::string& snapshot) {
  pqxx::nontransaction tx{c};
  std::vector<LogRow> rows;
  for (const auto& row : run_read(tx, snapshot)) {
    if (row[1].is_null()) continue;
    LogRow r;
    r.id = row[1].as<int64_t>();
    r.xid = row[2].as<uint64_t>();
    r.occurred_at_us = row[7].as<int64_t>();
    rows.push_back(r);
  }
  std::sort(rows.begin(), rows.end(), [](const LogRow& a, const LogRow& b) { return a.id < b.id; });
  make_times_distinct(rows);
  std::vector<int64_t> out;
  for (const auto& r : rows) out.push_back(r.occurred_at_us);
  return out;
}

bool strictly_increasing(const std::vector<int64_t>& v) {
  return std::adjacent_find(v.begin(), v.end(), std::greater_equal<int64_t>()) == v.end();
}

TEST_F(TimeOfChange, JoinLeaveJoinOfOnePairInOneTransactionLogsThreeRowsReadWithDistinctIncreasingTimes) {
  pqxx::connection reader{conninfo()};
  const std::string start = one(reader, "SELECT pg_current_snapshot()::text");
  sql("BEGIN; INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1');"
      " DELETE FROM channel_members WHERE user_id = 'u1';"
      " INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1'); COMMIT");
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1", "l c1 u1", "j c1 u1"}));
  EXPECT_EQ(one("SELECT count(DISTINCT xid) FROM membership_notifier.event_log"), "1");
  // One transaction (so now() was one value throughout), three times, each after the last.
  auto t = times_read_since(reader, start);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_TRUE(strictly_increasing(t)) << t[0] << " " << t[1] << " " << t[2];
}

TEST_F(TimeOfChange, EveryRowOfAThousandRowInsertIsReadWithItsOwnTimeIncreasingWithItsId) {
  pqxx::connection reader{conninfo()};
  const std::string start = one(reader, "SELECT pg_current_snapshot()::text");
  sql("INSERT INTO channel_members (channel_id, user_id) SELECT 'c1', 'u' || i FROM generate_series(1, 1000) i");
  auto t = times_read_since(reader, start);
  ASSERT_EQ(t.size(), 1000u);
  EXPECT_TRUE(strictly_increasing(t));
  EXPECT_LT(t.back() - t.front(), 60 * 1000000) << "and stays close to the real time";
}

// The live read takes its times through float8 (cheaper), a replay through numeric: a client
// must get the same microsecond from both, for any time the log may hold this century.
TEST_F(TimeOfChange, TheReaderReadsEveryTimeToTheMicrosecondAsAReplayDoes) {
  pqxx::connection reader{conninfo()};
  const std::string start = one(reader, "SELECT pg_current_snapshot()::text");
  sql("INSERT INTO membership_notifier.event_log (op, channel_id, user_id, occurred_at)"
      " SELECT 'j', 'c1', 'u' || i, to_timestamp(0) + (floor(random() * 4102444800e6)::bigint || ' us')::interval"
      "   FROM generate_series(1, 20000) i"
      " UNION ALL SELECT 'j', 'c1', 'edge', t::timestamptz FROM unnest(ARRAY["
      "   '1970-01-01 00:00:00.000001+00', '2026-11-27 05:00:00.999999+00', '2026-11-27 05:00:00.5+00',"
      "   '2038-01-19 03:14:07.999999+00', '2041-09-20 00:00:00.000001+00',"
      "   '2106-02-07 06:28:15.999999+00']) t");
  std::map<int64_t, int64_t> expected;
  for (const auto& row : pqxx::nontransaction{reader}.exec(
           "SELECT id, (extract(epoch FROM occurred_at) * 1000000)::bigint FROM membership_notifier.event_log"))
    expected[row[0].as<int64_t>()] = row[1].as<int64_t>();
  ASSERT_EQ(expected.size(), 20006u);
  pqxx::nontransaction tx{reader};
  size_t compared = 0;
  for (const auto& row : run_read(tx, start)) {
    if (row[1].is_null()) continue;
    const int64_t id = row[1].as<int64_t>();
    ASSERT_EQ(row[7].as<int64_t>(), expected.at(id)) << "row " << id;
    ++compared;
  }
  EXPECT_EQ(compared, expected.size());
}

// The session's DateStyle and TimeZone must not change the time a change is logged at.
TEST_F(TimeOfChange, TheTimeOfEachChangeIsTheRealTimeWhateverDateStyleAndTimeZoneTheSessionUses) {
  sql("SET DateStyle = 'Postgres, MDY'; SET TimeZone = 'Asia/Kolkata';"
      " BEGIN; INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1');"
      " INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u2'); COMMIT");
  EXPECT_EQ(one("SELECT count(*) FROM membership_notifier.event_log"), "2");
  EXPECT_EQ(one("SELECT coalesce(string_agg(user_id || ' at ' || occurred_at, ', '), 'none')"
                " FROM membership_notifier.event_log WHERE abs(extract(epoch FROM occurred_at - clock_timestamp())) > 60"),
            "none")
      << "rows logged more than a minute away from the real time (server time " << one("SELECT now()") << ")";
}

// --- waking the sidecar ---------------------------------------------------------------------

// A LISTENing connection that counts wake-ups, as a sidecar would be.
struct Listener final : pqxx::notification_receiver {
  explicit Listener(pqxx::connection_base& c) : pqxx::notification_receiver(c, "membership_notifier") {}
  void operator()(const std::string& payload, int) override {
    ++count;
    payloads.push_back(payload);
  }
  std::vector<std::string> payloads;
  // Takes in what arrives until `quiet` passes with nothing.
  int drain(pqxx::connection_base& c, std::chrono::milliseconds quiet = 400ms) {
    while (c.await_notification(0, static_cast<long>(std::chrono::microseconds(quiet).count())) > 0) {
    }
    return count;
  }
  int count = 0;
};

const char* kManyStatements =
    "BEGIN; INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1');"
    " INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u2'), ('c1', 'u3');"
    " DELETE FROM channel_members WHERE user_id = 'u2'; UPDATE channel_members SET user_id = 'u4' WHERE user_id = 'u3';"
    " INSERT INTO channel_members (channel_id, user_id) VALUES ('c2', 'u1'); TRUNCATE channel_members;"
    " INSERT INTO channel_members (channel_id, user_id) VALUES ('c3', 'u1'); COMMIT";

// While a sidecar waits, each statement that changed rows wakes it once, with a payload that
// names its last log row (a row of an UPDATE, which row triggers log: each its own; a TRUNCATE:
// its transaction, id 0) and verifies under the installation's key, and says nothing of whose
// change it was: any role can LISTEN.
TEST_F(WakeUp, WhileASidecarWaitsEachChangingStatementWakesItWithASignedPositionAndNothingElse) {
  pqxx::connection lc{conninfo()};
  Listener listener{lc};
  EXPECT_EQ(one(lc, "SELECT membership_notifier.set_waiting(true)"), "1");
  sql(kManyStatements);
  EXPECT_EQ(listener.drain(lc), 8);
  auto logged = query("SELECT id, xid::text, op::text FROM membership_notifier.event_log ORDER BY id");
  auto key = mn::parse_wake_key(one(lc, "SELECT encode(key, 'hex') FROM membership_notifier.wake_key"));
  ASSERT_TRUE(key);
  ASSERT_EQ(logged.size(), 9u);
  ASSERT_EQ(listener.payloads.size(), 8u);
  // The log rows named: each but the first of the two-row INSERT (1 of 0..8).
  const std::vector<size_t> named = {0, 2, 3, 4, 5, 6, 7, 8};
  for (size_t i = 0; i < named.size(); ++i) {
    auto woken = mn::verify_wake_payload(listener.payloads[i], *key);
    ASSERT_TRUE(woken) << listener.payloads[i];
    const auto& row = logged[named[i]];
    EXPECT_EQ(std::to_string(woken->xid), row[1].as<std::string>());
    EXPECT_EQ(woken->id, row[2].as<std::string>() == "t" ? 0 : row[0].as<int64_t>());
    // "<digits>.<digits>.<64 hex digits>", nothing else.
    const std::string& p = listener.payloads[i];
    const auto first_dot = p.find('.'), last_dot = p.rfind('.');
    EXPECT_TRUE(first_dot != std::string::npos && last_dot == first_dot + 1 + std::to_string(woken->id).size() &&
                p.size() - last_dot - 1 == 64 &&
                p.find_first_not_of("0123456789.abcdef") == std::string::npos)
        << p;
  }
}

// The flag lives in cached plans of the application's sessions; a session that wrote before
// an arm must notify in its next transaction, and stop after a disarm.
TEST_F(WakeUp, ALongLivedSessionFollowsASidecarArmingAndDisarmingBetweenItsTransactions) {
  pqxx::connection app{conninfo()}, lc{conninfo()};
  Listener listener{lc};
  auto write = [&app](const std::string& channel) {
    pqxx::work tx{app};
    tx.exec("INSERT INTO channel_members (channel_id, user_id) VALUES ('" + channel + "', 'u1')");
    tx.commit();
  };
  write("c1");
  EXPECT_EQ(listener.drain(lc), 0);
  EXPECT_EQ(one(lc, "SELECT membership_notifier.set_waiting(true)"), "1");
  write("c2");
  EXPECT_EQ(listener.drain(lc), 1);
  EXPECT_EQ(one(lc, "SELECT membership_notifier.set_waiting(false)"), "0");
  write("c3");
  EXPECT_EQ(listener.drain(lc), 1);
  EXPECT_EQ(one(lc, "SELECT membership_notifier.set_waiting(true)"), "1");
  write("c4");
  EXPECT_EQ(listener.drain(lc), 2);
}

TEST_F(WakeUp, ARowOfAnySizeWakesTheSidecarWithTheSameShortPayload) {
  sql("ALTER TABLE channel_members ADD COLUMN kind text");
  ASSERT_EQ(migrate("up", {"--xtype-column", "kind"}), 0);
  pqxx::connection lc{conninfo()};
  Listener listener{lc};
  EXPECT_EQ(one(lc, "SELECT membership_notifier.set_waiting(true)"), "1");
  sql("INSERT INTO channel_members (channel_id, user_id, kind) VALUES (repeat(chr(1), 1000), 'u1', repeat(chr(1), 1000))");
  EXPECT_EQ(listener.drain(lc), 1);
  ASSERT_EQ(listener.payloads.size(), 1u);
  EXPECT_LT(listener.payloads[0].size(), 120u);
}

TEST_F(WakeUp, NoListenerWaitingMeansNoNotificationButTheLogStillHasEveryChange) {
  pqxx::connection lc{conninfo()};
  Listener listener{lc};
  EXPECT_EQ(one(lc, "SELECT membership_notifier.set_waiting(false)"), "0");
  sql(kManyStatements);
  EXPECT_EQ(listener.drain(lc), 0);
  EXPECT_EQ(log().size(), 9u);
}

TEST_F(WakeUp, AStatementThatChangesNoRowWakesNobody) {
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1')");
  pqxx::connection lc{conninfo()};
  Listener listener{lc};
  EXPECT_EQ(one(lc, "SELECT membership_notifier.set_waiting(true)"), "1");
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1') ON CONFLICT DO NOTHING");
  sql("DELETE FROM channel_members WHERE user_id = 'nobody'");
  sql("UPDATE channel_members SET role = 'admin'");
  EXPECT_EQ(listener.drain(lc), 0);
}

// A sidecar that stopped or died while waiting leaves waiting() true until another one arms or
// disarms. Its wake-ups would wake nobody, and each would make a commit wait its turn for the
// NOTIFY lock, for as long as no sidecar runs.
TEST_F(WakeUp, ASidecarGoneWhileWaitingCostsTheWritersNoNotifyEvenBeforeAnotherOneArms) {
  pqxx::connection watcher{conninfo()};  // LISTENs without waiting: sees every NOTIFY
  Listener seen{watcher};
  std::string pid;
  {
    pqxx::connection sidecar{conninfo()};
    pid = one(sidecar, "SELECT pg_backend_pid()");
    ASSERT_EQ(one(sidecar, "SELECT membership_notifier.set_waiting(true)"), "1");
    sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1')");
    EXPECT_EQ(seen.drain(watcher), 1) << "while it is there, a change wakes";
  }  // its session ends without disarming, as on a crash
  for (int i = 0; i < 100 && one("SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid) != "0"; ++i)
    std::this_thread::sleep_for(50ms);
  ASSERT_EQ(one("SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid), "0");
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u2')");
  EXPECT_EQ(seen.drain(watcher), 1) << "nobody waits any more: no NOTIFY";
  EXPECT_EQ(one("SELECT membership_notifier.waiting()::text"), "true") << "though the mark says one does";
  EXPECT_EQ(one("SELECT count(*) FROM membership_notifier.event_log WHERE user_id = 'u2'"), "1")
      << "and the change is in the log for the next sidecar";
  sql("TRUNCATE channel_members");
  EXPECT_EQ(seen.drain(watcher), 1) << "a TRUNCATE does not notify either";
  EXPECT_EQ(one("SELECT count(*) FROM membership_notifier.event_log WHERE op = 't'"), "1");
}

TEST_F(WakeUp, ASidecarThatDiedWhileWaitingIsForgottenWhenAnotherOneArms) {
  sql("INSERT INTO membership_notifier.listener VALUES (2147483000, true);"
      " CREATE OR REPLACE FUNCTION membership_notifier.waiting() RETURNS boolean LANGUAGE sql IMMUTABLE"
      " AS 'SELECT true'");
  pqxx::connection lc{conninfo()}, other{conninfo()};
  Listener listener{lc};
  EXPECT_EQ(one(lc, "SELECT membership_notifier.set_waiting(true)"), "1") << "the dead one is not counted";
  EXPECT_EQ(one(other, "SELECT membership_notifier.set_waiting(true)"), "2");
  EXPECT_EQ(one(other, "SELECT membership_notifier.set_waiting(false)"), "1") << "one disarming leaves the other armed";
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1')");
  EXPECT_EQ(listener.drain(lc), 1);
  EXPECT_EQ(one(lc, "SELECT membership_notifier.set_waiting(false)"), "0");
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u2')");
  EXPECT_EQ(listener.drain(lc), 1) << "no one waits: no NOTIFY";
}

// --- no new way for the application's writes to fail ----------------------------------------

TEST_F(NoNewFailureMode, AnApplicationRoleWithRightsOnlyOnTheMembershipTableCanStillWrite) {
  sql("DO $$ BEGIN CREATE ROLE mn_sql_app LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
      " GRANT SELECT, INSERT, UPDATE, DELETE ON channel_members TO mn_sql_app");
  pqxx::connection app{"host=" + pg().dir() + " port=" + std::to_string(pg().port()) +
                       " user=mn_sql_app dbname=" + db_};
  EXPECT_THROW(one(app, "SELECT count(*) FROM membership_notifier.event_log"), pqxx::insufficient_privilege);
  EXPECT_NO_THROW({
    pqxx::nontransaction tx{app};
    tx.exec("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1')");
    tx.exec("UPDATE channel_members SET user_id = 'u2'");
    tx.exec("DELETE FROM channel_members");
  });
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1", "l c1 u1", "j c1 u2", "l c1 u2"}));
}

TEST_F(NoNewFailureMode, WritesWorkWithNoSidecarConnectedAndWithAStaleListenerRowLeftBehind) {
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1')");
  // A sidecar that died while waiting leaves its row and its count behind: the triggers then
  // notify, and the NOTIFY reaches no one.
  sql("INSERT INTO membership_notifier.listener VALUES (2147483000, true);"
      " CREATE OR REPLACE FUNCTION membership_notifier.waiting() RETURNS boolean LANGUAGE sql IMMUTABLE"
      " AS 'SELECT true'");
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u2')");
  sql("DELETE FROM channel_members WHERE user_id = 'u1'");
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1", "j c1 u2", "l c1 u1"}));
}

TEST_F(NoNewFailureMode, ChangingDateStyleInsideATransactionDoesNotMakeTheNextWriteFail) {
  EXPECT_NO_THROW(sql("SET DateStyle = 'SQL, MDY'; BEGIN;"
                      " INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1');"
                      " SET LOCAL DateStyle = 'SQL, DMY';"
                      " INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u2'); COMMIT"));
  EXPECT_EQ(one("SELECT count(*) FROM channel_members"), "2");
  EXPECT_EQ(one("SELECT count(*) FROM membership_notifier.event_log"
                " WHERE abs(extract(epoch FROM occurred_at - clock_timestamp())) < 60"),
            "2");
}

// The triggers run as their owner but, to cost less, without a pinned search_path (up.sql): a
// writer that puts a schema of its own first must not get any of its look-alikes run by them.
// Each look-alike fails loudly if called or used; the writes must succeed and log what they did.
TEST_F(NoNewFailureMode, AWriterWhoseSearchPathComesFirstGetsNoneOfItsLookAlikesUsedByTheTriggers) {
  sql("CREATE TABLE channels (id text PRIMARY KEY, type text); INSERT INTO channels VALUES ('c1', 'dm')");
  ASSERT_EQ(migrate("up", {"--channels-table", "channels", "--xtype-column", "type"}), 0);
  sql(R"(CREATE SCHEMA evil;
    CREATE FUNCTION evil.hijacked() RETURNS boolean LANGUAGE plpgsql AS
      $$ BEGIN RAISE EXCEPTION 'hijacked'; END $$;
    CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE sql AS
      'SELECT CASE WHEN evil.hijacked() THEN now() END';
    CREATE FUNCTION evil.pg_notification_queue_usage() RETURNS float8 LANGUAGE sql AS
      'SELECT CASE WHEN evil.hijacked() THEN 0::float8 END';
    CREATE FUNCTION evil.pg_notify(text, text) RETURNS void LANGUAGE sql AS 'SELECT evil.hijacked(); SELECT';
    CREATE FUNCTION evil.current_setting(text, boolean) RETURNS text LANGUAGE sql AS
      'SELECT CASE WHEN evil.hijacked() THEN $1 END';
    CREATE FUNCTION evil.eq(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT evil.hijacked()';
    CREATE FUNCTION evil.lt(float8, numeric) RETURNS boolean LANGUAGE sql AS 'SELECT evil.hijacked()';
    CREATE FUNCTION evil.arrow(jsonb, text) RETURNS text LANGUAGE sql AS
      'SELECT CASE WHEN evil.hijacked() THEN $2 END';
    CREATE FUNCTION evil.bigger(bigint, bigint) RETURNS bigint LANGUAGE sql AS
      'SELECT CASE WHEN evil.hijacked() THEN $2 END';
    CREATE AGGREGATE evil.max(bigint) (SFUNC = evil.bigger, STYPE = bigint);
    CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.eq);
    CREATE OPERATOR evil.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.eq);
    CREATE OPERATOR evil.< (LEFTARG = float8, RIGHTARG = numeric, FUNCTION = evil.lt);
    CREATE OPERATOR evil.->> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = evil.arrow);
    CREATE DOMAIN evil.text AS integer;
    CREATE DOMAIN evil.jsonb AS integer)");
  pqxx::connection lc{conninfo()};
  Listener listener{lc};
  const std::string writer = conninfo() + " options='-csearch_path=evil,pg_catalog,public'";
  auto write = [&writer](const std::string& statements) {
    pqxx::connection c{writer};
    pqxx::nontransaction tx{c};
    tx.exec(statements);
  };
  ASSERT_THROW(write("SELECT evil.clock_timestamp()"), pqxx::sql_error) << "the look-alikes do fail";
  ASSERT_THROW(write("SELECT max(x) FROM (VALUES (1::bigint)) v(x)"), pqxx::sql_error) << "and come first";
  // Both paths of the triggers: the bare INSERT (no sidecar waits), then NOTIFY with the row.
  // c9 is not in the channels table: its xType comes from the channels deleted in this
  // transaction, set here by hand.
  for (const char* waiting : {"false", "true"}) {
    EXPECT_EQ(one(lc, std::string("SELECT membership_notifier.set_waiting(") + waiting + ") > 0"),
              std::string(waiting).substr(0, 1));
    EXPECT_NO_THROW(write("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1');"
                          " UPDATE channel_members SET user_id = 'u2';"
                          " BEGIN; SET LOCAL membership_notifier.gone_channels = '{\"c9\": \"x\"}';"
                          " INSERT INTO channel_members (channel_id, user_id) VALUES ('c9', 'u9'); COMMIT;"
                          // A move and a DELETE in one transaction: the DELETE's look for pairs
                          // made again (up.sql, install_triggers) runs too.
                          " BEGIN; UPDATE channel_members SET user_id = 'u3' WHERE user_id OPERATOR(pg_catalog.=) 'u2';"
                          " DELETE FROM channel_members; COMMIT; TRUNCATE channel_members"));
  }
  const std::vector<std::string> once = {"j c1 u1 dm", "l c1 u1 dm", "j c1 u2 dm", "j c9 u9 x", "l c1 u2 dm",
                                         "j c1 u3 dm", "l c9 u9 -", "l c1 u3 dm", "t -"};
  std::vector<std::string> twice = once;
  twice.insert(twice.end(), once.begin(), once.end());
  EXPECT_EQ(log(true), twice);
  EXPECT_EQ(one("SELECT count(*) FROM membership_notifier.event_log"
                " WHERE abs(extract(epoch FROM occurred_at - clock_timestamp())) < 60"),
            "18");
  EXPECT_EQ(listener.drain(lc), 8) << "the second round: one NOTIFY per statement, one per log row of an UPDATE";
  // With no xType mapped, the triggers write a typed NULL of their own.
  ASSERT_EQ(migrate("up", {"--channels-table", "", "--xtype-column", ""}), 0);
  EXPECT_NO_THROW(write("INSERT INTO channel_members (channel_id, user_id) VALUES ('c2', 'u3')"));
  EXPECT_EQ(log(true).back(), "j c2 u3 -");
}

TEST_F(Mapping, AChannelsKeyThatIsNotUniqueDoesNotMakeWritesFail) {
  sql("CREATE TABLE channels (id text, type text);"
      " INSERT INTO channels VALUES ('c1', 'dm'), ('c1', 'group');"
      " CREATE TABLE channel_members (channel_id text, user_id text, PRIMARY KEY (channel_id, user_id))");
  ASSERT_EQ(migrate("up", {"--channels-table", "channels", "--xtype-column", "type", "--channels-key-column", "id"}), 0);
  EXPECT_NO_THROW(sql("INSERT INTO channel_members VALUES ('c1', 'u1')"));
  EXPECT_NO_THROW(sql("UPDATE channel_members SET user_id = 'u2'"));
  EXPECT_NO_THROW(sql("DELETE FROM channel_members"));
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1", "l c1 u1", "j c1 u2", "l c1 u2"}));
  EXPECT_EQ(one("SELECT bool_and(xtype IN ('dm', 'group')) FROM membership_notifier.event_log"), "t");
}

// --- mapping onto the application's schema --------------------------------------------------

TEST_F(Mapping, UuidIdsTravelAsTheirText) {
  sql("CREATE TABLE channel_members (channel_id uuid, user_id uuid, PRIMARY KEY (channel_id, user_id))");
  ASSERT_EQ(migrate("up"), 0);
  sql("INSERT INTO channel_members VALUES ('6f0c1e1a-2b3c-4d5e-8f90-a1b2c3d4e5f6', '00000000-0000-4000-8000-0000000000ff')");
  sql("DELETE FROM channel_members");
  EXPECT_EQ(log(), (std::vector<std::string>{
                       "j 6f0c1e1a-2b3c-4d5e-8f90-a1b2c3d4e5f6 00000000-0000-4000-8000-0000000000ff",
                       "l 6f0c1e1a-2b3c-4d5e-8f90-a1b2c3d4e5f6 00000000-0000-4000-8000-0000000000ff"}));
}

TEST_F(Mapping, BigintIdsTravelAsTheirExactText) {
  sql("CREATE TABLE channel_members (channel_id bigint, user_id bigint, PRIMARY KEY (channel_id, user_id))");
  ASSERT_EQ(migrate("up"), 0);
  sql("INSERT INTO channel_members VALUES (9007199254740993, 42)");  // 2^53 + 1: no double survives it
  sql("UPDATE channel_members SET user_id = -7");
  EXPECT_EQ(log(), (std::vector<std::string>{"j 9007199254740993 42", "l 9007199254740993 42", "j 9007199254740993 -7"}));
}

TEST_F(Mapping, ACustomTableAndCustomColumnNamesAreFollowed) {
  sql("CREATE SCHEMA app; CREATE TABLE app.members (room text, member text, PRIMARY KEY (room, member))");
  std::string out;
  ASSERT_EQ(migrate("up", {"--table", "app.members", "--channel-column", "room", "--user-column", "member"}, &out), 0);
  EXPECT_NE(out.find("app.members"), std::string::npos) << out;
  EXPECT_EQ(triggers(), (std::vector<std::string>{"app.members 4"}));
  sql("INSERT INTO app.members VALUES ('r1', 'm1'), ('r1', 'm2')");
  sql("UPDATE app.members SET room = 'r2' WHERE member = 'm1'");
  sql("DELETE FROM app.members WHERE member = 'm2'");
  sql("TRUNCATE app.members");
  EXPECT_EQ(log(), (std::vector<std::string>{"j r1 m1", "j r1 m2", "l r1 m1", "j r2 m1", "l r1 m2", "t"}));
}

TEST_F(Mapping, XTypeComesFromAColumnOfTheMembershipTable) {
  sql("CREATE TABLE channel_members (channel_id text, user_id text, kind text, PRIMARY KEY (channel_id, user_id))");
  ASSERT_EQ(migrate("up", {"--xtype-column", "kind"}), 0);
  sql("INSERT INTO channel_members VALUES ('c1', 'u1', 'dm'), ('c2', 'u1', NULL)");
  sql("UPDATE channel_members SET user_id = 'u2', kind = 'group' WHERE channel_id = 'c1'");
  sql("UPDATE channel_members SET kind = 'thread'");  // the pair stays: nothing
  sql("DELETE FROM channel_members WHERE channel_id = 'c1'");
  EXPECT_EQ(log(true), (std::vector<std::string>{"j c1 u1 dm", "j c2 u1 -", "l c1 u1 dm", "j c1 u2 group",
                                                  "l c1 u2 thread"}));
}

TEST_F(Mapping, XTypeIsLookedUpInTheChannelsTableByChannelId) {
  sql("CREATE SCHEMA app; CREATE TABLE app.channels (id text PRIMARY KEY, type text);"
      " INSERT INTO app.channels VALUES ('c1', 'dm'), ('c2', 'group');"
      " CREATE TABLE channel_members (channel_id text, user_id text, PRIMARY KEY (channel_id, user_id))");
  ASSERT_EQ(migrate("up", {"--channels-table", "app.channels", "--xtype-column", "type", "--channels-key-column", "id"}), 0);
  sql("INSERT INTO channel_members VALUES ('c1', 'u1'), ('c2', 'u2'), ('c3', 'u3')");  // no c3 channel
  sql("UPDATE channel_members SET channel_id = 'c2' WHERE user_id = 'u1'");
  sql("DELETE FROM channel_members WHERE user_id IN ('u2', 'u3')");
  EXPECT_EQ(log(true), (std::vector<std::string>{"j c1 u1 dm", "j c2 u2 group", "j c3 u3 -", "l c1 u1 dm",
                                                  "j c2 u1 group", "l c2 u2 group", "l c3 u3 -"}));
}

// The usual way a channel goes is `DELETE FROM channels`, its members following by cascade.
TEST_F(Mapping, MembersLeavingByCascadeFromADeletedChannelKeepTheChannelsXType) {
  sql("CREATE TABLE channels (id text PRIMARY KEY, type text); INSERT INTO channels VALUES ('c1', 'dm');"
      " CREATE TABLE channel_members (channel_id text REFERENCES channels ON DELETE CASCADE, user_id text,"
      " PRIMARY KEY (channel_id, user_id))");
  ASSERT_EQ(migrate("up", {"--channels-table", "channels", "--xtype-column", "type"}), 0);
  sql("INSERT INTO channel_members VALUES ('c1', 'u1'), ('c1', 'u2')");
  sql("DELETE FROM channels WHERE id = 'c1'");
  EXPECT_EQ(log(true), (std::vector<std::string>{"j c1 u1 dm", "j c1 u2 dm", "l c1 u1 dm", "l c1 u2 dm"}));
}

TEST_F(Mapping, AMappingToAMissingColumnFailsTheMigrationSayingWhichAndInstallsNothing) {
  sql("CREATE TABLE channel_members (channel_id text, user_id text, PRIMARY KEY (channel_id, user_id))");
  std::string out;
  EXPECT_EQ(migrate("up", {"--channel-column", "room"}, &out), 1);
  EXPECT_NE(out.find("migrate up failed"), std::string::npos) << out;
  EXPECT_NE(out.find("column new.room does not exist"), std::string::npos) << out;
  EXPECT_FALSE(schema_exists());
  EXPECT_TRUE(triggers().empty());
  EXPECT_EQ(migrate("up", {"--table", "public.nowhere"}, &out), 1);
  EXPECT_NE(out.find("relation \"public.nowhere\" does not exist"), std::string::npos) << out;
  EXPECT_FALSE(schema_exists());
  EXPECT_NO_THROW(sql("INSERT INTO channel_members VALUES ('c1', 'u1')"));
}

TEST_F(Mapping, AFailedMigrationLeavesThePreviousInstallationAsItWas) {
  sql("CREATE TABLE channel_members (channel_id text, user_id text, PRIMARY KEY (channel_id, user_id))");
  ASSERT_EQ(migrate("up"), 0);
  const std::string before = fingerprint(true);
  std::string out;
  EXPECT_EQ(migrate("up", {"--xtype-column", "nope"}, &out), 1);
  EXPECT_NE(out.find("nope"), std::string::npos) << out;
  EXPECT_EQ(fingerprint(true), before);
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  EXPECT_EQ(log(true), (std::vector<std::string>{"j c1 u1 -"}));
}

// --- the migration --------------------------------------------------------------------------

TEST_F(Migration, UpTwiceChangesNothingNotEvenTheTriggers) {
  sql("CREATE TABLE channel_members (channel_id text, user_id text, PRIMARY KEY (channel_id, user_id))");
  ASSERT_EQ(migrate("up"), 0);
  const std::string before = fingerprint(true);
  EXPECT_NE(before.find("trigger CREATE TRIGGER membership_notifier_insert"), std::string::npos) << before;
  std::string out;
  ASSERT_EQ(migrate("up", {}, &out), 0);
  EXPECT_NE(out.find("4 of 4 enabled"), std::string::npos) << out;
  EXPECT_EQ(fingerprint(true), before);
  ASSERT_EQ(migrate("up", {"--table", "public.channel_members", "--channel-column", "channel_id"}), 0);
  EXPECT_EQ(fingerprint(true), before) << "the same mapping spelt out is the same mapping";
}

// Earlier versions put a CHECK on the log's op; up drops it: the triggers write only 'j' and
// 'l', and the check was a large share of their cost (up.sql).
TEST_F(Migration, UpDropsTheCheckOnTheLogThatEarlierVersionsCreated) {
  sql("CREATE TABLE channel_members (channel_id text, user_id text, PRIMARY KEY (channel_id, user_id))");
  ASSERT_EQ(migrate("up"), 0);
  const std::string constraints = "SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint"
                                  " WHERE conrelid = 'membership_notifier.event_log'::regclass";
  EXPECT_EQ(one(constraints), "event_log_pkey");
  sql("ALTER TABLE membership_notifier.event_log ADD CONSTRAINT event_log_op_check CHECK (op IN ('j', 'l', 't'))");
  ASSERT_EQ(migrate("up"), 0);
  EXPECT_EQ(one(constraints), "event_log_pkey");
}

// Roles hardened against CVE-2018-1058 often have a search_path without public.
TEST_F(Migration, TheStoredTableNameMeansTheSameTableWhateverTheSearchPath) {
  sql("CREATE TABLE channel_members (channel_id text, user_id text, PRIMARY KEY (channel_id, user_id))");
  ASSERT_EQ(migrate("up"), 0);
  const std::string before = fingerprint(true);
  const std::string other = conninfo() + " options='-csearch_path=pg_catalog'";
  pqxx::connection c{other};
  EXPECT_EQ(one(c, "SELECT coalesce(to_regclass(member_table)::oid::text, 'unresolved') FROM membership_notifier.settings"),
            one("SELECT 'public.channel_members'::regclass::oid::text"));
  EXPECT_EQ(migrate("up", {}, nullptr, other), 0);
  EXPECT_EQ(fingerprint(true), before);
}

TEST_F(Migration, UpWithAnotherMappingMovesTheTriggersAndKeepsTheLog) {
  sql("CREATE TABLE channel_members (channel_id text, user_id text, PRIMARY KEY (channel_id, user_id));"
      " CREATE SCHEMA app; CREATE TABLE app.members (room text, member text, PRIMARY KEY (room, member))");
  ASSERT_EQ(migrate("up"), 0);
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  const std::string log_id = one("SELECT log_id FROM membership_notifier.settings");
  ASSERT_EQ(migrate("up", {"--table", "app.members", "--channel-column", "room", "--user-column", "member"}), 0);
  EXPECT_EQ(triggers(), (std::vector<std::string>{"app.members 4"}));
  EXPECT_EQ(one("SELECT log_id FROM membership_notifier.settings"), log_id);
  sql("INSERT INTO channel_members VALUES ('c1', 'u2')");  // no longer watched
  sql("INSERT INTO app.members VALUES ('r1', 'm1')");
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1", "j r1 m1"}));
  // Columns of the same table change too: the triggers are rebuilt for them.
  sql("ALTER TABLE app.members ADD COLUMN person text; UPDATE app.members SET person = 'p1'");
  ASSERT_EQ(migrate("up", {"--user-column", "person"}), 0);
  sql("DELETE FROM app.members");
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1", "j r1 m1", "l r1 p1"}));
}

TEST_F(Migration, DownRemovesTriggersAndSchemaAndKeepsTheTableAndItsRows) {
  sql("CREATE TABLE channel_members (channel_id text, user_id text, PRIMARY KEY (channel_id, user_id))");
  ASSERT_EQ(migrate("up"), 0);
  sql("INSERT INTO channel_members VALUES ('c1', 'u1'), ('c1', 'u2')");
  std::string out;
  ASSERT_EQ(migrate("down", {}, &out), 0);
  EXPECT_NE(out.find("not installed"), std::string::npos) << out;
  EXPECT_FALSE(schema_exists());
  EXPECT_TRUE(triggers().empty());
  EXPECT_EQ(fingerprint(true), "");
  EXPECT_EQ(one("SELECT string_agg(channel_id || ' ' || user_id, ', ' ORDER BY user_id) FROM channel_members"),
            "c1 u1, c1 u2");
  EXPECT_NO_THROW(sql("INSERT INTO channel_members VALUES ('c1', 'u3'); TRUNCATE channel_members"));
}

TEST_F(Migration, DownTwiceAndDownWhereNothingWasInstalledAreFine) {
  sql("CREATE TABLE channel_members (channel_id text, user_id text, PRIMARY KEY (channel_id, user_id))");
  EXPECT_EQ(migrate("down"), 0);
  ASSERT_EQ(migrate("up"), 0);
  EXPECT_EQ(migrate("down"), 0);
  EXPECT_EQ(migrate("down"), 0);
  EXPECT_FALSE(schema_exists());
  EXPECT_EQ(psql("-f " + kDownSql), 0);
}

TEST_F(Migration, PsqlRunningTheSqlFilesGivesWhatTheBinaryGives) {
  sql("CREATE TABLE channel_members (channel_id text, user_id text, PRIMARY KEY (channel_id, user_id))");
  ASSERT_EQ(migrate("up"), 0);
  const std::string by_binary = fingerprint(false);
  ASSERT_EQ(migrate("down"), 0);
  std::string out;
  ASSERT_EQ(psql("-f " + kUpSql, &out), 0) << out;
  EXPECT_EQ(fingerprint(false), by_binary);
  const std::string installed = fingerprint(true);
  ASSERT_EQ(psql("-f " + kUpSql, &out), 0) << out;
  EXPECT_EQ(fingerprint(true), installed) << "psql twice changes nothing either";
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1"}));
  ASSERT_EQ(psql("-f " + kDownSql, &out), 0) << out;
  EXPECT_FALSE(schema_exists());
}

TEST_F(Migration, PsqlAppliesAMappingSetBeforeTheFile) {
  sql("CREATE SCHEMA app; CREATE TABLE app.members (room text, member text, kind text, PRIMARY KEY (room, member))");
  std::string out;
  ASSERT_EQ(psql("-c \"SET membership_notifier.member_table = 'app.members'\""
                 " -c \"SET membership_notifier.channel_column = 'room'\""
                 " -c \"SET membership_notifier.user_column = 'member'\""
                 " -c \"SET membership_notifier.xtype_column = 'kind'\" -f " + kUpSql, &out),
            0)
      << out;
  EXPECT_EQ(triggers(), (std::vector<std::string>{"app.members 4"}));
  EXPECT_EQ(one("SELECT member_table || ' ' || channel_column || ' ' || user_column || ' ' || xtype_column"
                " FROM membership_notifier.settings"),
            "app.members room member kind");
  sql("INSERT INTO app.members VALUES ('r1', 'm1', 'dm')");
  EXPECT_EQ(log(true), (std::vector<std::string>{"j r1 m1 dm"}));
}

TEST_F(Migration, ThePsqlCommandDocumentedAtTheTopOfUpSqlWorksAsWritten) {
  sql("CREATE SCHEMA app; CREATE TABLE app.members (channel_id text, user_id text, PRIMARY KEY (channel_id, user_id))");
  std::string out;  // sql/up.sql: psql -c "SET membership_notifier.member_table = 'app.members'" -f sql/up.sql
  EXPECT_EQ(psql("-c \"SET membership_notifier.member_table = 'app.members'\" -f " + kUpSql, &out), 0) << out;
  EXPECT_EQ(triggers(), (std::vector<std::string>{"app.members 4"}));
}

TEST_F(Migration, StatusSaysWhetherItIsInstalled) {
  sql("CREATE TABLE channel_members (channel_id text, user_id text, PRIMARY KEY (channel_id, user_id))");
  std::string out;
  EXPECT_EQ(migrate("status", {}, &out), 0);
  EXPECT_EQ(out.rfind("not installed", 0), 0u) << out;
  ASSERT_EQ(migrate("up"), 0);
  EXPECT_EQ(migrate("status", {}, &out), 0);
  EXPECT_EQ(out.rfind("installed: schema version 3", 0), 0u) << out;
  EXPECT_NE(out.find("channel_members (channel channel_id, user user_id)"), std::string::npos) << out;
  EXPECT_NE(out.find("4 of 4 enabled"), std::string::npos) << out;
  ASSERT_EQ(migrate("down"), 0);
  EXPECT_EQ(migrate("status", {}, &out), 0);
  EXPECT_EQ(out.rfind("not installed", 0), 0u) << out;
}

// A client's current state is read by user. Without an index that starts with the user column
// each snapshot query reads the whole membership table: status (also printed by `migrate up`)
// must say so and give the fix.
TEST_F(Migration, StatusWarnsWhenNoIndexLetsSnapshotsFindAUsersRows) {
  sql("CREATE TABLE channel_members (channel_id text, user_id text, PRIMARY KEY (channel_id, user_id))");
  std::string out;
  ASSERT_EQ(migrate("up", {}, &out), 0);
  EXPECT_NE(out.find("snapshots: WARNING: no index starts with the user column"), std::string::npos) << out;
  EXPECT_NE(out.find("CREATE INDEX CONCURRENTLY ON public.channel_members (user_id)"), std::string::npos) << out;
  sql("CREATE INDEX members_by_user ON channel_members (user_id, channel_id)");
  EXPECT_EQ(migrate("status", {}, &out), 0);
  EXPECT_NE(out.find("snapshots: by index members_by_user\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("WARNING"), std::string::npos) << out;
}

// Tuples read from the log so far, by the counters a session has flushed.
const std::string kLogTuplesRead =
    "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables"
    " WHERE relid = 'membership_notifier.event_log'::regclass";

// `migrate status` (also printed by `migrate up`) on a big log: it counts up to a million rows
// and takes the oldest through the key. A count(*) and a min(occurred_at) each read the whole
// log: seconds at 24 h of retention.
TEST_F(Migration, StatusOnALogOfMoreThanAMillionRowsReadsAMillionAndSaysSo) {
  sql("CREATE TABLE channel_members (channel_id text, user_id text, PRIMARY KEY (channel_id, user_id))");
  ASSERT_EQ(migrate("up", {}, nullptr), 0);
  sql("INSERT INTO membership_notifier.event_log (op, channel_id, user_id, occurred_at)"
      " SELECT 'j', 'c' || g, 'u1', '2026-11-27 10:00:00+00'::timestamptz + g * interval '1 ms'"
      "   FROM generate_series(1, 1100000) g");
  sql("ANALYZE membership_notifier.event_log");
  const long long before = std::stoll(one(kLogTuplesRead));
  std::string out;
  ASSERT_EQ(migrate("status", {}, &out), 0);
  EXPECT_NE(out.find("log:       more than 1000000 rows (about 11"), std::string::npos) << out;
  EXPECT_NE(out.find("oldest 2026-11-27 10:00:00.001+00"), std::string::npos) << out;
  // The status session's counters reach the view when it ends, which it has.
  long long read = 0;
  for (int i = 0; i < 50 && read == 0; ++i) {
    read = std::stoll(one(kLogTuplesRead)) - before;
    if (read == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GT(read, 1000000) << "the counters must see the count";
  EXPECT_LT(read, 1000100) << "tuples read; the whole log twice is 2,200,000";
}

// --- retention ------------------------------------------------------------------------------

TEST_F(Retention, PruneDeletesOldRowsInBatchesAndAdvancesPrunedThrough) {
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1')");
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u2')");
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u3')");
  const std::string newest = one("SELECT max(xid)::text FROM membership_notifier.event_log");
  const std::string second = one("SELECT xid::text FROM membership_notifier.event_log WHERE user_id = 'u2'");
  EXPECT_EQ(one("SELECT membership_notifier.prune('1 hour'::interval)"), "0");
  EXPECT_EQ(one("SELECT pruned_through::text FROM membership_notifier.settings"), "0");
  EXPECT_EQ(one("SELECT membership_notifier.prune('0 seconds'::interval, 2)"), "2");
  EXPECT_EQ(one("SELECT pruned_through::text FROM membership_notifier.settings"), second);
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u3"}));
  EXPECT_EQ(one("SELECT membership_notifier.prune('0 seconds'::interval)"), "1");
  EXPECT_EQ(one("SELECT pruned_through::text FROM membership_notifier.settings"), newest);
  EXPECT_TRUE(log().empty());
}

// The sidecar prunes every --prune-interval on the application's database, and mostly finds
// nothing old. Asking for old rows in key order would read the whole log each time (occurred_at
// has no index). Only the oldest batch may be read.
TEST_F(Retention, PruneWithNothingOldReadsOnlyTheOldestBatchNotTheWholeLog) {
  sql("INSERT INTO channel_members (channel_id, user_id) SELECT 'c' || g, 'u1' FROM generate_series(1, 5000) g");
  sql("ANALYZE membership_notifier.event_log");
  pqxx::connection pruner{conninfo()};
  // Counters reach the view when a session flushes them: force the pruner's, then read afresh.
  const auto tuples_read = [&] {
    pqxx::nontransaction(pruner).exec("SELECT pg_stat_force_next_flush()");
    pqxx::nontransaction(pruner).exec("SELECT 1");
    return std::stoll(one(kLogTuplesRead));
  };
  const long long before = tuples_read();
  for (int i = 0; i < 7; ++i)  // past plpgsql's five custom plans: the generic one too
    EXPECT_EQ(one(pruner, "SELECT membership_notifier.prune('1 hour'::interval, 100)"), "0");
  const long long read = tuples_read() - before;
  EXPECT_GT(read, 0) << "the counters must see the reads at all";
  // 7 x 100 and a little; reading the whole log each time is 35,000.
  EXPECT_LT(read, 7 * 200) << "tuples read by 7 prunes of batch 100 from a log of 5,000";
  EXPECT_EQ(one("SELECT count(*) FROM membership_notifier.event_log"), "5000");
}

TEST_F(Retention, ASecondSessionPruningAtTheSameTimeGetsMinusOne) {
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1'), ('c1', 'u2')");
  pqxx::connection first{conninfo()}, second{conninfo()};
  pqxx::nontransaction(second).exec("SET statement_timeout = '5s'");  // waiting would be the bug
  pqxx::work tx{first};
  EXPECT_EQ(tx.exec("SELECT membership_notifier.prune('0 seconds'::interval)").at(0).at(0).as<long long>(), 2);
  EXPECT_EQ(one(second, "SELECT membership_notifier.prune('0 seconds'::interval)"), "-1");
  tx.commit();
  EXPECT_EQ(one(second, "SELECT membership_notifier.prune('0 seconds'::interval)"), "0");
}

TEST_F(Retention, PruneAndAnApplicationInsertDoNotWaitForEachOther) {
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1'), ('c1', 'u2')");
  pqxx::connection app{conninfo()}, pruner{conninfo()};
  for (auto* c : {&app, &pruner}) pqxx::nontransaction(*c).exec("SET lock_timeout = '3s'; SET statement_timeout = '5s'");
  {  // The application's transaction is open while prune runs.
    pqxx::work a{app};
    a.exec("INSERT INTO channel_members (channel_id, user_id) VALUES ('c2', 'u1')");
    EXPECT_EQ(one(pruner, "SELECT membership_notifier.prune('0 seconds'::interval)"), "2");
    a.commit();
  }
  EXPECT_EQ(log(), (std::vector<std::string>{"j c2 u1"})) << "the open transaction's row must survive";
  {  // Prune's transaction is open while the application writes.
    pqxx::work p{pruner};
    EXPECT_EQ(p.exec("SELECT membership_notifier.prune('0 seconds'::interval)").at(0).at(0).as<long long>(), 1);
    EXPECT_NO_THROW(pqxx::nontransaction(app).exec(
        "INSERT INTO channel_members (channel_id, user_id) VALUES ('c3', 'u1');"
        " DELETE FROM channel_members WHERE channel_id = 'c1'"));
    p.commit();
  }
  EXPECT_EQ(log(), (std::vector<std::string>{"j c3 u1", "l c1 u1", "l c1 u2"}));
}

// --- the cursor -----------------------------------------------------------------------------

struct Read {
  std::string snapshot;
  std::vector<std::pair<long long, std::string>> rows;  // id, user
};

Read read_since(pqxx::connection& c, const std::string& snapshot) {
  pqxx::nontransaction tx{c};
  Read out;
  for (const auto& row : run_read(tx, snapshot)) {
    if (!row[0].is_null()) out.snapshot = row[0].as<std::string>();
    if (!row[1].is_null()) out.rows.emplace_back(row[1].as<long long>(), row[5].as<std::string>());
  }
  return out;
}

TEST_F(CommitSafeCursor, ALowerIdCommittedAfterAHigherOneIsReadFromTheSnapshotThatAnIdCursorWouldMiss) {
  pqxx::connection reader{conninfo()}, a{conninfo()}, b{conninfo()};
  const std::string start = one(reader, "SELECT pg_current_snapshot()::text");
  pqxx::work ta{a};
  ta.exec("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'ua')");
  {
    pqxx::work tb{b};
    tb.exec("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'ub')");
    tb.commit();
  }
  const Read after_b = read_since(reader, start);
  ASSERT_EQ(after_b.rows.size(), 1u);
  EXPECT_EQ(after_b.rows[0].second, "ub");
  const long long max_seen = after_b.rows[0].first;
  ta.commit();

  // The trap: A holds the lower id, so "id > the highest id seen" never returns it.
  EXPECT_EQ(one(reader, "SELECT count(*) FROM membership_notifier.event_log WHERE id > " + std::to_string(max_seen)), "0");
  const Read after_a = read_since(reader, after_b.snapshot);
  ASSERT_EQ(after_a.rows.size(), 1u);
  EXPECT_EQ(after_a.rows[0].second, "ua");
  EXPECT_LT(after_a.rows[0].first, max_seen);
  EXPECT_TRUE(read_since(reader, after_a.snapshot).rows.empty()) << "and nothing is read twice";
}

// The reader runs one generic plan for every read. It must stay a range scan of the key: a
// sequential scan would read the whole retained log on every wake-up (it did, at 60k rows).
// The log here is one backfill transaction, the statistics the planner trusts least.
TEST_F(CommitSafeCursor, TheReadersPlanTouchesOnlyNewRowsThroughTheKeyWhateverTheSizeOfTheLog) {
  sql("INSERT INTO channel_members (channel_id, user_id) SELECT 'c' || i, 'u' || i FROM generate_series(1, 30000) i;"
      " ANALYZE membership_notifier.event_log");
  pqxx::connection reader{conninfo()};
  pqxx::nontransaction tx{reader};
  tx.exec(EventLogReader::session_sql());
  tx.exec(std::string("PREPARE read_log AS ") + EventLogReader::read_sql());
  const std::string now = tx.exec("SELECT pg_current_snapshot()::text").at(0).at(0).as<std::string>();
  auto params = EventLogReader::read_params(*mn::PgSnapshot::parse(now));
  std::string plan;
  for (int i = 0; i < 6; ++i) {  // past the five executions after which "auto" may switch plans
    plan.clear();
    for (const auto& row : tx.exec("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE read_log(" +
                                   tx.quote(*params[0]) + ", " + tx.quote(*params[1]) + ", " +
                                   tx.quote(*params[2]) + ")")) {
      plan += row[0].as<std::string>() + "\n";
    }
  }
  EXPECT_EQ(plan.find("Seq Scan"), std::string::npos) << plan;
  EXPECT_NE(plan.find("Index Cond: ((xid >= $1) AND (xid < "), std::string::npos) << plan;
  EXPECT_NE(plan.find("Index Cond: ((xid = ANY ($2)) AND (xid >= $3) AND (xid < $1))"), std::string::npos) << plan;
  EXPECT_EQ(plan.find("Rows Removed"), std::string::npos) << plan;
}

}  // namespace
}  // namespace mn::test
