// Statements that change many rows, against a real PostgreSQL with the migration applied: INSERT
// and DELETE are logged by statement triggers over transition tables (sql/up.sql,
// install_triggers). Every actual insert and delete is in the log, nothing else is, and the
// log's order keeps every pair right: replaying it from the start gives the table. While a
// sidecar waits, each statement that changed rows wakes it once, with the signed position of
// its last log row, and the sidecar, unchanged, delivers from it in every wake mode. Where
// statement triggers would miss rows (partitions, inheritance) the migration keeps row triggers.
//
// Each test has a database of its own in the shared cluster.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "wake_payload.h"
#include "support/database_test.h"
#include "support/notifier_fixture.h"
#include "support/pg_cluster.h"
#include "support/sidecar.h"

namespace mn::test {
namespace {

using namespace std::chrono_literals;
using Pair = std::pair<std::string, std::string>;

// A LISTENing connection that keeps the wake-ups it gets, as a sidecar would.
struct Listener final : pqxx::notification_receiver {
  explicit Listener(pqxx::connection_base& c) : pqxx::notification_receiver(c, "membership_notifier") {}
  void operator()(const std::string& payload, int) override { payloads.push_back(payload); }
  // Takes in what arrives until `quiet` passes with nothing; how many arrived in all.
  size_t drain(pqxx::connection_base& c, std::chrono::milliseconds quiet = 400ms) {
    while (c.await_notification(0, static_cast<long>(std::chrono::microseconds(quiet).count())) > 0) {
    }
    return payloads.size();
  }
  std::vector<std::string> payloads;
};

// What replaying the log from its first row says, strictly: a join of a pair that is already a
// member, or a leave of one that is not, is an error of order (or a change that changed
// nothing) and is counted, not applied twice.
struct Replayed {
  std::set<Pair> members;
  std::vector<std::string> errors;  // "row <id>: j c1 u1 of a member"
};

class BulkStatements : public DatabaseTest {
 protected:
  BulkStatements() : DatabaseTest("bulk_") {}

  int migrate_up(const std::vector<std::string>& args = {}, std::string* out = nullptr) {
    return migrate("up", args, out);
  }

  // The application's schema of these tests: channels with a type (the xType), users, and the
  // membership table with foreign keys to both that cascade, as chat schemas usually have.
  void create_schema() {
    sql("CREATE TABLE channels (id text PRIMARY KEY, type text);"
        " CREATE TABLE users (id text PRIMARY KEY);"
        " CREATE TABLE channel_members ("
        "   channel_id text NOT NULL REFERENCES channels ON DELETE CASCADE ON UPDATE CASCADE,"
        "   user_id text NOT NULL REFERENCES users ON DELETE CASCADE,"
        "   role text, PRIMARY KEY (channel_id, user_id));"
        " INSERT INTO channels SELECT 'c' || i, CASE WHEN i % 2 = 0 THEN 'group' ELSE 'dm' END"
        "   FROM generate_series(1, 20) i;"
        " INSERT INTO users SELECT 'u' || i FROM generate_series(1, 10000) i");
    ASSERT_EQ(migrate_up({"--channels-table", "channels", "--xtype-column", "type"}), 0);
  }

  // The log in id order: "j c1 u1"; with_xtype appends the xType or "-".
  std::vector<std::string> log(bool with_xtype = false, const std::string& where = "true") {
    std::vector<std::string> out;
    for (const auto& row : query(std::string("SELECT op::text || coalesce(' ' || channel_id, '')"
                                             " || coalesce(' ' || user_id, '')") +
                                 (with_xtype ? " || ' ' || coalesce(xtype, '-')" : "") +
                                 " FROM membership_notifier.event_log WHERE " + where + " ORDER BY id")) {
      out.push_back(row[0].as<std::string>());
    }
    return out;
  }

  long long count(const std::string& where = "true") {
    return std::stoll(one("SELECT count(*) FROM membership_notifier.event_log WHERE " + where));
  }

  std::set<Pair> table(const std::string& name = "channel_members") {
    std::set<Pair> out;
    for (const auto& row : query("SELECT channel_id::text, user_id::text FROM " + name)) {
      out.emplace(row[0].as<std::string>(), row[1].as<std::string>());
    }
    return out;
  }

  Replayed replay() {
    Replayed r;
    for (const auto& row : query("SELECT id, op::text, channel_id, user_id FROM membership_notifier.event_log ORDER BY id")) {
      const std::string op = row[1].as<std::string>();
      if (op == "t") {
        r.members.clear();
        continue;
      }
      Pair p{row[2].as<std::string>(), row[3].as<std::string>()};
      const bool member = r.members.count(p) > 0;
      if ((op == "j") == member) {
        r.errors.push_back("row " + row[0].as<std::string>() + ": " + op + " " + p.first + " " + p.second +
                           (member ? " of a member" : " of a non-member"));
      } else if (op == "j") {
        r.members.insert(p);
      } else {
        r.members.erase(p);
      }
    }
    return r;
  }

  // Replaying the log gives the table, with no error of order on the way.
  void expect_log_replays_to_table(const std::string& table_name = "channel_members") {
    const Replayed r = replay();
    EXPECT_TRUE(r.errors.empty()) << r.errors.size() << " errors, the first: " << r.errors.front();
    const std::set<Pair> t = table(table_name);
    EXPECT_EQ(r.members.size(), t.size());
    EXPECT_TRUE(r.members == t) << "the log replayed does not give the table";
  }

  // The migration's triggers on a table: "membership_notifier_insert statement".
  std::vector<std::string> trigger_kinds(const std::string& table_name = "public.channel_members") {
    std::vector<std::string> out;
    for (const auto& row : query("SELECT tgname || CASE WHEN tgtype::int & 1 = 1 THEN ' row' ELSE ' statement' END"
                                 " FROM pg_trigger WHERE tgrelid = '" + table_name + "'::regclass"
                                 " AND tgname LIKE 'membership\\_notifier\\_%' ORDER BY tgname")) {
      out.push_back(row[0].as<std::string>());
    }
    return out;
  }
};

const std::vector<std::string> kStatementTriggers = {
    "membership_notifier_delete statement", "membership_notifier_insert statement",
    "membership_notifier_truncate statement", "membership_notifier_update row"};
const std::vector<std::string> kRowTriggers = {
    "membership_notifier_delete row", "membership_notifier_insert row", "membership_notifier_truncate statement",
    "membership_notifier_update row"};

using Inserting = BulkStatements;
using Deleting = BulkStatements;
using Updating = BulkStatements;
using Ordering = BulkStatements;
using WakingUp = BulkStatements;
using TriggerKind = BulkStatements;

// --- every actual insert and delete, nothing else -------------------------------------------

TEST_F(Inserting, AChannelCreatedWithTenThousandMembersLogsEveryJoinInItsTransactionInRowOrder) {
  create_schema();
  EXPECT_EQ(trigger_kinds(), kStatementTriggers);
  pqxx::connection c{conninfo()};
  pqxx::work tx{c};
  const std::string xid = tx.exec("SELECT pg_current_xact_id()::text").at(0).at(0).as<std::string>();
  tx.exec("INSERT INTO channel_members (channel_id, user_id) SELECT 'c1', 'u' || g FROM generate_series(1, 10000) g");
  tx.commit();
  EXPECT_EQ(count(), 10000);
  EXPECT_EQ(count("op = 'j' AND channel_id = 'c1' AND xtype = 'dm' AND xid = '" + xid + "'"), 10000);
  // Ids follow the order the statement inserted the rows in, one after another.
  EXPECT_EQ(one("SELECT bool_and(user_id = 'u' || (id - first + 1)) FROM membership_notifier.event_log,"
                " (SELECT min(id) AS first FROM membership_notifier.event_log) f"),
            "t");
  expect_log_replays_to_table();
}

TEST_F(Inserting, OnConflictDoNothingLogsOnlyTheRowsItInserted) {
  create_schema();
  sql("INSERT INTO channel_members (channel_id, user_id) SELECT 'c1', 'u' || g FROM generate_series(1, 50) g");
  sql("INSERT INTO channel_members (channel_id, user_id) SELECT 'c1', 'u' || g FROM generate_series(1, 100) g"
      " ON CONFLICT DO NOTHING");
  sql("INSERT INTO channel_members (channel_id, user_id) SELECT 'c1', 'u' || g FROM generate_series(1, 100) g"
      " ON CONFLICT DO NOTHING");
  EXPECT_EQ(count(), 100);
  EXPECT_EQ(count("user_id IN (SELECT 'u' || g FROM generate_series(51, 100) g) AND id > ("
                  "SELECT max(id) FROM (SELECT id FROM membership_notifier.event_log ORDER BY id LIMIT 50) f)"),
            50);
  expect_log_replays_to_table();
}

// Rows that conflict take the UPDATE path: logged by the update trigger, and only when their
// pair changes. Its rows come before the statement's inserted rows.
TEST_F(Inserting, OnConflictDoUpdateLogsTheInsertedRowsAndOnlyTheUpdatesThatMoveAPair) {
  create_schema();
  sql("INSERT INTO channel_members SELECT 'c1', 'u' || g, 'member' FROM generate_series(1, 10) g");
  sql("INSERT INTO channel_members SELECT 'c1', 'u' || g, 'admin' FROM generate_series(1, 20) g"
      " ON CONFLICT (channel_id, user_id) DO UPDATE SET role = excluded.role");
  EXPECT_EQ(one("SELECT count(*) FROM channel_members WHERE role = 'admin'"), "20");
  EXPECT_EQ(count(), 20) << "ten joins, then ten more; no row for the ten that changed their role";
  sql("INSERT INTO channel_members VALUES ('c1', 'u2', 'x'), ('c1', 'u40', 'x')"
      " ON CONFLICT (channel_id, user_id) DO UPDATE SET user_id = 'u30'");
  EXPECT_EQ(log(false, "id > (SELECT max(id) - 3 FROM membership_notifier.event_log)"),
            (std::vector<std::string>{"l c1 u2", "j c1 u30", "j c1 u40"}));
  expect_log_replays_to_table();
}

TEST_F(Inserting, CopyLogsAJoinForEveryCopiedRow) {
  create_schema();
  sql(R"(COPY channel_members (channel_id, user_id) FROM PROGRAM
         'awk ''BEGIN { for (i = 1; i <= 1000; i++) printf "c2\tu%d\n", i }''')");
  EXPECT_EQ(one("SELECT count(*) FROM channel_members"), "1000");
  EXPECT_EQ(count("op = 'j' AND channel_id = 'c2' AND xtype = 'group'"), 1000);
  expect_log_replays_to_table();
}

TEST_F(Deleting, AStatementDeletingManyRowsLogsALeaveForEveryRowItDeletedAndNothingElse) {
  create_schema();
  sql("INSERT INTO channel_members (channel_id, user_id) SELECT 'c3', 'u' || g FROM generate_series(1, 5000) g");
  sql("DELETE FROM channel_members WHERE channel_id = 'c3' AND user_id LIKE 'u1%'");
  sql("DELETE FROM channel_members WHERE channel_id = 'c3' AND user_id LIKE 'u1%'");
  EXPECT_EQ(count("op = 'l'"), 1111);
  EXPECT_EQ(count("op = 'l' AND user_id LIKE 'u1%' AND xtype = 'dm'"), 1111);
  expect_log_replays_to_table();
}

// A channel goes with `DELETE FROM channels`, a user with `DELETE FROM users`: their
// memberships follow by cascade, many rows for one statement of the application.
TEST_F(Deleting, DeletingChannelsAndUsersLogsALeaveForEveryMembershipTheirCascadesRemoved) {
  create_schema();
  sql("INSERT INTO channel_members (channel_id, user_id)"
      " SELECT 'c' || c, 'u' || g FROM generate_series(4, 7) c, generate_series(1, 100) g");
  sql("DELETE FROM channels WHERE id IN ('c4', 'c5')");
  EXPECT_EQ(count("op = 'l' AND channel_id = 'c4' AND xtype = 'group'"), 100) << "the deleted channel's xType";
  EXPECT_EQ(count("op = 'l' AND channel_id = 'c5' AND xtype = 'dm'"), 100);
  sql("DELETE FROM users WHERE id IN ('u1', 'u2', 'u3')");
  auto by_users = log(true, "op = 'l' AND channel_id IN ('c6', 'c7')");
  std::sort(by_users.begin(), by_users.end());
  EXPECT_EQ(by_users, (std::vector<std::string>{"l c6 u1 group", "l c6 u2 group", "l c6 u3 group", "l c7 u1 dm",
                                                 "l c7 u2 dm", "l c7 u3 dm"}));
  EXPECT_EQ(count("op = 'l'"), 206);
  expect_log_replays_to_table();
}

TEST_F(Updating, AnUpdateOfManyRowsLogsALeaveThenAJoinForEachMovedRowAndNothingForTheRest) {
  create_schema();
  sql("INSERT INTO channel_members (channel_id, user_id) SELECT 'c7', 'u' || g FROM generate_series(1, 100) g");
  const long long before = count();
  sql("UPDATE channel_members SET role = 'moved',"
      " channel_id = CASE WHEN user_id::text LIKE 'u1%' THEN 'c8' ELSE channel_id END");
  EXPECT_EQ(one("SELECT count(*) FROM channel_members WHERE role = 'moved'"), "100");
  const auto moved = log(true, "id > " + std::to_string(before));
  ASSERT_EQ(moved.size(), 24u) << "12 rows moved (u1, u10-u19, u100)";
  for (size_t i = 0; i < moved.size(); i += 2) {
    const std::string user = moved[i].substr(moved[i].find(" u") + 1);
    EXPECT_EQ(moved[i], "l c7 " + user) << "a leave of the old pair first";
    EXPECT_EQ(moved[i + 1], "j c8 " + user.substr(0, user.find(' ')) + " group") << "then the join of the new one";
  }
  // A channel renamed: its members move with ON UPDATE CASCADE.
  sql("UPDATE channels SET id = 'c21' WHERE id = 'c8'");
  EXPECT_EQ(count("op = 'j' AND channel_id = 'c21'"), 12);
  expect_log_replays_to_table();
}

// --- order -----------------------------------------------------------------------------------

TEST_F(Ordering, StatementsOfOneTransactionAreLoggedInStatementOrder) {
  create_schema();
  sql("BEGIN;"
      " INSERT INTO channel_members (channel_id, user_id) SELECT 'c9', 'u' || g FROM generate_series(1, 1000) g;"
      " DELETE FROM channel_members WHERE channel_id = 'c9' AND right(user_id, 1) IN ('0', '2', '4', '6', '8');"
      " INSERT INTO channel_members (channel_id, user_id) SELECT 'c9', 'u' || g FROM generate_series(2, 1000, 2) g;"
      " DELETE FROM channel_members WHERE channel_id = 'c9' AND user_id <> 'u7';"
      " COMMIT");
  // Runs of one op each, in the statements' order: 1000 joins, 500 leaves, 500 joins, 999 leaves.
  std::vector<std::pair<char, int>> runs;
  for (const auto& line : log()) {
    if (runs.empty() || runs.back().first != line[0]) runs.emplace_back(line[0], 0);
    ++runs.back().second;
  }
  EXPECT_EQ(runs, (std::vector<std::pair<char, int>>{{'j', 1000}, {'l', 500}, {'j', 500}, {'l', 999}}));
  EXPECT_EQ(one("SELECT count(DISTINCT xid) FROM membership_notifier.event_log"), "1");
  expect_log_replays_to_table();
  EXPECT_EQ(table(), (std::set<Pair>{{"c9", "u7"}}));
}

// One statement can delete a pair's row and insert the pair again: the delete is of the row
// that was there before, so its leave must come first.
TEST_F(Ordering, AMergeThatDeletesPairsAndInsertsThemAgainLogsEachLeaveBeforeItsJoin) {
  create_schema();
  sql("INSERT INTO channel_members (channel_id, user_id) SELECT 'c1', 'u' || g FROM generate_series(1, 100) g");
  const long long before = count();
  // Source rows for u1..u100 match and delete; rows for the same users with another key find
  // no match and insert the pair again.
  sql("MERGE INTO channel_members t USING ("
      "   SELECT 'c1' AS ch, 'u' || g AS u, 'u' || g AS k FROM generate_series(1, 100) g"
      "   UNION ALL SELECT 'c1', 'u' || g, 'again' || g FROM generate_series(1, 100) g) s"
      " ON t.channel_id = s.ch AND t.user_id = s.k"
      " WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT (channel_id, user_id) VALUES (s.ch, s.u)");
  EXPECT_EQ(one("SELECT count(*) FROM channel_members"), "100");
  EXPECT_EQ(count("id > " + std::to_string(before)), 200);
  expect_log_replays_to_table();
}

TEST_F(Ordering, AWithQueryThatDeletesRowsAndInsertsThemAgainLogsEachLeaveBeforeItsJoin) {
  create_schema();
  sql("INSERT INTO channel_members (channel_id, user_id) SELECT 'c1', 'u' || g FROM generate_series(1, 100) g");
  sql("WITH gone AS (DELETE FROM channel_members WHERE channel_id = 'c1' RETURNING channel_id, user_id)"
      " INSERT INTO channel_members (channel_id, user_id, role) SELECT channel_id, user_id, 'back' FROM gone");
  EXPECT_EQ(one("SELECT count(*) FROM channel_members WHERE role = 'back'"), "100");
  EXPECT_EQ(count(), 300);
  expect_log_replays_to_table();
}

// One statement deletes a pair's row and moves another row into that pair by UPDATE (here the
// UPDATE runs first in the log: the WITH query's DELETE finishes after it). The UPDATE's row
// trigger logs its join before the DELETE's statement trigger logs the leave; the DELETE's
// trigger then logs the join again, so the pair ends a member. The first join, of a pair that
// was a member all along, is the one change logged that changes nothing.
TEST_F(Ordering, AStatementThatDeletesAPairAndMovesAnotherRowIntoItLeavesThePairAMember) {
  create_schema();
  sql("INSERT INTO channel_members (channel_id, user_id) VALUES ('c1', 'u1'), ('c1', 'u2'), ('c1', 'u3')");
  sql("WITH gone AS (DELETE FROM channel_members WHERE channel_id = 'c1' AND user_id = 'u1' RETURNING user_id)"
      " UPDATE channel_members SET user_id = 'u1' WHERE channel_id = 'c1' AND user_id = 'u2' AND EXISTS (SELECT FROM gone)");
  EXPECT_EQ(table(), (std::set<Pair>{{"c1", "u1"}, {"c1", "u3"}}));
  EXPECT_EQ(log(true, "id > 3"), (std::vector<std::string>{"l c1 u2 dm", "j c1 u1 dm", "l c1 u1 dm", "j c1 u1 dm"}));
  // In a later transaction the mark is gone: a plain DELETE logs its leave and nothing more.
  sql("DELETE FROM channel_members WHERE user_id = 'u1'");
  EXPECT_EQ(log(false, "id > 7"), (std::vector<std::string>{"l c1 u1"}));
  // In the same transaction as a move, a DELETE of a pair that stays gone logs no join.
  sql("BEGIN; UPDATE channel_members SET user_id = 'u4' WHERE user_id = 'u3';"
      " DELETE FROM channel_members WHERE user_id = 'u4'; COMMIT");
  EXPECT_EQ(log(false, "id > 8"), (std::vector<std::string>{"l c1 u3", "j c1 u4", "l c1 u4"}));
  const Replayed r = replay();
  EXPECT_EQ(r.errors, (std::vector<std::string>{"row 5: j c1 u1 of a member"}));
  EXPECT_TRUE(r.members == table()) << "the log replayed does not give the table";
}

// Many kinds of statement, large and small, in transactions that commit or roll back, to
// savepoints too: whatever ran, the log replayed from the start gives the table.
TEST_F(Ordering, RandomBulkStatementsReplayedFromTheLogGiveTheTable) {
  create_schema();
  std::mt19937 rng(27);
  auto pick = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto channel = [&] { return "'c" + std::to_string(pick(1, 6)) + "'"; };
  auto users = [&](const char* col) {  // a random range of users, by their number
    const int a = pick(1, 400), b = a + pick(0, pick(0, 1) ? 300 : 5);
    return std::string("substr(") + col + ", 2)::int BETWEEN " + std::to_string(a) + " AND " + std::to_string(b);
  };
  auto statement = [&]() -> std::string {
    switch (pick(0, 7)) {
      case 0:
      case 1:
        return "INSERT INTO channel_members (channel_id, user_id) SELECT " + channel() +
               ", id FROM users WHERE " + users("id") + " ON CONFLICT DO NOTHING";
      case 2:
        return "DELETE FROM channel_members WHERE channel_id = " + channel() + " AND " + users("user_id");
      case 3:
        return "DELETE FROM channel_members WHERE " + users("user_id");
      case 4: {  // moves between channels, where the target pair is free
        const std::string to = channel();
        return "UPDATE channel_members m SET channel_id = " + to + " WHERE channel_id = " + channel() + " AND " +
               users("user_id") + " AND NOT EXISTS (SELECT FROM channel_members o WHERE o.channel_id = " + to +
               " AND o.user_id = m.user_id)";
      }
      case 5: {  // a merge that deletes some members of a channel and adds others
        const std::string ch = channel();
        return "MERGE INTO channel_members t USING (SELECT " + ch + " AS ch, id AS u FROM users WHERE " +
               users("id") + ") s ON t.channel_id = s.ch AND t.user_id = s.u"
               " WHEN MATCHED AND substr(s.u, 2)::int % 3 = 0 THEN DELETE"
               " WHEN NOT MATCHED THEN INSERT (channel_id, user_id) VALUES (s.ch, s.u)";
      }
      case 6:
        return "INSERT INTO channel_members (channel_id, user_id) SELECT " + channel() +
               ", id FROM users WHERE " + users("id") +
               " ON CONFLICT (channel_id, user_id) DO UPDATE SET role = 'again'";
      default:
        return "WITH gone AS (DELETE FROM channel_members WHERE channel_id = " + channel() + " AND " +
               users("user_id") + " RETURNING channel_id, user_id) INSERT INTO channel_members"
               " (channel_id, user_id, role) SELECT channel_id, user_id, 'back' FROM gone";
    }
  };
  pqxx::connection c{conninfo()};
  int statements = 0;
  for (int t = 0; t < 80; ++t) {
    std::string text = "BEGIN; ";
    const int n = pick(1, 4);
    for (int s = 0; s < n; ++s) {
      if (pick(0, 9) == 0) text += "SAVEPOINT s; " + statement() + "; ROLLBACK TO SAVEPOINT s; ";
      text += statement() + "; ";
      ++statements;
    }
    if (t == 40) text += "TRUNCATE channel_members; " + statement() + "; ";
    text += pick(0, 7) == 0 ? "ROLLBACK" : "COMMIT";
    pqxx::nontransaction tx{c};
    tx.exec(text);
  }
  EXPECT_GT(count(), 5000) << "the statements did change many rows";
  EXPECT_GT(std::stoll(one("SELECT count(*) FROM channel_members")), 100);
  expect_log_replays_to_table();
}

// --- waking the sidecar -----------------------------------------------------------------------

// One wake-up per statement that changed rows, whatever their number, in the payload that the
// sidecar verifies (it stays as it was: a position and its HMAC under the installation's key).
TEST_F(WakingUp, EachStatementThatChangesRowsWakesAWaitingSidecarOnceWithTheSignedPositionOfItsLastRow) {
  create_schema();
  sql("INSERT INTO channel_members (channel_id, user_id) SELECT 'c2', 'u' || g FROM generate_series(1, 100) g");
  pqxx::connection lc{conninfo()};
  Listener listener{lc};
  ASSERT_EQ(one(lc, "SELECT membership_notifier.set_waiting(true)"), "1");
  const long long before = std::stoll(one("SELECT max(id) FROM membership_notifier.event_log"));
  std::string xid;
  {
    pqxx::connection c{conninfo()};
    pqxx::work tx{c};
    xid = tx.exec("SELECT pg_current_xact_id()::text").at(0).at(0).as<std::string>();
    tx.exec("INSERT INTO channel_members (channel_id, user_id) SELECT 'c1', 'u' || g FROM generate_series(1, 10000) g");
    tx.exec("DELETE FROM channel_members WHERE channel_id = 'c2'");
    tx.exec("INSERT INTO channel_members (channel_id, user_id) SELECT 'c1', 'u' || g FROM generate_series(1, 10) g"
            " ON CONFLICT DO NOTHING");                                // nothing inserted: no wake-up
    tx.exec("DELETE FROM channel_members WHERE channel_id = 'c20'");  // nothing deleted: no wake-up
    tx.exec(R"(COPY channel_members (channel_id, user_id) FROM PROGRAM 'printf ''c3\tu1\nc3\tu2\n''')");
    tx.commit();
  }
  ASSERT_EQ(listener.drain(lc), 3u);
  // The last id of each statement: its rows are the next 10,000, 100 and 2 of the log.
  const std::vector<long long> last = {before + 10000, before + 10100, before + 10102};
  EXPECT_EQ(std::to_string(last.back()), one("SELECT max(id) FROM membership_notifier.event_log"));
  auto key = mn::parse_wake_key(one(lc, "SELECT encode(key, 'hex') FROM membership_notifier.wake_key"));
  ASSERT_TRUE(key);
  for (size_t i = 0; i < 3; ++i) {
    auto woken = mn::verify_wake_payload(listener.payloads[i], *key);
    ASSERT_TRUE(woken) << listener.payloads[i];
    EXPECT_EQ(std::to_string(woken->xid), xid);
    EXPECT_EQ(woken->id, last[i]);
    EXPECT_EQ(listener.payloads[i].substr(0, listener.payloads[i].rfind('.')), xid + "." + std::to_string(last[i]));
  }
  EXPECT_EQ(one("SELECT op::text || ' ' || channel_id FROM membership_notifier.event_log WHERE id = " + std::to_string(last[1])),
            "l c2");

  // No sidecar waiting: no NOTIFY at all, the log as complete.
  ASSERT_EQ(one(lc, "SELECT membership_notifier.set_waiting(false)"), "0");
  sql("DELETE FROM channel_members WHERE channel_id = 'c1'");
  EXPECT_EQ(listener.drain(lc), 3u);
  EXPECT_EQ(count("op = 'l' AND channel_id = 'c1'"), 10000);
  expect_log_replays_to_table();
}

// --- where statement triggers cannot be used ---------------------------------------------------

// A statement trigger fires only for the table a statement names: one on a partitioned table
// would miss writes into a partition directly. Row triggers are cloned to every partition.
TEST_F(TriggerKind, APartitionedTableGetsRowTriggersAndWritesIntoAPartitionDirectlyAreLogged) {
  sql("CREATE TABLE channel_members (channel_id text NOT NULL, user_id text NOT NULL,"
      "   PRIMARY KEY (channel_id, user_id)) PARTITION BY LIST (channel_id);"
      " CREATE TABLE members_c1 PARTITION OF channel_members FOR VALUES IN ('c1');"
      " CREATE TABLE members_rest PARTITION OF channel_members DEFAULT");
  ASSERT_EQ(migrate_up(), 0);
  EXPECT_EQ(trigger_kinds(), kRowTriggers);
  sql("INSERT INTO channel_members SELECT 'c' || (g % 3), 'u' || g FROM generate_series(1, 300) g");
  sql("INSERT INTO members_c1 SELECT 'c1', 'v' || g FROM generate_series(1, 50) g");
  sql("DELETE FROM members_rest WHERE user_id LIKE 'u1%'");
  sql("UPDATE channel_members SET channel_id = 'c2' WHERE channel_id = 'c1' AND user_id LIKE 'v2%'");  // moves rows
  EXPECT_EQ(count("op = 'j' AND user_id LIKE 'v%'"), 50 + 11);
  EXPECT_GT(count("op = 'l'"), 60);
  expect_log_replays_to_table();
}

// A table that became a child in an inheritance tree after the migration: a DELETE through the
// parent fires no statement trigger of the child. The next `migrate up` gives it row triggers.
TEST_F(TriggerKind, ATableThatJoinedAnInheritanceTreeGetsRowTriggersAgainAtTheNextMigration) {
  sql("CREATE TABLE channel_members (channel_id text NOT NULL, user_id text NOT NULL,"
      "   PRIMARY KEY (channel_id, user_id))");
  ASSERT_EQ(migrate_up(), 0);
  EXPECT_EQ(trigger_kinds(), kStatementTriggers);
  sql("CREATE TABLE all_members (channel_id text NOT NULL, user_id text NOT NULL);"
      " ALTER TABLE channel_members INHERIT all_members");
  std::string out;
  ASSERT_EQ(migrate_up({}, &out), 0);
  EXPECT_NE(out.find("4 of 4 enabled"), std::string::npos) << out;
  EXPECT_EQ(trigger_kinds(), kRowTriggers);
  sql("INSERT INTO channel_members SELECT 'c1', 'u' || g FROM generate_series(1, 20) g");
  sql("DELETE FROM all_members WHERE user_id LIKE 'u1%'");
  EXPECT_EQ(count("op = 'l'"), 11);
  expect_log_replays_to_table();
}

// An installation of schema version 2 logged INSERT and DELETE with row triggers under the same
// names: `migrate up` replaces them and keeps the log and its id.
TEST_F(TriggerKind, UpReplacesTheRowTriggersOfAnEarlierInstallationAndKeepsTheLog) {
  sql("CREATE TABLE channel_members (channel_id text NOT NULL, user_id text NOT NULL,"
      "   PRIMARY KEY (channel_id, user_id))");
  ASSERT_EQ(migrate_up(), 0);
  // Schema version 2 as it was left: row triggers for INSERT and DELETE.
  sql("DROP TRIGGER membership_notifier_insert ON channel_members;"
      " DROP TRIGGER membership_notifier_delete ON channel_members;"
      " CREATE TRIGGER membership_notifier_insert AFTER INSERT ON channel_members FOR EACH ROW"
      "   EXECUTE FUNCTION membership_notifier.on_insert();"
      " CREATE TRIGGER membership_notifier_delete AFTER DELETE ON channel_members FOR EACH ROW"
      "   EXECUTE FUNCTION membership_notifier.on_delete();"
      " UPDATE membership_notifier.settings SET schema_version = 2");
  EXPECT_EQ(trigger_kinds(), kRowTriggers);
  sql("INSERT INTO channel_members SELECT 'c1', 'u' || g FROM generate_series(1, 10) g");
  const std::string log_id = one("SELECT log_id FROM membership_notifier.settings");
  std::string out;
  ASSERT_EQ(migrate_up({}, &out), 0);
  EXPECT_NE(out.find("installed: schema version 3"), std::string::npos) << out;
  EXPECT_NE(out.find("4 of 4 enabled"), std::string::npos) << out;
  EXPECT_EQ(trigger_kinds(), kStatementTriggers);
  EXPECT_EQ(one("SELECT log_id FROM membership_notifier.settings"), log_id);
  sql("DELETE FROM channel_members WHERE user_id LIKE 'u1%'");
  EXPECT_EQ(log(), (std::vector<std::string>{"j c1 u1", "j c1 u2", "j c1 u3", "j c1 u4", "j c1 u5", "j c1 u6",
                                             "j c1 u7", "j c1 u8", "j c1 u9", "j c1 u10", "l c1 u1", "l c1 u10"}));
  expect_log_replays_to_table();
}

// --- through the sidecar ------------------------------------------------------------------------

// The sidecar as it is, against statement triggers: a statement of thousands of rows wakes it
// once, and each connected user gets its own change, in statement order, whatever the wake mode.
class BulkDelivery : public EveryWakeModeFixture {
 public:
  BulkDelivery() {
    table_ddl_ =
        "CREATE TABLE channels (id text PRIMARY KEY, type text);"
        " INSERT INTO channels SELECT 'c' || i, 'group' FROM generate_series(1, 3) i;"
        " CREATE TABLE public.channel_members (channel_id text NOT NULL REFERENCES channels ON DELETE CASCADE,"
        " user_id text NOT NULL, PRIMARY KEY (channel_id, user_id))";
    migrate_args_ = {"--channels-table", "channels", "--xtype-column", "type"};
  }
};
MN_EVERY_WAKE_MODE(BulkDelivery);

TEST_P(BulkDelivery, EachUserGetsItsChangesFromStatementsOfThousandsOfRowsInStatementOrderAfterOneWakeUpEach) {
  auto u1 = connect("u1");
  auto u2 = connect("u2");
  std::this_thread::sleep_for(300ms);  // settled: adaptive mode waits for a wake-up
  sql("INSERT INTO channel_members SELECT 'c1', 'u' || g FROM generate_series(1, 5000) g");
  EXPECT_EQ(events(*u1), (std::vector<std::string>{"joined c1 u1"}));
  EXPECT_EQ(events(*u2), (std::vector<std::string>{"joined c1 u2"}));
  EXPECT_EQ(metric(metrics(), "membership_notifier_db_notifications_total"), GetParam() == "poll" ? 0 : 1)
      << "one wake-up for the statement's 5,000 rows";
  sql("BEGIN;"
      " INSERT INTO channel_members SELECT 'c2', 'u' || g FROM generate_series(1, 3000) g;"
      " DELETE FROM channel_members WHERE channel_id = 'c2' AND user_id <> 'u2';"
      " INSERT INTO channel_members SELECT 'c2', 'u' || g FROM generate_series(1, 10) g ON CONFLICT DO NOTHING;"
      " COMMIT");
  sql("DELETE FROM channels WHERE id = 'c1'");
  EXPECT_EQ(events(*u1, 1s), (std::vector<std::string>{"joined c2 u1", "left c2 u1", "joined c2 u1", "left c1 u1"}));
  EXPECT_EQ(events(*u2, 1s), (std::vector<std::string>{"joined c2 u2", "left c1 u2"}));
}

}  // namespace
}  // namespace mn::test
